"""results/stress-history.csv: what `scripts/run-stress.sh --record` keeps of each stress run.

One row per program, allocator and round of one run-stress.sh invocation (they share `created`):
  date, created, commit, commit_full, subject, dirty, mode (quick|long), round, program,
  allocator, exit, seconds, peak_rss_mib, peak_pss_mib, meshes, note, cpu_model, cores
`meshes` is libmesh's MESH COUNT at exit (run-stress.sh runs libmesh with MALLOCSTATS=1), empty
under the other allocators. Rows are only ever appended (a wider header rewrites the file, as
history.csv does). After appending, results/index.html is written again.

run-stress.sh calls `python3 -m perflib.stresshist --tsv FILE --mode MODE [--results-dir DIR]`
with its summary.tsv (columns program, allocator, exit, seconds, peak_rss_mib, peak_pss_mib,
meshes, note; a program of round N > 1 is written PROGRAM#N).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import sys

from . import store, sysinfo

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLUMNS = ["date", "created", "commit", "commit_full", "subject", "dirty", "mode", "round",
           "program", "allocator", "exit", "seconds", "peak_rss_mib", "peak_pss_mib", "meshes",
           "note", "cpu_model", "cores"]
FILE = "stress-history.csv"


def read_summary(path: str) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return [dict(r) for r in csv.DictReader(f, delimiter="\t")]


def rows_of(summary: list[dict[str, str]], mode: str, git: dict, machine: dict,
            now: datetime.datetime) -> list[dict[str, str]]:
    out = []
    for r in summary:
        program, _, rnd = (r.get("program") or "").partition("#")
        dirty = git.get("dirty")
        out.append({
            "date": now.strftime("%Y-%m-%d"),
            "created": now.isoformat(timespec="seconds"),
            "commit": git.get("commit") or "",
            "commit_full": git.get("commit_full") or "",
            "subject": git.get("subject") or "",
            "dirty": "" if dirty is None else str(bool(dirty)).lower(),
            "mode": mode,
            "round": rnd or "1",
            "program": program,
            "allocator": r.get("allocator", ""),
            "exit": r.get("exit", ""),
            "seconds": _dash(r.get("seconds")),
            "peak_rss_mib": _dash(r.get("peak_rss_mib")),
            "peak_pss_mib": _dash(r.get("peak_pss_mib")),
            "meshes": _dash(r.get("meshes")),
            "note": r.get("note", ""),
            "cpu_model": machine.get("cpu_model") or "",
            "cores": str(machine.get("cores") or ""),
        })
    return out


def _dash(v: str | None) -> str:
    return "" if v in (None, "-") else v


def record(summary_tsv: str, mode: str, results_dir: str, root: str = ROOT) -> tuple[str, int]:
    """Appends the rows of one run; returns the history file and the number of rows."""
    rows = rows_of(read_summary(summary_tsv), mode, sysinfo.git_facts(root),
                   {"cpu_model": sysinfo.cpu_model(), "cores": os.cpu_count()},
                   datetime.datetime.now(datetime.timezone.utc))
    os.makedirs(results_dir, exist_ok=True)
    path = os.path.join(results_dir, FILE)
    store.append_rows(path, rows, first_columns=COLUMNS)
    return path, len(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m perflib.stresshist",
                                description="Append a run-stress.sh summary to "
                                            "results/stress-history.csv and redraw "
                                            "results/index.html.")
    p.add_argument("--tsv", required=True, help="summary.tsv written by run-stress.sh")
    p.add_argument("--mode", required=True, choices=("quick", "long"))
    p.add_argument("--results-dir", default=os.path.join(ROOT, "results"))
    args = p.parse_args(argv)
    try:
        path, n = record(args.tsv, args.mode, args.results_dir)
    except OSError as e:
        print(f"stresshist: {e}", file=sys.stderr)
        return 1
    print(f"recorded {n} row(s) in {path}")
    from . import dashboard

    try:
        print(f"dashboard: {dashboard.write(args.results_dir, ROOT)}")
    except Exception as e:  # the rows are recorded; the page can be redrawn later
        print(f"warning: the dashboard could not be written ({type(e).__name__}: {e}); "
              "scripts/plot_results.py redraws it", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
