"""The classic tier: its workload definitions and group (workloads.py), the ratios to jemalloc
and the tier's geomeans (matrix.py, mtable.py, store.py, plots.py), the real-program driver
(classic.py) and, end to end with fake programs, scripts/run-perf.sh --workloads classic."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from perflib import build, classic, matrix, mtable, servers, store, testkit, workloads  # noqa
from perflib.workloads import Settings  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "run-perf.sh")
SQLITE3 = shutil.which("sqlite3")
TIER = workloads.GROUPS["classic"]


# --- definitions ---------------------------------------------------------------------------------

def test_group_selects_the_tier_in_order_and_mixes_with_names():
    assert [w.name for w in workloads.select("classic")] == TIER
    assert len(TIER) == 16 and TIER[0] == "cfrac-like" and TIER[-1] == "sqlite-script"
    mixed = [w.name for w in workloads.select("sqlite-script, churn,classic")]
    assert mixed == ["churn"] + TIER
    assert set(TIER) <= {w.name for w in workloads.select("all")}
    with pytest.raises(ValueError, match="groups: classic"):
        workloads.select("classics")
    assert workloads.in_group("barnes-like") and not workloads.in_group("churn")
    assert not workloads.in_group("nope")


def test_parameters_threads_quick_and_passive():
    full, quick = Settings(), Settings(quick=True, classic_threads=3)
    by = workloads.BY_NAME
    assert by["cfrac-like"].params(full) == []
    assert by["cfrac-like"].params(quick) == ["--quick"]
    assert by["glibc-thread-like"].params(full) == ["--threads", "2"]
    assert by["glibc-thread-like"].params(quick) == ["--threads", "3", "--quick"]
    assert by["cache-scratch-like"].params(full) == ["--passive", "--threads", "2"]
    assert by["cache-thrash-like"].target == by["cache-scratch-like"].target == "false-sharing"
    for name in TIER:
        w = by[name]
        assert w.headline == "seconds" and w.group == "classic"
        assert workloads.metric_of(f"{name}.seconds").kind == "time"
        assert workloads.metric_of(f"{name}.peak_pss_mb").kind == "memory"
    figs = by["mleak-like"].figures({"seconds": 1.5, "peak_pss_kb": 2048.0, "minflt": 9.0},
                                    "glibc")
    assert figs == {"mleak-like.seconds": 1.5, "mleak-like.peak_pss_mb": 2.0,
                    "mleak-like.minflt": 9.0}


def test_programs_match_the_cmake_list_and_exist():
    text = open(os.path.join(ROOT, "perf", "CMakeLists.txt"), encoding="utf-8").read()
    listed = re.search(r"set\(MESH_PERF_CLASSIC\s+([^)]*)\)", text).group(1).split()
    assert tuple(listed) == build.CLASSIC_TARGETS
    for t in listed:
        assert build.TARGETS[t] == (f"perf/{t}", "perf")
        assert os.path.isfile(os.path.join(ROOT, "perf", "classic", t.replace("-", "_") + ".cc"))
    for name in TIER:
        w = workloads.BY_NAME[name]
        if isinstance(w, workloads.ClassicProgram):
            assert w.target in build.CLASSIC_TARGETS and w.binary == f"perf/{w.target}"


def test_real_programs_run_through_the_classic_driver():
    w = workloads.BY_NAME["sqlite-script"]
    assert isinstance(w, workloads.RealProgram) and w.target == ""
    (job,) = w.jobs(Settings(quick=True), "/usr/bin/sqlite3")
    assert job.argv[1:] == ["-m", "perflib.classic", "sqlite", "--quick"]
    assert job.driver and not job.sample_pss and job.env["PYTHONPATH"].endswith("scripts")
    assert w.allocator_args("glibc", None) == ["--preload=", "--expect=libc.so",
                                               "--allocator=glibc"]
    # the servers' workloads keep their own driver
    (redis,) = workloads.BY_NAME["redis"].jobs(Settings(quick=True), "/usr/bin/redis-server")
    assert redis.argv[1:4] == ["-m", "perflib.servers", "redis"]


# --- ratios to jemalloc and the tier's summary ---------------------------------------------------

ALLOCS = ["glibc", "jemalloc", "tcmalloc", "libmesh"]


def tier_doc():
    values = {
        ("cfrac-like.seconds", "glibc"): [2.0, 2.2], ("cfrac-like.seconds", "jemalloc"): [1.0, 1.1],
        ("cfrac-like.seconds", "tcmalloc"): [0.5, 0.55],
        ("cfrac-like.seconds", "libmesh"): [1.0, 1.1],
        ("barnes-like.seconds", "glibc"): [1.0, 1.0],
        ("barnes-like.seconds", "jemalloc"): [2.0, 2.0],
        ("barnes-like.seconds", "libmesh"): [4.0, 4.0],  # tcmalloc failed barnes
        ("cfrac-like.peak_pss_mb", "glibc"): [10.0, 10.0],
        ("cfrac-like.peak_pss_mb", "jemalloc"): [20.0, 20.0],
        ("cfrac-like.peak_pss_mb", "tcmalloc"): [20.0, 20.0],
        ("cfrac-like.peak_pss_mb", "libmesh"): [5.0, 5.0],
        ("churn.ns_per_op", "glibc"): [3.0, 3.0], ("churn.ns_per_op", "jemalloc"): [1.0, 1.0],
        ("churn.ns_per_op", "libmesh"): [2.0, 2.0],
    }
    return testkit.make_doc(values, allocators=ALLOCS)


def figure(doc, name):
    return next(f for f in doc["figures"] if f["name"] == name)


def test_every_allocator_gets_a_paired_ratio_to_jemalloc_on_the_tier_only():
    doc = tier_doc()
    r = figure(doc, "cfrac-like.seconds")["ratios"]
    assert r["glibc/jemalloc"]["median"] == pytest.approx(2.0)
    assert r["tcmalloc/jemalloc"]["samples"] == pytest.approx([0.5, 0.5])
    assert r["libmesh/jemalloc"]["median"] == pytest.approx(1.0)
    assert "libmesh/glibc" in r  # the matrix's own pairs stay
    assert "tcmalloc/jemalloc" not in figure(doc, "barnes-like.seconds")["ratios"]
    assert set(figure(doc, "churn.ns_per_op")["ratios"]) == {"libmesh/glibc", "libmesh/jemalloc"}


def test_tier_summary_geomeans_and_coverage():
    t = tier_doc()["tiers"]["classic"]
    assert t["peer"] == "jemalloc" and t["workloads"] == ["cfrac-like", "barnes-like"]
    assert t["time_geomean"]["jemalloc"] == 1.0
    assert t["time_geomean"]["glibc"] == pytest.approx((2.0 * 0.5) ** 0.5)
    assert t["time_geomean"]["libmesh"] == pytest.approx((1.0 * 2.0) ** 0.5)
    assert t["time_geomean"]["tcmalloc"] == pytest.approx(0.5)
    assert t["programs"] == {"glibc": 2, "jemalloc": 2, "tcmalloc": 1, "libmesh": 2}
    assert t["pss_geomean"]["libmesh"] == pytest.approx(0.25)
    # without jemalloc there is no tier summary
    assert matrix.tier_summary(tier_doc()["figures"], ["glibc", "libmesh"]) is None


def test_tier_table_history_columns_and_no_table_without_tier():
    doc = tier_doc()
    text = mtable.render_tier(doc)
    lines = text.splitlines()
    assert lines[0].split() == ["classic:", "time", "/", "jemalloc", "glibc", "jemalloc",
                                "tcmalloc", "libmesh"]
    assert lines[2].split() == ["cfrac-like", "2.00", "1.00", "0.50", "1.00"]
    assert lines[3].split() == ["barnes-like", "0.50", "1.00", "-", "2.00"]
    gm = next(ln for ln in lines if ln.startswith("geomean of time"))
    assert "0.50 (1/2)" in gm and "1.41" in gm
    assert "| cfrac-like |" in mtable.render_tier(doc, style="markdown")
    assert mtable.render_tier(testkit.make_doc({("churn.ns_per_op", "libmesh"): [1.0]})) is None
    row = store.history_row(doc, "x.json")
    assert float(row["classic.time_geomean@libmesh/jemalloc"]) == pytest.approx(2 ** 0.5, rel=1e-5)
    assert float(row["classic.pss_geomean@glibc/jemalloc"]) == pytest.approx(0.5)
    assert float(row["cfrac-like.seconds@tcmalloc/jemalloc"]) == pytest.approx(0.5)


def test_tier_plots(tmp_path):
    pytest.importorskip("matplotlib")
    from perflib import plots

    doc = tier_doc()
    written = plots.latest_plots(doc, str(tmp_path))
    assert str(tmp_path / "latest-classic.png") in written
    rows = [store.history_row(doc, "a.json"), store.history_row(doc, "b.json")]
    written = plots.trend_plots(rows, str(tmp_path))
    names = sorted(os.path.basename(p) for p in written)
    assert "trend-classic.png" in names and "trend-cfrac-like.png" not in names
    assert "trend-churn.png" in names


# --- the real-program driver ---------------------------------------------------------------------

def test_sqlite_expectation_and_first_difference():
    want = classic.sqlite_expected(50, 2)
    assert len(want) == 4 and want[1].startswith("1|")
    assert classic.first_difference(want, want) is None
    bad = list(want)
    bad[2] = "0|0|0|0"
    assert classic.first_difference(bad, want).startswith("line 3 is '0|0|0|0'")
    assert "line 5 is 'x'" in classic.first_difference(want + ["x"], want)
    assert "missing" in classic.first_difference(want[:1], want)
    script = classic.sqlite_script(50, 2)
    assert script.count("CREATE TABLE") == 2 and "DROP TABLE t1;" in script


@pytest.mark.skipif(SQLITE3 is None, reason="sqlite3 is not installed (install-deps.sh)")
def test_sqlite_prints_what_the_driver_expects():
    p = subprocess.run([SQLITE3, "-batch", "-bail", ":memory:"],
                       input=classic.sqlite_script(300, 3), capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert classic.first_difference(p.stdout.splitlines(), classic.sqlite_expected(300, 3)) \
        is None


@pytest.mark.skipif(SQLITE3 is None, reason="sqlite3 is not installed (install-deps.sh)")
def test_binding_check_looks_at_the_library_that_allocates():
    lib = classic.sqlite_library(SQLITE3)
    assert "libsqlite3" in lib
    env = servers.program_env(None, {})
    found = servers.check_bindings([SQLITE3, "--version"], env, "libc.so", referrer=lib)
    assert "malloc" in found
    with pytest.raises(servers.WrongAllocator, match="does not bind"):
        servers.check_bindings([SQLITE3, "--version"], env, "libjemalloc", referrer=lib)


def test_timed_run_status_usage_and_process_tree(tmp_path):
    env = dict(os.environ)
    res = classic.timed_run(["sh", "-c", "echo hi; sleep 0.3 & sleep 0.3; wait; exit 3"], env,
                            str(tmp_path), sample_ms=20)
    assert res["rc"] == 3 and res["stdout"] == "hi\n"
    assert 0.25 < res["seconds"] < 5 and res["peak_pss_kb"] > 0 and res["minflt"] > 0
    with pytest.raises(classic.RunFailed, match="exit 3"):
        classic.check_exit(res, "sh")
    res = classic.timed_run(["sleep", "5"], env, str(tmp_path), sample_ms=0, timeout=0.2)
    assert res["rc"] == -9 and res["peak_pss_kb"] == -1.0


def test_descendants_finds_grandchildren():
    p = subprocess.Popen(["sh", "-c", "sh -c 'sleep 2' & wait"])
    try:
        for _ in range(100):
            tree = classic.descendants(p.pid)
            if len(tree) >= 3:
                break
            subprocess.run(["sleep", "0.02"])
        assert tree[0] == p.pid and len(tree) >= 3
    finally:
        p.kill()
        p.wait()


def test_pychurn_checks_itself_and_prints_the_known_checksum():
    env = dict(os.environ, PYTHONMALLOC="malloc")
    p = subprocess.run([servers.PYTHON, classic.PYCHURN, "--quick"], capture_output=True,
                       text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    values = classic.parse_values(p.stdout)
    assert values["verified"] == 1
    assert values["checksum"] == classic.PYCHURN_CHECKSUM["quick"]
    bad = subprocess.run([servers.PYTHON, classic.PYCHURN, "--docs", "1"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2


def test_driver_usage_and_a_failing_program(tmp_path):
    run = [sys.executable, "-m", "perflib.classic"]
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "scripts"))
    p = subprocess.run(run + ["nope"], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 2
    fake = testkit.write_exe(str(tmp_path / "g++"), "#!/bin/sh\nexit 1\n")
    p = subprocess.run(run + ["gxx", "--gxx", fake], capture_output=True, text=True, env=env,
                       timeout=60)
    assert p.returncode == 1 and "cc1plus" in p.stderr


# --- end to end with fake programs ---------------------------------------------------------------

def test_run_perf_prints_the_tier_table(tmp_path):
    bdir, libs = testkit.fake_build(str(tmp_path))
    out = tmp_path / "r.json"
    argv = ["bash", SCRIPT, "--no-build", "--build-dir", bdir, "--results-dir",
            str(tmp_path / "results"), "--allocators",
            f"glibc,jemalloc={libs['jemalloc']},libmesh", "--workloads",
            "cfrac-like,cache-scratch-like", "--reps", "2", "--json", str(out), "--record"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith("classic: time / jemalloc"))
    assert lines[head].split()[-3:] == ["glibc", "jemalloc", "libmesh"]
    # fake seconds: glibc 1.0, jemalloc 0.5, libmesh 0.4
    assert lines[head + 2].split() == ["cfrac-like", "2.00", "1.00", "0.80"]
    assert lines[head + 3].split() == ["cache-scratch-like", "2.00", "1.00", "0.80"]
    doc = json.loads(out.read_text())
    assert doc["tiers"]["classic"]["time_geomean"]["libmesh"] == pytest.approx(0.8)
    assert doc["workloads"]["cache-scratch-like"]["params"] == ["--passive", "--threads", "2"]
    # the stored result shows the same tier table, and the history has the geomeans
    table = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "perf_table.py"),
                            "--results-dir", str(tmp_path / "results"), "--result", "latest"],
                           capture_output=True, text=True, timeout=120)
    assert table.returncode == 0, table.stderr
    assert ["cache-scratch-like", "2.00", "1.00", "0.80"] in [
        ln.split() for ln in table.stdout.splitlines()]
    _, rows = store.read_history(str(tmp_path / "results" / "history.csv"))
    assert float(rows[-1]["classic.time_geomean@libmesh/jemalloc"]) == pytest.approx(0.8)
    assert os.path.isfile(tmp_path / "results" / "plots" / "latest-classic.png")
