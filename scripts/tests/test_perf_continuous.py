"""run-perf.sh --revs and --bisect end to end, on a synthetic git repository.

perflib/testkit.fake_repo() makes a repository holding a copy of scripts/ and a mesh/SCALE file
per commit; a fake cmake "builds" libmesh of a commit as a file saying how slow it is, and the
fake workload programs multiply libmesh's times by it. So a commit that raises SCALE is a planted
regression that goes through the real code paths: git rev-list, --rev builds from git archive,
the matrix, the statistics, recording, the dashboard.
"""

import csv
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from perflib import continuous, testkit  # noqa: E402


@pytest.fixture
def repo_with(tmp_path):
    def make(scales):
        repo, shas, env = testkit.fake_repo(str(tmp_path), scales)
        jemalloc = os.path.join(str(tmp_path), "libs", "jemalloc.so")
        os.makedirs(os.path.dirname(jemalloc))
        open(jemalloc, "w").close()

        def run(*args):
            argv = ["bash", os.path.join(repo, "scripts", "run-perf.sh"), "--workloads", "churn",
                    "--allocators", f"glibc,jemalloc={jemalloc},libmesh", *args]
            return subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)
        return repo, shas, run
    return make


def results_of(repo):
    d = os.path.join(repo, "results")
    return sorted(f for f in os.listdir(d) if f.endswith(".json")) if os.path.isdir(d) else []


def test_revs_measures_each_missing_commit_once_and_resumes(repo_with):
    repo, shas, run = repo_with(["1", "1", "1", "1.5"])
    rng = f"{shas[0]}..{shas[-1]}"
    p = run("--revs", rng, "--reps", "4", "--max-commits", "1", "--fail-on-regression")
    assert p.returncode == 0, p.stderr
    assert "3 commit(s), 0 already recorded in full mode, 3 to measure" in p.stderr
    assert "measuring the oldest 1 now" in p.stderr
    assert len(results_of(repo)) == 1
    # resumes with the next commit; the last one regressed against the one before it
    p = run("--revs", rng, "--reps", "4", "--fail-on-regression")
    assert "1 already recorded in full mode, 2 to measure" in p.stderr
    assert p.returncode == 3, p.stderr
    assert f"regressed at {shas[3][:12]}" in p.stderr
    files = results_of(repo)
    assert len(files) == 3
    docs = [json.load(open(os.path.join(repo, "results", f))) for f in files]
    assert sorted(d["commit_full"] for d in docs) == sorted(shas[1:])
    assert all(d["rev"] == d["commit_full"] and d["commit_time"] and d["subject"] for d in docs)
    last = [d for d in docs if d["commit_full"] == shas[3]][0]
    assert f"--rev {shas[3]} --record" in last["command"] and "--revs" not in last["command"]
    with open(os.path.join(repo, "results", "history.csv"), newline="") as f:
        assert len(list(csv.DictReader(f))) == 3
    page = open(os.path.join(repo, "results", "index.html")).read()
    assert "flag-worse" in page and "churn.ns_per_op" in page
    # the builds of the commits are gone, the lock file stays
    assert not [d for d in os.listdir(os.path.join(repo, "build")) if d.startswith("rev-")]
    # nothing left to do: nothing measured again
    p = run("--revs", rng, "--reps", "4")
    assert p.returncode == 0 and "3 already recorded in full mode, 0 to measure" in p.stderr
    assert results_of(repo) == files
    # another mode is another history
    p = run("--revs", f"{shas[2]}..{shas[3]}", "--quick")
    assert p.returncode == 0 and "1 to measure" in p.stderr


def test_revs_bad_range_and_lock(repo_with):
    repo, shas, run = repo_with(["1", "1"])
    p = run("--revs", "nosuchref..HEAD")
    assert p.returncode == 2 and "--revs nosuchref..HEAD" in p.stderr
    os.makedirs(os.path.join(repo, "build"), exist_ok=True)
    import fcntl
    with open(os.path.join(repo, "build", "revs.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        p = run("--revs", f"{shas[0]}..{shas[1]}")
    assert p.returncode == 1 and "another --revs run holds" in p.stderr


def test_bisect_names_the_planted_commit(repo_with):
    first_bad = 4
    repo, shas, run = repo_with(["1", "1", "1", "1", "1.5", "1.5", "1.5"])
    p = run("--bisect", shas[0], shas[-1], "--figure", "churn.ns_per_op")
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"first regressed commit: {shas[first_bad]} change {first_bad}" in p.stdout
    assert f"last good commit:       {shas[first_bad - 1]}" in p.stdout
    assert "REGRESSED (worse, 6 rep(s))" in p.stdout  # the default: 6 pairs can decide
    # GOOD, BAD and two halvings: 4 builds of libmesh, not 7
    assert p.stderr.count("building libmesh of") == 4
    assert not results_of(repo)  # bisect records nothing


def test_bisect_without_a_regression_says_so(repo_with):
    repo, shas, run = repo_with(["1", "1", "1.02"])
    p = run("--bisect", shas[0], shas[-1], "--figure", "churn.ns_per_op", "--reps", "6")
    assert p.returncode == 1
    assert "no answer: BAD is not regressed against GOOD (same" in p.stdout


def test_recorded_matches_full_hashes_and_old_prefixes(tmp_path):
    from perflib import store
    d = testkit.make_doc({("churn.ns_per_op", "libmesh"): [1.0]}, commit="abcdef123456",
                         mode="quick")
    store.record(d, str(tmp_path))
    held = continuous.recorded(str(tmp_path), "quick")
    assert continuous.is_held("abcdef123456" + "0" * 28, held)
    assert continuous.is_held("abcdef123456" + "f" * 28, held)  # by the 12-digit commit
    assert not continuous.recorded(str(tmp_path), "full")
