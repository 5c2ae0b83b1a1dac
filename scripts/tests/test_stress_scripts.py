"""Tests of scripts/run-stress.sh and stress/measure.py.

run-stress.sh is run against a fake build directory: a `cmake` stand-in on PATH that does
nothing, shell scripts in place of the stress programs, and a fake /proc/sys and sysctl for the
setup-max-map-count.sh call it makes as root. Nothing real is built, run or changed.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN_STRESS = ROOT / "scripts" / "run-stress.sh"
MEASURE = ROOT / "stress" / "measure.py"
PROGRAMS = ["test-stress", "larson", "fork-stress", "thread-churn", "signal-malloc",
            "realloc-churn", "compact-loop", "hostile-host"]

# A fake stress program: fails under "libmesh" (STRESS_EXPECT_MESH=1) when FAKE_MESH_FAIL names
# it, and under any allocator when FAKE_FAIL names it.
FAKE_PROGRAM = """#!/bin/sh
name=$(basename "$0")
echo "$name: args $*"
if [ "$STRESS_EXPECT_MESH" = 1 ] && [ "$FAKE_MESH_FAIL" = "$name" ]; then
  echo "$name: FAIL: injected libmesh failure"; exit 1
fi
if [ "$FAKE_FAIL" = "$name" ]; then echo "$name: FAIL: injected failure"; exit 3; fi
# libmesh's MALLOCSTATS=1 report at exit (a forked child's first, then the main process's)
if [ "$MALLOCSTATS" = 1 ]; then echo "MESH COUNT:             3" >&2; echo "MESH COUNT:  42" >&2; fi
exit 0
"""


def write_exe(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture
def fake_build(tmp_path):
    build = tmp_path / "build"
    (build / "CMakeCache.txt").parent.mkdir(parents=True)
    (build / "CMakeCache.txt").write_text("# fake\n")
    for prog in PROGRAMS:
        write_exe(build / "stress" / prog, FAKE_PROGRAM)
    (build / "mesh").mkdir()
    (build / "mesh" / "libmesh.so").write_text("")  # only its path is used (preload fails)
    write_exe(tmp_path / "bin" / "cmake", "#!/bin/sh\nexit 0\n")
    proc = tmp_path / "proc-sys" / "vm"
    proc.mkdir(parents=True)
    (proc / "max_map_count").write_text("65530\n")
    write_exe(tmp_path / "fake-sysctl", "#!/bin/sh\nexit 0\n")
    return build


def run_stress(tmp_path, *args, **env_extra):
    env = dict(os.environ,
               PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}",
               MESH_PROC_SYS_DIR=str(tmp_path / "proc-sys"),
               MESH_SYSCTL=str(tmp_path / "fake-sysctl"),
               MESH_SYSCTL_D=str(tmp_path / "sysctl.d"),
               **env_extra)
    return subprocess.run(["bash", str(RUN_STRESS), *args], env=env, capture_output=True,
                          text=True, timeout=300)


# --- run-stress.sh command line ----------------------------------------------------------------

def test_run_stress_help():
    r = subprocess.run(["bash", str(RUN_STRESS), "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    assert "usage:" in r.stdout
    for flag in ("--quick", "--long", "--allocators", "--build-dir", "--record",
                 "--results-dir"):
        assert flag in r.stdout


@pytest.mark.parametrize("args", [["--bogus"], ["--allocators"], ["--build-dir"], ["--results-dir"],
                                  ["--allocators", "glibc,nosuch"], ["extra"]])
def test_run_stress_usage_errors(args):
    r = subprocess.run(["bash", str(RUN_STRESS), *args], capture_output=True, text=True)
    assert r.returncode == 2
    assert "usage:" in r.stderr


# --- run-stress.sh against a fake build --------------------------------------------------------

def test_run_stress_table_and_peer_failures_do_not_fail(tmp_path, fake_build):
    r = run_stress(tmp_path, "--quick", "--allocators", "glibc", "--build-dir", str(fake_build),
                   FAKE_FAIL="larson")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Summary (quick mode" in r.stdout
    assert "peak RSS MiB" in r.stdout and "peak PSS MiB" in r.stdout
    # one progress line per program
    for prog in PROGRAMS:
        assert f"{prog}" in r.stdout
    assert r.stdout.count("under glibc") == len(PROGRAMS)
    assert "FAIL  exit 3" in r.stdout
    tsv = (fake_build / "stress-results" / "summary.tsv").read_text().splitlines()
    assert tsv[0].split("\t")[:4] == ["program", "allocator", "exit", "seconds"]
    rows = {line.split("\t")[0]: line.split("\t") for line in tsv[1:]}
    assert set(rows) == set(PROGRAMS)
    assert rows["larson"][2] == "3"
    assert rows["test-stress"][2] == "0"
    # quick-mode arguments reached the program
    log = (fake_build / "stress-results" / "test-stress.glibc.log").read_text()
    assert "args 16 10 2000000" in log


def test_run_stress_libmesh_failure_fails_the_run(tmp_path, fake_build):
    r = run_stress(tmp_path, "--allocators", "libmesh,glibc", "--build-dir", str(fake_build),
                   FAKE_MESH_FAIL="compact-loop")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "injected libmesh failure" in r.stdout
    assert "at least one libmesh run failed" in r.stdout
    tsv = (fake_build / "stress-results" / "summary.tsv").read_text()
    assert "compact-loop\tlibmesh\t1\t" in tsv
    assert "compact-loop\tglibc\t0\t" in tsv


def test_run_stress_record_appends_history_and_writes_the_dashboard(tmp_path, fake_build):
    results = tmp_path / "res"
    r = run_stress(tmp_path, "--allocators", "libmesh,glibc", "--build-dir", str(fake_build),
                   "--record", "--results-dir", str(results), FAKE_MESH_FAIL="larson")
    assert r.returncode == 1, r.stdout + r.stderr  # a libmesh failure still fails the run...
    assert f"recorded {2 * len(PROGRAMS)} row(s)" in r.stdout  # ...and is recorded
    import csv
    with open(results / "stress-history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * len(PROGRAMS)
    assert list(rows[0])[:10] == ["date", "created", "commit", "commit_full", "subject", "dirty",
                                  "mode", "round", "program", "allocator"]
    by = {(x["program"], x["allocator"]): x for x in rows}
    assert by[("larson", "libmesh")]["exit"] == "1" and by[("larson", "glibc")]["exit"] == "0"
    assert by[("test-stress", "libmesh")]["meshes"] == "42"  # the last report: the main process
    assert by[("test-stress", "glibc")]["meshes"] == ""
    assert {x["mode"] for x in rows} == {"quick"} and len({x["created"] for x in rows}) == 1
    assert all(x["commit"] and x["round"] == "1" for x in rows)
    # the summary table shows the meshes too
    assert "meshes" in r.stdout
    page = (results / "index.html").read_text()
    assert 'id="stress"' in page and "stress-chart-larson-seconds" in page
    assert "FAIL 1" in page
    # a second run appends
    r = run_stress(tmp_path, "--allocators", "glibc", "--build-dir", str(fake_build), "--record",
                   "--results-dir", str(results), "--rounds", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    with open(results / "stress-history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * len(PROGRAMS) + 2 * len(PROGRAMS)
    assert {x["round"] for x in rows[-len(PROGRAMS) * 2:]} == {"1", "2"}


def test_run_stress_skips_missing_peer(tmp_path, fake_build):
    r = run_stress(tmp_path, "--allocators", f"glibc,ghost={tmp_path}/nope.so",
                   "--build-dir", str(fake_build))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "skipping ghost" in r.stdout
    assert "under ghost" not in r.stdout


def test_run_stress_long_mode_arguments(tmp_path, fake_build):
    r = run_stress(tmp_path, "--long", "--allocators", "glibc", "--build-dir", str(fake_build))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Summary (long mode" in r.stdout
    log = (fake_build / "stress-results" / "test-stress.glibc.log").read_text()
    assert "args 64 10" in log


# --- measure.py --------------------------------------------------------------------------------

def measure(*args, timeout=60):
    r = subprocess.run([sys.executable, str(MEASURE), *args], capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stderr
    return dict(kv.split("=") for kv in r.stdout.split())


def test_measure_exit_codes():
    assert measure("--", "true")["exit"] == "0"
    assert measure("--", "sh", "-c", "exit 3")["exit"] == "3"
    assert measure("--", "sh", "-c", "kill -SEGV $$")["exit"] == str(128 + 11)


def test_measure_timeout_kills_the_command():
    m = measure("--timeout", "1", "--", "sleep", "30")
    assert m["exit"] == "124"
    assert float(m["seconds"]) < 10


def test_measure_peak_rss_and_pss(tmp_path):
    # Touches 64 MiB and holds it for a second: both peaks must see most of it.
    script = "b = bytearray(64 << 20)\nimport time\ntime.sleep(1.0)\n"
    m = measure("--", sys.executable, "-c", script)
    assert m["exit"] == "0"
    assert int(m["rss_kb"]) > 60 * 1024
    assert int(m["pss_kb"]) > 50 * 1024


def test_measure_env_and_log(tmp_path):
    log = tmp_path / "out.log"
    m = measure("--log", str(log), "--env", "STRESS_PROBE=hello", "--",
                "sh", "-c", 'echo "probe=$STRESS_PROBE"')
    assert m["exit"] == "0"
    assert "probe=hello" in log.read_text()


def test_measure_usage_error():
    r = subprocess.run([sys.executable, str(MEASURE)], capture_output=True, text=True)
    assert r.returncode == 2
    r = subprocess.run([sys.executable, str(MEASURE), "--env", "novalue", "--", "true"],
                       capture_output=True, text=True)
    assert r.returncode == 2
