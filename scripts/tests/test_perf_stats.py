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


# --- Mann-Whitney U -----------------------------------------------------------------------------
# Known answers: the exact ones are counts of orderings (complete separation of 6 against 6 is
# 1 ordering in C(12, 6) = 924, two-sided 2/924); the 5-against-4 case is the textbook example
# (U = 17, exact two-sided p = 0.1111); the tied and the large cases were checked against an
# independent implementation of the normal approximation with tie and continuity corrections.

def test_ranks_share_ties():
    assert stats.ranks([10.0, 20.0, 20.0, 5.0]) == [2.0, 3.5, 3.5, 1.0]
    assert stats.ranks([]) == []


def test_mann_whitney_exact_complete_separation():
    r = stats.mann_whitney_u([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12])
    assert r.method == "exact" and r.u == 0
    assert r.p == pytest.approx(2 / 924)
    # the other way round: same p, U = n1 * n2
    r2 = stats.mann_whitney_u([7, 8, 9, 10, 11, 12], [1, 2, 3, 4, 5, 6])
    assert r2.u == 36 and r2.p == pytest.approx(2 / 924)


def test_mann_whitney_exact_textbook_example():
    r = stats.mann_whitney_u([19, 22, 16, 29, 24], [20, 11, 17, 12])
    assert (r.u, r.method) == (17, "exact")
    assert r.p == pytest.approx(1 / 9)


def test_mann_whitney_exact_distribution_sums_to_all_orderings():
    counts = stats._u_counts(4, 3)
    assert sum(counts) == math.comb(7, 3) and len(counts) == 13
    assert counts == tuple(reversed(counts))  # symmetric


def test_mann_whitney_normal_approximation_with_ties():
    r = stats.mann_whitney_u([1.0, 2, 2, 3, 3, 3, 4], [3, 4, 4, 5, 5, 6, 7])
    assert r.method == "normal" and r.u == 3.5
    assert r.p == pytest.approx(0.0076600, rel=1e-4)
    # every value of a group equal: the tie correction keeps the variance right
    r = stats.mann_whitney_u([5.0] * 5, [6.0] * 5)
    assert r.p == pytest.approx(0.0039768, rel=1e-4)


def test_mann_whitney_normal_approximation_large_samples():
    x = list(range(30))
    r = stats.mann_whitney_u(x, [v + 10.5 for v in x])
    assert r.method == "normal" and r.u == 190
    assert r.p == pytest.approx(1.2477e-4, rel=1e-3)


def test_mann_whitney_degenerate_cases():
    assert stats.mann_whitney_u([1.0] * 4, [1.0] * 4).p == 1.0  # all equal
    assert stats.mann_whitney_u([], [1.0]).method == "none"
    assert stats.mann_whitney_u([1.0], [2.0]).p == 1.0  # one against one can show nothing
    assert stats.mann_whitney_u([1.0, None, float("nan")], [2.0]).n1 == 1


def test_min_p_value():
    assert stats.min_p_value(1, 1) == 1.0
    assert stats.min_p_value(3, 3) == pytest.approx(0.1)
    assert stats.min_p_value(4, 4) == pytest.approx(2 / 70)
    assert stats.min_p_value(0, 5) == 1.0


# --- Wilcoxon signed-rank -----------------------------------------------------------------------
# Exact answers count sign patterns (all 6 positive: 1 pattern of 64, two-sided 2/64); the
# tied and the large cases were checked against an independent implementation of the normal
# approximation with tie and continuity corrections.

def test_signed_rank_exact():
    r = stats.wilcoxon_signed_rank([0.5, 1.2, 0.3, 2.0, 0.8, 1.5])
    assert (r.u, r.method, r.n1) == (21, "exact", 6) and r.p == pytest.approx(2 / 64)
    r = stats.wilcoxon_signed_rank([0.5, 1.2, -0.3, 2.0, 0.8, 1.5])  # the smallest one negative
    assert r.u == 20 and r.p == pytest.approx(4 / 64)
    assert sum(stats._w_counts(6)) == 64


def test_signed_rank_drops_zeros_and_handles_ties():
    r = stats.wilcoxon_signed_rank([1, 2, 2, 3, -1, 4, 5, -2, 0, 0])
    assert r.n1 == 8 and r.method == "normal" and r.u == 30.5
    assert r.p == pytest.approx(0.090889, rel=1e-4)
    assert stats.wilcoxon_signed_rank([0, 0]).p == 1.0


def test_signed_rank_large():
    r = stats.wilcoxon_signed_rank(range(1, 31))
    assert r.method == "normal" and r.p == pytest.approx(1.8254e-6, rel=1e-3)


def test_min_p_value_paired():
    assert stats.min_p_value_paired(5) == pytest.approx(1 / 16)
    assert stats.min_p_value_paired(6) == pytest.approx(1 / 32)
    assert stats.min_p_value_paired(0) == 1.0
