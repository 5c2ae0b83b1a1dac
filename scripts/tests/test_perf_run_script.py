"""Command-line handling of scripts/run-perf.sh (only paths that stop before building)."""

import os
import subprocess

import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "run-perf.sh")


def run(*args):
    return subprocess.run(["bash", SCRIPT, *args], capture_output=True, text=True, timeout=60)


def test_help_goes_to_stdout_and_exits_0():
    p = run("--help")
    assert p.returncode == 0
    assert p.stdout.startswith("usage: scripts/run-perf.sh")
    for flag in ("--quick", "--reps", "--allocators", "--build-dir", "--json", "--workloads",
                 "--record", "--compare", "--fail-on-regression", "--rev", "--no-build",
                 "--results-dir", "--fork-heap-mb", "--threads", "--format", "--revs",
                 "--max-commits", "--bisect", "--figure"):
        assert flag in p.stdout
    for workload in ("test-stress", "larson", "churn", "fragmenter", "kvstore", "fork", "micro"):
        assert workload in p.stdout


@pytest.mark.parametrize("args", [
    ["--bogus"],
    ["--reps"],
    ["--reps", "0"],
    ["--reps=abc"],
    ["--timeout", "-5"],
    ["--min-time", "fast"],
    ["--allocators", "glibc,nosuchalloc"],
    ["--allocators", "glibc,glibc"],
    ["--allocators", ","],
    ["positional"],
    ["--workloads", "churn,nosuchworkload"],
    ["--workloads", ""],
    ["--compare", "no-such-result-anywhere", "--results-dir", "/nonexistent"],
    ["--threads", "0"],
    ["--fork-heap-mb", "-1"],
    ["--format", "html"],
    ["--allocators", "bad name=/x.so"],
    ["--rec"],  # no abbreviations
    ["--revs", "HEAD"],  # not a range
    ["--revs", "HEAD~2..HEAD", "--rev", "HEAD"],
    ["--revs", "HEAD~2..HEAD", "--json", "x.json"],
    ["--revs", "HEAD~2..HEAD", "--no-build"],
    ["--revs", "HEAD~2..HEAD", "--bisect", "HEAD~2", "HEAD"],
    ["--max-commits", "3"],
    ["--revs", "HEAD~2..HEAD", "--max-commits", "0"],
    ["--bisect", "HEAD~2"],
    ["--bisect", "HEAD~2", "HEAD"],  # no --figure
    ["--bisect", "HEAD~2", "HEAD", "--figure", "larson.nosuchmetric"],
    ["--bisect", "HEAD~2", "HEAD", "--figure", "nosuchworkload.ns_per_op"],
    ["--bisect", "HEAD~2", "HEAD", "--figure", "fragmenter.maps"],  # info: never judged
    ["--bisect", "HEAD~2", "HEAD", "--figure", "larson.ns_per_op", "--record"],
    ["--figure", "larson.ns_per_op"],
])
def test_bad_usage_exits_2_with_usage_on_stderr(args):
    p = run(*args)
    assert p.returncode == 2, p.stderr
    assert "usage: scripts/run-perf.sh" in p.stderr
    assert p.stdout == ""
