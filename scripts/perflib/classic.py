"""The real programs of the classic tier: a program from Debian run once under the allocator,
timed from outside, its output checked.

  python3 -m perflib.classic gxx     [options]   g++ -O2 -c of one of our translation units
  python3 -m perflib.classic python  [options]   python3 perf/classic/pychurn.py
                                                 (PYTHONMALLOC=malloc)
  python3 -m perflib.classic sqlite  [options]   sqlite3 :memory: running a generated SQL script

Like perflib.servers, this driver runs without a preload; only the program gets LD_PRELOAD
(--preload). Before the run the loader's binding log (LD_BIND_NOW=1 LD_DEBUG=bindings) must show
the malloc family of the file that does the allocating (cc1plus, python3, libsqlite3.so.0) bound
to a file whose path contains --expect; for libmesh its MALLOCSTATS report must come out at exit.
A run where either fails exits 3.

The time figure is the program's wall time from start to exit (`seconds`; the driver waits for it
with wait4, so nothing is lost to polling); wait4's resource usage gives CPU time, page faults and
the peak RSS of the program and its children (g++ runs cc1plus and as). The PSS of the program's
process tree is read every --sample-ms ms (`peak_pss_kb`, the largest sum seen).

Checks: g++ must exit 0 and the object must define `main`; python's script checks itself
(exit 1 on a wrong result) and must print `verified=1` and the checksum of its parameters;
sqlite3's output must equal, line by line, what the driver computes for the script in Python.

Output: key=value lines on stdout. Exit status: 0 ok, 1 the program failed or its output is
wrong, 2 bad usage, 3 the allocator under test was not the one serving malloc.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from . import runner, servers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYCHURN = os.path.join(ROOT, "perf", "classic", "pychurn.py")
EXIT_FAILED, EXIT_USAGE, EXIT_WRONG_ALLOCATOR = 1, 2, 3

# The translation units g++ compiles: one of our larger ones, a small one with --quick. Both
# compile with one include directory: perf/workload_common.h next to them includes the harness
# support headers (stress/support/harness/*.h).
GXX_SOURCE = os.path.join(ROOT, "perf", "kvstore.cc")
GXX_SOURCE_QUICK = os.path.join(ROOT, "perf", "alloc_loop.cc")
GXX_INCLUDE = os.path.join(ROOT, "stress", "support")

# Checksums pychurn.py prints for its default seed (42): a different one means the script
# computed something else under this allocator.
PYCHURN_CHECKSUM = {"full": 451075090, "quick": 3187513652}


class RunFailed(Exception):
    pass


def log(msg: str) -> None:
    print(f"classic: {msg}", file=sys.stderr, flush=True)


# --- the process tree and its PSS ---------------------------------------------------------------

def descendants(pid: int) -> list[int]:
    """pid and every process below it (children of all its threads), depth first."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{p}/task/{tid}/children", encoding="ascii") as f:
                    todo += [int(x) for x in f.read().split()]
            except (OSError, ValueError):
                pass
    return out


class TreePss:
    """Samples the summed PSS of a process tree on a thread; keeps the peak."""

    def __init__(self, pid: int, every: float):
        self.pid = pid
        self.every = every
        self.peak_kb = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            total = sum(runner.read_pss_kb(p) or 0 for p in descendants(self.pid))
            if total:
                self.samples += 1
                self.peak_kb = max(self.peak_kb, total)
            if self._stop.wait(self.every):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# --- one timed run ------------------------------------------------------------------------------

def timed_run(argv: list[str], env: dict[str, str], workdir: str, sample_ms: int,
              stdin_path: str | None = None, timeout: float = 600) -> dict[str, float | str]:
    """Runs argv to its end; returns its wall time, resource usage, peak PSS and output."""
    out_path, err_path = os.path.join(workdir, "out"), os.path.join(workdir, "err")
    with open(out_path, "wb") as out, open(err_path, "wb") as err, \
            open(stdin_path or os.devnull, "rb") as inp:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdin=inp, stdout=out, stderr=err, cwd=workdir,
                                start_new_session=True)
        mon = TreePss(proc.pid, sample_ms / 1000) if sample_ms > 0 else None
        killer = threading.Timer(timeout, lambda: _kill(proc.pid))
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
            seconds = time.perf_counter() - t0
            proc.returncode = 0  # reaped above
            if mon is not None:
                mon.stop()
    with open(out_path, encoding="utf-8", errors="replace") as f:
        stdout = f.read()
    with open(err_path, encoding="utf-8", errors="replace") as f:
        stderr = f.read()
    rc = os.waitstatus_to_exitcode(status)
    return {"rc": rc, "seconds": seconds, "user_s": usage.ru_utime, "sys_s": usage.ru_stime,
            "minflt": float(usage.ru_minflt), "majflt": float(usage.ru_majflt),
            "peak_rss_kb": float(usage.ru_maxrss),
            "peak_pss_kb": float(mon.peak_kb) if mon and mon.peak_kb else -1.0,
            "stdout": stdout, "stderr": stderr}


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, 9)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(text: str, n: int = 8) -> str:
    return "".join(f"\n  | {line}" for line in text.splitlines()[-n:])


def check_exit(res: dict, what: str) -> None:
    if res["rc"] != 0:
        how = f"killed by signal {-res['rc']}" if res["rc"] < 0 else f"exit {res['rc']}"
        raise RunFailed(f"{what} failed ({how}){_tail(res['stderr'])}")


def figures(res: dict, args) -> dict[str, float | str]:
    """The figures every program reports, plus libmesh's report (checked)."""
    out: dict[str, float | str] = {k: res[k] for k in ("seconds", "user_s", "sys_s", "minflt",
                                                        "majflt", "peak_rss_kb", "peak_pss_kb")}
    report = servers.parse_mesh_report(res["stderr"])
    servers._check_report(report, args)
    out.update({k: v for k, v in report.items() if k in ("mesh_count", "mh_alloc_count")})
    return out


# --- g++ ----------------------------------------------------------------------------------------

def cc1plus(gxx: str) -> str:
    p = subprocess.run([gxx, "-print-prog-name=cc1plus"], capture_output=True, text=True,
                       timeout=60)
    path = p.stdout.strip()
    if p.returncode != 0 or not os.path.isabs(path):
        raise RunFailed(f"{gxx} does not say where cc1plus is")
    return path


def run_gxx(args) -> dict[str, float | str]:
    env = servers.program_env(args.preload, {})
    servers.check_bindings([cc1plus(args.gxx), "--version"], env, args.expect)
    source = GXX_SOURCE_QUICK if args.quick else GXX_SOURCE
    workdir = tempfile.mkdtemp(prefix="perf-gxx-")
    try:
        obj = os.path.join(workdir, "unit.o")
        res = timed_run([args.gxx, "-std=c++20", "-O2", "-I", GXX_INCLUDE, "-c", source, "-o", obj],
                        env, workdir, args.sample_ms)
        check_exit(res, "g++")
        nm = subprocess.run(["nm", "--defined-only", obj], capture_output=True, text=True,
                            timeout=60)
        if nm.returncode != 0 or not any(line.split()[-1:] == ["main"]
                                         for line in nm.stdout.splitlines()):
            raise RunFailed(f"the object g++ wrote does not define main ({obj})")
        out = figures(res, args)
        out["object_kb"] = os.path.getsize(obj) / 1024
        return out
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --- python -------------------------------------------------------------------------------------

def run_python(args) -> dict[str, float | str]:
    env = servers.program_env(args.preload, {"PYTHONMALLOC": "malloc"})
    servers.check_bindings([args.python, "-c", "pass"], env, args.expect)
    workdir = tempfile.mkdtemp(prefix="perf-pychurn-")
    try:
        argv = [args.python, PYCHURN] + (["--quick"] if args.quick else [])
        res = timed_run(argv, env, workdir, args.sample_ms)
        check_exit(res, "the python script")
        values = parse_values(res["stdout"])
        if values.get("verified") != 1:
            raise RunFailed("the python script did not verify its results")
        want = PYCHURN_CHECKSUM["quick" if args.quick else "full"]
        if want and values.get("checksum") != want:
            raise RunFailed(f"the python script's checksum is {values.get('checksum')}, "
                            f"expected {want}")
        out = figures(res, args)
        out["script_s"] = values.get("seconds", -1.0)
        return out
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def parse_values(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            try:
                out[k.strip()] = float(v)
            except ValueError:
                pass
    return out


# --- sqlite -------------------------------------------------------------------------------------

def sqlite_script(rows: int, rounds: int) -> str:
    """Per round: a table of `rows` rows filled by a recursive CTE, two indexes, an update of a
    third of the rows (longer payloads), a delete of a fifth, and two summary queries; from the
    second round on the previous round's table is dropped after the new one is built."""
    lines = ["PRAGMA cache_size = -262144;"]
    for r in range(1, rounds + 1):
        t = f"t{r}"
        lines += [
            f"CREATE TABLE {t}(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, payload TEXT, "
            "score INTEGER);",
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
            f"WHERE x < {rows}) INSERT INTO {t} SELECT x, (x + {r}) % 97, "
            f"printf('n%07d', (x * 7919 + {r}) % 1000003), "
            f"printf('%.*c', 20 + (x + {r}) % 200, 'a'), x * {r} FROM c;",
            f"CREATE INDEX {t}_grp ON {t}(grp);",
            f"CREATE INDEX {t}_name ON {t}(name);",
            f"UPDATE {t} SET payload = payload || printf('%.*c', 1 + id % 50, 'b'), "
            "score = score * 3 WHERE id % 3 = 0;",
            f"DELETE FROM {t} WHERE id % 5 = 0;",
            f"SELECT count(*), sum(length(name)), sum(length(payload)), sum(score) FROM {t};",
            f"SELECT grp, count(*), sum(length(payload)) FROM {t} WHERE grp = {r % 97} "
            "GROUP BY grp;",
        ]
        if r > 1:
            lines.append(f"DROP TABLE t{r - 1};")
    return "\n".join(lines) + "\n"


def sqlite_expected(rows: int, rounds: int) -> list[str]:
    """What sqlite3 prints for sqlite_script(rows, rounds), computed here row by row."""
    out = []
    for r in range(1, rounds + 1):
        count = name_len = pay_len = score = 0
        g_count = g_len = 0
        for x in range(1, rows + 1):
            if x % 5 == 0:
                continue
            plen = 20 + (x + r) % 200
            s = x * r
            if x % 3 == 0:
                plen += 1 + x % 50
                s *= 3
            count += 1
            name_len += len("n%07d" % ((x * 7919 + r) % 1000003))
            pay_len += plen
            score += s
            if (x + r) % 97 == r % 97:
                g_count += 1
                g_len += plen
        out.append(f"{count}|{name_len}|{pay_len}|{score}")
        out.append(f"{r % 97}|{g_count}|{g_len}")
    return out


def first_difference(got: list[str], want: list[str]) -> str | None:
    """None when the lines are equal, else where and how they first differ."""
    if got == want:
        return None
    i = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    return (f"line {i + 1} is {got[i] if i < len(got) else 'missing'!r}, expected "
            f"{want[i] if i < len(want) else 'nothing'!r}")


def run_sqlite(args) -> dict[str, float | str]:
    env = servers.program_env(args.preload, {})
    lib = sqlite_library(args.sqlite3)
    servers.check_bindings([args.sqlite3, "--version"], env, args.expect, referrer=lib)
    rows, rounds = (20000, 2) if args.quick else (100000, 5)
    workdir = tempfile.mkdtemp(prefix="perf-sqlite-")
    try:
        script = os.path.join(workdir, "script.sql")
        with open(script, "w", encoding="utf-8") as f:
            f.write(sqlite_script(rows, rounds))
        res = timed_run([args.sqlite3, "-batch", "-bail", ":memory:"], env, workdir,
                        args.sample_ms, stdin_path=script)
        check_exit(res, "sqlite3")
        wrong = first_difference(res["stdout"].splitlines(), sqlite_expected(rows, rounds))
        if wrong:
            raise RunFailed(f"sqlite3's output is wrong: {wrong}")
        out = figures(res, args)
        out["rows"] = float(rows * rounds)
        return out
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def sqlite_library(program: str) -> str:
    """The libsqlite3 the sqlite3 program loads (where its malloc calls are made)."""
    p = subprocess.run(["ldd", program], capture_output=True, text=True, timeout=60)
    for line in p.stdout.splitlines():
        parts = line.split()
        if parts and parts[0].startswith("libsqlite3.so") and len(parts) >= 3:
            return parts[2]
    return program  # linked statically: the program itself allocates


# --- command line -------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = servers._Parser(prog="python3 -m perflib.classic",
                        description="The classic tier's real programs, timed under an allocator.")
    sub = p.add_subparsers(dest="program", required=True, parser_class=servers._Parser)
    common = servers.allocator_options()
    common.add_argument("--quick", action="store_true", help="a short run")
    common.add_argument("--sample-ms", type=int, default=50,
                        help="PSS sampling period of the process tree; 0: no sampling")
    common.add_argument("--series-out", default="", help="accepted for the perf matrix; unused")
    g = sub.add_parser("gxx", parents=[common], help="g++ -O2 -c of perf/kvstore.cc")
    g.add_argument("--gxx", default=shutil.which("g++") or "/usr/bin/g++")
    y = sub.add_parser("python", parents=[common], help="python3 perf/classic/pychurn.py")
    y.add_argument("--python", default=servers.PYTHON)
    s = sub.add_parser("sqlite", parents=[common], help="sqlite3 :memory: with a generated script")
    s.add_argument("--sqlite3", default=shutil.which("sqlite3") or "/usr/bin/sqlite3")
    return p


RUNS = {"gxx": run_gxx, "python": run_python, "sqlite": run_sqlite}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.expect:
        args.expect = args.preload or "libc.so"
    try:
        out = RUNS[args.program](args)
    except servers.WrongAllocator as e:
        log(f"FAILED: the allocator under test is not serving malloc: {e}")
        return EXIT_WRONG_ALLOCATOR
    except (RunFailed, servers.RunFailed, OSError, subprocess.SubprocessError) as e:
        log(f"FAILED: {e}")
        return EXIT_FAILED
    servers.emit(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
