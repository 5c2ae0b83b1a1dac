"""results/index.html (scripts/perflib/dashboard.py): the page's content from synthetic results,
and the page in a real browser (Debian's chromium, headless): every figure's chart, the
regression flags, the details a point shows, no console message, and a screenshot of the
committed results/index.html kept as a test artifact (dashboard-results.png in
$MESH_BUILD_DIR/test-artifacts/ under ctest, else in pytest's temporary directory).
The browser tests are skipped, saying so, where chromium is not installed."""

import csv
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from perflib import dashboard, store, stresshist  # noqa: E402
from perflib.testkit import make_doc  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def spread(center, n=5):
    return [center * (1 + 0.01 * (i - 2)) for i in range(n)]


def run_doc(i, mesh_time, machine_slow=1.0, mode="full", reps=5):
    values = {
        ("larson.ns_per_op", "glibc"): [v * machine_slow for v in spread(30.0, reps)],
        ("larson.ns_per_op", "jemalloc"): [v * machine_slow for v in spread(25.0, reps)],
        ("larson.ns_per_op", "libmesh"): [v * machine_slow for v in spread(mesh_time, reps)],
        ("larson.peak_pss_mb", "glibc"): spread(14.0, reps),
        ("larson.peak_pss_mb", "jemalloc"): spread(15.0, reps),
        ("larson.peak_pss_mb", "libmesh"): spread(9.0, reps),
        ("fragmenter.mesh_count", "libmesh"): [3.0] * reps,
    }
    d = make_doc(values, commit=f"{i:02d}c0ffee{i:04d}", mode=mode,
                 created=f"2026-01-{i + 1:02d}T03:04:05+00:00")
    d["subject"] = f"change number {i}"
    d["commit_time"] = f"2026-01-{i + 1:02d}T01:00:00+00:00"
    return d


@pytest.fixture
def results(tmp_path):
    """Six full runs: libmesh regresses 20% at run 3; the machine slows everyone at run 5.
    Two quick runs of one repetition. Recorded out of commit order (run 4 last). A stress run."""
    d = tmp_path / "results"
    docs = [run_doc(0, 20.0), run_doc(1, 20.0), run_doc(2, 20.0), run_doc(3, 24.0),
            run_doc(5, 24.0, machine_slow=1.5), run_doc(4, 24.0)]
    docs[-1]["created"] = "2026-02-01T00:00:00+00:00"  # measured later, committed earlier
    docs += [run_doc(6, 24.0, mode="quick", reps=1), run_doc(7, 30.0, mode="quick", reps=1)]
    for doc in docs:
        store.record(doc, str(d))
    summary = tmp_path / "summary.tsv"
    summary.write_text("program\tallocator\texit\tseconds\tpeak_rss_mib\tpeak_pss_mib\tmeshes\tnote\n"
                       "test-stress\tlibmesh\t0\t3.2\t40.1\t35.5\t17\t\n"
                       "test-stress\tglibc\t0\t4.0\t50.0\t48.0\t-\t\n"
                       "larson\tlibmesh\t1\t2.0\t10.0\t9.0\t0\t\n")
    stresshist.record(str(summary), "quick", str(d), root=ROOT)
    return d


def test_runs_are_ordered_by_commit_time(results):
    docs = dashboard.ordered_runs(str(results), None)
    assert [d["subject"][-1] for d in docs if d["mode"] == "full"] == list("012345")


def test_page_content(results):
    page = dashboard.render(str(results), None)
    # one chart per figure and mode
    for mode in ("full", "quick"):
        for fig in ("larson.ns_per_op", "larson.peak_pss_mb", "fragmenter.mesh_count"):
            assert f'id="chart-{mode}-{fig}"' in page
    # the planted regression is flagged with its p-value, against the run before it
    regs = re.findall(r'<tr class="reg">.*?</tr>', page)
    assert len(regs) == 1
    assert "larson.ns_per_op" in regs[0] and "03c0ffee0003" in regs[0]
    assert "+20.0%" in regs[0] and "0.0079" in regs[0] and "against <code>02c0ffee0002" in regs[0]
    assert page.count('class="flag flag-worse"') == 1
    # the machine that slowed down at run 5 is not a regression
    assert page.count('class="flag flag-machine"') == 1
    # one repetition: quick runs show no flags at all (30 against 24 is +25%)
    quick = page[page.index('data-mode="quick"><h2>'):]
    assert "flag flag-" not in quick[:quick.index("</section>")]
    # stress history and the latest run's table
    assert 'id="stress-chart-test-stress-seconds"' in page and "FAIL 1" in page
    assert "17 meshes" in page
    # the latest run is the one measured last (run 4, recorded after the others)
    assert 'id="latest"' in page and "perf matrix: full mode, 5 repetition(s), commit 04c0ffee0004" in page
    # the data every point's details come from
    data = json.loads(re.search(r'<script type="application/json" id="dashboard-data">(.*?)'
                                r'</script>', page, re.S).group(1))
    assert [r["subject"] for r in data["runs"]["full"]][3] == "change number 3"
    fig = [f for f in data["modes"]["full"] if f["name"] == "larson.ns_per_op"][0]
    assert fig["flags"]["3"]["v"] == "worse" and len(fig["s"]["libmesh"][3]) == 5
    assert data["stress"]["runs"][0]["rows"]["test-stress"]["libmesh"]["meshes"] == "17"
    # self-contained: nothing fetched
    assert not re.search(r'(src|href)="(https?:)?//', page)


def test_empty_results_still_give_a_page(tmp_path):
    page = dashboard.render(str(tmp_path), None)
    assert "No stress run recorded yet" in page and "no runs yet" in page


def test_write_is_atomic_and_returns_the_path(results):
    path = dashboard.write(str(results), None)
    assert path == str(results / "index.html") and os.path.getsize(path) > 1000
    assert not os.path.exists(path + ".tmp")


def test_nice_ticks():
    assert dashboard._nice_ticks(9.5) == [0.0, 2.5, 5.0, 7.5, 10.0]
    assert dashboard._nice_ticks(0) == [0.0, 1.0]


def test_stress_rows_keep_rounds_apart(tmp_path):
    summary = tmp_path / "s.tsv"
    summary.write_text("program\tallocator\texit\tseconds\tpeak_rss_mib\tpeak_pss_mib\tmeshes\tnote\n"
                       "larson#2\tlibmesh\t0\t1\t2\t3\t4\tbackground thread\n")
    path, n = stresshist.record(str(summary), "long", str(tmp_path / "r"), root=ROOT)
    with open(path, newline="") as f:
        row = list(csv.DictReader(f))[0]
    assert (row["program"], row["round"], row["meshes"], row["mode"]) == ("larson", "2", "4",
                                                                         "long")


# --- in a browser -------------------------------------------------------------------------------

def artifact_dir(tmp_path):
    build = os.environ.get("MESH_BUILD_DIR")
    d = os.path.join(build, "test-artifacts") if build else str(tmp_path)
    os.makedirs(d, exist_ok=True)
    return d


def chromium(*args, timeout=120):
    if not CHROMIUM:
        pytest.skip("chromium is not installed (apt-get install chromium): the dashboard was "
                    "not checked in a browser")
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           "--hide-scrollbars", "--enable-logging=stderr", "--v=0", *args],
                          capture_output=True, text=True, timeout=timeout)


def load(page_path, fragment=""):
    p = chromium("--dump-dom", f"file://{page_path}{fragment}")
    assert p.returncode == 0, p.stderr[-2000:]
    console = [ln for ln in p.stderr.splitlines() if ":CONSOLE" in ln]
    assert console == [], "console messages:\n" + "\n".join(console)
    return p.stdout


def check_dom(dom, mode_figures):
    assert 'data-ready="1"' in dom, "the page's script did not run to its end"
    errors = re.search(r'<div id="js-errors">(.*?)</div>', dom, re.S).group(1)
    assert errors.strip() == "", errors
    for mode, figures in mode_figures.items():
        for fig in figures:
            assert re.search(rf'<svg id="chart-{re.escape(mode)}-{re.escape(fig)}"[^>]*>.*?'
                             rf'<circle class="pt', dom, re.S), f"no chart for {mode} {fig}"


def test_dashboard_in_chromium(results, tmp_path):
    path = dashboard.write(str(results), None)
    figures = ["larson.ns_per_op", "larson.peak_pss_mb", "fragmenter.mesh_count"]
    # #select= pins the details of one point, as a click does
    dom = load(path, "#select=full/0/3/libmesh")
    check_dom(dom, {"full": figures, "quick": figures})
    details = re.search(r'<div id="detail-body">(.*?)</div><div class="legend">', dom,
                        re.S).group(1)
    assert "03c0ffee0003" in details and "change number 3" in details
    assert "Test CPU, 2 cores" in details  # the run's machine
    assert "24.0" in details and "23.52, 23.76, 24.00, 24.24, 24.48" in details  # raw values
    assert "worse" in details and "p=0.0079" in details
    assert dom.count('class="flag flag-worse"') == 1
    # the full runs are shown (picked by the link), the quick ones hidden
    assert re.search(r'<section class="mode" data-mode="quick" style="display: none;"', dom)


def test_committed_dashboard_in_chromium(tmp_path):
    """results/index.html as committed: every figure of every mode has its chart, and every
    regression in the table has its flag on a chart."""
    path = os.path.join(ROOT, "results", "index.html")
    if not os.path.exists(path):
        pytest.skip("results/index.html is not there")
    page = open(path, encoding="utf-8").read()
    data = json.loads(re.search(r'id="dashboard-data">(.*?)</script>', page, re.S).group(1))
    dom = load(path)
    check_dom(dom, {m: [f["name"] for f in figs] for m, figs in data["modes"].items()})
    n_flags = sum(1 for figs in data["modes"].values() for f in figs
                  for fl in f["flags"].values() if fl["v"] == "worse")
    assert dom.count('class="flag flag-worse"') == n_flags == dom.count('<tr class="reg">')
    shot = os.path.join(artifact_dir(tmp_path), "dashboard-results.png")
    p = chromium(f"--screenshot={shot}", "--window-size=1400,2000", f"file://{path}")
    assert p.returncode == 0 and os.path.getsize(shot) > 10000
    print(f"screenshot: {shot}")
