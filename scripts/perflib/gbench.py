"""Parsing google-benchmark JSON output (--benchmark_out=FILE --benchmark_out_format=json).

The figure of merit is nanoseconds per operation. Taken from, in order of preference:
  1. a "time_per_op" counter (seconds per item; perf/micro_bench.cc reports one),
  2. items_per_second (ns/op = 1e9 / items_per_second),
  3. real_time per iteration, converted from time_unit.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

TIME_UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}

# Suffixes google-benchmark appends to a benchmark's name that describe how it was measured,
# not what it measures. "/threads:N" is kept: it distinguishes thread counts of one family.
_MEASUREMENT_SUFFIX = re.compile(
    r"/(?:real_time|process_time|manual_time|min_time:[^/]+|min_warmup_time:[^/]+"
    r"|iterations:\d+|repeats:\d+)(?=/|$)"
)


class ParseError(ValueError):
    """The text is not google-benchmark JSON, not even a truncated prefix of it."""


@dataclass
class BenchResult:
    """One measured run of one benchmark (an aggregate row is never a BenchResult)."""

    name: str  # cleaned name, e.g. "pair/16" or "xthread/prodcons/16-1024/threads:2"
    raw_name: str  # name as google-benchmark printed it
    ns_per_op: float | None  # None when the run reported an error
    real_time_ns: float | None = None  # per iteration
    cpu_time_ns: float | None = None  # per iteration
    iterations: int | None = None
    threads: int = 1
    repetition_index: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.name,
            "raw_name": self.raw_name,
            "ns_per_op": self.ns_per_op,
            "real_time_ns": self.real_time_ns,
            "cpu_time_ns": self.cpu_time_ns,
            "iterations": self.iterations,
            "threads": self.threads,
            "repetition_index": self.repetition_index,
            "error": self.error,
        }


@dataclass
class BenchDocument:
    """A parsed output file."""

    context: dict[str, Any] = field(default_factory=dict)
    results: list[BenchResult] = field(default_factory=list)
    truncated: bool = False  # the file was cut short; results holds what was complete


def clean_name(name: str) -> str:
    """Drops measurement-mode suffixes: 'pair/16/real_time' -> 'pair/16'."""
    return _MEASUREMENT_SUFFIX.sub("", name)


def _finite_positive(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) and x > 0 else None


def ns_per_op(entry: dict[str, Any]) -> float | None:
    """Nanoseconds per operation of one benchmark entry, or None if it cannot be derived."""
    per_op = _finite_positive(entry.get("time_per_op"))
    if per_op is not None:
        return per_op * 1e9
    ips = _finite_positive(entry.get("items_per_second"))
    if ips is not None:
        return 1e9 / ips
    real = _finite_positive(entry.get("real_time"))
    unit = TIME_UNIT_NS.get(entry.get("time_unit", "ns"))
    if real is not None and unit is not None:
        return real * unit
    return None


def _to_ns(entry: dict[str, Any], key: str) -> float | None:
    value = _finite_positive(entry.get(key))
    unit = TIME_UNIT_NS.get(entry.get("time_unit", "ns"))
    return None if value is None or unit is None else value * unit


def result_from_entry(entry: dict[str, Any]) -> BenchResult | None:
    """Converts one element of "benchmarks"; None for aggregates (mean, median, stddev...)."""
    if entry.get("run_type", "iteration") != "iteration":
        return None
    raw = str(entry.get("name", ""))
    error = None
    if entry.get("error_occurred"):
        error = str(entry.get("error_message") or "error")
    elif entry.get("skipped"):  # newer google-benchmark spells errors this way
        error = str(entry.get("skip_message") or "skipped")
    iterations = entry.get("iterations")
    return BenchResult(
        name=clean_name(raw),
        raw_name=raw,
        ns_per_op=None if error else ns_per_op(entry),
        real_time_ns=_to_ns(entry, "real_time"),
        cpu_time_ns=_to_ns(entry, "cpu_time"),
        iterations=int(iterations) if isinstance(iterations, (int, float)) else None,
        threads=int(entry.get("threads", 1) or 1),
        repetition_index=int(entry.get("repetition_index", 0) or 0),
        error=error,
    )


def _salvage(text: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Reads the complete objects of a truncated file: the context and finished benchmarks."""
    decoder = json.JSONDecoder()
    context: dict[str, Any] = {}
    m = re.search(r'"context"\s*:\s*', text)
    if m:
        try:
            obj, _ = decoder.raw_decode(text, m.end())
            if isinstance(obj, dict):
                context = obj
        except json.JSONDecodeError:
            pass
    m = re.search(r'"benchmarks"\s*:\s*\[', text)
    if not m:
        if context:
            return context, []
        raise ParseError("no google-benchmark output found")
    entries: list[dict[str, Any]] = []
    pos = m.end()
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] != "{":
            break
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            break  # the object the crash interrupted
        if isinstance(obj, dict):
            entries.append(obj)
    return context, entries


def parse_text(text: str) -> BenchDocument:
    """Parses the text of an output file; a truncated file yields its complete part."""
    truncated = False
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise ParseError("top level is not a JSON object")
        context = doc.get("context") or {}
        entries = doc.get("benchmarks") or []
    except json.JSONDecodeError:
        context, entries = _salvage(text)
        truncated = True
    results = [r for r in (result_from_entry(e) for e in entries if isinstance(e, dict)) if r]
    return BenchDocument(context=dict(context), results=results, truncated=truncated)


def parse_file(path: str) -> BenchDocument:
    with open(path, encoding="utf-8", errors="replace") as f:
        return parse_text(f.read())


def names_in_order(results: Iterable[BenchResult]) -> list[str]:
    """Benchmark names in first-appearance order, without duplicates."""
    seen: dict[str, None] = {}
    for r in results:
        seen.setdefault(r.name, None)
    return list(seen)
