"""The perf matrix: every workload under every allocator, several repetitions, one document.

Order of runs: repetition by repetition; inside a repetition workload by workload, and for each
job (one program invocation; the google-benchmark set has one job per benchmark) every
allocator back to back, the order rotating from job to job. So a burst of machine noise lands
on all allocators of one job alike, and the libmesh/peer ratio of a repetition compares figures
taken seconds apart. Ratios are formed per repetition first and only then reduced to a median
and a min-max range.

The result is a plain dict (the JSON schema below) that the table, the comparison, the history
and the plots all read, so a stored result renders exactly like a fresh one:

  schema, created, date, mode (quick|full), reps, command, commit, commit_full, subject,
  commit_time, dirty, rev, machine{...}, settings{...}, allocators[{name, library, status, note, version}],
  workloads{name: {description, params, program}}, ratio_pairs["libmesh/glibc", ...],
  figures[{name, workload, metric, unit, kind, label, samples{alloc: {rep: v}}, median{alloc},
           min{alloc}, max{alloc}, spread{alloc}, ratios{"a/b": {median, min, max, samples}}}],
  tiers{classic: {peer, workloads[], time_geomean{alloc}, pss_geomean{alloc}, programs{alloc}}}
  (the classic tier's figures also carry "<alloc>/jemalloc" ratios for every allocator),
  failures[{workload, label, allocator, rep, rc, why, reproducer}], run_count, notes[],
  series{workload: {allocator: {rep, t[], pss_mb[], phases[[name, t]]}}}  (real-program
  workloads: PSS over time of one repetition per allocator, the last one that completed)
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from typing import Any, Callable

from . import gbench, runner, stats, table, workloads

SCHEMA = "libmesh-perf-matrix/1"
RATIO_PEERS = ("glibc", "jemalloc")  # libmesh is compared with these, per repetition


@dataclass
class Allocator:
    name: str
    library: str | None  # None: no preload (glibc)
    status: str = "ok"  # ok | skipped
    note: str | None = None
    version: str | None = None

    @property
    def expect(self) -> str:
        """What the file malloc resolves into must contain (checked by the programs)."""
        return self.library or "libc.so"


@dataclass
class RunRecord:
    workload: str
    label: str
    allocator: str
    rep: int
    rc: int
    seconds: float
    peak_rss_kb: int | None
    peak_pss_kb: int | None
    figures: dict[str, float] = field(default_factory=dict)
    problem: str | None = None
    reproducer: str = ""
    stdout: str = ""
    stderr: str = ""
    series: dict | None = None  # PSS over time (real-program workloads)


@dataclass
class Plan:
    settings: workloads.Settings
    workloads: list[workloads.Workload]
    programs: dict[str, str]  # CMake target -> path
    allocators: list[Allocator]  # only those taking part
    reps: int
    outdir: str


def list_benchmarks(program: str, flt: str) -> list[str]:
    argv = [program, "--benchmark_list_tests"]
    if flt:
        argv.append(f"--benchmark_filter={flt}")
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                       env=runner.child_env(None, {}))
    if p.returncode != 0:
        raise RuntimeError(f"{program} --benchmark_list_tests failed: {p.stderr.strip()}")
    return [line.strip() for line in p.stdout.splitlines() if line.strip()]


def read_series(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("t") else None


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:80]


class Matrix:
    def __init__(self, plan: Plan, log: Callable[[str], None]):
        self.plan = plan
        self.log = log
        self.runs: list[RunRecord] = []
        self.notes: list[str] = []
        self.jobs: list[workloads.Job] = []
        self.used: dict[str, str] = {}  # workload -> program, for those that run
        self.interrupted = False
        self._prepare()

    def _prepare(self) -> None:
        s = self.plan.settings
        for w in self.plan.workloads:
            program = w.locate(self.plan.programs)
            if program is None:
                if isinstance(w, workloads.RealProgram):
                    self.notes.append(f"{w.name}: left out ({w.system_program} not found; "
                                      "scripts/install-deps.sh installs it)")
                continue
            self.used[w.name] = program
            if isinstance(w, workloads.Micro):
                try:
                    names = list_benchmarks(program, s.micro_filter)
                except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                    self.notes.append(f"micro: left out ({e})")
                    continue
                if not names:
                    self.notes.append(f"micro: no benchmark matches --filter {s.micro_filter!r}")
                self.jobs += w.jobs(s, program, names)
            else:
                self.jobs += w.jobs(s, program)

    def run_one(self, job: workloads.Job, alloc: Allocator, rep: int) -> RunRecord:
        stem = os.path.join(self.plan.outdir,
                            f"rep{rep}-{_safe(job.workload)}-{_safe(job.label)}-{alloc.name}")
        argv = list(job.argv)
        extra = dict(job.env)
        w = workloads.BY_NAME[job.workload]
        preload = alloc.library
        if job.driver:  # the driver preloads the allocator into the program it starts
            argv += w.allocator_args(alloc.name, alloc.library)
            argv.append(f"--series-out={stem}.series.json")
            preload = None
        elif job.gbench_out:
            argv += [f"--expect-malloc-from={alloc.expect}", f"--benchmark_out={stem}.json"]
        else:
            extra["PERF_EXPECT_MALLOC_FROM"] = alloc.expect
        if alloc.name == "libmesh" and job.workload in ("test-stress", "larson",
                                                        "larson-turnover"):
            extra["STRESS_EXPECT_MESH"] = "1"
        env = runner.child_env(preload, extra)
        res = runner.run(argv, env, job.timeout, stem + ".out", stem + ".err",
                         sample_pss=job.sample_pss)
        rec = RunRecord(job.workload, job.label, alloc.name, rep, res.rc, res.seconds,
                        res.peak_rss_kb, res.peak_pss_kb,
                        reproducer=runner.reproducer(argv, preload, extra),
                        stdout=stem + ".out", stderr=stem + ".err")
        if res.rc != 0:
            rec.problem = runner.describe_rc(res.rc)
            return rec
        if job.driver:
            rec.series = read_series(stem + ".series.json")
        if job.gbench_out:
            try:
                doc = gbench.parse_file(stem + ".json")
            except (OSError, gbench.ParseError) as e:
                rec.problem = f"unreadable benchmark output: {e}"
                return rec
            for r in doc.results:
                if r.error:
                    rec.problem = f"benchmark error: {r.error}"
                elif r.ns_per_op is not None:
                    rec.figures[f"micro.{r.name}"] = r.ns_per_op
            if not rec.figures and rec.problem is None:
                rec.problem = "no result in the benchmark output"
            return rec
        try:
            with open(stem + ".out", encoding="utf-8", errors="replace") as f:
                values = workloads.parse_key_values(f.read())
        except OSError as e:
            rec.problem = f"cannot read output: {e}"
            return rec
        if res.peak_rss_kb is not None and not job.driver:  # a driver's is Python's own
            values["peak_rss_kb"] = float(res.peak_rss_kb)
        if res.peak_pss_kb is not None:
            values["peak_pss_kb"] = float(res.peak_pss_kb)
        rec.figures = w.figures(values, alloc.name)
        if f"{w.name}.{w.headline}" not in rec.figures:
            rec.problem = f"no {w.headline} in the output"
        return rec

    def run(self) -> None:
        allocs = self.plan.allocators
        n, reps, nj = len(allocs), self.plan.reps, len(self.jobs)
        self.log(f"{nj} job(s) x {n} allocator(s) x {reps} repetition(s); raw outputs in "
                 f"{self.plan.outdir}")
        failed_once: set[str] = set()
        try:
            for rep in range(1, reps + 1):
                for j, job in enumerate(self.jobs):
                    parts = []
                    for k in range(n):
                        alloc = allocs[(k + j + rep - 1) % n]
                        rec = self.run_one(job, alloc, rep)
                        self.runs.append(rec)
                        parts.append(self._progress_cell(job, rec))
                        if rec.problem:
                            self._report_failure(rec, alloc.name not in failed_once)
                            failed_once.add(alloc.name)
                    self.log(f"[rep {rep}/{reps}] ({j + 1}/{nj}) {job.label}: " + ", ".join(parts))
        except KeyboardInterrupt:
            self.interrupted = True
            self.notes.append("interrupted: the figures cover only the runs that completed")
            self.log("interrupted; summarising what completed")

    def _progress_cell(self, job: workloads.Job, rec: RunRecord) -> str:
        if rec.problem:
            return f"{rec.allocator} FAILED"
        if job.gbench_out:
            value = next(iter(rec.figures.values()), None)
            unit = "ns/op"
        else:
            w = workloads.BY_NAME[job.workload]
            value = rec.figures.get(f"{w.name}.{w.headline}")
            unit = workloads.metric_of(f"{w.name}.{w.headline}").unit
        return f"{rec.allocator} {table.format_number(value)} {unit}"

    def _report_failure(self, rec: RunRecord, show_output: bool) -> None:
        self.log(f"  {rec.label}: {rec.allocator} FAILED ({rec.problem}); output: {rec.stdout}")
        if show_output:
            for path in (rec.stderr, rec.stdout):
                try:
                    with open(path, encoding="utf-8", errors="replace") as f:
                        tail = f.read().splitlines()[-5:]
                except OSError:
                    tail = []
                for line in tail:
                    self.log(f"  | {line}")
        self.log(f"  reproduce: {rec.reproducer}")

    def samples(self) -> list[stats.Sample]:
        out = []
        for r in self.runs:
            if r.problem:
                continue
            for name, value in r.figures.items():
                out.append(stats.Sample(name, r.allocator, r.rep, value))
        return out


# --- the result document -----------------------------------------------------------------------

def figure_entries(samples: list[stats.Sample], allocators: list[str],
                   ratio_pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    summary = stats.summarize(samples, allocators, ratio_pairs)
    order = {row.benchmark: i for i, row in enumerate(summary.rows)}
    rows = sorted(summary.rows,
                  key=lambda r: (workloads.figure_sort_key(r.benchmark), order[r.benchmark]))
    out = []
    for row in rows:
        meta = workloads.metric_of(row.benchmark)
        wname, _, mkey = row.benchmark.partition(".")
        entry: dict[str, Any] = {
            "name": row.benchmark,
            "workload": wname,
            "metric": mkey,
            "unit": meta.unit if meta else "",
            "kind": meta.kind if meta else "info",
            "label": meta.label if meta else "",
            "samples": {a: {str(r): v for r, v in s.items()} for a, s in row.samples.items()},
            "median": {a: m for a, m in row.medians.items() if m is not None},
            "min": {a: min(s.values()) for a, s in row.samples.items()},
            "max": {a: max(s.values()) for a, s in row.samples.items()},
            "spread": {a: row.spread(a) for a in row.samples},
            "ratios": {},
        }
        for label, values in row.ratio_samples.items():
            if values:
                entry["ratios"][label] = {"median": stats.median(values), "min": min(values),
                                          "max": max(values), "samples": values}
        out.append(entry)
    return out


TIER_PEER = "jemalloc"  # the classic tier reports every allocator relative to this one


def add_tier_ratios(entries: list[dict[str, Any]], samples: list[stats.Sample],
                    allocators: list[str], peer: str = TIER_PEER) -> None:
    """Gives the figures of the classic tier the ratio of every allocator to peer ("glibc/
    jemalloc", "tcmalloc/jemalloc", ...), paired per repetition like libmesh's."""
    tier = [s for s in samples if workloads.in_group(s.benchmark.partition(".")[0])]
    if not tier or peer not in allocators:
        return
    pairs = [(a, peer) for a in allocators if a != peer]
    by_name = {e["name"]: e for e in entries}
    for row in stats.summarize(tier, allocators, pairs).rows:
        entry = by_name.get(row.benchmark)
        if entry is None:
            continue
        for label, values in row.ratio_samples.items():
            if values and label not in entry["ratios"]:
                entry["ratios"][label] = {"median": stats.median(values), "min": min(values),
                                          "max": max(values), "samples": values}


def tier_summary(entries: list[dict[str, Any]], allocators: list[str],
                 group: str = workloads.CLASSIC, peer: str = TIER_PEER) -> dict[str, Any] | None:
    """The tier's verdict per allocator: the geometric mean over its programs of the median time
    ratio to peer (`time_geomean`) and of the peak-PSS ratio (`pss_geomean`), with the number of
    programs each covers (an allocator that failed a program has fewer)."""
    names = [w for w in workloads.GROUPS.get(group, [])
             if any(e["workload"] == w for e in entries)]
    if not names or peer not in allocators:
        return None
    by_name = {e["name"]: e for e in entries}
    out: dict[str, Any] = {"peer": peer, "workloads": names, "time_geomean": {},
                           "pss_geomean": {}, "programs": {}}
    for alloc in allocators:
        for key, metric in (("time_geomean", "seconds"), ("pss_geomean", "peak_pss_mb")):
            ratios = []
            for w in names:
                e = by_name.get(f"{w}.{metric}")
                if e is None:
                    continue
                if alloc == peer:
                    ratios.append(1.0 if e["median"].get(peer) else None)
                else:
                    ratios.append((e["ratios"].get(f"{alloc}/{peer}") or {}).get("median"))
            gm = stats.geomean(ratios)
            if gm is not None:
                out[key][alloc] = gm
                if key == "time_geomean":
                    out["programs"][alloc] = sum(1 for r in ratios if r)
    return out


def _display_path(path: str | None) -> str | None:
    """Paths inside the source tree are stored relative to it (result files get committed)."""
    if not path:
        return path
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    rel = os.path.relpath(path, root)
    return path if rel.startswith("..") else rel


def build_document(*, plan: Plan, matrix: Matrix, allocators_all: list[Allocator],
                   git: dict, machine: dict, command: str, rev: str | None,
                   notes: list[str]) -> dict[str, Any]:
    names = [a.name for a in plan.allocators]
    pairs = [("libmesh", p) for p in RATIO_PEERS if "libmesh" in names and p in names]
    now = datetime.datetime.now(datetime.timezone.utc)
    s = plan.settings
    failures = [
        {"workload": r.workload, "label": r.label, "allocator": r.allocator, "rep": r.rep,
         "rc": r.rc, "why": r.problem, "reproducer": r.reproducer}
        for r in matrix.runs if r.problem
    ]
    wl = {}
    for w in plan.workloads:
        if w.name in matrix.used:
            wl[w.name] = {"description": w.description, "params": w.params(s),
                          "program": w.binary}
    figures = figure_entries(matrix.samples(), names, pairs)
    add_tier_ratios(figures, matrix.samples(), names)
    tiers = {}
    classic = tier_summary(figures, names)
    if classic is not None:
        tiers[workloads.CLASSIC] = classic
    return {
        "schema": SCHEMA,
        "created": now.isoformat(timespec="seconds"),
        "date": now.strftime("%Y-%m-%d"),
        "mode": "quick" if s.quick else "full",
        "reps": plan.reps,
        "command": command,
        "commit": git.get("commit"),
        "commit_full": git.get("commit_full"),
        "subject": git.get("subject"),
        "commit_time": git.get("commit_time"),
        "dirty": git.get("dirty"),
        "rev": rev,
        "machine": machine,
        "settings": {"threads": s.threads, "min_time": s.min_time, "timeout": s.timeout,
                     "micro_filter": s.micro_filter},
        "allocators": [
            {"name": a.name, "library": _display_path(a.library), "status": a.status,
             "note": a.note, "version": a.version}
            for a in allocators_all
        ],
        "workloads": wl,
        "ratio_pairs": [stats.ratio_label(p) for p in pairs],
        "figures": figures,
        "tiers": tiers,
        "failures": failures,
        "run_count": len(matrix.runs),
        "interrupted": matrix.interrupted,
        "notes": list(notes) + list(matrix.notes),
        "series": series_entries(matrix.runs),
    }


def series_entries(runs: list[RunRecord]) -> dict[str, dict[str, Any]]:
    """PSS over time per workload and allocator, from the last repetition that completed."""
    out: dict[str, dict[str, Any]] = {}
    for r in runs:
        if r.problem or not r.series:
            continue
        prev = out.get(r.workload, {}).get(r.allocator)
        if prev is not None and prev["rep"] > r.rep:
            continue
        out.setdefault(r.workload, {})[r.allocator] = {
            "rep": r.rep,
            "t": r.series.get("t", []),
            "pss_mb": [round(kb / 1024, 2) for kb in r.series.get("pss_kb", [])],
            "phases": r.series.get("phases", []),
        }
    return out
