"""Helpers for the tests in scripts/tests/test_perf_*.py: synthetic result documents and a
fake build directory whose programs imitate the workload programs' output."""

from __future__ import annotations

import os
import stat

from . import build, matrix, stats
from .stats import Sample

ALLOCS = ["glibc", "jemalloc", "libmesh"]


def make_doc(values: dict[tuple[str, str], list[float]], *, commit="abc123def456",
             created="2026-01-02T03:04:05+00:00", mode="full", params=None,
             cpu="Test CPU", allocators=ALLOCS) -> dict:
    """A result document from {(figure, allocator): [value per repetition]}."""
    samples = [Sample(fig, alloc, rep, v) for (fig, alloc), vs in values.items()
               for rep, v in enumerate(vs, 1)]
    pairs = [("libmesh", p) for p in ("glibc", "jemalloc") if p in allocators]
    workloads = sorted({fig.partition(".")[0] for fig, _ in values})
    reps = max((len(v) for v in values.values()), default=1)
    figures = matrix.figure_entries(samples, list(allocators), pairs)
    matrix.add_tier_ratios(figures, samples, list(allocators))
    tier = matrix.tier_summary(figures, list(allocators))
    return {
        "schema": matrix.SCHEMA,
        "created": created,
        "date": created[:10],
        "mode": mode,
        "reps": reps,
        "command": "scripts/run-perf.sh",
        "commit": commit[:12],
        "commit_full": commit + "0" * (40 - len(commit)),
        "subject": "test",
        "dirty": False,
        "rev": None,
        "machine": {"cpu_model": cpu, "cores": 2, "mem_total_mb": 4096, "kernel": "6.1",
                    "compiler": "g++ 12", "load_before": [0.5, 0.4, 0.3]},
        "settings": {},
        "allocators": [{"name": a, "library": None, "status": "ok", "note": None,
                        "version": None} for a in allocators],
        "workloads": {w: {"description": w, "params": (params or {}).get(w, ["--size", "1"]),
                          "program": w} for w in workloads},
        "ratio_pairs": [stats.ratio_label(p) for p in pairs],
        "figures": figures,
        "tiers": {"classic": tier} if tier else {},
        "failures": [],
        "run_count": len(samples),
        "interrupted": False,
        "notes": [],
    }


def write_exe(path: str, text: str) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


# A stand-in for every workload program: prints figures that depend on which library is
# preloaded (LD_PRELOAD holds a path ending in the allocator's name), so ratios are known.
# FAKE_FAIL_FOR=<name> makes the run under that allocator crash; FAKE_SLOW=<name> makes it
# hang. FAKE_SCALE multiplies libmesh's time figures, and so does the "scale=X" a fake libmesh
# file holds (FAKE_CMAKE writes it from the source tree's mesh/SCALE).
FAKE_PROGRAM = r'''#!/usr/bin/python3
import os, sys, json, time, signal
pre = os.environ.get("LD_PRELOAD", "")
name = os.path.basename(pre).split(".")[0] if pre else "glibc"
if os.environ.get("FAKE_FAIL_FOR") == name:
    print("about to crash", file=sys.stderr)
    os.kill(os.getpid(), signal.SIGSEGV)
if os.environ.get("FAKE_SLOW") == name:
    time.sleep(30)
base = {"glibc": 10.0, "jemalloc": 5.0, "libmesh": 4.0}.get(name, 8.0)
if name == "libmesh":
    base *= float(os.environ.get("FAKE_SCALE", "1"))
    try:  # a fake libmesh built by FAKE_CMAKE says how slow it is: "scale=1.5"
        with open(pre) as f:
            base *= float(f.read().partition("scale=")[2] or "1")
    except (OSError, ValueError):
        pass
prog = os.path.basename(sys.argv[0])
if "--help" in sys.argv:
    print("usage: fake"); sys.exit(0)
if prog == "micro-bench":
    if "--benchmark_list_tests" in sys.argv:
        print("pair/16/real_time"); print("batch/16-128/real_time"); sys.exit(0)
    out = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--benchmark_out=")][0]
    flt = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--benchmark_filter=")][0]
    bench = flt.strip("^$").replace("\\", "")
    doc = {"context": {"malloc_from": pre}, "benchmarks": [
        {"name": bench, "run_type": "iteration", "iterations": 10, "real_time": base,
         "cpu_time": base, "time_unit": "ns", "time_per_op": base * 1e-9}]}
    with open(out, "w") as f:
        json.dump(doc, f)
    sys.exit(0)
if prog == "test-stress":
    print("test-stress: OK")
    print(f"summary: ops=1000 seconds=1.0 ops_per_sec={1e9 / base:.0f}")
elif prog == "larson":
    print(f"Throughput = {1e9 / base:.0f} operations per second")
elif prog == "fork-latency":
    print(f"roundtrip_ms_median={base}\nfork_ms_median={base / 2}\nbuild_s=0.1")
elif prog == "fragmenter":
    print(f"pss_kb={int(base * 1024)}\npss_per_live={base / 2}\nfull_pss_kb=20480\nmaps=40")
    print(f"compact_ms=1.5\nmalloc_from={pre or 'libc.so.6'}")
    if name == "libmesh":
        print("mesh_count=3\nmesh_pause_max_ns=2000000")
elif prog == "kvstore":
    print(f"pss_kb={int(base * 2048)}\npss_per_live={base}\nfull_pss_kb=40960")
    print(f"ops_per_sec={1e9 / (base * 100):.0f}\nmaps=50\nmalloc_from={pre or 'libc.so.6'}")
    if name == "libmesh":
        print("mesh_count=7\nmesh_pause_max_ns=3000000")
elif prog.endswith("-like") or prog == "false-sharing":  # the classic tier
    print(f"seconds={base / 10}\nchecksum=7\nminflt=100\nsys_s=0.01")
else:
    print(f"ns_per_op={base}\npss_kb=2048\nmalloc_from=x")
'''


def fake_build(root: str, allocators=("jemalloc", "libmesh")) -> tuple[str, dict[str, str]]:
    """A build directory with fake programs and fake allocator 'libraries' (empty files named
    after the allocator, so the fake programs can tell which one is 'preloaded'). Returns the
    build directory and {allocator: library path}."""
    bdir = os.path.join(root, "build")
    for rel in ("perf/micro-bench", "perf/fragmenter", "perf/churn", "perf/fork-latency",
                "perf/kvstore", "stress/test-stress", "stress/larson",
                *(f"perf/{t}" for t in build.CLASSIC_TARGETS)):
        write_exe(os.path.join(bdir, rel), FAKE_PROGRAM)
    libs = {}
    os.makedirs(os.path.join(bdir, "mesh"), exist_ok=True)
    for a in allocators:
        path = os.path.join(bdir, "mesh", "libmesh.so") if a == "libmesh" else \
            os.path.join(root, "libs", f"{a}.so")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "w").close()
        libs[a] = path
    return bdir, libs


# A stand-in for cmake, for a synthetic git repository (fake_repo): configuring remembers the
# source directory; building `mesh` writes BUILD/mesh/libmesh.so holding "scale=" + the source
# tree's mesh/SCALE, and building a program target writes FAKE_PROGRAM where it belongs.
FAKE_CMAKE = r'''#!/usr/bin/python3
import os, sys
args = sys.argv[1:]
PROGRAMS = %r
if "--build" in args:
    bld = args[args.index("--build") + 1]
    src = open(os.path.join(bld, "fake-src")).read()
    for t in args[args.index("--target") + 1:]:
        if t == "mesh":
            try:
                scale = open(os.path.join(src, "mesh", "SCALE")).read().strip()
            except OSError:
                scale = "1"
            os.makedirs(os.path.join(bld, "mesh"), exist_ok=True)
            open(os.path.join(bld, "mesh", "libmesh.so"), "w").write("scale=" + scale)
        elif t in PROGRAMS:
            path = os.path.join(bld, PROGRAMS[t])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "w").write(open(os.environ["FAKE_PROGRAM_FILE"]).read())
            os.chmod(path, 0o755)
        else:
            sys.exit(1)
    sys.exit(0)
src, bld = args[args.index("-S") + 1], args[args.index("-B") + 1]
os.makedirs(bld, exist_ok=True)
open(os.path.join(bld, "fake-src"), "w").write(os.path.abspath(src))
'''


def fake_repo(root: str, scales: list[str]) -> tuple[str, list[str], dict[str, str]]:
    """A git repository holding a copy of scripts/ (run-perf.sh and perflib; install-deps.sh
    that does nothing) and mesh/SCALE, one commit per entry of `scales` (how slow libmesh's time
    figures are at that commit), plus a fake cmake on a PATH directory. Returns the repository,
    the commit hashes (oldest first) and the environment to run its run-perf.sh with."""
    import shutil
    import subprocess

    from .build import TARGETS

    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.join(root, "repo")
    shutil.copytree(here, os.path.join(repo, "scripts", "perflib"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(os.path.dirname(here), "run-perf.sh"),
                os.path.join(repo, "scripts", "run-perf.sh"))
    write_exe(os.path.join(repo, "scripts", "install-deps.sh"), "#!/bin/sh\nexit 0\n")
    with open(os.path.join(repo, "CMakeLists.txt"), "w") as f:
        f.write("# fake\n")
    with open(os.path.join(repo, ".gitignore"), "w") as f:
        f.write("build/\nresults/\n__pycache__/\n")
    bindir = os.path.join(root, "bin")
    write_exe(os.path.join(bindir, "cmake"),
              FAKE_CMAKE % {t: rel for t, (rel, _) in TARGETS.items()})
    program = write_exe(os.path.join(root, "fake-program"), FAKE_PROGRAM)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", FAKE_PROGRAM_FILE=program,
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid")

    def git(*args):
        return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True,
                              text=True, env=env).stdout.strip()
    git("init", "-q", "-b", "main")
    shas = []
    os.makedirs(os.path.join(repo, "mesh"), exist_ok=True)
    for i, scale in enumerate(scales):
        with open(os.path.join(repo, "mesh", "SCALE"), "w") as f:
            f.write(scale + "\n")
        with open(os.path.join(repo, "mesh", "notes.txt"), "w") as f:
            f.write(f"change {i}\n")
        git("add", "-A")
        git("commit", "-q", "-m", f"change {i} (scale {scale})")
        shas.append(git("rev-parse", "HEAD"))
    return repo, shas, env
