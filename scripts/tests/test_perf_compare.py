"""Comparison with an earlier run and the regression verdict (scripts/perflib/compare.py)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from perflib import compare  # noqa: E402
from perflib.testkit import make_doc  # noqa: E402


def doc(mesh_time, mesh_mem, je_time=(10.0, 10.0, 10.0), **kw):
    values = {
        ("churn.ns_per_op", "glibc"): [20.0] * len(mesh_time),
        ("churn.ns_per_op", "jemalloc"): list(je_time),
        ("churn.ns_per_op", "libmesh"): list(mesh_time),
        ("fragmenter.pss_mb", "glibc"): [100.0] * len(mesh_mem),
        ("fragmenter.pss_mb", "jemalloc"): [100.0] * len(mesh_mem),
        ("fragmenter.pss_mb", "libmesh"): list(mesh_mem),
        ("fragmenter.maps", "libmesh"): [40.0],
    }
    return make_doc(values, **kw)


def by_name(changes):
    return {c.figure: c for c in changes}


def test_same_within_minimum_band():
    before = doc([10.0, 10.0, 10.0], [50.0, 50.0, 50.0])
    now = doc([10.5, 10.5, 10.5], [51.0, 51.0, 51.0])
    c = by_name(compare.compare(now, before))
    assert c["churn.ns_per_op"].verdict == "same"
    assert c["churn.ns_per_op"].basis == "libmesh/jemalloc"
    assert c["churn.ns_per_op"].change == pytest.approx(0.05)
    assert c["churn.ns_per_op"].band == pytest.approx(0.10)
    assert c["fragmenter.pss_mb"].verdict == "same" and c["fragmenter.pss_mb"].basis == "libmesh"
    assert c["fragmenter.maps"].verdict == "info"
    assert compare.regressions(compare.compare(now, before)) == []


def test_worse_and_better_beyond_the_band():
    before = doc([10.0, 10.0, 10.0], [50.0, 50.0, 50.0])
    now = doc([12.0, 12.0, 12.0], [45.0, 45.0, 45.0])
    c = by_name(compare.compare(now, before))
    assert c["churn.ns_per_op"].verdict == "worse"
    assert c["fragmenter.pss_mb"].verdict == "better"
    assert [r.figure for r in compare.regressions(list(c.values()))] == ["churn.ns_per_op"]


def test_time_uses_the_paired_ratio_so_a_slower_machine_is_no_regression():
    before = doc([10.0, 10.0, 10.0], [50.0] * 3)
    now = doc([20.0, 20.0, 20.0], [50.0] * 3, je_time=(20.0, 20.0, 20.0))  # all twice as slow
    c = by_name(compare.compare(now, before))["churn.ns_per_op"]
    assert c.verdict == "same" and c.change == pytest.approx(0.0)


def test_time_falls_back_to_absolute_without_jemalloc():
    before = make_doc({("churn.ns_per_op", "libmesh"): [10.0]}, allocators=["libmesh"])
    now = make_doc({("churn.ns_per_op", "libmesh"): [13.0]}, allocators=["libmesh"])
    c = compare.compare(now, before)[0]
    assert c.basis == "libmesh" and c.verdict == "worse"


def test_measured_spread_widens_the_band():
    # libmesh/jemalloc per rep: 0.8, 1.0, 1.2 -> spread 40%; a 20% change stays 'same'.
    before = doc([8.0, 10.0, 12.0], [50.0] * 3)
    now = doc([12.0, 12.0, 12.0], [50.0] * 3)
    c = by_name(compare.compare(now, before))["churn.ns_per_op"]
    assert c.band == pytest.approx(0.4) and c.verdict == "same"


def test_custom_minimum_band():
    before = doc([10.0] * 3, [50.0] * 3)
    now = doc([10.5] * 3, [50.0] * 3)
    c = by_name(compare.compare(now, before, min_band={"time": 0.01}))["churn.ns_per_op"]
    assert c.verdict == "worse"


def test_other_parameters_are_not_comparable():
    before = doc([10.0] * 3, [50.0] * 3, params={"churn": ["--ops", "1"]})
    now = doc([20.0] * 3, [50.0] * 3, params={"churn": ["--ops", "2"]})
    c = by_name(compare.compare(now, before))
    assert c["churn.ns_per_op"].verdict == "not comparable"
    assert c["fragmenter.pss_mb"].verdict == "same"


def test_new_and_missing_figures():
    before = make_doc({("churn.ns_per_op", "libmesh"): [1.0], ("fork.fork_ms", "libmesh"): [1.0]})
    now = make_doc({("churn.ns_per_op", "libmesh"): [1.0], ("larson.ns_per_op", "libmesh"): [1.0]})
    c = by_name(compare.compare(now, before))
    assert c["larson.ns_per_op"].verdict == "new"
    assert c["fork.fork_ms"].verdict == "missing"
    assert not compare.regressions(list(c.values()))


def test_figures_without_libmesh_are_left_out():
    before = make_doc({("churn.ns_per_op", "glibc"): [1.0]})
    assert compare.compare(before, before) == []


def test_render_and_header():
    before = doc([10.0] * 3, [50.0] * 3)
    now = doc([12.0] * 3, [50.0] * 3, cpu="Other CPU", mode="quick")
    changes = compare.compare(now, before)
    text = compare.render(changes)
    lines = text.splitlines()
    assert lines[0].split() == ["figure", "unit", "compared", "before", "now", "change", "band",
                                "verdict"]
    row = [ln for ln in lines if ln.startswith("churn.ns_per_op")][0].split()
    assert row == ["churn.ns_per_op", "ns/op", "libmesh/jemalloc", "1.00", "1.20", "+20.0%",
                   "10%", "WORSE"]
    head = compare.header_lines(now, before, "results/x.json")
    assert head[0].startswith("change of libmesh against results/x.json (commit abc123def456")
    assert any("different machines" in h for h in head)
    assert any("quick mode" in h for h in head)
    md = compare.render(changes, style="markdown").splitlines()
    assert md[0].startswith("| figure | unit |")
