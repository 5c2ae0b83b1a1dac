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
# hang. FAKE_SCALE multiplies libmesh's time figures.
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
