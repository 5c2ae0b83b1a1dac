"""Statistics over repeated measurements of several allocators.

A Sample is one figure (lower is better, e.g. ns/op or PSS bytes) of one benchmark under one
allocator in one repetition. Repetitions run every allocator in turn, so samples of different
allocators with the same repetition number were measured close together in time; ratios are
therefore formed per repetition first and only then reduced to a median, which cancels slow
drifts (thermal, noisy neighbours) that affect all allocators of a repetition alike.
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass, field
from typing import Iterable, Sequence


@dataclass(frozen=True)
class Sample:
    benchmark: str
    allocator: str
    rep: int
    value: float


def finite(values: Iterable[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def median(values: Iterable[float | None]) -> float | None:
    """Median of the finite values; None when there are none."""
    vals = finite(values)
    return statistics.median(vals) if vals else None


def geomean(values: Iterable[float | None]) -> float | None:
    """Geometric mean of the finite positive values; None when there are none."""
    vals = [v for v in finite(values) if v > 0]
    if not vals:
        return None
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def rel_spread(values: Iterable[float | None]) -> float | None:
    """(max - min) / median: a rough noise indicator; None with fewer than two values."""
    vals = finite(values)
    if len(vals) < 2:
        return None
    mid = statistics.median(vals)
    return (max(vals) - min(vals)) / mid if mid > 0 else None


def per_rep_ratios(num: dict[int, float], den: dict[int, float]) -> list[float]:
    """num[r] / den[r] for every repetition r both have (den > 0), in repetition order."""
    return [num[r] / den[r] for r in sorted(num) if r in den and den[r] > 0]


def parse_ratio_spec(spec: str) -> tuple[str, str]:
    """'libmesh/jemalloc' -> ('libmesh', 'jemalloc')."""
    num, sep, den = spec.partition("/")
    if not sep or not num or not den or "/" in den:
        raise ValueError(f"ratio must look like NUM/DEN, got {spec!r}")
    return num, den


def ratio_label(pair: tuple[str, str]) -> str:
    return f"{pair[0]}/{pair[1]}"


@dataclass
class Row:
    """Summary of one benchmark."""

    benchmark: str
    medians: dict[str, float | None] = field(default_factory=dict)  # allocator -> median
    samples: dict[str, dict[int, float]] = field(default_factory=dict)  # allocator -> rep -> value
    ratios: dict[str, float | None] = field(default_factory=dict)  # "a/b" -> median ratio
    ratio_samples: dict[str, list[float]] = field(default_factory=dict)

    def spread(self, allocator: str) -> float | None:
        return rel_spread(self.samples.get(allocator, {}).values())


@dataclass
class Summary:
    allocators: list[str]
    ratio_pairs: list[tuple[str, str]]
    rows: list[Row]

    def geomean_ratios(self) -> dict[str, float | None]:
        """Per ratio, the geometric mean over benchmarks of the median ratios."""
        out: dict[str, float | None] = {}
        for pair in self.ratio_pairs:
            label = ratio_label(pair)
            out[label] = geomean(row.ratios.get(label) for row in self.rows)
        return out

    def to_dict(self) -> dict:
        return {
            "allocators": list(self.allocators),
            "ratios": [ratio_label(p) for p in self.ratio_pairs],
            "benchmarks": [
                {
                    "benchmark": row.benchmark,
                    "median": row.medians,
                    "samples": {
                        a: {str(r): v for r, v in s.items()} for a, s in row.samples.items()
                    },
                    "rel_spread": {a: row.spread(a) for a in row.samples},
                    "ratio_median": row.ratios,
                    "ratio_samples": row.ratio_samples,
                }
                for row in self.rows
            ],
            "geomean_ratio": self.geomean_ratios(),
        }


def summarize(
    samples: Iterable[Sample],
    allocators: Sequence[str] | None = None,
    ratio_pairs: Sequence[tuple[str, str]] = (),
) -> Summary:
    """Medians per (benchmark, allocator) and per-repetition ratios reduced to medians.

    Benchmarks keep their first-appearance order; allocators default to first-appearance order
    too. Several samples of one (benchmark, allocator, rep) - in-process repetitions - are first
    reduced to their median so each repetition weighs the same.
    """
    samples = list(samples)
    if allocators is None:
        allocators = list(dict.fromkeys(s.allocator for s in samples))
    bench_order = list(dict.fromkeys(s.benchmark for s in samples))

    grouped: dict[str, dict[str, dict[int, list[float]]]] = {}
    for s in samples:
        if s.value is None or not math.isfinite(s.value):
            continue
        per_rep = grouped.setdefault(s.benchmark, {}).setdefault(s.allocator, {})
        per_rep.setdefault(s.rep, []).append(float(s.value))

    rows = []
    for bench in bench_order:
        row = Row(benchmark=bench)
        per_alloc = grouped.get(bench, {})
        for alloc in allocators:
            reps = {r: statistics.median(v) for r, v in sorted(per_alloc.get(alloc, {}).items())}
            if reps:
                row.samples[alloc] = reps
            row.medians[alloc] = median(reps.values())
        for pair in ratio_pairs:
            label = ratio_label(pair)
            rs = per_rep_ratios(row.samples.get(pair[0], {}), row.samples.get(pair[1], {}))
            row.ratio_samples[label] = rs
            row.ratios[label] = median(rs)
        rows.append(row)
    return Summary(allocators=list(allocators), ratio_pairs=list(ratio_pairs), rows=rows)


# --- Mann-Whitney U rank test --------------------------------------------------------------------
#
# Two independent sets of repetitions (of one figure and allocator, in two runs) are compared by
# their ranks, so one wild repetition cannot decide the outcome and no normal distribution of the
# values is assumed. Without ties and with small samples the p-value is exact (the distribution
# of U is counted); otherwise it comes from the normal approximation with the tie correction of
# the variance and a continuity correction.

EXACT_MAX = 25  # exact distribution when both samples have at most this many values (no ties)


@dataclass(frozen=True)
class RankTest:
    u: float  # U of the first sample: pairs (x, y) with x > y, ties counting one half
    p: float  # two-sided p-value of "both samples come from the same distribution"
    n1: int
    n2: int
    method: str  # "exact", "normal", or "none" (an empty sample: p = 1)


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks; tied values share the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


@functools.lru_cache(maxsize=None)
def _u_counts(n1: int, n2: int) -> tuple[int, ...]:
    """How many of the C(n1+n2, n1) orderings of two tie-free samples give U = 0, 1, ... n1*n2.
    The largest value belongs either to the first sample (which then beats all n2 values of the
    second) or to the second, hence counts(n1, n2)[u] = counts(n1-1, n2)[u-n2] + counts(n1, n2-1)[u]."""
    if n1 == 0 or n2 == 0:
        return (1,)
    out = [0] * (n1 * n2 + 1)
    for u, c in enumerate(_u_counts(n1 - 1, n2)):
        out[u + n2] += c
    for u, c in enumerate(_u_counts(n1, n2 - 1)):
        out[u] += c
    return tuple(out)


def min_p_value(n1: int, n2: int) -> float:
    """The smallest two-sided p-value samples of these sizes can reach (complete separation)."""
    if n1 == 0 or n2 == 0:
        return 1.0
    return min(1.0, 2.0 / math.comb(n1 + n2, n1))


def mann_whitney_u(x: Iterable[float | None], y: Iterable[float | None]) -> RankTest:
    """Two-sided Mann-Whitney U test of x against y (non-finite values are left out)."""
    xs, ys = finite(x), finite(y)
    n1, n2 = len(xs), len(ys)
    if n1 == 0 or n2 == 0:
        return RankTest(0.0, 1.0, n1, n2, "none")
    r = ranks(xs + ys)
    u = sum(r[:n1]) - n1 * (n1 + 1) / 2
    tied = len(set(xs + ys)) < n1 + n2
    if not tied and n1 <= EXACT_MAX and n2 <= EXACT_MAX:
        counts = _u_counts(n1, n2)
        total = math.comb(n1 + n2, n1)
        k = int(round(u))
        low, high = sum(counts[:k + 1]), sum(counts[k:])
        return RankTest(u, min(1.0, 2.0 * min(low, high) / total), n1, n2, "exact")
    n = n1 + n2
    groups: dict[float, int] = {}
    for v in xs + ys:
        groups[v] = groups.get(v, 0) + 1
    ties = sum(t ** 3 - t for t in groups.values())
    var = n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1)))
    if var <= 0:  # every value equal
        return RankTest(u, 1.0, n1, n2, "normal")
    z = max(0.0, abs(u - n1 * n2 / 2.0) - 0.5) / math.sqrt(var)
    return RankTest(u, min(1.0, math.erfc(z / math.sqrt(2.0))), n1, n2, "normal")


# --- Wilcoxon signed-rank test (paired repetitions) ----------------------------------------------
#
# When two things were measured in the same repetitions (GOOD's and a commit's libmesh, side by
# side in one run, as --bisect does), the repetition's own noise cancels in their ratio. The
# signed-rank test asks whether the per-repetition differences (of the logarithms: ratios) lean
# one way; zero differences are left out. Exact without ties for up to EXACT_MAX pairs, else the
# normal approximation with the tie correction.

@functools.lru_cache(maxsize=None)
def _w_counts(n: int) -> tuple[int, ...]:
    """How many of the 2**n sign patterns of ranks 1..n give W+ = 0, 1, ... n(n+1)/2."""
    counts = [1]
    for r in range(1, n + 1):
        nxt = counts + [0] * r
        for w, c in enumerate(counts):
            nxt[w + r] += c
        counts = nxt
    return tuple(counts)


def min_p_value_paired(n: int) -> float:
    """The smallest two-sided p-value n non-zero paired differences can reach."""
    return 1.0 if n == 0 else min(1.0, 2.0 / 2 ** n)


def wilcoxon_signed_rank(diffs: Iterable[float | None]) -> RankTest:
    """Two-sided signed-rank test of the differences (u is W+, the rank sum of the positive
    ones; n1 = n2 = the non-zero differences used)."""
    d = [v for v in finite(diffs) if v != 0]
    n = len(d)
    if n == 0:
        return RankTest(0.0, 1.0, 0, 0, "none")
    r = ranks([abs(v) for v in d])
    w = sum(rk for rk, v in zip(r, d) if v > 0)
    tied = len({abs(v) for v in d}) < n
    if not tied and n <= EXACT_MAX:
        counts = _w_counts(n)
        k = int(round(w))
        low, high = sum(counts[:k + 1]), sum(counts[k:])
        return RankTest(w, min(1.0, 2.0 * min(low, high) / 2 ** n), n, n, "exact")
    groups: dict[float, int] = {}
    for v in d:
        groups[abs(v)] = groups.get(abs(v), 0) + 1
    var = n * (n + 1) * (2 * n + 1) / 24.0 - sum(t ** 3 - t for t in groups.values()) / 48.0
    if var <= 0:
        return RankTest(w, 1.0, n, n, "normal")
    z = max(0.0, abs(w - n * (n + 1) / 4.0) - 0.5) / math.sqrt(var)
    return RankTest(w, min(1.0, math.erfc(z / math.sqrt(2.0))), n, n, "normal")
