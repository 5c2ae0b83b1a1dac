"""scripts/run-perf.sh end to end, with fake workload programs and fake allocator libraries
(perflib/testkit.py): statistics, exit statuses, --record, --compare, --fail-on-regression."""

import csv
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from perflib import testkit  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "run-perf.sh")


@pytest.fixture
def setup(tmp_path):
    bdir, libs = testkit.fake_build(str(tmp_path))
    results = tmp_path / "results"

    def run(*args, env=None, workloads="churn,fragmenter,micro", reps="2"):
        argv = ["bash", SCRIPT, "--no-build", "--build-dir", bdir, "--results-dir", str(results),
                "--allocators", f"glibc,jemalloc={libs['jemalloc']},libmesh",
                "--workloads", workloads, "--reps", reps, *args]
        e = dict(os.environ)
        e.update(env or {})
        return subprocess.run(argv, capture_output=True, text=True, timeout=300, env=e)

    return run, results, tmp_path


def figure(doc, name):
    return [f for f in doc["figures"] if f["name"] == name][0]


def test_table_json_and_nothing_recorded_by_default(setup):
    run, results, tmp = setup
    out = tmp / "r.json"
    p = run("--json", str(out))
    assert p.returncode == 0, p.stderr
    assert "perf matrix: full mode, 2 repetition(s)" in p.stdout
    row = [ln for ln in p.stdout.splitlines() if ln.startswith("churn.ns_per_op")][0].split()
    # glibc 10, jemalloc 5, libmesh 4; libmesh range; ratios 0.40 and 0.80 (no spread)
    assert row[:7] == ["churn.ns_per_op", "ns/op", "10.0", "5.00", "4.00", "4.00-4.00",
                       "0.40"]
    assert "micro.pair/16" in p.stdout and "micro.batch/16-128" in p.stdout
    assert "[rep 2/2]" in p.stderr  # progress on stderr
    doc = json.loads(out.read_text())
    assert doc["reps"] == 2 and doc["mode"] == "full"
    assert figure(doc, "fragmenter.mesh_count")["median"] == {"libmesh": 3.0}
    assert figure(doc, "micro.pair/16")["ratios"]["libmesh/jemalloc"]["median"] == 0.8
    assert set(doc["workloads"]) == {"churn", "fragmenter", "micro"}
    assert doc["machine"]["cores"] and doc["machine"]["cpu_model"] is not None
    assert not results.exists()


def test_kvstore_workload_row_and_libmesh_only_figures(setup):
    run, _, tmp = setup
    out = tmp / "kv.json"
    p = run("--json", str(out), workloads="kvstore", reps="1")
    assert p.returncode == 0, p.stderr
    row = [ln for ln in p.stdout.splitlines() if ln.startswith("kvstore.pss_mb")][0].split()
    # pss_kb = base * 2048: glibc 20 MiB, jemalloc 10, libmesh 8; ratios 0.40 and 0.80
    assert row[:5] == ["kvstore.pss_mb", "MiB", "20.0", "10.0", "8.00"]
    assert row[5:7] == ["0.40", "0.80"]  # one repetition: no range column
    doc = json.loads(out.read_text())
    assert figure(doc, "kvstore.mesh_count")["median"] == {"libmesh": 7.0}
    assert figure(doc, "kvstore.ns_per_op")["median"]["libmesh"] == pytest.approx(400.0)
    assert doc["workloads"]["kvstore"]["params"][:2] == ["--keys", "1000000"]


def test_record_writes_result_history_and_plots(setup):
    run, results, _ = setup
    p = run("--record")
    assert p.returncode == 0, p.stderr
    files = sorted(os.listdir(results))
    assert "history.csv" in files and "plots" in files
    assert len([f for f in files if f.endswith(".json")]) == 1
    with open(results / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and rows[0]["churn.ns_per_op@libmesh/jemalloc"] == "0.8"
    pngs = sorted(os.listdir(results / "plots"))
    assert "latest.png" in pngs and "trend-churn.png" in pngs
    assert all(os.path.getsize(results / "plots" / f) > 0 for f in pngs)


def test_a_libmesh_crash_fails_the_run_but_the_table_stays(setup):
    run, _, _ = setup
    p = run(env={"FAKE_FAIL_FOR": "libmesh"}, workloads="churn", reps="1")
    assert p.returncode == 1
    assert "libmesh FAILED (killed by SIGSEGV)" in p.stderr
    assert "reproduce: LD_PRELOAD=" in p.stderr
    assert "about to crash" in p.stderr  # the first failure's output is shown
    header = [ln for ln in p.stdout.splitlines() if ln.startswith("figure")][0].split()
    assert header == ["figure", "unit", "glibc", "jemalloc"]


def test_a_peer_crash_is_reported_but_does_not_fail(setup):
    run, _, _ = setup
    p = run(env={"FAKE_FAIL_FOR": "jemalloc"}, workloads="churn", reps="1")
    assert p.returncode == 0, p.stderr
    assert "jemalloc FAILED" in p.stderr


def test_timeout(setup):
    run, _, _ = setup
    p = run("--timeout", "1", env={"FAKE_SLOW": "libmesh"}, workloads="churn", reps="1")
    assert p.returncode == 1
    assert "libmesh FAILED (timed out)" in p.stderr


def test_compare_and_fail_on_regression(setup):
    run, results, _ = setup
    p = run("--fail-on-regression", workloads="churn", reps="4")
    assert p.returncode == 0 and "nothing to compare with" in p.stderr
    assert run("--record", workloads="churn", reps="4").returncode == 0
    same = run("--compare", "latest", "--fail-on-regression", workloads="churn", reps="4",
               env={"FAKE_SCALE": "1.03"})
    assert same.returncode == 0, same.stderr
    assert "change of libmesh against" in same.stdout
    worse = run("--fail-on-regression", workloads="churn", reps="4", env={"FAKE_SCALE": "1.5"})
    assert worse.returncode == 3, worse.stderr
    line = [ln for ln in worse.stdout.splitlines() if ln.startswith("churn.ns_per_op")][-1]
    assert line.split()[-1] == "WORSE" and "+50.0%" in line
    assert "1 libmesh figure(s) regressed: churn.ns_per_op (+50.0%, p=0.013)" in worse.stderr
    # without --fail-on-regression a regression is only reported
    assert run("--compare", "latest", workloads="churn", reps="4",
               env={"FAKE_SCALE": "1.5"}).returncode == 0
    # one repetition against four cannot decide: said, and no failure
    few = run("--fail-on-regression", workloads="churn", reps="1", env={"FAKE_SCALE": "1.5"})
    assert few.returncode == 0, few.stderr
    assert "not judged: 4 against 1 repetition(s) cannot reach p < 0.05" in few.stderr


def test_quick_always_has_libmesh_glibc_and_jemalloc(setup, tmp_path):
    _, libs = testkit.fake_build(str(tmp_path / "q"))
    out = tmp_path / "q.json"
    p = subprocess.run(["bash", SCRIPT, "--quick", "--no-build", "--build-dir",
                        str(tmp_path / "q" / "build"), "--allocators",
                        f"jemalloc={libs['jemalloc']}", "--workloads", "churn", "--json", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text())
    assert [a["name"] for a in doc["allocators"]] == ["jemalloc", "libmesh", "glibc"]
    assert doc["mode"] == "quick" and doc["reps"] == 1


def test_missing_program_leaves_its_workload_out(setup):
    run, _, tmp = setup
    os.unlink(tmp / "build" / "perf" / "churn")
    p = run(workloads="churn,fragmenter", reps="1")
    assert p.returncode == 0, p.stderr
    assert "churn not found" in p.stderr
    assert "fragmenter.pss_mb" in p.stdout and "churn.ns_per_op" not in p.stdout


def test_perf_table_shows_and_compares_stored_results(setup):
    run, results, _ = setup
    assert run("--record", workloads="churn", reps="4").returncode == 0
    assert run("--record", workloads="churn", reps="4",
               env={"FAKE_SCALE": "2"}).returncode == 0
    table = os.path.join(os.path.dirname(SCRIPT), "perf_table.py")
    names = sorted((f for f in os.listdir(results) if f.endswith(".json")),
                   key=lambda f: os.path.getmtime(results / f))
    p = subprocess.run([sys.executable, table, "--results-dir", str(results), "--result",
                        str(results / names[-1]), "--compare", str(results / names[0])],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "churn.ns_per_op" in p.stdout and "WORSE" in p.stdout
    bad = subprocess.run([sys.executable, table, "--results-dir", str(results), "--result",
                          "nosuchcommit"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "no result matches" in bad.stderr
