"""Statistics of perf samples (scripts/perflib/stats.py)."""

import math
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from perflib import stats  # noqa: E402
from perflib.stats import Sample  # noqa: E402


@pytest.mark.parametrize("values,expected", [
    ([3.0], 3.0),
    ([5.0, 1.0, 3.0], 3.0),
    ([4.0, 1.0, 3.0, 2.0], 2.5),
    ([1.0, None, 3.0], 2.0),
    ([1.0, float("nan"), 5.0], 3.0),
    ([], None),
    ([None], None),
])
def test_median(values, expected):
    assert stats.median(values) == expected


def test_geomean():
    assert stats.geomean([2.0, 8.0]) == pytest.approx(4.0)
    assert stats.geomean([0.5, 2.0, None]) == pytest.approx(1.0)
    assert stats.geomean([0.0, -1.0]) is None
    assert stats.geomean([]) is None


def test_rel_spread():
    assert stats.rel_spread([9.0, 10.0, 11.0]) == pytest.approx(0.2)
    assert stats.rel_spread([10.0]) is None


def test_per_rep_ratios_pairs_repetitions_and_skips_missing_ones():
    num = {1: 10.0, 2: 12.0, 3: 30.0}
    den = {1: 5.0, 3: 10.0, 4: 1.0}
    assert stats.per_rep_ratios(num, den) == [2.0, 3.0]
    assert stats.per_rep_ratios(num, {1: 0.0}) == []


def test_parse_ratio_spec():
    assert stats.parse_ratio_spec("libmesh/jemalloc") == ("libmesh", "jemalloc")
    for bad in ["libmesh", "/x", "x/", "a/b/c", ""]:
        with pytest.raises(ValueError):
            stats.parse_ratio_spec(bad)


def samples(table):
    """{(bench, alloc): [value per rep 1..n]} -> [Sample]"""
    out = []
    for (bench, alloc), values in table.items():
        for rep, v in enumerate(values, 1):
            out.append(Sample(bench, alloc, rep, v))
    return out


def test_summarize_medians_and_order():
    s = stats.summarize(samples({
        ("pair/16", "glibc"): [15.0, 14.0, 16.0],
        ("pair/16", "mesh"): [10.0, 11.0, 12.0],
        ("batch", "glibc"): [70.0, 71.0, 69.0],
    }))
    assert [r.benchmark for r in s.rows] == ["pair/16", "batch"]
    assert s.allocators == ["glibc", "mesh"]
    assert s.rows[0].medians == {"glibc": 15.0, "mesh": 11.0}
    assert s.rows[1].medians == {"glibc": 70.0, "mesh": None}


def test_ratio_is_median_of_per_rep_ratios_not_ratio_of_medians():
    # A slow repetition 2 slows both allocators; per-rep ratios cancel it.
    s = stats.summarize(samples({
        ("b", "mesh"): [10.0, 40.0, 12.0],
        ("b", "je"): [5.0, 20.0, 10.0],
    }), ratio_pairs=[("mesh", "je")])
    row = s.rows[0]
    assert row.ratio_samples["mesh/je"] == [2.0, 2.0, 1.2]
    assert row.ratios["mesh/je"] == 2.0
    assert row.medians["mesh"] / row.medians["je"] == pytest.approx(1.2)  # what we avoid


def test_ratio_missing_when_an_allocator_has_no_data():
    s = stats.summarize(samples({("b", "je"): [5.0]}), allocators=["je", "mesh"],
                        ratio_pairs=[("mesh", "je")])
    assert s.rows[0].ratios["mesh/je"] is None
    assert s.geomean_ratios() == {"mesh/je": None}


def test_in_process_repetitions_are_reduced_per_rep_first():
    data = [Sample("b", "a", 1, 1.0), Sample("b", "a", 1, 3.0), Sample("b", "a", 1, 100.0),
            Sample("b", "a", 2, 4.0)]
    s = stats.summarize(data)
    assert s.rows[0].samples["a"] == {1: 3.0, 2: 4.0}
    assert s.rows[0].medians["a"] == 3.5


def test_nan_samples_are_ignored():
    s = stats.summarize([Sample("b", "a", 1, float("nan")), Sample("b", "a", 2, 2.0)])
    assert s.rows[0].medians["a"] == 2.0


def test_geomean_ratios_over_benchmarks():
    s = stats.summarize(samples({
        ("x", "m"): [2.0], ("x", "j"): [1.0],
        ("y", "m"): [1.0], ("y", "j"): [2.0],
        ("z", "m"): [4.0], ("z", "j"): [1.0],
    }), ratio_pairs=[("m", "j")])
    assert s.geomean_ratios()["m/j"] == pytest.approx(math.exp((math.log(2) - math.log(2) + math.log(4)) / 3))


def test_summary_to_dict_is_json_friendly():
    import json
    s = stats.summarize(samples({("b", "m"): [2.0, 4.0], ("b", "j"): [1.0, 2.0]}),
                        ratio_pairs=[("m", "j")])
    d = json.loads(json.dumps(s.to_dict()))
    (b,) = d["benchmarks"]
    assert b["median"] == {"m": 3.0, "j": 1.5}
    assert b["samples"]["m"] == {"1": 2.0, "2": 4.0}
    assert b["ratio_median"] == {"m/j": 2.0}
    assert d["geomean_ratio"]["m/j"] == pytest.approx(2.0)
