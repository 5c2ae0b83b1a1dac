"""scripts/run-perf.sh: the perf-regression matrix (see `scripts/run-perf.sh --help`)."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import time

from . import build, compare, matrix, mtable, store, sysinfo, workloads

PROG = "scripts/run-perf.sh"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIBDIR = "/usr/lib/x86_64-linux-gnu"
PEERS = {
    "glibc": None,
    "jemalloc": f"{LIBDIR}/libjemalloc.so.2",
    "tcmalloc": f"{LIBDIR}/libtcmalloc_minimal.so.4",
    "mimalloc": f"{LIBDIR}/libmimalloc.so.2",
}
DEFAULT_ALLOCATORS = "glibc,jemalloc,tcmalloc,mimalloc,libmesh"
REQUIRED_IN_QUICK = ("libmesh", "glibc", "jemalloc")

HELP = f"""\
usage: {PROG} [--quick] [--reps N] [--allocators LIST] [--workloads LIST] [--record]
                           [--compare REF] [--fail-on-regression] [--build-dir DIR] [--no-build]
                           [--rev REV] [--results-dir DIR] [--json FILE] [--format FMT]
                           [--threads N] [--filter REGEX] [--min-time SEC] [--fork-heap-mb N]
                           [--timeout SEC] [--help]
       {PROG} --revs A..B [--max-commits N] [options]
       {PROG} --bisect GOOD BAD --figure NAME [options]
  Builds libmesh and the workload programs (Release) and runs every workload under every
  allocator through LD_PRELOAD, several repetitions with the allocators interleaved, then prints
  one table: the median of every figure per allocator (lower is better throughout), libmesh's
  min-max, and the ratios libmesh/glibc and libmesh/jemalloc (paired per repetition, then
  median [min-max]). Progress goes to stderr, the table to stdout. Nothing under results/ is
  written unless --record is given.

  workloads: test-stress, larson, larson-turnover, churn, fragmenter, kvstore, fork, micro,
  redis, cpython (the last two run Debian's redis-server and python3), and the group classic:
  cfrac-like, espresso-like, barnes-like, cache-thrash-like, cache-scratch-like,
  glibc-simple-like, glibc-thread-like, xmalloc-like, malloc-large-like, mleak-like,
  rptest-like, mstress-like, alloc-test-like, gxx-compile, python-churn, sqlite-script (the
  patterns of the classic allocator benchmarks, plus g++, python3 and sqlite3 from Debian; the
  table then ends with every allocator's time relative to jemalloc and the tier's geomeans).
  See perf/README.md for what each measures.

  --quick              CI size: 1 repetition, smaller workloads, short micro-benchmarks;
                       under 5 minutes on 2 cores
  --reps N             repetitions (default 5; 1 with --quick; 6 per step with --bisect)
  --allocators LIST    comma-separated from glibc,jemalloc,tcmalloc,mimalloc,libmesh (default:
                       all), or NAME=/path/to/lib.so for any other; with --quick, libmesh, glibc
                       and jemalloc are always included
  --workloads LIST     comma-separated workload or group names (classic), or 'all' (default)
  --record             write results/<date>-<commit>.json, append a row to results/history.csv,
                       redraw results/plots/*.png and the dashboard results/index.html
  --compare REF        print the change of libmesh's figures against an earlier result: a
                       result file, a commit-hash prefix or file-name prefix found in the
                       results directory, or 'latest'
  --fail-on-regression exit 3 when a libmesh figure regressed by the rule of perf/README.md
                       (rank test p < 0.05, change beyond the minimum effect, not shared by
                       the peers) against --compare REF, else the latest recorded run of the
                       same mode; needs at least 4 repetitions in both runs to decide
  --build-dir DIR      build directory (default: build)
  --no-build           use the programs and libmesh already in DIR; build and install nothing
  --rev REV            measure libmesh as of commit REV (built from a clean git archive in
                       DIR/rev-<commit>); the workload programs still come from the work tree
  --results-dir DIR    where --record writes and --compare looks (default: results)
  --revs A..B          measure and record, oldest first, every commit of the git range A..B
                       that the results directory does not hold yet in this mode (quick or
                       full): libmesh is built from each commit as with --rev. Resumable; a
                       commit already recorded is never measured again. For cron or a timer
                       (see docs/user-guide.md); with --fail-on-regression, exit 3 when a
                       commit regressed against the run recorded before it
  --max-commits N      with --revs: measure at most N commits this time
  --bisect GOOD BAD    find the first commit after GOOD, up to BAD, where --figure regressed
                       against GOOD (by the rule of --fail-on-regression): each step builds
                       libmesh of one commit (as --rev) and runs the figure's workload under
                       it and GOOD's libmesh in the same run, with glibc and jemalloc
                       (default; --allocators), --reps times (default 6), judged repetition by
                       repetition (signed-rank test), adding repetitions while the rule cannot
                       decide. Nothing is recorded
  --figure NAME        the figure --bisect follows, e.g. larson.ns_per_op
  --json FILE          also write the whole result document (every figure) to FILE
  --format FMT         table style: text (default) or markdown
  --threads N          threads of the multithreaded workloads (default: the number of cores,
                       at least 2; the classic tier's programs: 2)
  --filter REGEX       only the micro-benchmarks matching REGEX
  --min-time SEC       google-benchmark minimum time per micro-benchmark (default 0.2; 0.05
                       with --quick)
  --fork-heap-mb N     heap built before timing fork (default 1024; 256 with --quick)
  --timeout SEC        give up on one run after SEC seconds (default 600)
  --help               show this text

  Exit status: 0 when every libmesh run completed; 1 when libmesh could not be built or a
  libmesh run failed (crash, timeout, bad output; failures of other allocators are reported but
  do not count) or nothing could be measured; 2 on bad usage; 3 with --fail-on-regression when
  a libmesh figure regressed; 130 when interrupted. --bisect: 0 when it named the first
  regressed commit, 1 when it could not (BAD is no regression of GOOD, a build failed, ...).
"""


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):  # usage on stderr, exit 2
        raise UsageError(message)


def _positive_int(text: str) -> int:
    if not re.fullmatch(r"[1-9][0-9]*", text):
        raise argparse.ArgumentTypeError(f"needs a positive integer, got '{text}'")
    return int(text)


def _nonneg_int(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text):
        raise argparse.ArgumentTypeError(f"needs a non-negative integer, got '{text}'")
    return int(text)


def _seconds(text: str) -> float:
    if not re.fullmatch(r"[0-9]*\.?[0-9]+", text) or float(text) <= 0:
        raise argparse.ArgumentTypeError(f"needs a positive number of seconds, got '{text}'")
    return float(text)


def build_parser() -> Parser:
    p = Parser(prog=PROG, add_help=False, allow_abbrev=False,
               usage=f"{PROG} [options] (see --help)")
    p.add_argument("-h", "--help", action="store_true")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--reps", type=_positive_int)
    p.add_argument("--allocators", default=None)
    p.add_argument("--workloads", default="all")
    p.add_argument("--record", action="store_true")
    p.add_argument("--compare", metavar="REF")
    p.add_argument("--fail-on-regression", action="store_true")
    p.add_argument("--build-dir", default="build")
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--rev")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--json")
    p.add_argument("--format", choices=("text", "markdown"), default="text")
    p.add_argument("--threads", type=_positive_int)
    p.add_argument("--filter", default="")
    p.add_argument("--min-time", type=_seconds)
    p.add_argument("--fork-heap-mb", type=_nonneg_int)
    p.add_argument("--timeout", type=_positive_int, default=600)
    p.add_argument("--revs", metavar="A..B")
    p.add_argument("--max-commits", type=_positive_int)
    p.add_argument("--bisect", nargs=2, metavar=("GOOD", "BAD"))
    p.add_argument("--figure")
    return p


def _conflicts(args) -> None:
    """Options that make no sense together."""
    given = {"--rev": args.rev, "--record": args.record, "--compare": args.compare,
             "--json": args.json, "--no-build": args.no_build}
    if args.revs is not None:
        if ".." not in args.revs:
            raise UsageError(f"--revs needs a git range A..B, got '{args.revs}'")
        for flag in ("--rev", "--compare", "--json", "--no-build"):
            if given[flag]:
                raise UsageError(f"--revs and {flag} do not go together")
        if args.bisect:
            raise UsageError("--revs and --bisect do not go together")
    elif args.max_commits is not None:
        raise UsageError("--max-commits needs --revs")
    if args.bisect:
        if not args.figure:
            raise UsageError("--bisect needs --figure NAME (e.g. larson.ns_per_op)")
        for flag in ("--rev", "--record", "--compare", "--json", "--no-build"):
            if given[flag]:
                raise UsageError(f"--bisect and {flag} do not go together")
        meta = workloads.metric_of(args.figure)
        wname = args.figure.partition(".")[0]
        if meta is None or wname not in workloads.BY_NAME:
            raise UsageError(f"--figure: unknown figure '{args.figure}' (see perf/README.md)")
        if meta.kind not in compare.MIN_EFFECT:
            raise UsageError(f"--figure: {args.figure} is an '{meta.kind}' figure, never judged")
    elif args.figure:
        raise UsageError("--figure needs --bisect")


# Options that choose what one invocation does, left out of the command line recorded for each
# commit measured by --revs (which records it as `--rev COMMIT --record`).
_DRIVER_OPTIONS = {"--revs": 1, "--max-commits": 1, "--record": 0, "--bisect": 2, "--figure": 1}


def command_for(argv: list[str], rev: str, record: bool) -> list[str]:
    """argv without the driver options, plus --rev REV (and --record)."""
    out, i = [], 0
    while i < len(argv):
        name = argv[i].split("=", 1)[0]
        if name in _DRIVER_OPTIONS:
            i += 1 + (0 if "=" in argv[i] else _DRIVER_OPTIONS[name])
            continue
        out.append(argv[i])
        i += 1
    return out + ["--rev", rev] + (["--record"] if record else [])


def parse_allocators(spec: str, quick: bool) -> list[matrix.Allocator]:
    out: list[matrix.Allocator] = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        if item in ("libmesh", "mesh"):
            a = matrix.Allocator("libmesh", None)
        elif item in PEERS:
            a = matrix.Allocator(item, PEERS[item])
        elif "=" in item:
            name, lib = item.split("=", 1)
            if not re.fullmatch(r"[A-Za-z0-9_.+-]+", name) or not lib:
                raise UsageError(f"bad allocator spec '{item}' (expected NAME=/path/to/lib.so)")
            a = matrix.Allocator(name, os.path.abspath(lib))
        else:
            raise UsageError(f"unknown allocator '{item}' (known: {', '.join(PEERS)}, libmesh)")
        if any(b.name == a.name for b in out):
            raise UsageError(f"allocator '{a.name}' given twice")
        out.append(a)
    if not out:
        raise UsageError("--allocators is empty")
    if quick:
        for name in REQUIRED_IN_QUICK:
            if not any(a.name == name for a in out):
                out.append(matrix.Allocator(name, PEERS.get(name)))
    return out


def log(msg: str) -> None:
    print(f"run-perf: {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.help:
            sys.stdout.write(HELP)
            return 0
        _conflicts(args)
        if args.bisect and args.allocators is None:
            args.allocators = ",".join(BISECT_ALLOCATORS)
        if args.bisect:  # only the figure's workload (and benchmark) is run
            args.workloads, _, bench = args.figure.partition(".")
            if args.workloads == "micro" and not args.filter:
                args.filter = f"^{workloads.regex_escape(bench)}$"
        parse_allocators(args.allocators or DEFAULT_ALLOCATORS, args.quick)
        try:
            workloads.select(args.workloads)
        except ValueError as e:
            raise UsageError(f"--workloads: {e}") from None
        results_dir = os.path.join(ROOT, args.results_dir) if not os.path.isabs(
            args.results_dir) else args.results_dir
        reference = None
        if args.compare:
            try:
                reference = store.resolve(args.compare, results_dir)
            except store.StoreError as e:
                raise UsageError(f"--compare: {e}") from None
    except UsageError as e:
        sys.stderr.write(f"usage: {PROG} [options] (see --help)\n{PROG.split('/')[-1]}: {e}\n")
        return 2

    os.chdir(ROOT)
    if args.revs is not None:
        from . import continuous

        return continuous.run(args, argv, results_dir, run_once, log)
    if args.bisect:
        from . import bisect

        return bisect.run_cli(args, argv, run_once, log)
    return run_once(args, argv, results_dir, reference)[0]


BISECT_ALLOCATORS = ("glibc", "jemalloc", "libmesh")


def run_once(args, argv: list[str], results_dir: str,
             reference: tuple[str, dict] | None = None,
             show_table: bool = True) -> tuple[int, dict | None]:
    """One build and one run of the matrix as the options say (--rev, --record, --compare...).
    Returns the exit status and the result document (None when nothing ran). show_table=False
    (--bisect) prints the table to stderr, with the progress."""
    allocs = parse_allocators(args.allocators or DEFAULT_ALLOCATORS, args.quick)
    chosen = workloads.select(args.workloads)
    quick = args.quick
    settings = workloads.Settings(
        quick=quick,
        threads=args.threads or max(2, os.cpu_count() or 2),
        min_time=args.min_time or (0.05 if quick else 0.2),
        micro_filter=args.filter,
        timeout=float(args.timeout),
        fork_heap_mb=args.fork_heap_mb,
        classic_threads=args.threads or 2,
    )
    reps = args.reps or (1 if quick else 5)
    started = time.monotonic()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    bdir = os.path.abspath(args.build_dir)
    outdir = os.path.join(bdir, "perf-results", stamp)
    n = 2
    while os.path.exists(outdir):  # several runs within one second (--revs, --bisect)
        outdir, n = os.path.join(bdir, "perf-results", f"{stamp}-{n}"), n + 1
    os.makedirs(outdir)

    # --- dependencies and build ---------------------------------------------------------------
    want_mesh = any(a.name == "libmesh" and a.library is None for a in allocs)
    targets = list(dict.fromkeys(w.target for w in chosen if w.target))  # Debian's: no target
    if args.no_build:
        outcome = build.existing(bdir, targets)
    else:
        if subprocess.run([os.path.join(ROOT, "scripts", "install-deps.sh")]).returncode != 0:
            log("error: missing packages (scripts/install-deps.sh failed)")
            return 1, None
        builder = build.Builder(ROOT, bdir, os.path.join(outdir, "build.log"), log)
        outcome = builder.programs(targets, want_mesh, args.rev)
    for note in outcome.notes:
        log(f"warning: {note}")

    versions = {name: sysinfo.package_version(pkg) for name, pkg in sysinfo.PACKAGES.items()}
    active: list[matrix.Allocator] = []
    for a in allocs:
        if a.name == "libmesh" and a.library is None:
            if outcome.libmesh:
                a.library = outcome.libmesh
                a.version = (outcome.libmesh_commit or "")[:12] or None
            else:
                a.status, a.note = "skipped", outcome.libmesh_problem
        elif a.library and not os.path.isfile(a.library):
            a.status, a.note = "skipped", f"{a.library} not found"
        if a.version is None:
            a.version = versions.get(a.name)
        if a.status == "ok":
            active.append(a)
        else:
            log(f"{a.name}: SKIPPED - {a.note}")
    if not active:
        log("error: no allocator left to measure")
        return 1, None

    plan = matrix.Plan(settings, chosen, outcome.programs, active, reps, outdir)
    mx = matrix.Matrix(plan, log)
    for note in mx.notes:
        log(f"warning: {note}")
    load_before = sysinfo.load_average()
    mx.run()
    machine = sysinfo.machine(outcome.cmake_dir)
    machine["load_before"] = load_before
    machine["load_after"] = sysinfo.load_average()
    git = sysinfo.git_facts(ROOT, args.rev or "HEAD")
    if args.rev and outcome.libmesh_commit:
        git["dirty"] = False
    doc = matrix.build_document(plan=plan, matrix=mx, allocators_all=allocs, git=git,
                                machine=machine, command=shlex.join([PROG, *(
                                    command_for(argv, args.rev, args.record) if args.revs
                                    else argv)]),
                                rev=args.rev, notes=outcome.notes)
    store.save(doc, os.path.join(outdir, "result.json"))
    if args.json:
        store.save(doc, args.json)
    if doc.get("series"):
        try:
            from . import plots

            for png in plots.timeline_plots(doc, outdir):
                log(f"PSS over time: {png}")
        except ImportError as e:  # matplotlib missing: the figures are still there
            log(f"warning: no PSS-over-time plot ({e})")

    # --- report -------------------------------------------------------------------------------
    print(file=sys.stderr)
    if doc["figures"]:
        out = sys.stdout if show_table else sys.stderr
        print("\n".join(mtable.caption(doc)), file=out)
        print(file=out)
        print(mtable.render(doc, style=args.format), file=out)
        tier = mtable.render_tier(doc, style=args.format)
        if tier:
            print(file=out)
            print(tier, file=out)
        out.flush()
    for note in mtable.notes(doc):
        log(f"note: {note}")

    regressed = False
    if args.fail_on_regression and reference is None:
        try:
            reference = store.resolve("latest", results_dir, mode=doc["mode"])
        except store.StoreError as e:
            log(f"--fail-on-regression: nothing to compare with ({e})")
    if reference is not None and doc["figures"]:
        ref_path, ref_doc = reference
        changes = compare.compare(doc, ref_doc)
        print()
        print("\n".join(compare.header_lines(doc, ref_doc, os.path.relpath(ref_path, ROOT))))
        print(compare.render(changes, style=args.format))
        worse = compare.regressions(changes)
        if worse:
            log(f"{len(worse)} libmesh figure(s) regressed: "
                + ", ".join(f"{c.figure} ({c.change * 100:+.1f}%, p={c.p:.2g})" for c in worse))
            regressed = args.fail_on_regression
        few = compare.undecided(changes)
        if few:
            log(f"{len(few)} figure(s) not judged: {ref_doc.get('reps')} against {doc['reps']} "
                f"repetition(s) cannot reach p < {compare.ALPHA:g} (4 against 4 can)")

    if args.record:
        if mx.interrupted or not doc["figures"]:
            log("not recording: the run is incomplete")
        else:
            from . import dashboard, plots

            path, hist = store.record(doc, results_dir)
            log(f"recorded {os.path.relpath(path, ROOT)} and a row of "
                f"{os.path.relpath(hist, ROOT)}")
            pngs = plots.render_all(results_dir)
            log(f"plots: {', '.join(os.path.relpath(p, ROOT) for p in pngs)}")
            try:
                log(f"dashboard: {os.path.relpath(dashboard.write(results_dir, ROOT), ROOT)}")
            except Exception as e:  # the run is recorded; a page that fails must not lose it
                log(f"warning: the dashboard could not be written ({type(e).__name__}: {e}); "
                    "scripts/plot_results.py redraws it")
    if args.json:
        log(f"result document written to {args.json}")
    minutes = (time.monotonic() - started) / 60
    log(f"raw outputs: {outdir} ({minutes:.1f} min)")

    if mx.interrupted:
        return 130, doc
    mesh_failed = any(f["allocator"] == "libmesh" for f in doc["failures"])
    mesh_missing = want_mesh and not any(a.name == "libmesh" for a in active)
    if mesh_failed or mesh_missing or not doc["figures"]:
        return 1, doc
    return (3 if regressed else 0), doc


if __name__ == "__main__":
    sys.exit(main())
