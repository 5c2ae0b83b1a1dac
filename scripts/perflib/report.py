"""From a run manifest of google-benchmark outputs to samples, a table, notes and JSON."""

from __future__ import annotations

import datetime
import os
import signal
from dataclasses import dataclass, field
from typing import Any

from . import gbench, stats, table
from .manifest import Manifest

SCHEMA = "libmesh-perf/1"


def describe_rc(rc: int) -> str:
    """Human wording of a shell exit status ('exit 1', 'killed by SIGSEGV', 'timed out')."""
    if rc == 124:
        return "timed out"
    if rc == 3:  # perf/micro_bench.cc --expect-malloc-from
        return "exit 3 (malloc did not come from the preloaded library)"
    if rc > 128:
        try:
            return f"killed by {signal.Signals(rc - 128).name}"
        except ValueError:
            pass
    return f"exit {rc}"


@dataclass
class RunRecord:
    allocator: str
    rep: int
    rc: int
    seconds: float | None
    path: str
    label: str = ""
    document: gbench.BenchDocument | None = None
    problem: str | None = None  # why the output could not be read at all

    def to_dict(self) -> dict[str, Any]:
        doc = self.document
        return {
            "allocator": self.allocator,
            "rep": self.rep,
            "rc": self.rc,
            "seconds": self.seconds,
            "label": self.label,
            "output": self.path,
            "truncated": bool(doc and doc.truncated),
            "problem": self.problem,
            "malloc_from": (doc.context.get("malloc_from") if doc else None),
            "results": [r.to_dict() for r in doc.results] if doc else [],
        }


@dataclass
class Collected:
    manifest: Manifest
    runs: list[RunRecord] = field(default_factory=list)
    samples: list[stats.Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failed: bool = False  # some run crashed, timed out or reported benchmark errors


def collect(manifest: Manifest) -> Collected:
    """Reads every run's output; records problems as notes rather than raising."""
    out = Collected(manifest=manifest)
    for name, reason in manifest.skipped.items():
        out.notes.append(f"{name}: skipped ({reason})")
    for run in manifest.runs:
        rec = RunRecord(run.allocator, run.rep, run.rc, run.seconds, run.path, run.label)
        where = f"{run.allocator} rep {run.rep}" + (f" [{run.label}]" if run.label else "")
        if not os.path.exists(run.path) or os.path.getsize(run.path) == 0:
            rec.problem = "no output"
        else:
            try:
                rec.document = gbench.parse_file(run.path)
            except (OSError, gbench.ParseError) as e:
                rec.problem = f"unreadable output: {e}"
        doc = rec.document
        if run.rc != 0:
            out.failed = True
            done = len(doc.results) if doc else 0
            # A labelled run covered a single benchmark: a count of completed ones says nothing.
            progress = "" if run.label else f"; {done} benchmark(s) completed before that"
            out.notes.append(
                f"{where}: micro-bench {describe_rc(run.rc)}{progress} (output {run.path})"
            )
        elif rec.problem:
            out.failed = True
            out.notes.append(f"{where}: {rec.problem} ({run.path})")
        elif doc and doc.truncated:
            out.notes.append(f"{where}: output truncated; kept {len(doc.results)} result(s)")
        if doc:
            for r in doc.results:
                if r.error:
                    out.failed = True
                    out.notes.append(f"{where}: {r.name}: {r.error}")
                elif r.ns_per_op is not None:
                    out.samples.append(stats.Sample(r.name, run.allocator, run.rep, r.ns_per_op))
        out.runs.append(rec)
    return out


def summarize(collected: Collected, ratio_pairs: list[tuple[str, str]]) -> stats.Summary:
    return stats.summarize(
        collected.samples, collected.manifest.allocator_order(), ratio_pairs=ratio_pairs
    )


def render_summary(summary: stats.Summary, style: str = "text", geomean_row: bool = True) -> str:
    """One row per benchmark: median ns/op per allocator, then the median per-rep ratios.

    Allocators without a single figure (skipped, or every run failed) get no column, and a
    ratio gets a column only if both of its allocators have one."""
    with_data = [
        a for a in summary.allocators if any(row.medians.get(a) is not None for row in summary.rows)
    ]
    ratio_labels = [
        stats.ratio_label(p)
        for p in summary.ratio_pairs
        if p[0] in with_data and p[1] in with_data
    ]
    headers = ["benchmark (median ns/op)"] + with_data + ratio_labels
    rows = []
    for row in summary.rows:
        cells = [row.benchmark]
        cells += [table.format_number(row.medians.get(a)) for a in with_data]
        cells += [table.format_ratio(row.ratios.get(lbl)) for lbl in ratio_labels]
        rows.append(cells)
    if geomean_row and ratio_labels and summary.rows:
        gm = summary.geomean_ratios()
        rows.append(["geomean of ratios"] + [""] * len(with_data)
                    + [table.format_ratio(gm[lbl]) for lbl in ratio_labels])
    return table.render(headers, rows, style=style)


def caption(collected: Collected) -> str:
    """One line saying what the table's figures are."""
    meta = collected.manifest.meta
    reps = sorted({r.rep for r in collected.runs})
    parts = [f"{meta.get('suite', 'micro')}-bench: median over {len(reps)} repetition(s)"]
    if meta.get("min_time"):
        parts.append(f"min time {meta['min_time']} s per benchmark")
    parts.append("ns per object allocated+freed, lower is better")
    parts.append("ratios: per repetition, then median")
    return "; ".join(parts)


def _context(collected: Collected) -> dict[str, Any]:
    """Machine facts from the first readable google-benchmark context."""
    keep = ("date", "host_name", "num_cpus", "mhz_per_cpu", "cpu_scaling_enabled",
            "library_build_type", "caches", "load_avg")
    for rec in collected.runs:
        if rec.document and rec.document.context:
            return {k: rec.document.context[k] for k in keep if k in rec.document.context}
    return {}


def to_json(collected: Collected, summary: stats.Summary) -> dict[str, Any]:
    m = collected.manifest
    allocators = []
    for name in m.allocator_order():
        runs = [r for r in collected.runs if r.allocator == name]
        if name in m.skipped and name not in m.allocators:
            status = "skipped"
        elif runs and any(r.rc != 0 or r.problem for r in runs):
            status = "failed"
        else:
            status = "ok"
        allocators.append({
            "name": name,
            "library": m.allocators.get(name, ""),
            "status": status,
            "note": m.skipped.get(name),
        })
    return {
        "schema": SCHEMA,
        "suite": m.meta.get("suite", "micro"),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "meta": dict(m.meta),
        "machine": _context(collected),
        "unit": "ns/op",
        "allocators": allocators,
        "runs": [r.to_dict() for r in collected.runs],
        "summary": summary.to_dict(),
        "notes": list(collected.notes),
    }
