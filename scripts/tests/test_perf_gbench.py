"""Parsing of google-benchmark JSON (scripts/perflib/gbench.py)."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from perflib import gbench  # noqa: E402

CONTEXT = {
    "date": "2026-01-01T00:00:00+00:00",
    "host_name": "box",
    "num_cpus": 2,
    "library_build_type": "release",
    "malloc_from": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
}


def entry(name, **fields):
    base = {
        "name": name,
        "run_name": name,
        "run_type": "iteration",
        "repetitions": 1,
        "repetition_index": 0,
        "threads": 1,
        "iterations": 1000,
        "real_time": 10.0,
        "cpu_time": 9.0,
        "time_unit": "ns",
    }
    base.update(fields)
    return base


def doc(*entries, context=CONTEXT):
    return json.dumps({"context": context, "benchmarks": list(entries)}, indent=2)


def test_prefers_time_per_op_counter():
    d = gbench.parse_text(doc(entry("pair/16/real_time", time_per_op=1.25e-8,
                                    items_per_second=1e6)))
    (r,) = d.results
    assert r.name == "pair/16"
    assert r.raw_name == "pair/16/real_time"
    assert r.ns_per_op == pytest.approx(12.5)
    assert not d.truncated
    assert d.context["malloc_from"].endswith("libjemalloc.so.2")


def test_falls_back_to_items_per_second_then_real_time():
    d = gbench.parse_text(doc(
        entry("batch/16-128/real_time", real_time=40.0, time_unit="us", items_per_second=25e6),
        entry("plain", real_time=2.5, time_unit="us"),
        entry("millis", real_time=3.0, time_unit="ms"),
    ))
    by = {r.name: r for r in d.results}
    assert by["batch/16-128"].ns_per_op == pytest.approx(40.0)  # 1e9 / 25e6
    assert by["batch/16-128"].real_time_ns == pytest.approx(40_000.0)
    assert by["plain"].ns_per_op == pytest.approx(2500.0)
    assert by["millis"].ns_per_op == pytest.approx(3e6)


def test_multithreaded_entry_keeps_threads_suffix_and_count():
    d = gbench.parse_text(doc(entry("xthread/prodcons/16-1024/real_time/threads:2", threads=2,
                                    items_per_second=5e6)))
    (r,) = d.results
    assert r.name == "xthread/prodcons/16-1024/threads:2"
    assert r.threads == 2
    assert r.ns_per_op == pytest.approx(200.0)


def test_aggregates_are_ignored_and_repetitions_kept():
    d = gbench.parse_text(doc(
        entry("pair/16/real_time", repetition_index=0, real_time=10.0),
        entry("pair/16/real_time", repetition_index=1, real_time=12.0),
        entry("pair/16/real_time_mean", run_type="aggregate", aggregate_name="mean",
              real_time=11.0),
    ))
    assert [(r.name, r.repetition_index, r.ns_per_op) for r in d.results] == [
        ("pair/16", 0, 10.0), ("pair/16", 1, 12.0)]


def test_error_entries_carry_the_message_and_no_figure():
    d = gbench.parse_text(doc(entry("pair/16/real_time", error_occurred=True,
                                    error_message="malloc returned NULL", real_time=0.0)))
    (r,) = d.results
    assert r.error == "malloc returned NULL"
    assert r.ns_per_op is None


def test_truncated_output_salvages_complete_entries():
    text = doc(entry("pair/16/real_time", time_per_op=1e-8),
               entry("pair/32/real_time", time_per_op=2e-8),
               entry("pair/64/real_time", time_per_op=3e-8))
    cut = text[: text.index('"pair/64/real_time"') + 10]  # a crash in the third benchmark
    d = gbench.parse_text(cut)
    assert d.truncated
    assert [r.name for r in d.results] == ["pair/16", "pair/32"]
    assert d.context["host_name"] == "box"


def test_truncated_before_any_benchmark_keeps_context():
    text = doc(entry("pair/16/real_time"))
    cut = text[: text.index('"benchmarks"') + len('"benchmarks": [')]
    d = gbench.parse_text(cut)
    assert d.truncated and d.results == [] and d.context["num_cpus"] == 2


@pytest.mark.parametrize("text", ["", "not json at all", "[1, 2", "[]"])
def test_garbage_is_a_parse_error(text):
    with pytest.raises(gbench.ParseError):
        gbench.parse_text(text)


@pytest.mark.parametrize("raw,clean", [
    ("pair/16/real_time", "pair/16"),
    ("pair/16", "pair/16"),
    ("x/real_time/threads:2", "x/threads:2"),
    ("x/min_time:0.010/real_time", "x"),
    ("x/iterations:5/repeats:3/process_time", "x"),
    ("real_time_family/4", "real_time_family/4"),  # only whole suffix components go
])
def test_clean_name(raw, clean):
    assert gbench.clean_name(raw) == clean


def test_parse_file_and_name_order(tmp_path):
    p = tmp_path / "out.json"
    p.write_text(doc(entry("b/real_time"), entry("a/real_time"), entry("b/real_time")))
    d = gbench.parse_file(str(p))
    assert gbench.names_in_order(d.results) == ["b", "a"]
