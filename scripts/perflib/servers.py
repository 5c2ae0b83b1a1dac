"""The real-program workloads of the perf matrix: a program from Debian started under the
allocator being measured, driven from outside, its PSS sampled over time.

  python3 -m perflib.servers redis   [options]   Debian's redis-server, driven by resp.py
  python3 -m perflib.servers cpython [options]   Debian's python3 running perf/pyheap.py with
                                                 PYTHONMALLOC=malloc

This driver runs without a preload; only the measured program gets LD_PRELOAD (--preload).
Before the run it checks with the dynamic loader (LD_BIND_NOW=1 LD_DEBUG=bindings) that the
program's malloc-family symbols bind to a file whose path contains --expect, and during the run
that the file is mapped in the process (/proc/PID/maps); for redis also that jemalloc's own
statistics (Redis links jemalloc) stay empty unless jemalloc is the allocator under test, and
for libmesh that its MALLOCSTATS report came out at exit. A run where any of this fails exits 3.

Output: key=value lines on stdout (see perf/README.md), the PSS series as JSON (--series-out).
Exit status: 0 ok, 1 the program failed or a value did not verify, 2 bad usage, 3 the
allocator under test was not the one serving malloc.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from . import resp, runner

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYHEAP = os.path.join(ROOT, "perf", "pyheap.py")
PYTHON = "/usr/bin/python3"
EXIT_FAILED, EXIT_USAGE, EXIT_WRONG_ALLOCATOR = 1, 2, 3
MALLOC_SYMBOLS = ("malloc", "free", "calloc", "realloc", "malloc_usable_size")


class RunFailed(Exception):
    pass


class WrongAllocator(Exception):
    pass


def log(msg: str) -> None:
    print(f"servers: {msg}", file=sys.stderr, flush=True)


# --- /proc readings ---------------------------------------------------------------------------

def read_maps(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()
    except OSError:
        return []


def cpu_ns(pid: int, main_thread_only: bool = True) -> int:
    """CPU time in ns (schedstat) of the process's main thread, or of all its threads."""
    tids = [pid] if main_thread_only else []
    if not tids:
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            tids = []
    total = 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def libc_path() -> str:
    """The C library this Python runs on (the same one Debian's programs link)."""
    for line in read_maps(os.getpid()):
        path = line.split()[-1] if len(line.split()) >= 6 else ""
        if re.search(r"/libc\.so\.6$|/libc-[0-9.]+\.so$", path):
            return path
    return "/lib/x86_64-linux-gnu/libc.so.6"


# --- is the allocator under test really serving malloc? ---------------------------------------

_BINDING = re.compile(r"binding file (\S+) \[\d+\] to (\S+) \[\d+\]: normal symbol `([^']+)'")


def parse_bindings(text: str, program: str, symbols=MALLOC_SYMBOLS) -> dict[str, set[str]]:
    """{symbol: files it binds to} for the references of `program` itself, from LD_DEBUG=bindings
    output. References that resolve into the program itself (canonical PLT addresses of a
    non-PIE reference) are left out: those calls still go through the program's PLT."""
    out: dict[str, set[str]] = {}
    for m in _BINDING.finditer(text):
        ref, target, sym = m.groups()
        if ref == program and sym in symbols and target != program:
            out.setdefault(sym, set()).add(target)
    return out


def check_bindings(argv: list[str], env: dict[str, str], expect: str,
                   required=("malloc", "free"), referrer: str | None = None
                   ) -> dict[str, set[str]]:
    """Starts argv (a command that exits at once, like --version) with every symbol bound at
    start-up and the loader's binding log on; raises WrongAllocator unless each malloc-family
    symbol the program imports binds into a file whose path contains expect. referrer: the file
    whose imports are checked when it is not the program itself (a library that does the
    allocating, such as libsqlite3.so.0 under the sqlite3 shell)."""
    e = dict(env, LD_BIND_NOW="1", LD_DEBUG="bindings")
    e.pop("LD_DEBUG_OUTPUT", None)
    p = subprocess.run(argv, env=e, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       errors="replace", timeout=60)
    referrer = referrer or argv[0]
    found = parse_bindings(p.stderr, referrer)
    missing = [s for s in required if s not in found]
    if missing:
        raise WrongAllocator(f"the loader's binding log of {referrer} shows no binding of "
                             f"{', '.join(missing)} (exit {p.returncode})")
    wrong = {s: sorted(t) for s, t in found.items() if any(expect not in x for x in t)}
    if wrong:
        where = "; ".join(f"{s} -> {', '.join(t)}" for s, t in sorted(wrong.items()))
        raise WrongAllocator(f"malloc does not bind to the allocator under test ('{expect}'): "
                             f"{where}")
    return found


def check_mapped(pid: int, expect: str) -> None:
    if not any(expect in line for line in read_maps(pid)):
        raise WrongAllocator(f"no mapping of '{expect}' in /proc/{pid}/maps")


_REPORT = {
    "mesh_count": r"^MESH COUNT:\s+(\d+)",
    "meshed_mb": r"^Meshed MB \(total\):\s+([0-9.]+)",
    "mh_alloc_count": r"^MH Alloc Count:\s+(\d+)",
    "bytes_in_use": r"^Bytes In Use:\s+(\d+)",
    "mesh_pause_max_ms": r"^Mesh Pause Max ms:\s+([0-9.]+)",
    "mesh_pause_p99_ms": r"^Mesh Pause p99 ms:\s+([0-9.]+)",
    "mesh_wait_max_ms": r"^Mesh Wait Max ms:\s+([0-9.]+)",
    "mesh_wait_p99_ms": r"^Mesh Wait p99 ms:\s+([0-9.]+)",
    "report_maps": r"^Mappings:\s+(\d+)",
}


def parse_mesh_report(text: str) -> dict[str, float]:
    """The figures of libmesh's MALLOCSTATS=1 report (the last one in text)."""
    out = {}
    for key, pat in _REPORT.items():
        found = re.findall(pat, text, re.M)
        if found:
            out[key] = float(found[-1])
    return out


# --- PSS over time ----------------------------------------------------------------------------

class Monitor:
    """Samples the PSS of one process every `every` seconds on a thread and records phases."""

    def __init__(self, pid: int, every: float):
        self.pid = pid
        self.every = every
        self.t0 = time.monotonic()
        self.times: list[float] = []
        self.pss: list[int] = []
        self.phases: list[tuple[str, float]] = []
        self.points: dict[str, dict[str, float]] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _add(self, t: float, value: int | None) -> None:
        if value is not None:
            with self._lock:
                self.times.append(t)
                self.pss.append(value)

    def _loop(self) -> None:
        if self.every <= 0:  # no sampling: the phase points only
            return
        while not self._stop.wait(self.every):
            self._add(self.now(), runner.read_pss_kb(self.pid))

    def point(self, phase: str, **extra: float) -> dict[str, float]:
        """PSS and mapping count now; remembered under phase."""
        t = self.now()
        value = runner.read_pss_kb(self.pid)
        self._add(t, value)
        rec = {"t": t, "pss_kb": float(value or 0), "maps": float(len(read_maps(self.pid)))}
        rec.update(extra)
        self.phases.append((phase, t))
        self.points[phase] = rec
        return rec

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def peak_kb(self) -> int | None:
        with self._lock:
            return max(self.pss) if self.pss else None

    def series(self, workload: str, allocator: str) -> dict:
        with self._lock:
            return {"workload": workload, "allocator": allocator, "sample_s": self.every,
                    "t": [round(t, 3) for t in self.times], "pss_kb": list(self.pss),
                    "phases": [[p, round(t, 3)] for p, t in self.phases]}


# --- the program under test -------------------------------------------------------------------

class Program:
    """A program started under the allocator (LD_PRELOAD), stdout/stderr to files."""

    def __init__(self, argv: list[str], env: dict[str, str], workdir: str, name: str,
                 piped: bool = False):
        """piped: stdin and stdout are pipes to the driver (else stdout goes to a file)."""
        self.name = name
        self.out_path = os.path.join(workdir, f"{name}.out")
        self.err_path = os.path.join(workdir, f"{name}.err")
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(argv, env=env,
                                     stdin=subprocess.PIPE if piped else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE if piped else self._out,
                                     stderr=self._err, start_new_session=True)
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def exited_within(self, seconds: float) -> bool:
        try:
            self.proc.wait(seconds)
        except subprocess.TimeoutExpired:
            return False
        return True

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.wait()

    def kill(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def close(self) -> None:
        if self.alive():
            self.kill()
            self.proc.wait()
        self._out.close()
        self._err.close()

    def stderr_text(self) -> str:
        self._err.flush()
        try:
            with open(self.err_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def describe_exit(self) -> str:
        rc = self.proc.poll()
        if rc is None:
            return "still running"
        if rc < 0:
            try:
                return f"killed by {signal.Signals(-rc).name}"
            except ValueError:
                return f"killed by signal {-rc}"
        return f"exit {rc}"

    def failure(self, what: str) -> RunFailed:
        tail = self.stderr_text().splitlines()[-8:]
        detail = "".join(f"\n  | {line}" for line in tail)
        return RunFailed(f"{what} ({self.name}: {self.describe_exit()}){detail}")


def program_env(preload: str | None, extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    for k in ("LD_PRELOAD", "LD_DEBUG", "LD_BIND_NOW", "MALLOCSTATS"):
        env.pop(k, None)
    if preload:
        env["LD_PRELOAD"] = preload
    env["MALLOCSTATS"] = "1"  # libmesh's report at exit; other allocators ignore it
    env.update(extra)
    return env


def _finish(workload: str, args, mon: Monitor | None, prog: Program | None,
            workdir: str) -> None:
    """End of a run, however it went: the series is written, the program is gone, and its
    output files are removed (kept with --keep-logs)."""
    if mon is not None:
        mon.stop()
        if args.series_out:
            with open(args.series_out, "w", encoding="utf-8") as f:
                json.dump(mon.series(workload, args.allocator), f)
    if prog is not None:
        prog.close()
    if args.keep_logs:
        log(f"the program's output is kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def emit(values: dict[str, float | str]) -> None:
    for k, v in values.items():
        if isinstance(v, float):
            print(f"{k}={v:.6g}")
        else:
            print(f"{k}={v}")
    sys.stdout.flush()


def _mib(kb: float) -> str:
    return f"{kb / 1024:.1f} MiB"


# --- redis ------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(args, env: dict[str, str], workdir: str) -> tuple[Program, resp.Client]:
    argv = [args.server, "--save", "", "--appendonly", "no", "--dir", workdir,
            "--daemonize", "no", "--logfile", "", "--loglevel", "warning",
            "--databases", "1"]
    sock_path = os.path.join(workdir, "redis.sock")
    if args.tcp:
        port = _free_port()
        argv += ["--port", str(port), "--bind", "127.0.0.1"]
    else:
        argv += ["--port", "0", "--unixsocket", sock_path, "--unixsocketperm", "700"]
    server = Program(argv, env, workdir, "redis-server")
    deadline = time.monotonic() + 20
    while True:
        if not server.alive():
            raise server.failure("redis-server did not start")
        try:
            client = (resp.Client.tcp("127.0.0.1", port) if args.tcp
                      else resp.Client.unix(sock_path))
            if client.call(b"PING") == b"PONG":
                return server, client
            client.close()
        except (OSError, resp.RespError):
            pass
        if time.monotonic() > deadline:
            server.close()
            raise RunFailed("redis-server did not answer PING within 20 s")
        time.sleep(0.02)


def redis_info(client: resp.Client) -> dict[str, str]:
    return resp.parse_info(client.call(b"INFO", b"memory"))


def _serve(client: resp.Client, book: resp.KeyBook, live: list[int], rng: random.Random,
           seconds: float, get_pct: int, batch: int,
           rate: float | None) -> tuple[int, float, list[resp.Mismatch]]:
    """GET/SET traffic on the live keys for `seconds`: batches of `batch` pipelined commands,
    `rate` operations per second at most (None: as fast as the client goes). Every GET reply is
    checked. Returns (operations, wall seconds, mismatches)."""
    ops, bad = 0, []
    start = time.monotonic()
    end = start + seconds
    interval = batch / rate if rate else 0.0
    next_t = start
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if interval:
            if now < next_t:
                time.sleep(min(next_t - now, end - now))
                continue
            next_t += interval
        cmds, gets, sets = [], [], []
        for i in range(batch):
            k = live[rng.randrange(len(live))]
            if rng.randrange(100) < get_pct:
                cmds.append(resp.encode(b"GET", resp.key_name(k)))
                gets.append((i, k, book.version[k]))  # a later SET in the batch changes it
            else:
                cmds.append(book.set_command(k, book.version[k] + 1))
                sets.append(i)
        replies = client.pipeline(cmds)
        for i, k, ver in gets:
            m = book.check(k, replies[i], ver)
            if m is not None:
                bad.append(m)
        resp.check_replies("SET", [replies[i] for i in sets], b"OK")
        ops += batch
    return ops, time.monotonic() - start, bad


def run_redis(args) -> dict[str, float | str]:
    env = program_env(args.preload, {})
    check_bindings([args.server, "--version"], env, args.expect,
                   required=("malloc", "free", "malloc_usable_size"))
    workdir = tempfile.mkdtemp(prefix="perf-redis-")
    server = None
    mon = None
    out: dict[str, float | str] = {}
    try:
        server, client = start_redis(args, env, workdir)
        mon = Monitor(server.pid, args.sample_ms / 1000)
        check_mapped(server.pid, args.expect)
        rng = random.Random(args.seed)
        book = resp.KeyBook(args.keys, args.min_size, args.max_size)
        mon.point("start")

        def step(cmds: list[bytes], kind: str, expect) -> None:
            if not server.alive():
                raise server.failure(f"redis-server died during {kind}")
            resp.check_replies(kind, client.pipeline(cmds), expect)

        # 1. load
        t = time.monotonic()
        for i in range(0, args.keys, args.batch * 4):
            step([book.set_command(k, 1) for k in range(i, min(args.keys, i + args.batch * 4))],
                 "SET", b"OK")
        out["load_s"] = time.monotonic() - t
        info = redis_info(client)
        loaded = mon.point("loaded", used_kb=int(info.get("used_memory", 0)) / 1024)
        _check_jemalloc_stats(info, args.expect)
        # 2. delete a random part
        ids = list(range(args.keys))
        rng.shuffle(ids)
        ndel = args.keys * args.delete_pct // 100
        t = time.monotonic()
        for i in range(0, ndel, args.batch * 4):
            step([book.del_command(k) for k in ids[i:min(ndel, i + args.batch * 4)]], "DEL", 1)
        out["delete_s"] = time.monotonic() - t
        deleted = mon.point("deleted")
        live = sorted(ids[ndel:])
        # 3. light traffic
        ops, wall, bad = _serve(client, book, live, rng, args.serve_seconds, args.get_pct,
                                max(1, min(args.batch, 100)), args.serve_rate)
        served = mon.point("served")
        out["serve_ops"] = float(ops)
        # 4. idle: nothing sent
        time.sleep(args.idle_seconds)
        idle = mon.point("idle", used_kb=int(redis_info(client).get("used_memory", 0)) / 1024)
        # 5. throughput: the same mix as fast as the client goes
        cpu0, cpuall0 = cpu_ns(server.pid), cpu_ns(server.pid, False)
        bops, bwall, bbad = _serve(client, book, live, rng, args.bench_seconds, args.get_pct,
                                   args.batch, None)
        cpu1, cpuall1 = cpu_ns(server.pid), cpu_ns(server.pid, False)
        bad += bbad
        mon.point("bench")
        # 6. verify every key
        checked, vbad = resp.verify_all(client, book)
        bad += vbad
        mon.point("verified")
        out["verified_keys"] = float(checked)
        out["verify_errors"] = float(len(bad))
        if bad:
            for m in bad[:10]:
                log(f"MISMATCH {m.describe()}")
            raise RunFailed(f"{len(bad)} value(s) did not verify")
        check_mapped(server.pid, args.expect)
        # 7. stop the server (its exit prints libmesh's report)
        try:
            client.send(resp.encode(b"SHUTDOWN", b"NOSAVE"))
        except OSError:
            pass
        rc = server.wait(30)
        client.close()
        mon.stop()
        if rc != 0:
            raise server.failure("redis-server did not shut down cleanly")
        report = parse_mesh_report(server.stderr_text())
        _check_report(report, args, used_kb=loaded["used_kb"])

        out.update({
            "full_pss_kb": loaded["pss_kb"], "deleted_pss_kb": deleted["pss_kb"],
            "served_pss_kb": served["pss_kb"], "idle_pss_kb": idle["pss_kb"],
            "server_peak_pss_kb": float(mon.peak_kb() or 0),
            "maps": idle["maps"], "deleted_maps": deleted["maps"],
            "used_memory_kb": idle["used_kb"], "full_used_memory_kb": loaded["used_kb"],
            "pss_per_used": idle["pss_kb"] / idle["used_kb"] if idle["used_kb"] else 0.0,
            "served_after_delete_s": served["t"] - deleted["t"],
            "idle_after_delete_s": idle["t"] - deleted["t"],
            "live_keys": float(len(live)),
            "op_cpu_ns": (cpu1 - cpu0) / bops if bops else 0.0,
            "op_cpu_all_threads_ns": (cpuall1 - cpuall0) / bops if bops else 0.0,
            "client_ns_per_op": bwall * 1e9 / bops if bops else 0.0,
            "bench_ops": float(bops),
        })
        for k, v in report.items():
            out[k] = v
        log(f"{args.allocator or args.expect}: PSS full {_mib(loaded['pss_kb'])}, after deletes "
            f"{_mib(deleted['pss_kb'])}, after serving {_mib(served['pss_kb'])}, after idling "
            f"{_mib(idle['pss_kb'])}; {len(live)} keys verified")
        return out
    except (OSError, resp.RespError) as e:
        if server is not None and server.exited_within(1.0):
            raise server.failure(f"redis-server went away: {e}") from e
        raise
    finally:
        _finish("redis", args, mon, server, workdir)


def _check_jemalloc_stats(info: dict[str, str], expect: str) -> None:
    """Redis links jemalloc and reports its statistics (allocator_allocated): under another
    allocator jemalloc is loaded but must hold next to nothing."""
    used = float(info.get("used_memory", 0) or 0)
    je = float(info.get("allocator_allocated", 0) or 0)
    if used < 4 << 20:
        return  # too small to tell
    if "jemalloc" in expect:
        if je < 0.5 * used:
            raise WrongAllocator(f"jemalloc holds only {je:.0f} of {used:.0f} bytes in use")
    elif je > 0.1 * used:
        raise WrongAllocator(f"Redis's own jemalloc holds {je:.0f} of {used:.0f} bytes in use: "
                             f"the preload is not serving malloc")


def _check_report(report: dict[str, float], args, used_kb: float | None = None) -> None:
    if args.allocator != "libmesh":
        return
    if "mh_alloc_count" not in report:
        raise WrongAllocator("libmesh printed no MALLOCSTATS report at exit")
    if report["mh_alloc_count"] < 1:
        raise WrongAllocator("libmesh's report shows no span created")
    if used_kb and report.get("bytes_in_use", 0) < 0.25 * used_kb * 1024:
        raise WrongAllocator(f"libmesh holds {report.get('bytes_in_use', 0):.0f} bytes at exit, "
                             f"the server had {used_kb * 1024:.0f} in use")


# --- cpython ----------------------------------------------------------------------------------

def run_cpython(args) -> dict[str, float | str]:
    env = program_env(args.preload, {"PYTHONMALLOC": "malloc"})
    check_bindings([args.python, "-c", "pass"], env, args.expect)
    workdir = tempfile.mkdtemp(prefix="perf-cpython-")
    prog = None
    mon = None
    try:
        argv = [args.python, PYHEAP, "--driven", "--objects", str(args.objects),
                "--keep-pct", str(100 - args.delete_pct), "--serve-seconds", str(args.serve_seconds),
                "--serve-rate", str(args.serve_rate), "--seed", str(args.seed)]
        prog = Program(argv, env, workdir, "cpython", piped=True)
        mon = Monitor(prog.pid, args.sample_ms / 1000)
        points = {}
        mon.point("start")
        values: dict[str, float] = {}
        while True:
            line = prog.proc.stdout.readline().decode("utf-8", "replace")
            if not line:
                break
            parts = line.split()
            if parts and parts[0] == "phase":
                phase = parts[1]
                if phase == "built":
                    check_mapped(prog.pid, args.expect)
                if phase == "served":
                    points[phase] = mon.point(phase)
                    time.sleep(args.idle_seconds)
                    phase = "idle"
                points[phase] = mon.point(phase)
                if phase == "verified":
                    mon.stop()  # the series ends here, not with the interpreter's teardown
                prog.proc.stdin.write(b"\n")
                prog.proc.stdin.flush()
            else:
                for tok in parts:
                    k, sep, v = tok.partition("=")
                    if sep:
                        try:
                            values[k] = float(v)
                        except ValueError:
                            pass
        rc = prog.wait(60)
        mon.stop()
        if values.get("verify_errors", 0) > 0:
            raise RunFailed(f"{values['verify_errors']:.0f} object(s) did not verify")
        if rc != 0:
            raise prog.failure("the python workload failed")
        missing = [p for p in ("built", "dropped", "served", "idle", "verified")
                   if p not in points]
        if missing:
            raise prog.failure(f"no {', '.join(missing)} phase")
        report = parse_mesh_report(prog.stderr_text())
        _check_report(report, args)
        built, dropped = points["built"], points["dropped"]
        served, idle = points["served"], points["idle"]
        out: dict[str, float | str] = {
            "full_pss_kb": built["pss_kb"], "dropped_pss_kb": dropped["pss_kb"],
            "served_pss_kb": served["pss_kb"], "idle_pss_kb": idle["pss_kb"],
            "server_peak_pss_kb": float(mon.peak_kb() or 0), "maps": idle["maps"],
        }
        for k in ("build_s", "live_objects", "verified", "verify_errors", "serve_ops"):
            if k in values:
                out[k] = values[k]
        if values.get("serve_ops"):
            out["serve_cpu_ns_per_op"] = values.get("serve_cpu_s", 0) * 1e9 / values["serve_ops"]
        out.update(report)
        log(f"{args.allocator or args.expect}: PSS full {_mib(built['pss_kb'])}, after the drop "
            f"{_mib(dropped['pss_kb'])}, after serving {_mib(served['pss_kb'])}, after idling "
            f"{_mib(idle['pss_kb'])}")
        return out
    finally:
        _finish("cpython", args, mon, prog, workdir)


# --- command line -----------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _pct(text: str) -> int:
    v = int(text)
    if not 0 <= v <= 100:
        raise argparse.ArgumentTypeError("needs 0-100")
    return v


def _pos(text: str) -> int:
    v = int(text)
    if v <= 0:
        raise argparse.ArgumentTypeError("needs a positive integer")
    return v


def _secs(text: str) -> float:
    v = float(text)
    if v < 0:
        raise argparse.ArgumentTypeError("needs seconds >= 0")
    return v


def allocator_options() -> argparse.ArgumentParser:
    """A parent parser with the options that put the program under the allocator and say how
    to check it (shared with perflib.classic)."""
    common = _Parser(add_help=False)
    common.add_argument("--preload", default="", help="library to LD_PRELOAD into the program")
    common.add_argument("--expect", default="",
                        help="text the path of the library serving malloc must contain "
                             "(default: --preload, or libc.so)")
    common.add_argument("--allocator", default="", help="name of the allocator (labels; "
                        "'libmesh' also requires its MALLOCSTATS report)")
    return common


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python3 -m perflib.servers",
                description="Real programs under an allocator, driven from outside.")
    sub = p.add_subparsers(dest="workload", required=True, parser_class=_Parser)
    common = allocator_options()
    common.add_argument("--delete-pct", type=_pct, default=75)
    common.add_argument("--serve-seconds", type=_secs, default=5.0)
    common.add_argument("--serve-rate", type=_pos, default=20000,
                        help="operations per second while serving")
    common.add_argument("--idle-seconds", type=_secs, default=5.0)
    common.add_argument("--sample-ms", type=int, default=200,
                        help="PSS sampling period; 0 samples only at the phase ends")
    common.add_argument("--seed", type=int, default=42)
    common.add_argument("--series-out", default="", help="write the PSS series (JSON) here")
    common.add_argument("--keep-logs", action="store_true")
    r = sub.add_parser("redis", parents=[common], help="Debian's redis-server")
    r.add_argument("--server", default=shutil.which("redis-server") or "/usr/bin/redis-server")
    r.add_argument("--tcp", action="store_true", help="127.0.0.1 and a free port, not a Unix "
                   "socket")
    r.add_argument("--keys", type=_pos, default=500000)
    r.add_argument("--min-size", type=_pos, default=64)
    r.add_argument("--max-size", type=_pos, default=512)
    r.add_argument("--get-pct", type=_pct, default=80)
    r.add_argument("--batch", type=_pos, default=200, help="commands per pipelined batch")
    r.add_argument("--bench-seconds", type=_secs, default=3.0)
    c = sub.add_parser("cpython", parents=[common], help="Debian's python3, PYTHONMALLOC=malloc")
    c.add_argument("--python", default=PYTHON)
    c.add_argument("--objects", type=_pos, default=500000)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.expect:
        args.expect = args.preload or "libc.so"
    if args.workload == "redis":
        if args.min_size > args.max_size:
            print("servers: --min-size is above --max-size", file=sys.stderr)
            return EXIT_USAGE
        if not os.access(args.server, os.X_OK):
            log(f"{args.server} not found (apt-get install redis-server)")
            return EXIT_FAILED
    try:
        out = run_redis(args) if args.workload == "redis" else run_cpython(args)
    except WrongAllocator as e:
        log(f"FAILED: the allocator under test is not serving malloc: {e}")
        return EXIT_WRONG_ALLOCATOR
    except (RunFailed, resp.RespError, OSError) as e:
        log(f"FAILED: {e}")
        return EXIT_FAILED
    emit(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
