"""Comparison with an earlier run and the regression verdict (scripts/perflib/compare.py)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from perflib import compare  # noqa: E402
from perflib.testkit import make_doc  # noqa: E402


def doc(mesh_time, mesh_mem, je_time=None, **kw):
    je_time = je_time or [10.0] * len(mesh_time)
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


def spread(center, n=5, step=0.01):
    """n distinct values around center (1% apart): realistic repetitions without ties."""
    return [center * (1 + step * (i - (n - 1) / 2)) for i in range(n)]


def test_same_within_the_minimum_effect():
    before = doc(spread(10.0, step=0.001), spread(50.0), je_time=spread(10.0))
    now = doc(spread(10.3, step=0.001), spread(51.0), je_time=spread(10.0))  # +3%, +2%
    c = by_name(compare.compare(now, before))
    assert c["churn.ns_per_op"].verdict == "same"
    assert c["churn.ns_per_op"].change == pytest.approx(0.03)
    assert c["churn.ns_per_op"].p == pytest.approx(2 / 252)  # significant, but small
    assert c["fragmenter.pss_mb"].verdict == "same"
    assert c["fragmenter.maps"].verdict == "info"
    assert compare.regressions(compare.compare(now, before)) == []


def test_worse_and_better_beyond_the_minimum_effect():
    before = doc(spread(10.0), spread(50.0), je_time=spread(10.0))
    now = doc(spread(12.0), spread(45.0), je_time=spread(10.0))
    c = by_name(compare.compare(now, before))
    assert c["churn.ns_per_op"].verdict == "worse"
    assert c["churn.ns_per_op"].change == pytest.approx(0.2)
    assert c["churn.ns_per_op"].p == pytest.approx(2 / 252)  # 5 against 5, no overlap
    assert c["fragmenter.pss_mb"].verdict == "better"
    assert [r.figure for r in compare.regressions(list(c.values()))] == ["churn.ns_per_op"]


def test_overlapping_samples_are_unclear_not_worse():
    # +10% median but the repetitions overlap: p well above 0.05
    before = doc([8.0, 9.0, 10.0, 11.0, 12.0], [50.0] * 5, je_time=spread(10.0))
    now = doc([8.5, 10.5, 11.0, 12.0, 13.0], [50.0] * 5, je_time=spread(10.0))
    c = by_name(compare.compare(now, before))["churn.ns_per_op"]
    assert c.change == pytest.approx(0.1) and c.p > 0.05
    assert c.verdict == "unclear"


def time_judgement(mesh, jemalloc, glibc):
    """churn.ns_per_op judged from libmesh 10, jemalloc 10, glibc 20 to the values given."""
    before = doc(spread(10.0), [50.0] * 5, je_time=spread(10.0))
    now = doc(spread(mesh), [50.0] * 5, je_time=spread(jemalloc))
    for f in now["figures"]:
        if f["name"] == "churn.ns_per_op":
            f["samples"]["glibc"] = {str(r): v for r, v in enumerate(spread(glibc), 1)}
    return by_name(compare.compare(now, before))["churn.ns_per_op"].judgement


def test_a_machine_that_slowed_down_is_not_a_regression():
    # Every allocator about twice as slow; libmesh's ratio to each peer did not move.
    j = time_judgement(mesh=20.0, jemalloc=20.0, glibc=40.0)
    assert j.own.moved == "worse" and j.own.change == pytest.approx(1.0)
    assert [p.name for p in j.peers] == ["jemalloc", "glibc"]
    assert all(p.change > 0.9 for p in j.peers)
    assert j.verdict == "machine"


def test_libmesh_slower_than_the_machine_explains_is_a_regression():
    # jemalloc and glibc 20% slower, libmesh 60% slower: its ratios moved too.
    j = time_judgement(mesh=16.0, jemalloc=12.0, glibc=24.0)
    assert all(p.moved == "worse" for p in j.peers)
    assert j.ratios[0].name == "libmesh/jemalloc" and j.ratios[0].moved == "worse"
    assert j.verdict == "worse"


def test_only_one_peer_moving_does_not_excuse_libmesh():
    before = doc(spread(10.0), [50.0] * 5, je_time=spread(10.0))
    now = doc(spread(13.0), [50.0] * 5, je_time=spread(13.0))  # glibc stays at 20
    assert by_name(compare.compare(now, before))["churn.ns_per_op"].verdict == "worse"


def test_without_peers_libmesh_alone_decides():
    before = make_doc({("churn.ns_per_op", "libmesh"): spread(10.0)}, allocators=["libmesh"])
    now = make_doc({("churn.ns_per_op", "libmesh"): spread(13.0)}, allocators=["libmesh"])
    c = compare.compare(now, before)[0]
    assert c.verdict == "worse" and c.judgement.peers == []


def test_one_repetition_cannot_decide():
    before = doc([10.0], [50.0])
    now = doc([20.0], [40.0])
    c = by_name(compare.compare(now, before))
    assert c["churn.ns_per_op"].verdict == "too few reps"
    assert c["fragmenter.pss_mb"].verdict == "too few reps"
    assert compare.regressions(list(c.values())) == []
    assert len(compare.undecided(list(c.values()))) == 2
    # 4 against 4 can
    c = by_name(compare.compare(doc(spread(20.0, 4), [40.0] * 4),
                                doc(spread(10.0, 4), [50.0] * 4)))
    assert c["churn.ns_per_op"].verdict == "worse"


def test_custom_minimum_effect():
    before = doc(spread(10.0), [50.0] * 5)
    now = doc(spread(10.4), [50.0] * 5)
    assert by_name(compare.compare(now, before))["churn.ns_per_op"].verdict == "same"
    c = by_name(compare.compare(now, before, min_effect={"time": 0.01}))["churn.ns_per_op"]
    assert c.verdict == "worse"


def test_judge_on_bare_samples():
    before = {"libmesh": {1: 10.0, 2: 10.1, 3: 9.9, 4: 10.05}, "jemalloc": {1: 5.0, 2: 5.1,
                                                                          3: 4.9, 4: 5.05}}
    now = {"libmesh": {1: 12.0, 2: 12.1, 3: 11.9, 4: 12.05}, "jemalloc": dict(before["jemalloc"])}
    j = compare.judge("time", before, now)
    assert j.verdict == "worse" and j.own.p == pytest.approx(2 / 70)
    assert j.ratios[0].change == pytest.approx(0.2, rel=0.01)
    assert "libmesh +20.0% p=0.029" in j.why


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
    before = doc(spread(10.0), [50.0] * 5, je_time=spread(10.0))
    now = doc(spread(12.0), [50.0] * 5, je_time=spread(10.0), cpu="Other CPU", mode="quick")
    changes = compare.compare(now, before)
    text = compare.render(changes)
    lines = text.splitlines()
    assert lines[0].split() == ["figure", "unit", "before", "now", "change", "p", "peers",
                                "verdict"]
    row = [ln for ln in lines if ln.startswith("churn.ns_per_op")][0].split()
    assert row[:6] == ["churn.ns_per_op", "ns/op", "10.0", "12.0", "+20.0%", "0.0079"]
    assert row[-1] == "WORSE" and "jemalloc" in row and "glibc" in row
    head = compare.header_lines(now, before, "results/x.json")
    assert head[0].startswith("change of libmesh against results/x.json (commit abc123def456")
    assert any("different machines" in h for h in head)
    assert any("quick mode" in h for h in head)
    assert any("Mann-Whitney" in h for h in head)
    md = compare.render(changes, style="markdown").splitlines()
    assert md[0].startswith("| figure | unit |")


def test_paired_judgement_sees_through_noise_that_hides_the_change_unpaired():
    # Each repetition ran at its own speed (load); in every one, libmesh of the commit took
    # 20-35% longer than GOOD's libmesh next to it.
    load = [1.0, 3.0, 0.5, 2.0, 1.5, 0.7, 2.5, 1.2]
    slow = [1.3, 1.2, 1.35, 1.25, 1.31, 1.22, 1.28, 1.33]
    good = {"libmesh": {r: 10 * x for r, x in enumerate(load, 1)},
            "jemalloc": {r: 9 * x for r, x in enumerate(load, 1)}}
    now = {"libmesh": {r: 10 * x * s for r, (x, s) in enumerate(zip(load, slow), 1)},
           "jemalloc": dict(good["jemalloc"])}
    unpaired = compare.judge("time", good, now)
    assert unpaired.verdict == "unclear" and unpaired.own.p > 0.2
    paired = compare.judge("time", good, now, paired=True)
    assert paired.verdict == "worse"
    assert paired.own.p == pytest.approx(2 / 256)  # 8 pairs, all one way
    # 5 pairs cannot decide, whatever they say
    five = {a: {r: v for r, v in s.items() if r <= 5} for a, s in now.items()}
    assert compare.judge("time", good, five, paired=True).verdict == "too few reps"
