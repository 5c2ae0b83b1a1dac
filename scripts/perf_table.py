#!/usr/bin/python3
"""Summarises google-benchmark runs of several allocators as a table (and optionally JSON).

usage:
  perf_table.py --manifest FILE [--ratio NUM/DEN]... [--json OUT] [--format text|markdown]
  perf_table.py ALLOCATOR=FILE.json ... [options]
  perf_table.py --result REF [--compare REF] [--results-dir DIR] [--format text|markdown]

--result prints the table of a perf-matrix result (written by scripts/run-perf.sh --record or
--json): a file, or a commit-hash / file-name prefix found in results/, or 'latest'. With
--compare it also prints libmesh's change against a second result (see perflib/compare.py).

With a manifest (written by scripts/run-perf.sh, see scripts/perflib/manifest.py) the runs,
skipped allocators and failures come from it. Positional ALLOCATOR=FILE arguments add runs by
hand; repeating an allocator adds a repetition. Prints the table on stdout and notes (skipped
allocators, crashes, benchmark errors) on stderr. Exit status: 0 with a table, 1 when no figure
at all could be read, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from perflib import manifest as manifest_mod  # noqa: E402
from perflib import compare, mtable, report, stats, store  # noqa: E402

RESULTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "results")


DEFAULT_RATIOS = ("libmesh/jemalloc", "libmesh/mimalloc")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="perf_table.py",
        description="Median ns/op per benchmark and allocator, with per-repetition ratios.",
    )
    p.add_argument("runs", nargs="*", metavar="ALLOCATOR=FILE", help="a google-benchmark JSON file")
    p.add_argument("--manifest", help="run manifest written by scripts/run-perf.sh")
    p.add_argument(
        "--ratio", action="append", default=None, metavar="NUM/DEN",
        help="add a ratio column (median over repetitions of NUM/DEN); repeatable "
        "(default: libmesh/jemalloc and libmesh/mimalloc)",
    )
    p.add_argument("--json", metavar="OUT", help="write every raw figure and the summary here")
    p.add_argument("--format", choices=("text", "markdown"), default="text")
    p.add_argument("--result", metavar="REF", help="print a stored perf-matrix result")
    p.add_argument("--compare", metavar="REF", help="with --result: change against REF")
    p.add_argument("--results-dir", default=RESULTS_DIR,
                   help="where --result and --compare look up prefixes (default: results/)")
    return p


def show_result(args) -> int:
    """--result [--compare]: tables of stored matrix results; 2 when a reference is unknown."""
    try:
        path, doc = store.resolve(args.result, args.results_dir)
        ref = store.resolve(args.compare, args.results_dir) if args.compare else None
    except store.StoreError as e:
        print(f"perf_table.py: {e}", file=sys.stderr)
        return 2
    print(f"{path}:")
    print("\n".join(mtable.caption(doc)))
    print()
    print(mtable.render(doc, style=args.format))
    tier = mtable.render_tier(doc, style=args.format)
    if tier:
        print()
        print(tier)
    for note in mtable.notes(doc):
        print(f"note: {note}", file=sys.stderr)
    if ref is not None:
        changes = compare.compare(doc, ref[1])
        print()
        print("\n".join(compare.header_lines(doc, ref[1], ref[0])))
        print(compare.render(changes, style=args.format))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.result:
        if args.runs or args.manifest:
            print("perf_table.py: --result does not mix with --manifest or ALLOCATOR=FILE",
                  file=sys.stderr)
            return 2
        return show_result(args)
    if args.compare:
        print("perf_table.py: --compare needs --result", file=sys.stderr)
        return 2
    try:
        m = manifest_mod.read_manifest(args.manifest) if args.manifest else manifest_mod.Manifest()
        ratio_specs = args.ratio if args.ratio is not None else list(DEFAULT_RATIOS)
        ratio_pairs = [stats.parse_ratio_spec(s) for s in ratio_specs]
    except (OSError, ValueError) as e:
        print(f"perf_table.py: {e}", file=sys.stderr)
        return 2
    for spec in args.runs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            print(f"perf_table.py: expected ALLOCATOR=FILE, got {spec!r}", file=sys.stderr)
            return 2
        m.allocators.setdefault(name, "")
        rep = 1 + sum(1 for r in m.runs if r.allocator == name)
        m.runs.append(manifest_mod.Run(name, rep, 0, None, path))
    if not m.runs and not m.skipped:
        print("perf_table.py: nothing to summarise (give --manifest or ALLOCATOR=FILE)",
              file=sys.stderr)
        return 2

    collected = report.collect(m)
    summary = report.summarize(collected, ratio_pairs)
    if collected.samples:
        print(report.caption(collected))
        print(report.render_summary(summary, style=args.format))
    for note in collected.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        try:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(report.to_json(collected, summary), f, indent=1, sort_keys=False)
                f.write("\n")
        except OSError as e:
            print(f"perf_table.py: cannot write {args.json}: {e}", file=sys.stderr)
            return 1
    if not collected.samples:
        print("perf_table.py: no usable figures in any run", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
