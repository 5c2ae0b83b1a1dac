"""The workloads of the perf matrix: how each program is run and what figures its output gives.

A *figure* is one number per (allocator, repetition), named "<workload>.<metric>" (for the
google-benchmark set "micro.<benchmark>"). Every figure is oriented so that **lower is better**
(throughputs are turned into ns per operation), which keeps ratios and regression checks uniform:
a libmesh/peer ratio below 1 means libmesh did better.

Kinds decide how a figure is judged by --fail-on-regression (see compare.py):
  time    speed; compared through the paired libmesh/jemalloc ratio; minimum noise band 10%
  memory  footprint; compared as an absolute value; minimum noise band 5%
  info    recorded and shown, never judged (counts, allocator-specific facts)

Programs print machine-readable output; parse_key_values() reads `key=value` lines (perf/
programs) and the summary lines of stress/test-stress and stress/larson.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from . import gbench

KINDS = ("time", "memory", "info")


@dataclass(frozen=True)
class Metric:
    key: str  # figure suffix, e.g. "ns_per_op"
    unit: str  # shown in the table, e.g. "ns/op"
    kind: str  # time | memory | info
    label: str  # one line for humans
    source: str = ""  # output key it comes from ("" = same as key)
    scale: float = 1.0  # multiplies the raw value (e.g. kB -> MiB)
    invert: float = 0.0  # if set, value = invert / raw (throughput -> time per op)
    only: str = ""  # the figure exists only under this allocator (e.g. libmesh's own stats)


@dataclass
class Job:
    """One process to run under each allocator."""

    workload: str
    label: str  # "test-stress", or the benchmark name for micro-bench
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 600.0
    gbench_out: bool = False  # argv gets --benchmark_out=<file> added per run
    sample_pss: bool = True  # the runner samples peak PSS (off for programs that time mesh pauses)


@dataclass
class Settings:
    """What the command line decided; the workloads size themselves from it."""

    quick: bool = False
    threads: int = 2
    min_time: float = 0.2  # micro-bench seconds per benchmark
    micro_filter: str = ""
    timeout: float = 600.0
    fork_heap_mb: int | None = None  # None: 1024, or 256 with --quick


KB_TO_MIB = 1.0 / 1024.0


class Workload:
    name = ""
    target = ""  # CMake target of the program
    binary = ""  # path below the build directory
    description = ""
    metrics: tuple[Metric, ...] = ()
    headline = ""  # the metric shown in progress lines
    # The runner's PSS sampler holds the kernel's mmap lock while it walks the mappings; programs
    # that read their own PSS and report mesh pauses turn it off so it does not stretch them.
    sample_pss = True

    def params(self, s: Settings) -> list[str]:
        """Arguments after the program name; recorded so runs with other sizes are not compared."""
        raise NotImplementedError

    def env(self, s: Settings) -> dict[str, str]:
        return {}

    def jobs(self, s: Settings, program: str) -> list[Job]:
        return [Job(self.name, self.name, [program, *self.params(s)], self.env(s), s.timeout,
                    sample_pss=self.sample_pss)]

    def figures(self, values: dict[str, float], allocator: str) -> dict[str, float]:
        """Figures of one run from its parsed output plus the runner's measurements
        (peak_rss_kb, peak_pss_kb)."""
        out: dict[str, float] = {}
        for m in self.metrics:
            if m.only and m.only != allocator:
                continue
            raw = values.get(m.source or m.key)
            if raw is None or not math.isfinite(raw) or raw < 0:
                continue
            if m.invert:
                if raw <= 0:
                    continue
                value = m.invert / raw
            else:
                value = raw * m.scale
            out[f"{self.name}.{m.key}"] = value
        return out


_PEAKS = (
    Metric("peak_pss_mb", "MiB", "memory", "largest PSS seen while running (sampled every 0.1 s)",
           source="peak_pss_kb", scale=KB_TO_MIB),
    Metric("peak_rss_mb", "MiB", "info", "peak RSS (getrusage of the process)",
           source="peak_rss_kb", scale=KB_TO_MIB),
)


class TestStress(Workload):
    name = "test-stress"
    target = "test-stress"
    binary = "stress/test-stress"
    description = ("stress/test-stress: threads churn verified blocks and hand 1 in 8 to another "
                   "thread (cross-thread frees); posix_memalign share off (STRESS_NO_ALIGNED=1) "
                   "for every allocator because Debian's mimalloc misaligns it")
    metrics = (Metric("ns_per_op", "ns/op", "time", "wall time per malloc or free",
                      source="ops_per_sec", invert=1e9),) + _PEAKS
    headline = "ns_per_op"

    def params(self, s):
        iterations = 1_000_000 if s.quick else 4_000_000
        return [str(s.threads), "10", str(iterations), "--seed", "42", "--quiet",
                "--timeout", str(int(s.timeout))]

    def env(self, s):
        return {"STRESS_NO_ALIGNED": "1"}


class Larson(Workload):
    name = "larson"
    target = "larson"
    binary = "stress/larson"
    rounds = 500_000  # replacements per thread: 100 rounds x 5000 chunks, as the classic larson
    description = ("stress/larson, classic parameters (8-1000 B, 5000 chunks per thread, a "
                   "thread serves 500000 replacements before its lane passes to a new thread)")
    metrics = (Metric("ns_per_op", "ns/op", "time", "wall time per free+malloc (1/throughput)",
                      source="throughput", invert=1e9),) + _PEAKS
    headline = "ns_per_op"

    def seconds(self, s: Settings) -> int:
        return 2 if s.quick else 5

    def params(self, s):
        return [str(self.seconds(s)), "8", "1000", "5000", str(self.rounds), "4141",
                str(s.threads), "--quiet"]


class LarsonTurnover(Larson):
    name = "larson-turnover"
    rounds = 100
    description = ("stress/larson with 100 replacements per thread: mostly thread creation and "
                   "exit, i.e. the allocator's per-thread set-up and teardown")

    def seconds(self, s):
        return 1 if s.quick else 3


class Churn(Workload):
    name = "churn"
    target = "churn"
    binary = "perf/churn"
    description = ("perf/churn: threads replace random live objects (16-1024 B, 1000 per "
                   "thread); 25% of frees go through a shared mailbox to another thread")
    metrics = (
        Metric("ns_per_op", "ns/op", "time", "wall time per malloc+free over all threads"),
        Metric("pss_mb", "MiB", "memory", "PSS with every thread's live set allocated",
               source="pss_kb", scale=KB_TO_MIB),
        _PEAKS[1],
    )
    headline = "ns_per_op"

    def params(self, s):
        ops = 1_000_000 if s.quick else 3_000_000
        return ["--threads", str(s.threads), "--ops", str(ops)]


class Fragmenter(Workload):
    name = "fragmenter"
    target = "fragmenter"
    binary = "perf/fragmenter"
    description = ("perf/fragmenter: allocate MiB of 16-512 B objects, free a random 90%, "
                   "mesh_compact() or malloc_trim(0), settle, read PSS")
    metrics = (
        Metric("pss_mb", "MiB", "memory", "PSS after freeing 90%, compacting and settling",
               source="pss_kb", scale=KB_TO_MIB),
        Metric("pss_per_live", "x", "memory", "PSS / bytes still live"),
        Metric("full_pss_mb", "MiB", "memory", "PSS with every object live",
               source="full_pss_kb", scale=KB_TO_MIB),
        Metric("maps", "count", "info", "lines of /proc/self/maps after settling"),
        Metric("compact_ms", "ms", "info", "time of mesh_compact() / malloc_trim(0)"),
        Metric("mesh_count", "count", "info", "meshes performed (libmesh only)", only="libmesh"),
        Metric("mesh_pause_max_ms", "ms", "info", "longest mesh pass (libmesh only)",
               source="mesh_pause_max_ns", scale=1e-6, only="libmesh"),
        Metric("mesh_pause_p99_ms", "ms", "info", "99th percentile of the mesh passes (libmesh only)",
               source="mesh_pause_p99_ns", scale=1e-6, only="libmesh"),
    )
    headline = "pss_mb"
    sample_pss = False

    def params(self, s):
        return ["--mb", "64" if s.quick else "320", "--settle-ms", "500" if s.quick else "1000"]


class KvStore(Workload):
    name = "kvstore"
    target = "kvstore"
    binary = "perf/kvstore"
    description = ("perf/kvstore: a Redis-like cache (chained hash table, malloc'd nodes, 16-40 B "
                   "keys): insert keys with 64-256 B values, rewrite every value at 200-600 B, "
                   "delete a random 85%, serve gets/sets/inserts/deletes for a while with no "
                   "compaction call; PSS at the end")
    metrics = (
        Metric("pss_mb", "MiB", "memory", "PSS after deleting 85% of the keys and serving",
               source="pss_kb", scale=KB_TO_MIB),
        Metric("pss_per_live", "x", "memory", "PSS / bytes still live"),
        Metric("full_pss_mb", "MiB", "memory", "PSS after every value changed size (all keys live)",
               source="full_pss_kb", scale=KB_TO_MIB),
        Metric("ns_per_op", "ns/op", "time", "wall time per serving operation (get/set/insert/"
               "delete, values verified)", source="ops_per_sec", invert=1e9),
        Metric("maps", "count", "info", "lines of /proc/self/maps at the end"),
        Metric("mesh_count", "count", "info", "meshes performed (libmesh only)", only="libmesh"),
        Metric("mesh_pause_max_ms", "ms", "info", "longest mesh pass (libmesh only)",
               source="mesh_pause_max_ns", scale=1e-6, only="libmesh"),
        Metric("mesh_pause_p99_ms", "ms", "info", "99th percentile of the mesh passes (libmesh only)",
               source="mesh_pause_p99_ns", scale=1e-6, only="libmesh"),
    )
    headline = "pss_mb"
    sample_pss = False

    def params(self, s):
        if s.quick:
            return ["--keys", "250000", "--serve-seconds", "1"]
        return ["--keys", "1000000", "--serve-seconds", "3"]


class ForkLatency(Workload):
    name = "fork"
    target = "fork-latency"
    binary = "perf/fork-latency"
    description = ("perf/fork-latency: build a heap of small objects (16-256 B), then time "
                   "fork + child _exit + waitpid; median of the iterations")
    metrics = (
        Metric("roundtrip_ms", "ms", "time", "fork + child exit + waitpid (median)",
               source="roundtrip_ms_median"),
        Metric("fork_ms", "ms", "time", "until fork() returns in the parent (median)",
               source="fork_ms_median"),
        Metric("build_s", "s", "info", "time to build the heap", source="build_s"),
    )
    headline = "roundtrip_ms"

    def heap_mb(self, s: Settings) -> int:
        if s.fork_heap_mb is not None:
            return s.fork_heap_mb
        return 256 if s.quick else 1024

    def params(self, s):
        return ["--heap-mb", str(self.heap_mb(s)), "--iterations", "5" if s.quick else "7"]


def regex_escape(text: str) -> str:
    """Escapes what is special in google-benchmark's (POSIX extended) filter regex. Python's
    re.escape would also escape '-' and '/', which POSIX regex does not accept escaped."""
    return re.sub(r"([][\\.*^$+?(){}|])", r"\\\1", text)


class Micro(Workload):
    name = "micro"
    target = "micro-bench"
    binary = "perf/micro-bench"
    description = ("perf/micro-bench (google-benchmark): one process per benchmark; ns per "
                   "object allocated and freed")
    headline = ""

    def params(self, s):
        p = [f"--benchmark_min_time={s.min_time:g}"]
        if s.micro_filter:
            p.append(f"--benchmark_filter={s.micro_filter}")
        return p

    def jobs(self, s, program, benchmarks: list[str] | None = None):
        out = []
        for name in benchmarks or []:
            regex = "^" + regex_escape(name) + "$"
            out.append(Job(self.name, gbench.clean_name(name),
                           [program, f"--benchmark_min_time={s.min_time:g}",
                            f"--benchmark_filter={regex}", "--benchmark_out_format=json"],
                           {}, s.timeout, gbench_out=True))
        return out

    def figures(self, values, allocator):  # parsed from the JSON file by the runner instead
        return {}


ALL: tuple[Workload, ...] = (
    TestStress(), Larson(), LarsonTurnover(), Churn(), Fragmenter(), KvStore(), ForkLatency(),
    Micro(),
)
BY_NAME = {w.name: w for w in ALL}
DEFAULT_ORDER = [w.name for w in ALL]


def metric_of(figure: str) -> Metric | None:
    """Metadata of a figure name; micro figures are ns/op time figures."""
    workload, _, key = figure.partition(".")
    if workload == "micro":
        return Metric(key, "ns/op", "time", "google-benchmark ns per object")
    w = BY_NAME.get(workload)
    if w is None:
        return None
    for m in w.metrics:
        if m.key == key:
            return m
    return None


def figure_sort_key(figure: str) -> tuple[int, int, str]:
    """Workload order, then metric order within it (micro: as listed)."""
    workload, _, key = figure.partition(".")
    wi = DEFAULT_ORDER.index(workload) if workload in DEFAULT_ORDER else len(DEFAULT_ORDER)
    w = BY_NAME.get(workload)
    mi = 0
    if w is not None and w.metrics:
        keys = [m.key for m in w.metrics]
        mi = keys.index(key) if key in keys else len(keys)
    return (wi, mi, "")


_NUMBER = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")


def parse_key_values(text: str) -> dict[str, float]:
    """Numbers from the output of a workload program.

    Understands `key=value` lines (perf/ programs; non-numeric values such as paths or lists
    are skipped), the `summary: ops=N seconds=S ops_per_sec=X` line of test-stress and the
    `Throughput = N operations per second` line of larson (as `throughput`)."""
    out: dict[str, float] = {}
    for raw in text.splitlines():
        line = raw.strip()
        m = re.match(r"^Throughput\s*=\s*([0-9.eE+-]+)\s+operations per second", line)
        if m and _NUMBER.match(m.group(1)):
            out["throughput"] = float(m.group(1))
            continue
        if line.startswith("summary:"):
            line = line[len("summary:"):]
            for tok in line.split():
                k, sep, v = tok.partition("=")
                if sep and _NUMBER.match(v):
                    out[k] = float(v)
            continue
        k, sep, v = line.partition("=")
        if sep and re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k) and _NUMBER.match(v.strip()):
            out[k] = float(v.strip())
    return out


def program_path(build_dir: str, w: Workload) -> str:
    return os.path.join(build_dir, w.binary)


def select(spec: str) -> list[Workload]:
    """'all' or a comma-separated list of workload names -> workloads in the standard order."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise ValueError("no workload given")
    if names == ["all"]:
        return list(ALL)
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown workload(s): {', '.join(unknown)} "
                         f"(known: {', '.join(DEFAULT_ORDER)})")
    return [w for w in ALL if w.name in names]

