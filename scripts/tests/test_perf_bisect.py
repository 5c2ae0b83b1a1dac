"""The bisect search (scripts/perflib/bisect.py) on a synthetic git repository.

The repository, made in a temporary directory, holds a tiny workload (work.py) whose sleep gets
longer from one chosen commit on; measure(commit) runs that commit's work.py as "libmesh" and a
fixed sleep as the peers, for real, a few milliseconds per repetition. The search must name the
planted commit. Other tests drive the search with synthetic samples (no timing at all).
"""

import os
import random
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from perflib import bisect, compare  # noqa: E402

WORK = "DELAY_S = {delay}\n\ndef work():\n    import time\n    time.sleep(DELAY_S)\n"


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def make_repo(path, n_commits, slow_from, fast=0.002, slow=0.004):
    """Commits 0..n-1; work.py sleeps `slow` s from commit slow_from on. Returns the hashes."""
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "t@example.invalid")
    git(path, "config", "user.name", "test")
    shas = []
    for i in range(n_commits):
        (path / "work.py").write_text(WORK.format(delay=slow if i >= slow_from else fast))
        (path / "notes.txt").write_text(f"commit {i}\n")
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", f"commit {i}")
        shas.append(git(path, "rev-parse", "HEAD"))
    return shas


def timed(fn, reps):
    out = {}
    for r in range(1, reps + 1):
        t = time.perf_counter()
        fn()
        out[r] = (time.perf_counter() - t) * 1e9
    return out


def work_of(repo, commit):
    scope = {}
    exec(git(repo, "show", f"{commit}:work.py"), scope)
    return scope["work"]


def sleeping_measure(repo, reps=6, calls=None, good=None):
    """measure(commit): the commit's work.py as libmesh, fixed sleeps as the peers, and with
    good=GOOD's hash GOOD's work.py too ('good'), interleaved in each repetition like the real
    matrix."""
    def measure(commit):
        if calls is not None:
            calls.append(commit)
        work = work_of(repo, commit)
        runs = {"jemalloc": lambda: time.sleep(0.002), "libmesh": work,
                "glibc": lambda: time.sleep(0.0025)}
        if good:
            runs["good"] = work_of(repo, good)
        out = {name: {} for name in runs}
        for r in range(1, reps + 1):
            for name, fn in runs.items():
                out[name][r] = timed(fn, 1)[1]
        return out
    return measure


@pytest.mark.parametrize("n_commits,slow_from,paired", [
    (12, 7, True), (9, 1, False), (9, 8, True), (2, 1, False), (5, 3, False)])
def test_names_the_planted_commit_of_a_real_repository(tmp_path, n_commits, slow_from, paired):
    repo = tmp_path / "repo"
    shas = make_repo(repo, n_commits, slow_from)
    commits = bisect.commit_line(str(repo), shas[0], shas[-1])
    assert commits == shas
    calls = []
    measure = sleeping_measure(repo, calls=calls, good=shas[0] if paired else None)
    out = bisect.Bisector(commits, measure, "time",
                          reference="good" if paired else None).run()
    assert out.problem is None, out.problem
    assert out.first_bad == shas[slow_from]
    assert out.last_good == shas[slow_from - 1]
    # About log2 steps, not every commit: GOOD (unless paired), BAD and the halvings.
    assert len(set(calls)) <= (1 if paired else 2) + (n_commits - 2).bit_length()
    assert (shas[0] in calls) == (not paired)
    assert out.steps[0].commit == shas[-1] and out.steps[0].regressed


def test_no_regression_between_good_and_bad_is_reported():
    # Synthetic samples: with real sleeps of a few milliseconds, a loaded machine's scheduling
    # noise could leave the rule undecided instead (seen beside a parallel build).
    def measure(commit):
        return samples(10, 10, seed=int(commit))
    out = bisect.Bisector([str(i) for i in range(4)], measure, "time").run()
    assert out.first_bad is None
    assert "BAD is not regressed against GOOD" in out.problem


def test_commit_line_checks_its_arguments(tmp_path):
    repo = tmp_path / "repo"
    shas = make_repo(repo, 3, slow_from=2)
    with pytest.raises(ValueError, match="not an ancestor"):
        bisect.commit_line(str(repo), shas[2], shas[0])
    with pytest.raises(ValueError, match="same commit"):
        bisect.commit_line(str(repo), shas[1], shas[1])
    with pytest.raises(ValueError, match="no such commit"):
        bisect.commit_line(str(repo), "nonexistent", shas[1])


# --- synthetic samples --------------------------------------------------------------------------

def samples(mesh, peer, seed, reps=5, noise=0.01):
    rnd = random.Random(seed)
    def vals(base):
        return {r: base * (1 + rnd.uniform(-noise, noise)) for r in range(1, reps + 1)}
    return {"libmesh": vals(mesh), "jemalloc": vals(peer), "glibc": vals(2 * peer)}


def test_a_machine_that_slowed_down_is_not_a_regression():
    # From commit 3 on, every allocator is 30% slower (a busier machine); libmesh regresses by
    # 20% of its own at commit 6 only.
    def measure(commit):
        i = int(commit)
        machine = 1.3 if i >= 3 else 1.0
        return samples(10 * machine * (1.2 if i >= 6 else 1.0), 10 * machine, seed=i)
    out = bisect.Bisector([str(i) for i in range(10)], measure, "time").run()
    assert out.first_bad == "6", [(s.commit, s.judgement.verdict) for s in out.steps]


def test_undecided_steps_get_more_repetitions():
    rounds = {}

    def measure(commit):  # one repetition per call: 1 against 1 cannot decide
        rounds[commit] = rounds.get(commit, 0) + 1
        return samples(13.0 if int(commit) >= 2 else 10.0, 10.0, seed=rounds[commit] * 7 +
                       int(commit), reps=1)
    out = bisect.Bisector(["0", "1", "2", "3"], measure, "time", max_rounds=5).run()
    assert out.first_bad == "2"
    assert max(rounds.values()) >= 4  # 4 against 4 is the least that can reach p < 0.05


def test_still_undecided_after_every_round_is_a_problem_not_a_guess():
    def measure(commit):
        return samples(13.0 if commit == "1" else 10.0, 10.0, seed=len(commit), reps=1)
    out = bisect.Bisector(["0", "1"], measure, "time", max_rounds=2).run()
    assert out.first_bad is None and "cannot decide" in out.problem


def test_merge_renumbers_rounds_alike_for_every_allocator():
    a = {"libmesh": {"1": 1.0, "2": 2.0}, "jemalloc": {"1": 5.0, "2": 6.0}}
    b = {"libmesh": {1: 3.0}, "jemalloc": {1: 7.0}}
    assert bisect.merge(a, b) == {"libmesh": {1: 1.0, 2: 2.0, 3: 3.0},
                                  "jemalloc": {1: 5.0, 2: 6.0, 3: 7.0}}


def test_a_failed_measurement_stops_with_its_reason():
    def measure(commit):
        if commit == "2":
            raise bisect.MeasureError("libmesh of 2 does not build")
        return samples(10.0 if int(commit) < 3 else 20.0, 10.0, seed=int(commit))
    out = bisect.Bisector(["0", "1", "2", "3", "4"], measure, "time").run()
    assert out.first_bad is None and "does not build" in out.problem
    assert compare.judge("time", measure("0"), measure("4")).verdict == "worse"


def test_paired_runs_see_through_a_machine_that_changes_between_runs():
    # Every run has its own machine speed (0.3x to 3x); only GOOD measured in the same run
    # keeps the comparison fair. libmesh regresses by 15% from commit 5 on.
    speed = {str(i): s for i, s in enumerate([1.0, 3.0, 0.3, 2.0, 0.5, 2.5, 0.4, 1.5])}
    def measure(commit):
        rnd = random.Random(int(commit))
        m = speed[commit]
        def vals(base):
            return {r: base * m * (1 + rnd.uniform(-0.02, 0.02)) for r in range(1, 6)}
        return {"libmesh": vals(11.5 if int(commit) >= 5 else 10.0), "good": vals(10.0),
                "jemalloc": vals(8.0), "glibc": vals(12.0)}
    out = bisect.Bisector(list(speed), measure, "time", reference="good").run()
    assert out.first_bad == "5", [(s.commit, s.judgement.why) for s in out.steps]
    assert all(s.judgement.verdict in ("worse", "same") for s in out.steps)
