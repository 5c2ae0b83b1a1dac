"""Allocator colours and order, shared by the PNG plots and the HTML dashboard."""

from __future__ import annotations

COLORS = {"libmesh": "#d62728", "glibc": "#7f7f7f", "jemalloc": "#1f77b4",
          "tcmalloc": "#2ca02c", "mimalloc": "#ff7f0e"}
EXTRA_COLORS = ["#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
ORDER = ("glibc", "jemalloc", "tcmalloc", "mimalloc", "libmesh")


def color(alloc: str, others: list[str]) -> str:
    """The allocator's colour; allocators outside COLORS take EXTRA_COLORS by their place in
    `others`."""
    if alloc in COLORS:
        return COLORS[alloc]
    return EXTRA_COLORS[others.index(alloc) % len(EXTRA_COLORS)] if alloc in others else "black"


def sort_allocs(names) -> list[str]:
    """The usual peers first, libmesh last, then any others by name."""
    names = list(dict.fromkeys(names))
    return [a for a in ORDER if a in names] + sorted(a for a in names if a not in ORDER)
