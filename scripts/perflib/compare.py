"""Change of libmesh's figures between two runs, and the regression verdict.

The rule (one function, judge(), used by --compare, --fail-on-regression, --bisect and the
dashboard's flags). For one figure, the per-repetition values of the two runs are compared:
  1. libmesh's own values: a two-sided Mann-Whitney U test (stats.mann_whitney_u) gives the
     p-value, the medians give the change (now / before - 1; every figure is lower-is-better,
     so positive means worse). libmesh *moved* when p < ALPHA and |change| > the minimum effect
     of the figure's kind (MIN_EFFECT: 5% for time, 3% for memory).
  2. The peers measured in the same runs (jemalloc, glibc) are tested the same way, and so are
     the per-repetition ratios libmesh/peer (formed within each run, so they cancel machine
     load). When every peer moved the same way as libmesh (its change beyond the minimum effect
     in the same direction) and no libmesh/peer ratio moved that way, the machine changed, not
     libmesh: verdict 'machine'.
  3. Otherwise libmesh's move is the verdict: 'worse' (a regression) or 'better'.
When the two sides were measured in the same repetitions of one run (--bisect runs GOOD's libmesh
next to each commit's), `paired` judges the per-repetition ratios instead, with the Wilcoxon
signed-rank test (stats.wilcoxon_signed_rank): the load a repetition saw cancels in them.
Figures where libmesh did not move are 'same' when the change is within the minimum effect,
'too few reps' when it is beyond it but the two runs cannot reach p < ALPHA at all (1
repetition against 1, or 3 against 3: at least 4 against 4 are needed), and 'unclear' when it is
beyond it but p >= ALPHA.
'info' figures are shown with their change, never judged. Figures of a workload whose parameters
differ between the runs (e.g. --quick against a full run) are 'not comparable'.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from . import stats, table

ALPHA = 0.05
MIN_EFFECT = {"time": 0.05, "memory": 0.03}
PEERS = ("jemalloc", "glibc")
MESH = "libmesh"

Samples = dict[str, dict[Any, float]]  # allocator -> repetition -> value (a figure's "samples")


@dataclass
class Shift:
    """One allocator's values (or one libmesh/peer ratio) in two runs, tested."""

    name: str  # "libmesh", "jemalloc", "libmesh/jemalloc"
    before: float | None  # median
    now: float | None
    change: float | None  # now / before - 1
    p: float | None
    n: tuple[int, int]  # repetitions before, now
    moved: str  # worse | better | same | unclear | too few reps | none (a run lacks values)

    def brief(self) -> str:
        if self.change is None:
            return f"{self.name} -"
        p = "" if self.p is None else f" p={self.p:.2g}"
        return f"{self.name} {self.change * 100:+.1f}%{p}"


@dataclass
class Judgement:
    verdict: str  # worse | better | same | unclear | too few reps | machine
    own: Shift
    peers: list[Shift] = field(default_factory=list)
    ratios: list[Shift] = field(default_factory=list)

    @property
    def why(self) -> str:
        parts = [self.own.brief()] + [s.brief() for s in self.peers + self.ratios]
        return "; ".join(parts)


def shift(name: str, before: list[float], now: list[float], min_effect: float,
          alpha: float = ALPHA, paired: bool = False) -> Shift:
    """paired: before[i] and now[i] were measured in the same repetition (side by side in one
    run); the signed-rank test of the per-repetition log ratios then replaces Mann-Whitney."""
    if paired:
        pairs = [(x, y) for x, y in zip(before, now)
                 if x is not None and y is not None and x > 0 and y > 0]
        before, now = [x for x, _ in pairs], [y for _, y in pairs]
    b, n = stats.finite(before), stats.finite(now)
    mb, mn = stats.median(b), stats.median(n)
    if mb is None or mn is None:
        return Shift(name, mb, mn, None, None, (len(b), len(n)), "none")
    change = mn / mb - 1 if mb else None
    if paired:
        test = stats.wilcoxon_signed_rank(math.log(y / x) for x, y in zip(b, n))
        least = stats.min_p_value_paired(len(b))
    else:
        test = stats.mann_whitney_u(n, b)
        least = stats.min_p_value(len(b), len(n))
    if change is None:
        moved = "none"
    elif abs(change) <= min_effect:
        moved = "same"  # whatever the p-value: too small a change to matter
    elif least >= alpha:
        moved = "too few reps"
    elif test.p < alpha:
        moved = "worse" if change > 0 else "better"
    else:
        moved = "unclear"
    return Shift(name, mb, mn, change, test.p, (len(b), len(n)), moved)


def _by_rep(samples: Samples, alloc: str) -> dict[str, float]:
    return {str(r): v for r, v in (samples.get(alloc) or {}).items()}


def _ratios(samples: Samples, peer: str) -> dict[str, float]:
    num, den = _by_rep(samples, MESH), _by_rep(samples, peer)
    return {r: num[r] / den[r] for r in num if r in den and den[r] > 0}


def judge(kind: str, before: Samples, now: Samples, min_effect: float | None = None,
          alpha: float = ALPHA, paired: bool = False) -> Judgement:
    """The verdict on libmesh's figure of `kind` from its samples in two runs. paired: the two
    sides were measured in the same repetitions (same repetition numbers, one run)."""
    effect = MIN_EFFECT.get(kind, 0.0) if min_effect is None else min_effect

    def test(name: str, b: dict[str, float], n: dict[str, float]) -> Shift:
        if paired:
            reps = sorted(set(b) & set(n), key=lambda r: (len(r), r))
            return shift(name, [b[r] for r in reps], [n[r] for r in reps], effect, alpha, True)
        return shift(name, list(b.values()), list(n.values()), effect, alpha)

    own = test(MESH, _by_rep(before, MESH), _by_rep(now, MESH))
    peers, ratios = [], []
    for peer in PEERS:
        if _by_rep(before, peer) and _by_rep(now, peer):
            peers.append(test(peer, _by_rep(before, peer), _by_rep(now, peer)))
            ratios.append(test(f"{MESH}/{peer}", _ratios(before, peer), _ratios(now, peer)))
    verdict = own.moved if own.moved != "none" else "same"
    if own.moved in ("worse", "better") and peers:
        sign = 1 if own.moved == "worse" else -1
        peers_too = all(p.change is not None and sign * p.change > effect for p in peers)
        ratio_too = any(r.moved == own.moved for r in ratios)
        if peers_too and not ratio_too:
            verdict = "machine"
    return Judgement(verdict, own, peers, ratios)


@dataclass
class Change:
    figure: str
    unit: str
    kind: str
    before: float | None  # libmesh's median
    now: float | None
    change: float | None  # now / before - 1
    verdict: str  # the judge()'s verdicts, or info | new | missing | not comparable
    judgement: Judgement | None = None

    @property
    def p(self) -> float | None:
        return self.judgement.own.p if self.judgement else None


def _params(doc: dict[str, Any], workload: str):
    w = (doc.get("workloads") or {}).get(workload)
    return None if w is None else w.get("params")


def compare(now: dict[str, Any], before: dict[str, Any],
            min_effect: dict[str, float] | None = None, alpha: float = ALPHA) -> list[Change]:
    effects = dict(MIN_EFFECT, **(min_effect or {}))
    now_figs = {f["name"]: f for f in now.get("figures", [])}
    old_figs = {f["name"]: f for f in before.get("figures", [])}
    names = list(now_figs) + [n for n in old_figs if n not in now_figs]
    out = []
    for name in names:
        cur, old = now_figs.get(name), old_figs.get(name)
        meta = cur or old
        kind = meta.get("kind", "info")
        b_val = (old or {}).get("median", {}).get(MESH)
        n_val = (cur or {}).get("median", {}).get(MESH)
        if b_val is None and n_val is None:
            continue  # nothing of libmesh's to compare
        change = (n_val / b_val - 1) if n_val is not None and b_val else None
        judgement = None
        if b_val is None:
            verdict = "new"
        elif n_val is None:
            verdict = "missing"
        elif _params(now, meta["workload"]) != _params(before, meta["workload"]):
            verdict = "not comparable"
        elif kind not in effects:
            verdict = "info"
        else:
            judgement = judge(kind, old.get("samples") or {}, cur.get("samples") or {},
                              effects[kind], alpha)
            verdict = judgement.verdict
        out.append(Change(name, meta.get("unit", ""), kind, b_val, n_val, change, verdict,
                          judgement))
    return out


def regressions(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.verdict == "worse"]


def undecided(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.verdict == "too few reps"]


def _pct(x: float | None) -> str:
    return table.MISSING if x is None else f"{x * 100:+.1f}%"


def header_lines(now: dict[str, Any], before: dict[str, Any], before_path: str) -> list[str]:
    lines = [f"change of libmesh against {before_path} (commit {before.get('commit')}, "
             f"{before.get('date')}, {before.get('mode')} mode, {before.get('reps')} rep(s))"]
    m0, m1 = before.get("machine") or {}, now.get("machine") or {}
    if m0.get("cpu_model") != m1.get("cpu_model") or m0.get("cores") != m1.get("cores"):
        lines.append(f"warning: different machines ({m0.get('cpu_model')}, {m0.get('cores')} "
                     f"cores -> {m1.get('cpu_model')}, {m1.get('cores')} cores): the peers "
                     "tell what the machine did")
    if before.get("mode") != now.get("mode"):
        lines.append(f"warning: {before.get('mode')} mode against {now.get('mode')} mode: "
                     "workloads with other sizes are not compared")
    lines.append(f"rule: Mann-Whitney U over the repetitions, p < {ALPHA:g} and a change beyond "
                 + " / ".join(f"{v * 100:g}% ({k})" for k, v in MIN_EFFECT.items())
                 + "; 'machine' when jemalloc and glibc moved the same way and libmesh's ratio "
                 "to them did not")
    return lines


def render(changes: list[Change], style: str = "text") -> str:
    headers = ["figure", "unit", "before", "now", "change", "p", "peers", "verdict"]
    rows = []
    for c in changes:
        j = c.judgement
        verdict = "WORSE" if c.verdict == "worse" else c.verdict
        peers = ", ".join(s.brief() for s in j.peers) if j and j.peers else table.MISSING
        rows.append([c.figure, c.unit, table.format_number(c.before),
                     table.format_number(c.now), _pct(c.change),
                     table.MISSING if c.p is None else f"{c.p:.2g}", peers, verdict])
    return table.render(headers, rows, align="llrrrrll", style=style)
