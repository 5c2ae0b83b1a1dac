#!/usr/bin/python3
"""Runs one command and reports its exit code, wall time, peak RSS and peak PSS.

usage: measure.py [--timeout SECONDS] [--log FILE] [--env NAME=VALUE]... -- COMMAND [ARG]...

The command runs under `/usr/bin/time -v` (peak RSS is its "Maximum resident set size"); the
--env variables are given to the command only (through env(1), so /usr/bin/time itself is not
affected by e.g. LD_PRELOAD). While it runs, /proc/PID/smaps_rollup of the command is sampled
every 0.1 s and the largest Pss is kept. Without /usr/bin/time the peak RSS comes from wait4().

Prints one line:  exit=N seconds=S rss_kb=N pss_kb=N
exit is the command's status, 128+signal if a signal killed it, or 124 after --timeout (the
whole process group is then killed). The command's output goes to --log (default: discarded).
Exits 0 whenever the measurement itself worked, 2 on bad usage.
"""
import argparse
import os
import signal
import subprocess
import sys
import time

TIME = "/usr/bin/time"


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="measure.py",
        description="Run a command; report exit code, seconds, peak RSS and peak PSS.")
    p.add_argument("--timeout", type=float, default=0, help="kill after SECONDS (0 = never)")
    p.add_argument("--log", default=os.devnull, help="file for the command's output")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="environment variable for the command only")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG]...")
    args = p.parse_args(argv)
    if args.command and args.command[0] == "--":
        args.command = args.command[1:]
    if not args.command:
        p.error("no command given")
    for e in args.env:
        if "=" not in e or e.startswith("="):
            p.error(f"bad --env '{e}' (expected NAME=VALUE)")
    return args


def read_pss_kb(pid):
    """Pss of a process in kB, or None if it is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def children_of(pid):
    """Direct children of pid (from /proc/PID/task/*/children, else a scan of /proc)."""
    kids = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids += [int(k) for k in f.read().split()]
        return kids
    except OSError:
        pass
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            # The field after the ")" that ends the command name: state, then ppid.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return kids


def parse_time_output(path):
    """Maximum resident set size in kB from /usr/bin/time -v output, or None."""
    try:
        with open(path) as f:
            for line in f:
                if "Maximum resident set size" in line:
                    return int(line.rsplit(":", 1)[1])
    except (OSError, ValueError):
        pass
    return None


def main(argv):
    args = parse_args(argv)
    use_time = os.access(TIME, os.X_OK)
    time_out = f"{args.log}.time" if args.log != os.devnull else f"/tmp/measure-{os.getpid()}.time"
    cmd = ["env", *args.env, *args.command] if args.env else list(args.command)
    if use_time:
        cmd = [TIME, "-v", "-o", time_out, *cmd]

    with open(args.log, "wb") as log:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        target = None if use_time else proc.pid  # with time(1), the command is its child
        peak_pss = 0
        timed_out = False
        status = rusage = None
        while True:
            pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                status, rusage = st, ru
                break
            if target is None:
                kids = children_of(proc.pid)
                target = kids[0] if kids else None
            if target is not None:
                peak_pss = max(peak_pss, read_pss_kb(target) or 0)
            if args.timeout and time.monotonic() - start > args.timeout:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, rusage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.1)
        seconds = time.monotonic() - start
        proc.returncode = 0  # reaped above; keeps Popen from waiting again

    if timed_out:
        code = 124
    elif os.WIFSIGNALED(status):
        code = 128 + os.WTERMSIG(status)
    else:
        code = os.WEXITSTATUS(status)
    rss_kb = parse_time_output(time_out) if use_time else rusage.ru_maxrss
    if use_time:
        if args.log != os.devnull and os.path.exists(time_out):
            with open(time_out) as src, open(args.log, "a") as dst:
                dst.write("\n--- /usr/bin/time -v ---\n" + src.read())
        try:
            os.unlink(time_out)
        except OSError:
            pass
    print(f"exit={code} seconds={seconds:.2f} rss_kb={rss_kb if rss_kb is not None else 0} "
          f"pss_kb={peak_pss}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
