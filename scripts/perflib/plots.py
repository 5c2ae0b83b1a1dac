"""PNG plots of the perf history (matplotlib, Agg backend: no display needed).

  trend-<workload>.png  one panel per figure of the workload: its median per allocator over the
                        recorded runs (x axis: commit and date), from history.csv
  latest.png            the latest run: one panel per figure (except the micro-benchmarks), a
                        bar per allocator with the min-max range of the repetitions
  latest-micro.png      the latest run's micro-benchmarks relative to jemalloc (log scale)
  latest-classic.png    the latest run's classic tier: each program's time relative to jemalloc
                        per allocator (log scale), the tier's geomean first
  trend-classic.png     the classic tier's geomean time and peak-PSS ratios to jemalloc per
                        allocator over the recorded runs (its programs get no trend file each)
  timeline-<workload>.png  PSS over time of a real-program workload (redis, cpython) in the
                        latest run that has one: a line per allocator, time 0 at the end of the
                        deletes, the serving, idle and full-speed phases shaded
Trends use only runs of one mode (the latest run's), since quick runs use smaller sizes.
"""

from __future__ import annotations

import math
import os
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from . import palette, workloads  # noqa: E402

COLORS = palette.COLORS
_color = palette.color
_sorted_allocs = palette.sort_allocs


def _float(text: str | None) -> float | None:
    try:
        v = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return v if v is not None and math.isfinite(v) else None


def _grid(n: int, cols: int) -> tuple[int, int]:
    cols = max(1, min(cols, n))
    return (n + cols - 1) // cols, cols


def trend_plots(rows: list[dict[str, str]], outdir: str, mode: str | None = None) -> list[str]:
    """One PNG per workload from history rows; returns the files written."""
    if mode is None and rows:
        mode = rows[-1].get("mode")
    rows = [r for r in rows if not mode or r.get("mode") == mode]
    if not rows:
        return []
    os.makedirs(outdir, exist_ok=True)
    # figure -> allocator -> column, for the per-allocator medians (ratio columns hold a '/').
    series: dict[str, dict[str, str]] = {}
    columns = list(dict.fromkeys(k for r in rows for k in r))  # header order
    for col in columns:
        fig, sep, alloc = col.partition("@")
        if sep and "/" not in alloc:
            series.setdefault(fig, {})[alloc] = col
    labels = [f"{(r.get('commit') or '?')[:7]}\n{(r.get('date') or '')[5:]}" for r in rows]
    by_workload: dict[str, list[str]] = {}
    # Workload and metric order; figures the workloads do not list (the micro-benchmarks) keep
    # the order of the history's columns, which is the order the run produced them in.
    for fig in sorted(series, key=workloads.figure_sort_key):
        if workloads.in_group(fig.partition(".")[0]):
            continue  # the tier's programs: trend-classic.png instead
        by_workload.setdefault(fig.partition(".")[0], []).append(fig)
    written = []
    xs = list(range(len(rows)))
    for wname, figs in by_workload.items():
        nrow, ncol = _grid(len(figs), 4 if len(figs) > 6 else 3)
        fig_obj, axes = plt.subplots(nrow, ncol, figsize=(4.6 * ncol, 3.3 * nrow), squeeze=False)
        others = []
        for i, fname in enumerate(figs):
            ax = axes[i // ncol][i % ncol]
            allocs = _sorted_allocs(series[fname])
            others += [a for a in allocs if a not in COLORS and a not in others]
            for alloc in allocs:
                ys = [_float(r.get(series[fname][alloc])) for r in rows]
                pts = [(x, y) for x, y in zip(xs, ys) if y is not None]
                if not pts:
                    continue
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                        lw=2.4 if alloc == "libmesh" else 1.2, ms=5 if alloc == "libmesh" else 3,
                        color=_color(alloc, others), label=alloc, zorder=3 if alloc == "libmesh"
                        else 2)
            meta = workloads.metric_of(fname)
            ax.set_title(f"{fname.partition('.')[2]} [{meta.unit if meta else ''}]", fontsize=9)
            ax.set_xticks(xs)
            ax.set_xticklabels(labels, fontsize=7)
            ax.set_xlim(-0.5, len(rows) - 0.5)
            ax.tick_params(axis="y", labelsize=7)
            ax.grid(alpha=0.3)
            ax.set_ylim(bottom=0)
        for j in range(len(figs), nrow * ncol):
            axes[j // ncol][j % ncol].axis("off")
        handles, names = [], []
        for ax in axes.flat:
            for h, n in zip(*ax.get_legend_handles_labels()):
                if n not in names:
                    handles.append(h)
                    names.append(n)
        fig_obj.legend(handles, names, loc="upper right", ncol=len(names), fontsize=8)
        fig_obj.suptitle(f"{wname}: trend over recorded {mode} runs (lower is better)",
                         x=0.01, ha="left", fontsize=11)
        fig_obj.tight_layout(rect=(0, 0, 1, 0.95))
        path = os.path.join(outdir, f"trend-{wname}.png")
        fig_obj.savefig(path, dpi=90)
        plt.close(fig_obj)
        written.append(path)
    tier = _tier_trend(rows, columns, labels, outdir, mode)
    return written + ([tier] if tier else [])


def _tier_trend(rows: list[dict[str, str]], columns: list[str], labels: list[str], outdir: str,
                mode: str | None, tier: str = workloads.CLASSIC) -> str | None:
    """trend-<tier>.png: the tier's geomean ratios per allocator over the runs that have them."""
    panels = []
    for key, title in (("time_geomean", "time / jemalloc (geomean)"),
                       ("pss_geomean", "peak PSS / jemalloc (geomean)")):
        cols = {c.partition("@")[2].partition("/")[0]: c for c in columns
                if c.startswith(f"{tier}.{key}@")}
        if cols:
            panels.append((title, cols))
    if not panels:
        return None
    xs = list(range(len(rows)))
    fig_obj, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 3.6), squeeze=False)
    for ax, (title, cols) in zip(axes[0], panels):
        allocs = _sorted_allocs(cols)
        others = [a for a in allocs if a not in COLORS]
        for alloc in allocs:
            pts = [(x, _float(r.get(cols[alloc]))) for x, r in zip(xs, rows)]
            pts = [p for p in pts if p[1] is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                        lw=2.4 if alloc == "libmesh" else 1.2, color=_color(alloc, others),
                        label=alloc)
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_xlim(-0.5, len(rows) - 0.5)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig_obj.suptitle(f"{tier} tier: trend over recorded {mode} runs (lower is better)", x=0.01,
                     ha="left", fontsize=11)
    fig_obj.tight_layout(rect=(0, 0, 1, 0.92))
    path = os.path.join(outdir, f"trend-{tier}.png")
    fig_obj.savefig(path, dpi=90)
    plt.close(fig_obj)
    return path


def latest_plots(doc: dict[str, Any], outdir: str) -> list[str]:
    """Bar charts of one run; returns the files written."""
    os.makedirs(outdir, exist_ok=True)
    figs = [f for f in doc.get("figures", []) if f.get("workload") != "micro" and f.get("median")
            and not workloads.in_group(f.get("workload", ""))]
    micro = [f for f in doc.get("figures", []) if f.get("workload") == "micro" and f.get("median")]
    title = (f"commit {doc.get('commit')} {doc.get('date')} ({doc.get('mode')}, "
             f"{doc.get('reps')} rep(s)); lower is better")
    written = []
    if figs:
        nrow, ncol = _grid(len(figs), 4)
        fig_obj, axes = plt.subplots(nrow, ncol, figsize=(4.3 * ncol, 2.9 * nrow), squeeze=False)
        others: list[str] = []
        for i, f in enumerate(figs):
            ax = axes[i // ncol][i % ncol]
            allocs = _sorted_allocs(f["median"])
            others += [a for a in allocs if a not in COLORS and a not in others]
            meds = [f["median"][a] for a in allocs]
            lo = [m - f.get("min", {}).get(a, m) for a, m in zip(allocs, meds)]
            hi = [f.get("max", {}).get(a, m) - m for a, m in zip(allocs, meds)]
            ax.bar(range(len(allocs)), meds, color=[_color(a, others) for a in allocs],
                   yerr=[lo, hi], capsize=3, error_kw={"lw": 0.8})
            ax.set_xticks(range(len(allocs)))
            ax.set_xticklabels(allocs, fontsize=7, rotation=20)
            ax.set_title(f"{f['name']} [{f.get('unit', '')}]", fontsize=8)
            top = max([m + h for m, h in zip(meds, hi)] + [0.0])
            ax.set_ylim(0, top * 1.08 if top > 0 else 1.0)
            ax.tick_params(axis="y", labelsize=7)
            ax.grid(axis="y", alpha=0.3)
        for j in range(len(figs), nrow * ncol):
            axes[j // ncol][j % ncol].axis("off")
        fig_obj.suptitle(f"latest run per allocator: {title}", x=0.01, ha="left", fontsize=11)
        fig_obj.tight_layout(rect=(0, 0, 1, 0.96))
        path = os.path.join(outdir, "latest.png")
        fig_obj.savefig(path, dpi=90)
        plt.close(fig_obj)
        written.append(path)
    ref = "jemalloc"
    micro = [f for f in micro if f["median"].get(ref)]
    if micro:
        rows = [(f["metric"], {a: v / f["median"][ref] for a, v in f["median"].items()})
                for f in micro]
        written.append(_relative_bars(rows, ref, "ns/op", f"micro-benchmarks, {title}",
                                      os.path.join(outdir, "latest-micro.png")))
    tier = _latest_tier(doc, outdir, title)
    return written + ([tier] if tier else [])


def _relative_bars(rows: list[tuple[str, dict[str, float | None]]], ref: str, what: str,
                   title: str, path: str) -> str:
    """Horizontal bars, a group per row and a bar per allocator, of values relative to ref on a
    log scale; writes path and returns it."""
    allocs = _sorted_allocs(a for _, r in rows for a in r)
    others = [a for a in allocs if a not in COLORS]
    fig_obj, ax = plt.subplots(figsize=(10, 0.45 * len(rows) * max(1, len(allocs)) / 2 + 1.5))
    height = 0.8 / len(allocs)
    for k, alloc in enumerate(allocs):
        ys = [i + (k - (len(allocs) - 1) / 2) * height for i in range(len(rows))]
        vals = [r.get(alloc) or math.nan for _, r in rows]
        ax.barh(ys, vals, height=height, color=_color(alloc, others), label=alloc)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([name for name, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_xlabel(f"{what} relative to {ref} (log scale; left of 1 = faster than {ref})")
    ax.grid(axis="x", alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title, fontsize=10)
    fig_obj.tight_layout()
    fig_obj.savefig(path, dpi=90)
    plt.close(fig_obj)
    return path


def _latest_tier(doc: dict[str, Any], outdir: str, title: str,
                 tier: str = workloads.CLASSIC) -> str | None:
    """latest-<tier>.png: each program's time relative to the tier's peer, per allocator."""
    summary = (doc.get("tiers") or {}).get(tier)
    if not summary:
        return None
    peer = summary["peer"]
    by_name = {f["name"]: f for f in doc.get("figures", [])}
    rows = [("geomean", summary["time_geomean"])]
    for w in summary["workloads"]:
        f = by_name.get(f"{w}.seconds")
        if f is not None:
            ratios = {a: (f["ratios"].get(f"{a}/{peer}") or {}).get("median")
                      for a in f["median"]}
            ratios[peer] = 1.0 if f["median"].get(peer) else None
            rows.append((w, ratios))
    return _relative_bars(rows, peer, "time", f"{tier} tier, {title}",
                          os.path.join(outdir, f"latest-{tier}.png"))


# Phase that ends the deletes (time 0 of the timelines), then the phases that end serving and
# idling; the drivers in servers.py record these names.
_ZERO_PHASES = ("deleted", "dropped")
_SHADES = (("served", "serving", "#2ca02c"), ("idle", "idle", "#7f7f7f"),
           ("bench", "full speed", "#1f77b4"))


def _phase_times(entry: dict[str, Any]) -> dict[str, float]:
    return {p[0]: float(p[1]) for p in entry.get("phases", []) if len(p) == 2}


def timeline_plots(doc: dict[str, Any], outdir: str) -> list[str]:
    """One PNG per workload of doc['series'] (PSS over time per allocator); returns the files."""
    written = []
    for wname, per_alloc in sorted((doc.get("series") or {}).items()):
        allocs = [a for a in _sorted_allocs(per_alloc) if per_alloc[a].get("t")]
        if not allocs:
            continue
        os.makedirs(outdir, exist_ok=True)
        fig_obj, ax = plt.subplots(figsize=(10, 5.2))
        others = [a for a in allocs if a not in COLORS]
        ref = None
        for alloc in allocs:
            e = per_alloc[alloc]
            phases = _phase_times(e)
            zero = next((phases[p] for p in _ZERO_PHASES if p in phases), 0.0)
            xs = [t - zero for t in e["t"]]
            ax.plot(xs, e["pss_mb"], lw=2.4 if alloc == "libmesh" else 1.3,
                    color=_color(alloc, others), label=f"{alloc} (rep {e.get('rep', '?')})",
                    zorder=3 if alloc == "libmesh" else 2)
            if ref is None or alloc == "jemalloc":
                ref = (phases, zero)
        if ref is not None:
            phases, zero = ref
            start = 0.0
            for name, label, color in _SHADES:
                if name in phases:
                    end = phases[name] - zero
                    ax.axvspan(start, end, color=color, alpha=0.08, lw=0)
                    ax.text((start + end) / 2, 0.02, label, transform=ax.get_xaxis_transform(),
                            ha="center", fontsize=8, color="#444444")
                    start = end
        ax.axvline(0.0, color="black", lw=0.8, ls="--")
        ax.set_xlabel("seconds since the deletes ended (negative: loading and deleting)")
        ax.set_ylabel("PSS [MiB]")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
        params = " ".join((doc.get("workloads", {}).get(wname) or {}).get("params", []))
        ax.set_title(f"{wname}: PSS over time per allocator; commit {doc.get('commit')} "
                     f"{doc.get('date')} ({doc.get('mode')})\n{params}", fontsize=9)
        fig_obj.tight_layout()
        path = os.path.join(outdir, f"timeline-{wname}.png")
        fig_obj.savefig(path, dpi=90)
        plt.close(fig_obj)
        written.append(path)
    return written


def render_all(results_dir: str, outdir: str | None = None, mode: str | None = None) -> list[str]:
    """Every plot from results_dir (history.csv and the newest result file)."""
    from . import store

    outdir = outdir or os.path.join(results_dir, "plots")
    _, rows = store.read_history(os.path.join(results_dir, "history.csv"))
    written = trend_plots(rows, outdir, mode=mode)
    found = store.all_results(results_dir)
    if found:
        written += latest_plots(found[-1][1], outdir)
    with_series = [doc for _, doc in found if doc.get("series")]
    if with_series:
        written += timeline_plots(with_series[-1], outdir)
    return written
