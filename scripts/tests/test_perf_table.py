"""Table formatting (scripts/perflib/table.py and the summary table of report.py)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from perflib import report, stats, table  # noqa: E402
from perflib.stats import Sample  # noqa: E402


@pytest.mark.parametrize("value,text", [
    (7.3712, "7.37"),
    (13.14, "13.1"),
    (498.4, "498"),
    (2408747.2, "2408747"),
    (0.01234, "0.0123"),
    (0.0, "0"),
    (None, "-"),
    (float("nan"), "-"),
    (float("inf"), "-"),
])
def test_format_number(value, text):
    assert table.format_number(value) == text


@pytest.mark.parametrize("value,text", [
    (1.0, "1.00"), (1.234, "1.23"), (0.456, "0.46"), (12.0, "12.00"),
    (0.001234, "0.00123"), (12345.0, "1.23e+04"), (None, "-"),
])
def test_format_ratio(value, text):
    assert table.format_ratio(value) == text


def test_render_text_aligns_columns():
    out = table.render(["name", "a", "bb"], [["x", "1", "22.5"], ["longer", "333", "-"]])
    assert out.splitlines() == [
        "name      a    bb",
        "------  ---  ----",
        "x         1  22.5",
        "longer  333     -",
    ]


def test_render_custom_alignment_and_markdown():
    out = table.render(["k", "v"], [["a|b", "1"]], align="rr", style="markdown")
    assert out.splitlines() == ["| k | v |", "|---:|---:|", "| a\\|b | 1 |"]


def test_render_rejects_bad_shapes():
    with pytest.raises(ValueError):
        table.render(["a", "b"], [["only one"]])
    with pytest.raises(ValueError):
        table.render(["a"], [], align="x")
    with pytest.raises(ValueError):
        table.render(["a"], [], style="html")


def summary(values, allocators, ratio_pairs):
    data = [Sample(b, a, rep, v) for (b, a), vs in values.items() for rep, v in enumerate(vs, 1)]
    return stats.summarize(data, allocators, ratio_pairs)


def test_summary_table_columns_ratios_and_geomean():
    s = summary({
        ("pair/16", "glibc"): [15.0], ("pair/16", "jemalloc"): [10.0],
        ("pair/16", "libmesh"): [12.0], ("pair/16", "mimalloc"): [8.0],
        ("batch/16-128", "glibc"): [30.0], ("batch/16-128", "jemalloc"): [20.0],
        ("batch/16-128", "libmesh"): [10.0], ("batch/16-128", "mimalloc"): [10.0],
    }, ["glibc", "jemalloc", "mimalloc", "libmesh"],
        [("libmesh", "jemalloc"), ("libmesh", "mimalloc")])
    lines = report.render_summary(s).splitlines()
    assert lines[0].split() == ["benchmark", "(median", "ns/op)", "glibc", "jemalloc",
                                "mimalloc", "libmesh", "libmesh/jemalloc", "libmesh/mimalloc"]
    assert lines[2].split() == ["pair/16", "15.0", "10.0", "8.00", "12.0", "1.20", "1.50"]
    assert lines[3].split() == ["batch/16-128", "30.0", "20.0", "10.0", "10.0", "0.50", "1.00"]
    # geomean(1.2, 0.5) = 0.7746; geomean(1.5, 1.0) = 1.2247
    assert lines[4].split() == ["geomean", "of", "ratios", "0.77", "1.22"]


def test_summary_table_drops_allocators_without_data_and_their_ratios():
    s = summary({("pair/16", "glibc"): [15.0], ("pair/16", "jemalloc"): [10.0]},
                ["glibc", "jemalloc", "libmesh"], [("libmesh", "jemalloc")])
    lines = report.render_summary(s).splitlines()
    assert lines[0].split()[3:] == ["glibc", "jemalloc"]
    assert len(lines) == 3  # header, rule, one row: no ratio, so no geomean row


def test_summary_table_shows_dash_for_a_missing_figure():
    s = summary({("a", "glibc"): [1.0], ("a", "libmesh"): [2.0], ("b", "glibc"): [3.0]},
                ["glibc", "libmesh"], [("libmesh", "glibc")])
    lines = report.render_summary(s, geomean_row=False).splitlines()
    assert lines[3].split() == ["b", "3.00", "-", "-"]


def test_summary_table_markdown():
    s = summary({("a", "x"): [1.0]}, ["x"], [])
    assert report.render_summary(s, style="markdown").splitlines()[:2] == [
        "| benchmark (median ns/op) | x |", "|:---|---:|"]
