"""Workload definitions and output parsing (scripts/perflib/workloads.py)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from perflib import workloads  # noqa: E402
from perflib.workloads import Settings  # noqa: E402


def test_key_value_lines():
    text = "malloc_from=/usr/lib/libjemalloc.so.2\npss_kb=1234\nratio=1.5e-3\nbad key=3\n" \
           "list=1,2,3\nneg=-2\n  spaced=7  \n"
    assert workloads.parse_key_values(text) == {"pss_kb": 1234.0, "ratio": 0.0015,
                                                "neg": -2.0, "spaced": 7.0}


def test_test_stress_and_larson_summary_lines():
    ts = "test-stress: 2 threads\ntest-stress: OK: 10 iterations\n" \
         "summary: ops=8749398 seconds=3.233 ops_per_sec=2706684\n"
    assert workloads.parse_key_values(ts) == {"ops": 8749398.0, "seconds": 3.233,
                                              "ops_per_sec": 2706684.0}
    la = "larson: OK: 2 lanes\nThroughput = 5248166 operations per second\n"
    assert workloads.parse_key_values(la) == {"throughput": 5248166.0}


def test_figures_invert_scale_and_only():
    ts = workloads.BY_NAME["test-stress"]
    figs = ts.figures({"ops_per_sec": 2e6, "peak_pss_kb": 2048.0, "peak_rss_kb": 4096.0}, "glibc")
    assert figs == {"test-stress.ns_per_op": 500.0, "test-stress.peak_pss_mb": 2.0,
                    "test-stress.peak_rss_mb": 4.0}
    fr = workloads.BY_NAME["fragmenter"]
    values = {"pss_kb": 10240.0, "pss_per_live": 3.0, "mesh_count": 2.0,
              "mesh_pause_max_ns": 1.5e6}
    assert "fragmenter.mesh_count" not in fr.figures(values, "jemalloc")
    mesh = fr.figures(values, "libmesh")
    assert mesh["fragmenter.mesh_count"] == 2.0
    assert mesh["fragmenter.mesh_pause_max_ms"] == pytest.approx(1.5)
    assert mesh["fragmenter.pss_mb"] == 10.0


def test_kvstore_figures():
    kv = workloads.BY_NAME["kvstore"]
    assert kv.headline == "pss_mb" and kv.target == "kvstore" and kv.binary == "perf/kvstore"
    values = {"pss_kb": 204800.0, "pss_per_live": 2.5, "full_pss_kb": 1024.0,
              "ops_per_sec": 4e5, "maps": 900.0, "mesh_count": 12.0, "mesh_pause_max_ns": 4e6,
              "serve_ops": 1e6}
    assert kv.figures(values, "jemalloc") == {
        "kvstore.pss_mb": 200.0, "kvstore.pss_per_live": 2.5, "kvstore.full_pss_mb": 1.0,
        "kvstore.ns_per_op": 2500.0, "kvstore.maps": 900.0}
    mesh = kv.figures(values, "libmesh")
    assert mesh["kvstore.mesh_count"] == 12.0
    assert mesh["kvstore.mesh_pause_max_ms"] == pytest.approx(4.0)
    assert workloads.metric_of("kvstore.pss_mb").kind == "memory"
    assert workloads.metric_of("kvstore.ns_per_op").kind == "time"
    assert workloads.metric_of("kvstore.mesh_count").kind == "info"
    full, quick = kv.params(Settings()), kv.params(Settings(quick=True))
    assert full[:2] == ["--keys", "1000000"] and quick[:2] == ["--keys", "250000"]


def test_figures_skip_missing_negative_and_zero_throughput():
    la = workloads.BY_NAME["larson"]
    assert la.figures({"throughput": 0.0}, "glibc") == {}
    fr = workloads.BY_NAME["fragmenter"]
    assert fr.figures({"pss_kb": -1.0}, "glibc") == {}


def test_quick_and_full_parameters_differ_and_fork_heap_override():
    quick, full = Settings(quick=True), Settings(quick=False)
    for w in workloads.ALL:
        if w.name != "micro":
            assert w.params(quick) != w.params(full), w.name
    fork = workloads.BY_NAME["fork"]
    assert fork.params(full)[:2] == ["--heap-mb", "1024"]
    assert fork.params(quick)[:2] == ["--heap-mb", "256"]
    assert fork.params(Settings(fork_heap_mb=64))[:2] == ["--heap-mb", "64"]
    assert workloads.BY_NAME["larson"].params(full)[4] == "500000"
    assert workloads.BY_NAME["larson-turnover"].params(full)[4] == "100"


def test_micro_jobs_one_per_benchmark_with_escaped_filter():
    micro = workloads.BY_NAME["micro"]
    jobs = micro.jobs(Settings(min_time=0.1), "/x/micro-bench",
                      ["pair/16/real_time", "xthread/symmetric/16-1024/real_time/threads:2"])
    assert [j.label for j in jobs] == ["pair/16", "xthread/symmetric/16-1024/threads:2"]
    assert "--benchmark_filter=^xthread/symmetric/16-1024/real_time/threads:2$" in jobs[1].argv
    assert "--benchmark_min_time=0.1" in jobs[0].argv and jobs[0].gbench_out


def test_regex_escape_only_posix_specials():
    assert workloads.regex_escape("a-b/c:2") == "a-b/c:2"
    assert workloads.regex_escape("x.y(1)+[z]") == r"x\.y\(1\)\+\[z\]"


def test_select():
    assert [w.name for w in workloads.select("all")] == workloads.DEFAULT_ORDER
    assert [w.name for w in workloads.select("micro, churn")] == ["churn", "micro"]
    with pytest.raises(ValueError, match="unknown workload"):
        workloads.select("churn,nope")
    with pytest.raises(ValueError):
        workloads.select(" , ")


def test_metric_metadata_and_order():
    assert workloads.metric_of("micro.pair/16").unit == "ns/op"
    assert workloads.metric_of("fragmenter.pss_mb").kind == "memory"
    assert workloads.metric_of("fragmenter.maps").kind == "info"
    assert workloads.metric_of("nope.x") is None
    names = ["micro.pair/16", "fork.fork_ms", "test-stress.peak_pss_mb", "test-stress.ns_per_op"]
    assert sorted(names, key=workloads.figure_sort_key) == [
        "test-stress.ns_per_op", "test-stress.peak_pss_mb", "fork.fork_ms", "micro.pair/16"]
    for w in workloads.ALL:
        for m in w.metrics:
            assert m.kind in workloads.KINDS
