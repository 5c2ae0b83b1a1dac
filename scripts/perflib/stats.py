"""Statistics over repeated measurements of several allocators.

A Sample is one figure (lower is better, e.g. ns/op or PSS bytes) of one benchmark under one
allocator in one repetition. Repetitions run every allocator in turn, so samples of different
allocators with the same repetition number were measured close together in time; ratios are
therefore formed per repetition first and only then reduced to a median, which cancels slow
drifts (thermal, noisy neighbours) that affect all allocators of a repetition alike.
"""

from __future__ import annotations

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


def _usable(values: Iterable[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def median(values: Iterable[float | None]) -> float | None:
    """Median of the finite values; None when there are none."""
    vals = _usable(values)
    return statistics.median(vals) if vals else None


def geomean(values: Iterable[float | None]) -> float | None:
    """Geometric mean of the finite positive values; None when there are none."""
    vals = [v for v in _usable(values) if v > 0]
    if not vals:
        return None
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def rel_spread(values: Iterable[float | None]) -> float | None:
    """(max - min) / median: a rough noise indicator; None with fewer than two values."""
    vals = _usable(values)
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
