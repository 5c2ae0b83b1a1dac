"""Runs one program and measures it: exit status, wall time, peak RSS and peak PSS.

The program runs in a session of its own, so a timeout can kill it with all its children, as
    /usr/bin/time -f maxrss_kb=%M -o FILE env [LD_PRELOAD=LIB] PROGRAM ARGS...
Peak RSS comes from time(1): the kernel's high-water mark survives execve, so a program started
straight from Python would report at least Python's own RSS; time(1) is a small process. env(1)
sets LD_PRELOAD so the preload reaches the program and not time(1). Without /usr/bin/time the
program is started directly and the peak RSS is left out. PSS has no kernel peak counter:
/proc/PID/smaps_rollup of the program is read every `sample_every` seconds while it runs and
the largest value kept, which can miss short spikes. PSS is what counts for libmesh (RSS counts
a meshed page once per mapping). Reading smaps_rollup walks every mapping under the kernel's
mmap lock, which stalls the program's own mmap/mprotect calls meanwhile: a program that measures
its PSS and its mesh pauses itself is run with sample_pss=False, so the monitor does not lengthen
the pauses it reports.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass

TIMEOUT_RC = 124  # like timeout(1)


@dataclass
class ProcResult:
    rc: int  # exit status; 128+N when killed by signal N; 124 on timeout
    seconds: float
    peak_rss_kb: int | None
    peak_pss_kb: int | None
    timed_out: bool = False


def read_pss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


TIME = "/usr/bin/time"


def child_env(preload: str | None, extra: dict[str, str]) -> dict[str, str]:
    """This process's environment with LD_PRELOAD set to preload (or removed) plus extra."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = preload
    env.update(extra)
    return env


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return []


def _time_output(path: str) -> int | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("maxrss_kb="):
                    return int(line.split("=", 1)[1])
    except (OSError, ValueError):
        pass
    return None


def reproducer(argv: list[str], preload: str | None, extra: dict[str, str]) -> str:
    """A shell command line that repeats one run."""
    env = dict(extra)
    if preload:
        env = {"LD_PRELOAD": preload, **env}
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    return (prefix + " " if prefix else "") + shlex.join(argv)


def run(argv: list[str], env: dict[str, str], timeout: float, stdout_path: str,
        stderr_path: str, sample_every: float = 0.1, sample_pss: bool = True) -> ProcResult:
    """Runs argv with env (which may hold LD_PRELOAD: it is moved onto env(1)'s command line)."""
    time_file = stdout_path + ".time"
    use_time = os.access(TIME, os.X_OK)
    launch_env = dict(env)
    preload = launch_env.pop("LD_PRELOAD", None)
    if use_time:
        cmd = [TIME, "-f", "maxrss_kb=%M", "-o", time_file, "env"]
        cmd += [f"LD_PRELOAD={preload}"] if preload else []
        cmd += list(argv)
    else:
        cmd = list(argv)
        if preload:
            launch_env["LD_PRELOAD"] = preload
    peak_pss = None
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        start = time.monotonic()
        try:
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    env=launch_env, start_new_session=True)
        except OSError as e:
            err.write(f"cannot start {cmd[0]}: {e}\n".encode())
            return ProcResult(127, 0.0, None, None)
        target = None if use_time else proc.pid
        timed_out = False
        nap = 0.005
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid == proc.pid:
                    break
                if target is None:
                    kids = _children(proc.pid)
                    target = kids[0] if kids else None
                if target is not None and sample_pss:
                    pss = read_pss_kb(target)
                    if pss is not None and (peak_pss is None or pss > peak_pss):
                        peak_pss = pss
                if time.monotonic() - start > timeout:
                    timed_out = True
                    _kill_group(proc.pid)
                    _, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(nap)
                nap = min(sample_every, nap * 2)  # short programs end without a long wait
        except BaseException:  # Ctrl-C: take the program down with us
            _kill_group(proc.pid)
            try:
                os.wait4(proc.pid, 0)
            except ChildProcessError:
                pass
            proc.returncode = -1
            raise
        seconds = time.monotonic() - start
        proc.returncode = 0  # reaped by wait4 above; keeps Popen from waiting for it again
    if timed_out:
        rc = TIMEOUT_RC
    elif os.WIFSIGNALED(status):
        rc = 128 + os.WTERMSIG(status)
    else:
        rc = os.WEXITSTATUS(status)  # time(1) passes the status on, 128+N for a signal
    peak_rss = _time_output(time_file) if use_time else None
    return ProcResult(rc, seconds, peak_rss, peak_pss, timed_out)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def describe_rc(rc: int) -> str:
    if rc == TIMEOUT_RC:
        return "timed out"
    if rc == 3:
        return "exit 3 (malloc did not come from the preloaded library)"
    if rc > 128:
        try:
            return f"killed by {signal.Signals(rc - 128).name}"
        except ValueError:
            pass
    return f"exit {rc}"
