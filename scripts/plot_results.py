#!/usr/bin/python3
"""Redraws the perf-history plots and the dashboard from results/.

usage: plot_results.py [--results-dir DIR] [--out DIR] [--mode quick|full]

Writes DIR/plots/trend-<workload>.png (each figure's median per allocator over the recorded
runs of one mode: the latest run's unless --mode is given), DIR/plots/latest.png and
DIR/plots/latest-micro.png (bar charts of the newest run), and DIR/index.html, the dashboard
(every run of every mode, regression flags, the stress history; see perflib/dashboard.py).
scripts/run-perf.sh --record calls the same code; this script is for redrawing by hand. Exit
status 0, 1 when there is nothing to plot, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from perflib import dashboard, plots  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="plot_results.py", description=__doc__.split("\n")[1])
    p.add_argument("--results-dir", default=os.path.join(ROOT, "results"))
    p.add_argument("--out", help="output directory (default: RESULTS_DIR/plots)")
    p.add_argument("--mode", choices=("quick", "full"), help="which runs the trends show")
    args = p.parse_args(argv)
    written = plots.render_all(args.results_dir, args.out, mode=args.mode)
    if written or os.path.exists(os.path.join(args.results_dir, "stress-history.csv")):
        written.append(dashboard.write(args.results_dir, ROOT))
    if not written:
        print(f"plot_results.py: nothing to plot in {args.results_dir}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
