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
import shutil
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
    driver: bool = False  # a perflib.servers driver: no LD_PRELOAD, the allocator goes in argv


@dataclass
class Settings:
    """What the command line decided; the workloads size themselves from it."""

    quick: bool = False
    threads: int = 2
    min_time: float = 0.2  # micro-bench seconds per benchmark
    micro_filter: str = ""
    timeout: float = 600.0
    fork_heap_mb: int | None = None  # None: 1024, or 256 with --quick
    classic_threads: int = 2  # threads of the classic tier's multithreaded programs


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
    group = ""  # a workload group (--workloads GROUP selects all of its workloads)

    def params(self, s: Settings) -> list[str]:
        """Arguments after the program name; recorded so runs with other sizes are not compared."""
        raise NotImplementedError

    def env(self, s: Settings) -> dict[str, str]:
        return {}

    def jobs(self, s: Settings, program: str) -> list[Job]:
        return [Job(self.name, self.name, [program, *self.params(s)], self.env(s), s.timeout,
                    sample_pss=self.sample_pss)]

    def locate(self, programs: dict[str, str]) -> str | None:
        """The program to run: built targets are looked up in programs (target -> path)."""
        return programs.get(self.target)

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


SCRIPTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = "/usr/bin/python3"


class RealProgram(Workload):
    """A program from Debian, not built here: python3 -m perflib.servers WORKLOAD starts it under
    the allocator (LD_PRELOAD on the program only), drives it, samples its PSS over time and
    checks that the allocator under test really serves its malloc (see servers.py)."""

    system_program = ""  # looked up on PATH; the workload is left out when it is missing
    sample_pss = False  # the driver samples the program itself (the runner would see Python)
    driver_module = "perflib.servers"
    driver_command = ""  # the driver's subcommand ("" = the workload's name)

    def locate(self, programs):
        return shutil.which(self.system_program)

    def jobs(self, s, program):
        return [Job(self.name, self.name,
                    [PYTHON, "-m", self.driver_module, self.driver_command or self.name,
                     *self.params(s)],
                    {"PYTHONPATH": SCRIPTS_DIR}, s.timeout, sample_pss=False, driver=True)]

    def allocator_args(self, name: str, library: str | None) -> list[str]:
        """How the driver gets the allocator: --preload LIB (none: the program's own malloc,
        glibc's for Debian's programs), --expect (what the path serving malloc must contain)."""
        return [f"--preload={library or ''}", f"--expect={library or 'libc.so'}",
                f"--allocator={name}"]


def _phase_pss(burst: str, burst_label: str, full_label: str) -> tuple[Metric, ...]:
    """The PSS figures of a real-program workload, read by the driver at the ends of its phases:
    right after the burst of frees, after serving, after idling; the sampled peak; all live."""
    def pss(key: str, label: str, source: str = "") -> Metric:
        return Metric(f"{key}_mb", "MiB", "memory", label, source=source or f"{key}_kb",
                      scale=KB_TO_MIB)
    return (pss(f"{burst}_pss", f"PSS right after {burst_label}"),
            pss("served_pss", "PSS after serving light traffic for --serve-seconds"),
            pss("idle_pss", "PSS after idling --idle-seconds more"),
            pss("peak_pss", "largest PSS sampled (every 0.2 s)", "server_peak_pss_kb"),
            pss("full_pss", f"PSS with {full_label}"))


_MESH_REPORT = (
    Metric("mesh_count", "count", "info", "meshes at exit (libmesh's MALLOCSTATS report)",
           only="libmesh"),
    Metric("meshed_mb", "MiB", "info", "memory given back by meshing over the run (libmesh)",
           only="libmesh"),
    Metric("mesh_pause_max_ms", "ms", "info", "longest mesh step (libmesh)", only="libmesh"),
    Metric("mesh_pause_p99_ms", "ms", "info", "99th percentile of the mesh steps (libmesh)",
           only="libmesh"),
    Metric("mesh_wait_max_ms", "ms", "info",
           "longest time a thread of the program waited for meshing (libmesh)", only="libmesh"),
    Metric("mesh_wait_p99_ms", "ms", "info",
           "99th percentile of the program's waits for meshing (libmesh)", only="libmesh"),
)


class Redis(RealProgram):
    name = "redis"
    system_program = "redis-server"
    binary = "redis-server"
    description = ("Debian's redis-server under each allocator on a Unix socket, no persistence, "
                   "driven by perflib/resp.py: SET keys with 64-512 B values, DEL a random 3/4, "
                   "light GET/SET traffic (20000/s, 80% GET), idle, then GET/SET as fast as the "
                   "client goes; every surviving value verified. Redis links jemalloc: the peers "
                   "and glibc (libc.so.6) are preloaded over it, and each run checks the binding")
    metrics = _phase_pss("deleted", "deleting 3/4 of the keys", "every key loaded") + (
        Metric("op_cpu_ns", "ns/op", "time", "CPU time of the server's main thread per GET/SET "
               "at full pipelined load, i.e. 1/throughput of a saturated server"),
        Metric("client_ns_per_op", "ns/op", "info", "wall time per GET/SET seen by the client "
               "(bound by the Python client)"),
        Metric("op_cpu_all_ns", "ns/op", "info", "CPU time of all the server's threads per "
               "GET/SET", source="op_cpu_all_threads_ns"),
        Metric("used_mb", "MiB", "info", "Redis's used_memory after idling (allocator's usable "
               "sizes)", source="used_memory_kb", scale=KB_TO_MIB),
        Metric("maps", "count", "info", "lines of /proc/PID/maps after idling"),
    ) + _MESH_REPORT
    headline = "served_pss_mb"

    def params(self, s):
        if s.quick:
            return ["--keys", "50000", "--serve-seconds", "1", "--idle-seconds", "1",
                    "--bench-seconds", "1"]
        return ["--keys", "500000", "--serve-seconds", "5", "--idle-seconds", "5",
                "--bench-seconds", "3"]

    def allocator_args(self, name, library):
        # Debian's redis-server links libjemalloc.so.2: without a preload it runs on jemalloc,
        # so "glibc" preloads the C library itself, which then comes first in the search order.
        if library is None:
            from . import servers
            return [f"--preload={servers.libc_path()}", "--expect=libc.so", f"--allocator={name}"]
        return super().allocator_args(name, library)


class CPython(RealProgram):
    name = "cpython"
    system_program = PYTHON
    binary = "python3 perf/pyheap.py"
    description = ("Debian's python3 with PYTHONMALLOC=malloc running perf/pyheap.py: a dict of "
                   "str/bytes/tuple/list objects, a random quarter kept and the dict dropped, "
                   "light traffic, idle; every survivor verified")
    metrics = _phase_pss("dropped", "dropping 3/4 of the objects", "every object built") + (
        Metric("serve_cpu_ns", "ns/op", "time", "CPU time per lookup or replacement while "
               "serving", source="serve_cpu_ns_per_op"),
        Metric("build_s", "s", "info", "time to build the dict"),
        Metric("maps", "count", "info", "lines of /proc/PID/maps after idling"),
    ) + _MESH_REPORT
    headline = "served_pss_mb"

    def params(self, s):
        if s.quick:
            return ["--objects", "50000", "--serve-seconds", "1", "--idle-seconds", "1"]
        return ["--objects", "500000", "--serve-seconds", "5", "--idle-seconds", "5"]


# --- the classic tier ----------------------------------------------------------------------------

CLASSIC = "classic"
_CLASSIC_METRICS = (
    Metric("seconds", "s", "time", "wall time of the work (the program's own clock; real "
           "programs: from start to exit)"),
    Metric("peak_pss_mb", "MiB", "memory", "largest PSS seen while running (sampled)",
           source="peak_pss_kb", scale=KB_TO_MIB),
    Metric("peak_rss_mb", "MiB", "info", "peak RSS", source="peak_rss_kb", scale=KB_TO_MIB),
    Metric("minflt", "count", "info", "minor page faults"),
    Metric("sys_s", "s", "info", "system CPU time"),
)


class ClassicProgram(Workload):
    """A program of the classic tier (perf/classic/*.cc): the pattern of a classic allocator
    benchmark, written here; it times and checks its own work (`seconds=`, exit 1 when wrong)."""

    group = CLASSIC
    metrics = _CLASSIC_METRICS
    headline = "seconds"

    def __init__(self, name: str, target: str, description: str, threaded: bool = False,
                 args: tuple[str, ...] = ()):
        self.name = name
        self.target = target
        self.binary = f"perf/{target}"
        self.description = description
        self.threaded = threaded
        self.args = args

    def params(self, s):
        p = list(self.args)
        if self.threaded:
            p += ["--threads", str(s.classic_threads)]
        return p + (["--quick"] if s.quick else [])


class ClassicReal(RealProgram):
    """A real program of the classic tier, timed from start to exit under each allocator by
    `python3 -m perflib.classic COMMAND` (classic.py), which also checks its output."""

    group = CLASSIC
    metrics = _CLASSIC_METRICS
    headline = "seconds"
    driver_module = "perflib.classic"

    def __init__(self, name: str, command: str, system_program: str, binary: str,
                 description: str):
        self.name = name
        self.driver_command = command
        self.system_program = system_program
        self.binary = binary
        self.description = description

    def params(self, s):
        return ["--quick"] if s.quick else []


CLASSIC_TIER: tuple[Workload, ...] = (
    ClassicProgram("cfrac-like", "cfrac-like", "perf/cfrac-like: Pollard-rho factoring on "
                   "malloc'd bignums; many short-lived small objects of varied sizes (cfrac)"),
    ClassicProgram("espresso-like", "espresso-like", "perf/espresso-like: Quine-McCluskey "
                   "minimisation and greedy cover of random functions; mixed lifetimes "
                   "(espresso)"),
    ClassicProgram("barnes-like", "barnes-like", "perf/barnes-like: Barnes-Hut steps, the "
                   "octree malloc'd and freed every step; pointer chasing (barnes)"),
    ClassicProgram("cache-thrash-like", "false-sharing", "perf/false-sharing: threads malloc "
                   "small objects and write them hard (cache-thrash)", threaded=True),
    ClassicProgram("cache-scratch-like", "false-sharing", "perf/false-sharing --passive: as "
                   "cache-thrash, each thread's first object allocated by the main thread "
                   "(cache-scratch)", threaded=True, args=("--passive",)),
    ClassicProgram("glibc-simple-like", "glibc-simple-like", "perf/glibc-simple-like: batches "
                   "of same-size blocks malloc'd and freed in order, single-threaded, "
                   "multithreaded and on a thread (glibc malloc-simple)"),
    ClassicProgram("glibc-thread-like", "glibc-thread-like", "perf/glibc-thread-like: threads "
                   "replace random blocks of their working sets (glibc malloc-thread)",
                   threaded=True),
    ClassicProgram("xmalloc-like", "xmalloc-like", "perf/xmalloc-like: producers malloc, "
                   "consumers free, batches through a queue (xmalloc-test)", threaded=True),
    ClassicProgram("malloc-large-like", "malloc-large-like", "perf/malloc-large-like: churn "
                   "of 1-8 MiB blocks, only their ends written (malloc-large)"),
    ClassicProgram("mleak-like", "mleak-like", "perf/mleak-like: churn of small objects that "
                   "leaks one allocation in 100 (mleak)"),
    ClassicProgram("rptest-like", "rptest-like", "perf/rptest-like: bursts freed out of order, "
                   "some passed to another thread, threads replaced (rptest)", threaded=True),
    ClassicProgram("mstress-like", "mstress-like", "perf/mstress-like: rounds of threads "
                   "allocating, freeing and swapping objects through a shared table (mstress)",
                   threaded=True),
    ClassicProgram("alloc-test-like", "alloc-test-like", "perf/alloc-test-like: random "
                   "malloc/free over a working set that swings between 1/4 and all of its size "
                   "(alloc-test)", threaded=True),
    ClassicReal("gxx-compile", "gxx", "g++", "g++ -O2 -c perf/kvstore.cc",
                "Debian's g++ -std=c++20 -O2 -c perf/kvstore.cc (--quick: perf/alloc_loop.cc); "
                "the object must define main"),
    ClassicReal("python-churn", "python", PYTHON, "python3 perf/classic/pychurn.py",
                "Debian's python3 with PYTHONMALLOC=malloc running perf/classic/pychurn.py: "
                "dict/list/str churn over documents and an index, checked by a recount"),
    ClassicReal("sqlite-script", "sqlite", "sqlite3", "sqlite3 :memory:",
                "Debian's sqlite3 on an in-memory database: per round a table of 100000 rows "
                "inserted, indexed, a third updated, a fifth deleted, summed; the output is "
                "compared with the sums computed in Python"),
)


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
    Micro(), Redis(), CPython(),
) + CLASSIC_TIER
BY_NAME = {w.name: w for w in ALL}
DEFAULT_ORDER = [w.name for w in ALL]
GROUPS = {CLASSIC: [w.name for w in ALL if w.group == CLASSIC]}


def in_group(workload: str, group: str = CLASSIC) -> bool:
    w = BY_NAME.get(workload)
    return w is not None and w.group == group


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
    """'all' or a comma-separated list of workload and group names (a group stands for all of
    its workloads) -> workloads in the standard order."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise ValueError("no workload given")
    if names == ["all"]:
        return list(ALL)
    unknown = [n for n in names if n not in BY_NAME and n not in GROUPS]
    if unknown:
        raise ValueError(f"unknown workload(s): {', '.join(unknown)} "
                         f"(known: {', '.join(DEFAULT_ORDER)}; groups: {', '.join(GROUPS)})")
    wanted = set(names)
    for n in names:
        wanted.update(GROUPS.get(n, []))
    return [w for w in ALL if w.name in wanted]

