"""The readable table of a perf-matrix result (scripts/perflib/mtable.py) and the statistics
behind it (scripts/perflib/matrix.py: figure_entries)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from perflib import matrix, mtable  # noqa: E402
from perflib.stats import Sample  # noqa: E402
from perflib.testkit import make_doc  # noqa: E402

VALUES = {
    ("larson.ns_per_op", "glibc"): [100.0, 200.0, 150.0],
    ("larson.ns_per_op", "jemalloc"): [50.0, 100.0, 60.0],
    ("larson.ns_per_op", "libmesh"): [40.0, 120.0, 60.0],
    ("fragmenter.pss_mb", "glibc"): [80.0, 80.0, 80.0],
    ("fragmenter.pss_mb", "jemalloc"): [100.0, 100.0, 100.0],
    ("fragmenter.pss_mb", "libmesh"): [40.0, 50.0, 45.0],
    ("fragmenter.mesh_count", "libmesh"): [3.0, 3.0, 3.0],
}


def test_figure_entries_medians_ranges_and_paired_ratios():
    figs = {f["name"]: f for f in make_doc(VALUES)["figures"]}
    la = figs["larson.ns_per_op"]
    assert la["unit"] == "ns/op" and la["kind"] == "time" and la["workload"] == "larson"
    assert la["median"] == {"glibc": 150.0, "jemalloc": 60.0, "libmesh": 60.0}
    assert la["min"]["libmesh"] == 40.0 and la["max"]["libmesh"] == 120.0
    assert la["spread"]["libmesh"] == pytest.approx(80.0 / 60.0)
    # per repetition: 40/50, 120/100, 60/60 -> 0.8, 1.2, 1.0
    r = la["ratios"]["libmesh/jemalloc"]
    assert r["samples"] == pytest.approx([0.8, 1.2, 1.0])
    assert (r["median"], r["min"], r["max"]) == pytest.approx((1.0, 0.8, 1.2))
    assert "ratios" in figs["fragmenter.mesh_count"] and not figs["fragmenter.mesh_count"]["ratios"]


def test_figures_follow_workload_then_metric_order():
    samples = [Sample("micro.pair/16", "a", 1, 1.0), Sample("fork.fork_ms", "a", 1, 1.0),
               Sample("test-stress.peak_pss_mb", "a", 1, 1.0),
               Sample("test-stress.ns_per_op", "a", 1, 1.0)]
    names = [f["name"] for f in matrix.figure_entries(samples, ["a"], [])]
    assert names == ["test-stress.ns_per_op", "test-stress.peak_pss_mb", "fork.fork_ms",
                     "micro.pair/16"]


def test_render_columns_ranges_groups_and_geomeans():
    lines = mtable.render(make_doc(VALUES)).splitlines()
    assert lines[0].split() == ["figure", "unit", "glibc", "jemalloc", "libmesh", "libmesh",
                                "range", "libmesh/glibc", "libmesh/jemalloc"]
    larson = lines[2].split()
    assert larson[:6] == ["larson.ns_per_op", "ns/op", "150", "60.0", "60.0", "40.0-120"]
    # libmesh/glibc per rep 0.4, 0.6, 0.4 -> 0.40 [0.40-0.60]; libmesh/jemalloc 1.00 [0.80-1.20]
    assert " ".join(larson[6:]) == "0.40 [0.40-0.60] 1.00 [0.80-1.20]"
    assert lines[3].strip() == ""  # a blank line between workloads
    assert lines[4].split()[0] == "fragmenter.pss_mb"
    mesh_count = [ln for ln in lines if ln.startswith("fragmenter.mesh_count")][0].split()
    assert mesh_count == ["fragmenter.mesh_count", "count", "-", "-", "3.00", "3.00-3.00", "-",
                          "-"]
    gm_time = [ln for ln in lines if ln.startswith("geomean of time")][0].split()
    assert gm_time[-2:] == ["0.40", "1.00"]
    gm_mem = [ln for ln in lines if ln.startswith("geomean of memory")][0].split()
    assert gm_mem[-2:] == ["0.56", "0.45"]


def test_single_repetition_has_no_ranges():
    doc = make_doc({("churn.ns_per_op", "glibc"): [2.0], ("churn.ns_per_op", "libmesh"): [1.0]},
                   allocators=["glibc", "libmesh"])
    lines = mtable.render(doc).splitlines()
    assert lines[0].split() == ["figure", "unit", "glibc", "libmesh", "libmesh/glibc"]
    assert lines[2].split() == ["churn.ns_per_op", "ns/op", "2.00", "1.00", "0.50"]


def test_allocator_without_data_gets_no_column_and_its_ratio_goes():
    doc = make_doc({("churn.ns_per_op", "glibc"): [2.0], ("churn.ns_per_op", "jemalloc"): [1.0]})
    doc["allocators"].append({"name": "libmesh", "status": "skipped", "note": "does not build"})
    header = mtable.render(doc).splitlines()[0].split()
    assert header == ["figure", "unit", "glibc", "jemalloc"]
    assert "libmesh: skipped (does not build)" in mtable.notes(doc)


def test_markdown_and_caption():
    doc = make_doc(VALUES)
    md = mtable.render(doc, style="markdown").splitlines()
    assert md[0].startswith("| figure | unit | glibc |")
    assert not any(ln.strip() == "" for ln in md)
    cap = mtable.caption(doc)
    assert cap[0] == ("perf matrix: full mode, 3 repetition(s), commit abc123def456, 2026-01-02")
    assert "Test CPU" in cap[1] and "2 cores" in cap[1] and "load avg 0.5" in cap[1]
    doc["dirty"] = True
    assert "uncommitted" in mtable.caption(doc)[0]


def test_failures_become_notes():
    doc = make_doc(VALUES)
    doc["failures"] = [{"allocator": "libmesh", "rep": 2, "label": "larson", "why": "killed by "
                        "SIGSEGV", "reproducer": "LD_PRELOAD=x larson 1"}]
    assert mtable.notes(doc) == ["libmesh rep 2 larson: killed by SIGSEGV; reproduce: "
                                 "LD_PRELOAD=x larson 1"]
