"""--bisect GOOD BAD --figure NAME: the first commit where a figure regressed.

The search (Bisector) knows nothing about building or running: it is given the commits, oldest
first (GOOD, then every commit on BAD's first-parent line after GOOD, up to BAD), and a
`measure(commit) -> samples` function ({allocator: {repetition: value}} for the figure: libmesh
of the commit and the peers measured in the same run). A commit is *regressed* when
compare.judge() says 'worse' for it against GOOD: a rank test over the repetitions, a change
beyond the minimum effect, and not a move of the machine that the peers share.

Where GOOD is measured matters on a shared machine, whose load can change the figures of every
allocator severalfold between two runs minutes apart. With `reference` set (run-perf.sh sets
it), measure(commit) runs GOOD's libmesh too, in the same run as the commit's, interleaved
repetition by repetition, as an allocator named `reference`: the commit is judged against those
values, repetition by repetition (compare.judge(paired=True): the signed-rank test of the
per-repetition ratios), so both sides saw the same machine. Without it, GOOD is measured once on its own and
every commit is judged against that, with the peers telling a machine change apart.

When the rule cannot decide ('unclear', 'too few reps'), the commit (and without `reference`
GOOD too) gets another round of repetitions (measure is called again and the new repetitions
are added), up to `max_rounds` rounds. BAD must be regressed against GOOD; then the usual
halving, with the assumption that the figure stays regressed once it regressed, names the first
regressed commit in about log2(commits) steps.

run_cli() drives it from run-perf.sh: measure builds libmesh of the commit as --rev does and
runs the figure's workload (cli.run_once) with --reps repetitions (default 6) under libmesh,
GOOD's libmesh (`good`) and the peers.
"""

from __future__ import annotations

import argparse
import os
import subprocess
from dataclasses import dataclass, field
from typing import Callable

from . import build, compare, workloads

Samples = compare.Samples
DEFAULT_REPS = 6  # paired: 6 repetitions all one way give p = 2/64 < 0.05; 5 cannot
REFERENCE = "good"  # the allocator name GOOD's libmesh runs under, next to each commit's


class MeasureError(RuntimeError):
    pass


@dataclass
class Step:
    commit: str
    judgement: compare.Judgement
    regressed: bool | None  # None: still undecided after every round


@dataclass
class Outcome:
    first_bad: str | None = None
    last_good: str | None = None
    steps: list[Step] = field(default_factory=list)
    problem: str | None = None


def merge(into: Samples, more: Samples) -> Samples:
    """Adds a new round of repetitions, numbered after those already there (the same number
    for every allocator, so libmesh/peer ratios still pair values of one run)."""
    top = max((int(r) for reps in into.values() for r in reps), default=0)
    out = {a: {int(r): v for r, v in reps.items()} for a, reps in into.items()}
    for alloc, reps in more.items():
        for r, v in reps.items():
            out.setdefault(alloc, {})[top + int(r)] = v
    return out


class Bisector:
    def __init__(self, commits: list[str], measure: Callable[[str], Samples], kind: str,
                 log: Callable[[str], None] = lambda _msg: None, max_rounds: int = 3,
                 min_effect: float | None = None, alpha: float = compare.ALPHA,
                 reference: str | None = None):
        if len(commits) < 2:
            raise ValueError("bisect needs GOOD and at least one later commit")
        self.commits = commits
        self.measure = measure
        self.kind = kind
        self.log = log
        self.max_rounds = max_rounds
        self.min_effect = min_effect
        self.alpha = alpha
        self.reference = reference  # the allocator name of GOOD's libmesh in every run, or None
        self.samples: dict[str, Samples] = {}
        self.rounds: dict[str, int] = {}

    def _sides(self, commit: str) -> tuple[Samples, Samples]:
        """What GOOD and the commit gave: (before, now) for compare.judge()."""
        got = self.samples[commit]
        if self.reference is None:
            return self.samples[self.commits[0]], got
        if not got.get(self.reference):
            raise MeasureError(f"no value of GOOD's libmesh in the run of {commit[:12]}")
        now = {a: v for a, v in got.items() if a != self.reference}
        before = dict(now, **{compare.MESH: got[self.reference]})
        return before, now

    def _more(self, commit: str) -> None:
        got = self.measure(commit)
        if not (got.get(compare.MESH) or {}):
            raise MeasureError(f"no libmesh value at {commit[:12]}")
        self.samples[commit] = merge(self.samples.get(commit, {}), got)
        self.rounds[commit] = self.rounds.get(commit, 0) + 1

    def classify(self, commit: str) -> Step:
        good = self.commits[0]
        alone = self.reference is None  # GOOD measured in runs of its own
        if alone and good not in self.samples:
            self._more(good)
        if commit not in self.samples:
            self._more(commit)
        while True:
            j = compare.judge(self.kind, *self._sides(commit), self.min_effect, self.alpha,
                              paired=not alone)
            if j.verdict not in ("unclear", "too few reps"):
                return Step(commit, j, j.verdict == "worse")
            if self.rounds[commit] >= self.max_rounds:
                return Step(commit, j, None)
            self.log(f"{commit[:12]}: {j.verdict} ({j.why}); another round of repetitions"
                     + (" for it and for GOOD" if alone else ""))
            self._more(commit)
            if alone and self.rounds[good] < self.rounds[commit]:
                self._more(good)

    def run(self) -> Outcome:
        out = Outcome()
        lo, hi = 0, len(self.commits) - 1
        try:
            step = self.classify(self.commits[hi])
            out.steps.append(step)
            if step.regressed is not True:
                out.problem = ("BAD is not regressed against GOOD" if step.regressed is False
                               else "the rule cannot decide whether BAD regressed") + \
                              f" ({step.judgement.verdict}: {step.judgement.why})"
                return out
            while hi - lo > 1:
                mid = (lo + hi) // 2
                step = self.classify(self.commits[mid])
                out.steps.append(step)
                if step.regressed is None:
                    out.problem = (f"cannot decide at {self.commits[mid][:12]} "
                                   f"({step.judgement.why}); the first regressed commit is "
                                   f"after {self.commits[lo][:12]} and at most "
                                   f"{self.commits[hi][:12]}")
                    return out
                if step.regressed:
                    hi = mid
                else:
                    lo = mid
        except MeasureError as e:
            out.problem = str(e)
            return out
        out.first_bad, out.last_good = self.commits[hi], self.commits[lo]
        return out


# --- from run-perf.sh ---------------------------------------------------------------------------

def _git(root: str, *args: str) -> str | None:
    p = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else None


def commit_line(root: str, good: str, bad: str) -> list[str]:
    """GOOD, then BAD's first-parent line after it, oldest first. Raises ValueError."""
    g = _git(root, "rev-parse", "--verify", "--quiet", f"{good}^{{commit}}")
    b = _git(root, "rev-parse", "--verify", "--quiet", f"{bad}^{{commit}}")
    if not g or not b:
        raise ValueError(f"no such commit: {good if not g else bad}")
    if subprocess.run(["git", "merge-base", "--is-ancestor", g, b], cwd=root).returncode != 0:
        raise ValueError(f"{good} is not an ancestor of {bad}")
    line = (_git(root, "rev-list", "--first-parent", "--reverse", f"{g}..{b}") or "").split()
    if not line:
        raise ValueError(f"{good} and {bad} are the same commit")
    return [g] + line


def describe(step: Step, root: str | None = None) -> str:
    j = step.judgement
    result = {True: "REGRESSED", False: "good", None: "undecided"}[step.regressed]
    subject = (_git(root, "log", "-1", "--format=%s", step.commit) or "") if root else ""
    n = j.own.n[1]
    return (f"{step.commit[:12]} {subject[:60]}\n    {result} ({j.verdict}, {n} rep(s)): "
            f"{j.why}")


def run_cli(args, argv: list[str], run_once, log: Callable[[str], None]) -> int:
    root = os.getcwd()
    try:
        commits = commit_line(root, *args.bisect)
    except ValueError as e:
        log(f"--bisect: {e}")
        return 1
    figure = args.figure
    meta = workloads.metric_of(figure)
    reps = args.reps or DEFAULT_REPS
    bdir = os.path.abspath(args.build_dir)
    os.makedirs(bdir, exist_ok=True)
    good = build.Outcome()
    build.Builder(root, bdir, os.path.join(bdir, "bisect-build.log"), log).libmesh_at(
        commits[0], good)
    if not good.libmesh:
        log(f"--bisect: {good.libmesh_problem}")
        return 1

    def measure(commit: str) -> Samples:
        one = argparse.Namespace(**vars(args))
        one.rev, one.record, one.reps, one.fail_on_regression = commit, False, reps, False
        one.allocators = f"{args.allocators},{REFERENCE}={good.libmesh}"
        rc, doc = run_once(one, argv, args.results_dir, show_table=False)
        if rc == 130:
            raise KeyboardInterrupt
        fig = next((f for f in (doc or {}).get("figures", []) if f["name"] == figure), None)
        if not fig or not fig.get("samples", {}).get(compare.MESH) or \
                not fig["samples"].get(REFERENCE):
            why = "; ".join(f"{fl['allocator']}: {fl['why']}" for fl in (doc or {}).get(
                "failures", [])) or "libmesh did not build or the workload gave no value"
            raise MeasureError(f"no {figure} of libmesh at {commit[:12]} ({why})")
        return fig["samples"]

    effect = compare.MIN_EFFECT[meta.kind]
    print(f"bisect {figure} ({meta.kind}, minimum effect {effect * 100:g}%, p < "
          f"{compare.ALPHA:g}): GOOD {commits[0][:12]}, BAD {commits[-1][:12]}, "
          f"{len(commits) - 2} commit(s) between; {reps} repetition(s) per step, each commit's "
          f"libmesh run with GOOD's ('{REFERENCE}') and {args.allocators}", flush=True)
    bis = Bisector(commits, measure, meta.kind, log, reference=REFERENCE)
    try:
        out = bis.run()
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    for step in out.steps:
        print(describe(step, root), flush=True)
    if out.problem:
        print(f"bisect: no answer: {out.problem}")
        return 1
    subject = _git(root, "log", "-1", "--format=%s", out.first_bad) or ""
    print(f"first regressed commit: {out.first_bad} {subject}")
    print(f"last good commit:       {out.last_good}")
    return 0
