"""Change of libmesh's figures against an earlier run, and the regression verdict.

What is compared (the *basis*) depends on the figure's kind:
  time    the per-repetition ratio libmesh/jemalloc when both runs have it, else libmesh's own
          value. The paired ratio cancels machine load and speed, which on a shared two-core
          box move absolute times by more than most regressions.
  memory  libmesh's own value (footprints hardly depend on load).
  info    shown with its change, never judged.

Noise band of a figure = the largest of: the minimum band of its kind (MIN_BAND: 10% for time,
5% for memory), and the relative min-max spread ((max - min) / median) of the basis over the
repetitions of either run. A change beyond the band is 'worse' or 'better'; inside it, 'same'.
Every figure is lower-is-better, so change = now / before - 1 and positive means worse.
Figures of a workload whose parameters differ between the runs (e.g. --quick against a full
run) are 'not comparable'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import stats, table

MIN_BAND = {"time": 0.10, "memory": 0.05}
PEER = "jemalloc"
MESH = "libmesh"


@dataclass
class Change:
    figure: str
    unit: str
    kind: str
    basis: str  # "libmesh" or "libmesh/jemalloc"
    before: float | None
    now: float | None
    change: float | None  # now / before - 1
    band: float | None
    verdict: str  # worse | better | same | info | new | missing | not comparable


def _basis(fig: dict[str, Any], use_ratio: bool) -> tuple[float | None, list[float]]:
    if use_ratio:
        r = fig.get("ratios", {}).get(f"{MESH}/{PEER}") or {}
        return r.get("median"), list(r.get("samples") or [])
    samples = list((fig.get("samples", {}).get(MESH) or {}).values())
    return fig.get("median", {}).get(MESH), samples


def _has_ratio(fig: dict[str, Any] | None) -> bool:
    return bool(fig and (fig.get("ratios", {}).get(f"{MESH}/{PEER}") or {}).get("median"))


def _params(doc: dict[str, Any], workload: str):
    w = (doc.get("workloads") or {}).get(workload)
    return None if w is None else w.get("params")


def compare(now: dict[str, Any], before: dict[str, Any],
            min_band: dict[str, float] | None = None) -> list[Change]:
    bands = dict(MIN_BAND, **(min_band or {}))
    now_figs = {f["name"]: f for f in now.get("figures", [])}
    old_figs = {f["name"]: f for f in before.get("figures", [])}
    names = list(now_figs) + [n for n in old_figs if n not in now_figs]
    out = []
    for name in names:
        cur, old = now_figs.get(name), old_figs.get(name)
        meta = cur or old
        kind = meta.get("kind", "info")
        has_mesh_now = cur is not None and cur.get("median", {}).get(MESH) is not None
        has_mesh_old = old is not None and old.get("median", {}).get(MESH) is not None
        if not has_mesh_now and not has_mesh_old:
            continue  # nothing of libmesh's to compare
        use_ratio = kind == "time" and _has_ratio(cur) and _has_ratio(old)
        basis = f"{MESH}/{PEER}" if use_ratio else MESH
        b_val, b_samples = _basis(old, use_ratio) if old else (None, [])
        n_val, n_samples = _basis(cur, use_ratio) if cur else (None, [])
        change = (n_val / b_val - 1) if n_val is not None and b_val else None
        band = None
        if not has_mesh_old:
            verdict = "new"
        elif not has_mesh_now:
            verdict = "missing"
        elif _params(now, meta["workload"]) != _params(before, meta["workload"]):
            verdict = "not comparable"
        elif kind not in bands:
            verdict = "info"
        else:
            spreads = [s for s in (stats.rel_spread(n_samples), stats.rel_spread(b_samples))
                       if s is not None]
            band = max([bands[kind]] + spreads)
            if change is None:
                verdict = "info"
            elif change > band:
                verdict = "worse"
            elif change < -band:
                verdict = "better"
            else:
                verdict = "same"
        out.append(Change(name, meta.get("unit", ""), kind, basis, b_val, n_val, change, band,
                          verdict))
    return out


def regressions(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.verdict == "worse"]


def _pct(x: float | None) -> str:
    return table.MISSING if x is None else f"{x * 100:+.1f}%"


def header_lines(now: dict[str, Any], before: dict[str, Any], before_path: str) -> list[str]:
    lines = [f"change of libmesh against {before_path} (commit {before.get('commit')}, "
             f"{before.get('date')}, {before.get('mode')} mode, {before.get('reps')} rep(s))"]
    m0, m1 = before.get("machine") or {}, now.get("machine") or {}
    if m0.get("cpu_model") != m1.get("cpu_model") or m0.get("cores") != m1.get("cores"):
        lines.append(f"warning: different machines ({m0.get('cpu_model')}, {m0.get('cores')} "
                     f"cores -> {m1.get('cpu_model')}, {m1.get('cores')} cores): only the "
                     "ratios mean much")
    if before.get("mode") != now.get("mode"):
        lines.append(f"warning: {before.get('mode')} mode against {now.get('mode')} mode: "
                     "workloads with other sizes are not compared")
    lines.append("time figures are compared as libmesh/jemalloc (paired per repetition) when "
                 "both runs have it; band = max(minimum band, min-max spread of either run)")
    return lines


def render(changes: list[Change], style: str = "text") -> str:
    headers = ["figure", "unit", "compared", "before", "now", "change", "band", "verdict"]
    rows = []
    for c in changes:
        fmt = table.format_ratio if "/" in c.basis else table.format_number
        verdict = "WORSE" if c.verdict == "worse" else c.verdict
        rows.append([c.figure, c.unit, c.basis, fmt(c.before), fmt(c.now), _pct(c.change),
                     table.MISSING if c.band is None else f"{c.band * 100:.0f}%", verdict])
    return table.render(headers, rows, align="lllrrrrl", style=style)
