"""Plots of the perf history (scripts/perflib/plots.py, scripts/plot_results.py)."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from perflib import plots, store  # noqa: E402
from perflib.testkit import make_doc  # noqa: E402

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def values(scale):
    return {
        ("churn.ns_per_op", "glibc"): [10.0, 11.0], ("churn.ns_per_op", "jemalloc"): [6.0, 7.0],
        ("churn.ns_per_op", "libmesh"): [5.0 * scale, 6.0 * scale],
        ("churn.pss_mb", "libmesh"): [3.0, 3.0], ("churn.pss_mb", "glibc"): [4.0, 4.0],
        ("fragmenter.pss_mb", "glibc"): [50.0, 50.0], ("fragmenter.pss_mb", "libmesh"): [30.0, 31.0],
        ("fragmenter.pss_mb", "jemalloc"): [70.0, 70.0],
        ("fragmenter.mesh_count", "libmesh"): [2.0, 2.0],
        ("micro.pair/16", "glibc"): [20.0, 20.0], ("micro.pair/16", "jemalloc"): [10.0, 10.0],
        ("micro.pair/16", "libmesh"): [12.0, 13.0],
        ("micro.batch/16-128", "jemalloc"): [30.0, 30.0], ("micro.batch/16-128", "libmesh"):
            [25.0, 25.0],
    }


def record_three(results_dir):
    for i, scale in enumerate((1.0, 1.2, 0.9)):
        store.record(make_doc(values(scale), commit=f"c{i}c{i}c{i}c{i}",
                              created=f"2026-01-0{i + 1}T00:00:00+00:00"), results_dir)
    # a quick run must not show up in the full-mode trends
    store.record(make_doc(values(5.0), commit="quickquick", mode="quick",
                          created="2026-01-04T00:00:00+00:00"), results_dir)


def assert_png(path):
    assert os.path.isfile(path), path
    with open(path, "rb") as f:
        head = f.read(8)
    assert head == PNG_MAGIC and os.path.getsize(path) > 5000, path


def test_trend_and_latest_plots(tmp_path):
    results = str(tmp_path / "results")
    record_three(results)
    _, rows = store.read_history(os.path.join(results, "history.csv"))
    out = str(tmp_path / "plots")
    written = plots.trend_plots(rows, out, mode="full")
    assert sorted(os.path.basename(p) for p in written) == [
        "trend-churn.png", "trend-fragmenter.png", "trend-micro.png"]
    for p in written:
        assert_png(p)
    latest = plots.latest_plots(store.all_results(results)[-1][1], out)
    assert sorted(os.path.basename(p) for p in latest) == ["latest-micro.png", "latest.png"]
    for p in latest:
        assert_png(p)


def test_trends_default_to_the_latest_runs_mode_and_survive_empty_cells(tmp_path):
    rows = [{"commit": "a", "date": "2026-01-01", "mode": "full", "x.y@libmesh": "1"},
            {"commit": "b", "date": "2026-01-02", "mode": "full", "x.y@libmesh": ""},
            {"commit": "c", "date": "2026-01-03", "mode": "full", "x.y@libmesh": "nan"}]
    written = plots.trend_plots(rows, str(tmp_path))
    assert [os.path.basename(p) for p in written] == ["trend-x.png"]
    assert_png(written[0])
    assert plots.trend_plots([], str(tmp_path)) == []


def test_plot_results_script(tmp_path):
    results = str(tmp_path / "results")
    record_three(results)
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, os.path.join(SCRIPTS, "plot_results.py"),
                        "--results-dir", results, "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    names = sorted(os.path.basename(line) for line in p.stdout.split())
    assert "latest.png" in names and "trend-churn.png" in names
    for name in names:
        if name.endswith(".png"):
            assert_png(str(out / name))
    # and the dashboard, in the results directory
    assert "index.html" in names
    assert "chart-full-churn.ns_per_op" in open(os.path.join(results, "index.html")).read()
    empty = subprocess.run([sys.executable, os.path.join(SCRIPTS, "plot_results.py"),
                            "--results-dir", str(tmp_path / "none")],
                           capture_output=True, text=True, timeout=60)
    assert empty.returncode == 1
