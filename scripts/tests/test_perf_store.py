"""results/: result files, history.csv and looking up references (scripts/perflib/store.py)."""

import csv
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from perflib import store  # noqa: E402
from perflib.testkit import make_doc  # noqa: E402

VALUES = {("churn.ns_per_op", "glibc"): [10.0, 12.0], ("churn.ns_per_op", "jemalloc"): [5.0, 6.0],
          ("churn.ns_per_op", "libmesh"): [4.0, 6.0]}


def test_result_name_dirty_suffix_and_uniqueness():
    doc = make_doc(VALUES, commit="0123456789abcdef")
    assert store.result_name(doc, set()) == "2026-01-02-0123456789ab.json"
    assert store.result_name(doc, {"2026-01-02-0123456789ab.json"}) == \
        "2026-01-02-0123456789ab-2.json"
    doc["dirty"] = True
    assert store.result_name(doc, set()) == "2026-01-02-0123456789ab-dirty.json"
    doc["rev"] = "HEAD"  # built from a clean export: never dirty
    assert store.result_name(doc, set()) == "2026-01-02-0123456789ab.json"


def test_record_writes_file_and_history_rows(tmp_path):
    d1 = make_doc(VALUES, commit="aaaa1111", created="2026-01-01T00:00:00+00:00")
    path, hist = store.record(d1, str(tmp_path))
    assert json.loads(open(path).read())["commit"] == "aaaa1111"
    d2 = make_doc(VALUES, commit="bbbb2222", created="2026-01-02T00:00:00+00:00")
    store.record(d2, str(tmp_path))
    with open(hist, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["commit"] for r in rows] == ["aaaa1111", "bbbb2222"]
    assert rows[0]["churn.ns_per_op@libmesh"] == "5"
    assert rows[0]["churn.ns_per_op@glibc"] == "11"
    # per-repetition ratios 4/5 and 6/6 -> median 0.9
    assert float(rows[0]["churn.ns_per_op@libmesh/jemalloc"]) == pytest.approx(0.9)
    assert rows[1]["result_file"] == "2026-01-02-bbbb2222.json"
    assert rows[0]["mode"] == "full" and rows[0]["cpu_model"] == "Test CPU"


def test_history_header_widens_for_new_figures(tmp_path):
    store.record(make_doc(VALUES, commit="aaaa1111"), str(tmp_path))
    wider = dict(VALUES)
    wider[("fork.fork_ms", "libmesh")] = [3.0]
    store.record(make_doc(wider, commit="bbbb2222"), str(tmp_path))
    header, rows = store.read_history(str(tmp_path / "history.csv"))
    assert header[:len(store.ID_COLUMNS)] == store.ID_COLUMNS
    assert "fork.fork_ms@libmesh" in header
    assert rows[0]["fork.fork_ms@libmesh"] == "" and rows[1]["fork.fork_ms@libmesh"] == "3"


def test_resolve_by_path_prefix_latest_and_mode(tmp_path):
    store.record(make_doc(VALUES, commit="aaaa1111", created="2026-01-01T00:00:00+00:00"),
                 str(tmp_path))
    store.record(make_doc(VALUES, commit="bbbb2222", created="2026-01-02T00:00:00+00:00",
                          mode="quick"), str(tmp_path))
    store.record(make_doc(VALUES, commit="aaaa1111", created="2026-01-03T00:00:00+00:00"),
                 str(tmp_path))
    path, doc = store.resolve("aaaa", str(tmp_path))
    assert doc["created"].startswith("2026-01-03") and path.endswith("2026-01-03-aaaa1111.json")
    assert store.resolve("latest", str(tmp_path))[1]["commit"] == "aaaa1111"
    assert store.resolve("latest", str(tmp_path), mode="quick")[1]["commit"] == "bbbb2222"
    assert store.resolve("2026-01-02", str(tmp_path))[1]["commit"] == "bbbb2222"
    assert store.resolve(path, str(tmp_path))[0] == path
    with pytest.raises(store.StoreError, match="no result matches"):
        store.resolve("ffff", str(tmp_path))
    with pytest.raises(store.StoreError, match="holds no result"):
        store.resolve("latest", str(tmp_path / "empty"))


def test_load_rejects_other_json(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"schema": "something-else/1"}')
    with pytest.raises(store.StoreError, match="not a perf-matrix result"):
        store.load(str(p))
    p.write_text("{broken")
    with pytest.raises(store.StoreError, match="not JSON"):
        store.load(str(p))
    # and all_results skips such files instead of failing
    assert store.all_results(str(tmp_path)) == []
