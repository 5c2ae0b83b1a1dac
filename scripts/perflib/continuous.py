"""--revs A..B: measure and record every commit of a range that results/ does not hold yet.

Commits come oldest first from `git rev-list --reverse A..B`. A commit counts as held when a
result file of the same mode (quick or full) names it (commit_full, or the 12-digit commit of
older files) and libmesh's sources were not dirty. Each missing commit is measured exactly as
`run-perf.sh --rev COMMIT --record` would (cli.run_once), so it is recorded as soon as it is done:
an interrupted or failed invocation resumes with the first commit still missing, and no commit is
measured twice. A commit whose libmesh does not build is still recorded (the peers' figures, with
libmesh skipped and the reason), so it is not retried every time either.

One invocation at a time: a lock file in the build directory (BUILD/revs.lock) makes a second
one exit at once, which matters when a timer fires while a long run is still going. The libmesh
build of each commit (BUILD/rev-<commit>/) is removed once the commit is recorded, so a timer
does not fill the disk.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import subprocess
from typing import Callable

from . import store


def commits_in_range(root: str, spec: str) -> list[tuple[str, str]]:
    """[(full hash, subject)] of the range, oldest first. Raises ValueError on a bad range."""
    p = subprocess.run(["git", "rev-list", "--reverse", "--topo-order",
                        "--format=%H %s", "--no-commit-header", spec, "--"],
                       cwd=root, capture_output=True, text=True)
    if p.returncode != 0:
        raise ValueError(p.stderr.strip().splitlines()[-1] if p.stderr.strip() else
                         f"git rev-list {spec} failed")
    out = []
    for line in p.stdout.splitlines():
        sha, _, subject = line.partition(" ")
        if sha:
            out.append((sha, subject))
    return out


def recorded(results_dir: str, mode: str) -> set[str]:
    """Commits (full hashes, and 12-digit prefixes of files without one) held in this mode."""
    held = set()
    for _, doc in store.all_results(results_dir):
        if doc.get("mode") != mode or doc.get("dirty"):
            continue
        for key in ("commit_full", "commit"):
            if doc.get(key):
                held.add(str(doc[key]))
    return held


def is_held(sha: str, held: set[str]) -> bool:
    return sha in held or sha[:12] in held


def run(args, argv: list[str], results_dir: str,
        run_once: Callable[..., tuple[int, dict | None]], log: Callable[[str], None]) -> int:
    root = os.getcwd()
    mode = "quick" if args.quick else "full"
    try:
        commits = commits_in_range(root, args.revs)
    except ValueError as e:
        log(f"--revs {args.revs}: {e}")
        return 2
    bdir = os.path.abspath(args.build_dir)
    os.makedirs(bdir, exist_ok=True)
    lock = open(os.path.join(bdir, "revs.lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        log(f"another --revs run holds {lock.name}; not starting a second one")
        return 1
    try:
        held = recorded(results_dir, mode)
        todo = [(sha, subj) for sha, subj in commits if not is_held(sha, held)]
        log(f"--revs {args.revs}: {len(commits)} commit(s), {len(commits) - len(todo)} already "
            f"recorded in {mode} mode, {len(todo)} to measure")
        if args.max_commits is not None and len(todo) > args.max_commits:
            log(f"measuring the oldest {args.max_commits} now (--max-commits); the rest next time")
            todo = todo[:args.max_commits]
        failed, regressed = [], []
        for i, (sha, subject) in enumerate(todo, 1):
            log(f"=== [{i}/{len(todo)}] {sha[:12]} {subject}")
            one = argparse.Namespace(**vars(args))
            one.rev, one.record = sha, True
            rc, _ = run_once(one, argv, results_dir)
            if rc == 130:
                log("interrupted; the commits recorded so far stay recorded")
                return 130
            if rc == 1:
                failed.append(sha[:12])
            elif rc == 3:
                regressed.append(sha[:12])
            shutil.rmtree(os.path.join(bdir, f"rev-{sha[:12]}"), ignore_errors=True)
        log(f"--revs done: {len(todo)} measured"
            + (f", libmesh failed or was not built at {', '.join(failed)}" if failed else "")
            + (f", regressed at {', '.join(regressed)}" if regressed else ""))
        if failed:
            return 1
        return 3 if regressed else 0
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
