#!/usr/bin/python3
"""Instructions per malloc, free and malloc_usable_size of each allocator, counted by callgrind.

usage: count-instructions.py [--allocators LIST] [--build-dir DIR] [--size N | --batch MIN-MAX]
                             [--iterations N] [--help]

Runs perf/alloc-loop (built in DIR) under `valgrind --tool=callgrind` once per allocator,
preloaded like scripts/run-perf.sh does, and divides the inclusive instruction counts of
`malloc`, `free` and (in pair mode) `malloc_usable_size` by the number of calls. Instruction counts do not depend on the machine's
load, so they show a fast-path change that timings on a noisy machine cannot; they say nothing
about cache misses or branch mispredictions. Default: 200000 malloc(64)+free pairs, each with
one malloc_usable_size of the block (servers ask for the size of every block they allocate and
free), under libmesh, glibc, jemalloc and mimalloc. Builds nothing: the README test command builds
alloc-loop, or `cmake --build build --target alloc-loop mesh`. Counts include whatever a library
runs only under valgrind (client requests), so compare an allocator with itself over time
before comparing it with another. Exit status 0, 1 when a run fails, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from perflib.cli import UsageError, parse_allocators  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROG = "count-instructions.py"
# The entry points as callgrind names them: an allocator may export the standard name as an
# alias of its own function, and callgrind reports whichever symbol it finds first.
ENTRY_NAMES = {
    "malloc": ("malloc", "__libc_malloc", "mi_malloc", "je_malloc", "tc_malloc"),
    "free": ("free", "__libc_free", "cfree", "mi_free", "je_free", "tc_free"),
    "usable": ("malloc_usable_size", "__malloc_usable_size", "malloc_size", "mi_usable_size",
               "mi_malloc_usable_size", "je_malloc_usable_size", "tc_malloc_size"),
}
LINE = re.compile(r"^\s*([\d,]+)\s+\([^)]*\)\s+(?:\*\s+)?(\S.*?)(?:\s+\[(.*)\])?\s*$")


class Counted:
    def __init__(self, name: str, malloc: float | None, free: float | None,
                 usable: float | None = None):
        self.name, self.malloc, self.free, self.usable = name, malloc, free, usable


def parse_annotate(text: str, library: str | None) -> dict[str, int]:
    """Inclusive instruction counts of the malloc and free entry points in callgrind_annotate
    --inclusive=yes output. With library set, only functions of that file (or files whose name
    starts with its name) count; otherwise those of libc. The largest count among the names of
    one entry point wins (an alias and the function it aliases are the same calls)."""
    out: dict[str, int] = {}
    want_file = os.path.basename(library) if library else "libc.so"
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        count = int(m.group(1).replace(",", ""))
        func = m.group(2).split(":")[-1].strip()
        obj = os.path.basename(m.group(3) or "")
        if not (obj.startswith(want_file) or (library and obj.startswith(want_file.split(".so")[0]))):
            continue
        for entry, names in ENTRY_NAMES.items():
            if func in names and count > out.get(entry, -1):
                out[entry] = count
    return out


def run_one(alloc, loop: str, loop_args: list[str], calls: int, workdir: str,
            usable_calls: int = 0) -> Counted:
    out_pattern = os.path.join(workdir, f"{alloc.name}.%p.out")
    env_cmd = ["env"] + ([f"LD_PRELOAD={alloc.library}"] if alloc.library else [])
    cmd = ["valgrind", "--tool=callgrind", "--trace-children=yes",
           f"--callgrind-out-file={out_pattern}"] + env_cmd + [loop] + loop_args
    run = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"{alloc.name}: alloc-loop failed (exit {run.returncode}): "
                           f"{run.stderr.strip().splitlines()[-1] if run.stderr.strip() else ''}")
    # The largest profile is alloc-loop's (the other is env's, before it execs).
    files = sorted(glob.glob(os.path.join(workdir, f"{alloc.name}.*.out")), key=os.path.getsize)
    if not files:
        raise RuntimeError(f"{alloc.name}: callgrind wrote no profile")
    ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", files[-1]],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if ann.returncode != 0:
        raise RuntimeError(f"{alloc.name}: callgrind_annotate failed: {ann.stderr.strip()}")
    counts = parse_annotate(ann.stdout, alloc.library)
    per = {k: (counts[k] / calls if k in counts else None) for k in ("malloc", "free")}
    usable = counts["usable"] / usable_calls if usable_calls and "usable" in counts else None
    return Counted(alloc.name, per["malloc"], per["free"], usable)


def format_table(rows: list[Counted]) -> str:
    def cell(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"
    lines = [f"{'allocator':<12} {'malloc':>8} {'free':>8} {'total':>8} {'usable':>8}"]
    for r in rows:
        total = None if r.malloc is None or r.free is None else r.malloc + r.free
        lines.append(f"{r.name:<12} {cell(r.malloc):>8} {cell(r.free):>8} {cell(total):>8} "
                     f"{cell(r.usable):>8}")
    return "\n".join(lines)


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # exit 2 with the usage on stderr
        self.print_usage(sys.stderr)
        print(f"{PROG}: {message}", file=sys.stderr)
        sys.exit(2)


def build_parser() -> Parser:
    first, _, rest = __doc__.partition("\n\n")
    p = Parser(prog=PROG, description=first + "\n\n" + rest.partition("\n\n")[2],
               formatter_class=argparse.RawDescriptionHelpFormatter,
               usage="%(prog)s [--allocators LIST] [--build-dir DIR] [--size N | --batch MIN-MAX] "
                     "[--iterations N] [--help]")
    p.add_argument("--allocators", default="libmesh,glibc,jemalloc,mimalloc",
                   help="comma-separated: glibc, jemalloc, tcmalloc, mimalloc, libmesh or NAME=/path/lib.so")
    p.add_argument("--build-dir", default=os.path.join(ROOT, "build"),
                   help="build directory holding perf/alloc-loop and mesh/libmesh.so (default: build)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--size", type=int, help="bytes per allocation of the pairs (default 64)")
    g.add_argument("--batch", metavar="MIN-MAX",
                   help="batches of 1000 mallocs of MIN..MAX bytes, then 1000 shuffled frees")
    p.add_argument("--iterations", type=int, help="pairs (default 200000) or batches (default 200)")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    try:
        allocators = parse_allocators(a.allocators, quick=False)
    except UsageError as e:
        p.error(str(e))
    loop_args: list[str]
    if a.batch is not None:
        m = re.fullmatch(r"(\d+)-(\d+)", a.batch)
        if not m or int(m.group(1)) < 1 or int(m.group(2)) < int(m.group(1)):
            p.error(f"--batch wants MIN-MAX with 1 <= MIN <= MAX, not '{a.batch}'")
        iterations = a.iterations if a.iterations is not None else 200
        loop_args = ["--batch", "--min-size", m.group(1), "--max-size", m.group(2)]
        calls = iterations * 1000
        what = f"batches of 1000 mallocs of {a.batch} B then 1000 frees, {iterations} batches"
    else:
        size = a.size if a.size is not None else 64
        if size < 0:
            p.error("--size must not be negative")
        iterations = a.iterations if a.iterations is not None else 200000
        loop_args = ["--size", str(size), "--usable"]
        calls = iterations
        what = f"{iterations} malloc({size})+malloc_usable_size+free"
    if iterations < 1:
        p.error("--iterations must be at least 1")
    loop_args += ["--iterations", str(iterations)]
    build = os.path.abspath(a.build_dir)
    loop = os.path.join(build, "perf", "alloc-loop")
    if not os.access(loop, os.X_OK):
        print(f"{PROG}: {loop} is not built (cmake --build {a.build_dir} --target alloc-loop)",
              file=sys.stderr)
        return 2
    for alloc in allocators:
        if alloc.name == "libmesh":
            alloc.library = os.path.join(build, "mesh", "libmesh.so")
        if alloc.library and not os.path.exists(alloc.library):
            print(f"{PROG}: {alloc.name}: no library at {alloc.library}", file=sys.stderr)
            return 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="count-instr-") as work:
        for alloc in allocators:
            print(f"{PROG}: {alloc.name}: callgrind on {what}", file=sys.stderr, flush=True)
            try:
                rows.append(run_one(alloc, loop, loop_args, calls, work,
                                    calls if "--usable" in loop_args else 0))
            except (RuntimeError, OSError) as e:
                print(f"{PROG}: {e}", file=sys.stderr)
                return 1
    print(f"instructions per call ({what}; inclusive of everything each call runs; "
          f"total: malloc + free)")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
