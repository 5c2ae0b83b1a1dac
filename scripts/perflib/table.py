"""Plain-text and markdown tables."""

from __future__ import annotations

import math
from typing import Sequence

MISSING = "-"


def format_number(value: float | None) -> str:
    """About three significant digits, no exponent: 7.37, 13.1, 498, 2408747."""
    if value is None or not math.isfinite(value):
        return MISSING
    mag = abs(value)
    if mag >= 100 or mag == 0:
        return f"{value:.0f}"
    if mag >= 10:
        return f"{value:.1f}"
    if mag >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def format_ratio(value: float | None) -> str:
    """Ratios with two decimals ('1.07'); tiny or huge ones keep three significant digits."""
    if value is None or not math.isfinite(value):
        return MISSING
    if 0.01 <= abs(value) < 1000:
        return f"{value:.2f}"
    return f"{value:.3g}"


def render(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    align: str | None = None,
    style: str = "text",
) -> str:
    """Renders a table. align has one character per column, 'l' or 'r' (default: first column
    left, the rest right). style 'text' pads with spaces and underlines the header; 'markdown'
    emits a GitHub table. Returns the table without a trailing newline."""
    ncol = len(headers)
    if align is None:
        align = "l" + "r" * (ncol - 1)
    if len(align) != ncol or any(a not in "lr" for a in align):
        raise ValueError("align needs one 'l' or 'r' per column")
    cells = [[str(c) for c in row] for row in rows]
    for row in cells:
        if len(row) != ncol:
            raise ValueError(f"row has {len(row)} cells, expected {ncol}: {row}")

    if style == "markdown":
        def esc(s: str) -> str:
            return s.replace("|", "\\|")

        lines = ["| " + " | ".join(esc(h) for h in headers) + " |"]
        lines.append("|" + "|".join("---:" if a == "r" else ":---" for a in align) + "|")
        lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in cells]
        return "\n".join(lines)
    if style != "text":
        raise ValueError(f"unknown table style {style!r}")

    widths = [max([len(headers[i])] + [len(r[i]) for r in cells]) for i in range(ncol)]

    def line(values: Sequence[str]) -> str:
        parts = [v.ljust(w) if a == "l" else v.rjust(w) for v, w, a in zip(values, widths, align)]
        return "  ".join(parts).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in cells]
    return "\n".join(out)
