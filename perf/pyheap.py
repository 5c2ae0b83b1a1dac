#!/usr/bin/python3
"""A fragmenting CPython workload: the `cpython` workload of the perf matrix.

Run it with PYTHONMALLOC=malloc so every object comes from the C allocator (scripts/run-perf.sh
starts it that way, under each allocator, through `python3 -m perflib.servers cpython`):

  1. build   a dict of --objects entries: a str key and a value of one of four kinds, mixed -
             a str of 24-384 characters, a bytes of 64-512 B, a tuple (id, version, str) or a
             list of 2-8 short strs - so the heap holds objects of many sizes, interleaved
  2. drop    copy a random --keep-pct (25%) into a new dict and drop the big one
  3. serve   --serve-seconds of light traffic on the survivors at --serve-rate operations per
             second: 80% lookups (each value checked), 20% replacements by a new version
  4. idle    --idle-seconds without allocating
  5. verify  every survivor against the value derived from its id and version; exit 1 on any
             mismatch
After each phase it prints `phase NAME` (built, dropped, served, idle - only when alone -,
verified); with --driven it then waits for a line on stdin (the driver reads the process's PSS
meanwhile) and the driver does the idling. Alone, it prints its own PSS (`NAME_pss_kb=`) and
sleeps through the idle phase itself. Figures: key=value lines
(`build_s`, `live_objects`, `serve_ops`, `serve_cpu_s`, `verified`, `verify_errors`).
"""

import argparse
import gc
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "scripts"))
from perflib.resp import mix64, value_for  # noqa: E402

FILL = [chr(33 + i % 90) * 8 for i in range(64)]


def make(i: int, ver: int):
    """The value of entry i at version ver (equal values compare equal: == checks them)."""
    h = mix64((i << 20) ^ ver)
    kind = h & 3
    if kind == 0:
        n = 24 + (h >> 8) % 361
        return (f"{i}/{ver}:" + FILL[(h >> 20) & 63] * (n // 8 + 1))[:n]
    if kind == 1:
        return value_for(i, ver)
    if kind == 2:
        return (i, ver, f"t{i}.{ver}")
    return [f"{i}.{j}.{ver}" for j in range(2 + (h >> 8) % 7)]


def key(i: int) -> str:
    return f"o{i:07d}"


def own_pss_kb() -> int:
    try:
        with open("/proc/self/smaps_rollup", encoding="ascii") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return -1


class Phases:
    def __init__(self, driven: bool):
        self.driven = driven

    def __call__(self, name: str, **values) -> None:
        for k, v in values.items():
            print(f"{k}={v}")
        if not self.driven:
            print(f"{name}_pss_kb={own_pss_kb()}")
        print(f"phase {name}", flush=True)
        if self.driven and not sys.stdin.readline():
            sys.exit("pyheap: the driver went away")


def serve(d: dict, versions: dict, ids: list, rng: random.Random, seconds: float,
          rate: int) -> tuple[int, int]:
    """Light traffic; returns (operations, mismatches)."""
    batch = 100
    interval = batch / rate
    ops = bad = 0
    start = time.monotonic()
    end = start + seconds
    next_t = start
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if now < next_t:
            time.sleep(min(next_t - now, end - now))
            continue
        next_t += interval
        for _ in range(batch):
            i = ids[rng.randrange(len(ids))]
            if rng.randrange(100) < 80:
                bad += d[key(i)] != make(i, versions[i])
            else:
                versions[i] += 1
                d[key(i)] = make(i, versions[i])
        ops += batch
    return ops, bad


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="pyheap.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--objects", type=int, default=500000)
    p.add_argument("--keep-pct", type=int, default=25)
    p.add_argument("--serve-seconds", type=float, default=5.0)
    p.add_argument("--serve-rate", type=int, default=20000)
    p.add_argument("--idle-seconds", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--driven", action="store_true",
                   help="wait for a line on stdin after each phase (for the driver)")
    a = p.parse_args(argv)
    if a.objects <= 0 or not 0 < a.keep_pct <= 100 or a.serve_rate <= 0 or a.serve_seconds < 0 \
            or a.idle_seconds < 0:
        p.error("sizes must be positive, --keep-pct 1-100")
    gc.disable()  # no cycles here; keeps collections from differing between allocators
    phase = Phases(a.driven)
    rng = random.Random(a.seed)

    t = time.monotonic()
    big = {key(i): make(i, 1) for i in range(a.objects)}
    phase("built", build_s=f"{time.monotonic() - t:.3f}")

    # Survivors chosen by a hash of the id (random.sample would build a temporary list of every
    # id, whose freed ints blur the figure); the new dict shares the big one's key objects.
    salt = mix64(a.seed)
    chosen = bytes(mix64(i ^ salt) % 100 < a.keep_pct for i in range(a.objects))
    d = {k: v for k, v, c in zip(big.keys(), big.values(), chosen) if c}
    keep = [i for i in range(a.objects) if chosen[i]]
    del big, chosen
    versions = dict.fromkeys(keep, 1)
    phase("dropped", live_objects=len(d))

    cpu = time.process_time()
    ops, bad = serve(d, versions, keep, rng, a.serve_seconds, a.serve_rate)
    phase("served", serve_ops=ops, serve_cpu_s=f"{time.process_time() - cpu:.4f}")
    if not a.driven:
        time.sleep(a.idle_seconds)
        phase("idle")

    for i in keep:
        bad += d[key(i)] != make(i, versions[i])
    phase("verified", verified=len(keep), verify_errors=bad)
    if bad:
        print(f"pyheap: {bad} value(s) did not verify", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
