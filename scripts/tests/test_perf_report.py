"""Run manifests, collection of outputs, JSON export and the perf_table.py command line."""

import json
import os
import subprocess
import sys

import pytest

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, SCRIPTS)

import perf_table  # noqa: E402
from perflib import manifest, report  # noqa: E402


def gbench_doc(figures, malloc_from="/lib/libc.so.6"):
    """figures: {benchmark: ns per op} -> google-benchmark JSON text."""
    return json.dumps({
        "context": {"host_name": "box", "num_cpus": 2, "malloc_from": malloc_from},
        "benchmarks": [
            {"name": f"{name}/real_time", "run_type": "iteration", "iterations": 100,
             "real_time": ns, "cpu_time": ns, "time_unit": "ns", "threads": 1,
             "time_per_op": ns * 1e-9}
            for name, ns in figures.items()
        ],
    })


def test_parse_manifest():
    m = manifest.parse_manifest(
        "# comment\n\n"
        "meta\tsuite\tmicro\n"
        "allocator\tglibc\t-\n"
        "allocator\tjemalloc\t/lib/libjemalloc.so.2\n"
        "skipped\tlibmesh\tdoes not build\n"
        "run\tglibc\t1\t0\t1.5\t/tmp/a.json\n"
        "run\tjemalloc\t1\t139\t-\t/tmp/b.json\n"
    )
    assert m.allocators == {"glibc": "", "jemalloc": "/lib/libjemalloc.so.2"}
    assert m.skipped == {"libmesh": "does not build"}
    assert m.meta == {"suite": "micro"}
    assert [(r.allocator, r.rep, r.rc, r.seconds) for r in m.runs] == [
        ("glibc", 1, 0, 1.5), ("jemalloc", 1, 139, None)]
    assert m.allocator_order() == ["glibc", "jemalloc", "libmesh"]


def test_manifest_run_label_and_note():
    m = manifest.parse_manifest("run\tlibmesh\t2\t134\t0.1\t/nonexistent/x.json\tpair/16/real_time\n")
    assert m.runs[0].label == "pair/16/real_time"
    c = report.collect(m)
    assert c.notes == ["libmesh rep 2 [pair/16/real_time]: micro-bench killed by SIGABRT "
                       "(output /nonexistent/x.json)"]


@pytest.mark.parametrize("line", ["run\tglibc\t1\t0\t/tmp/a.json", "run\ta\t1\t0\t1\t/p\tl\textra", "run\tglibc\tx\t0\t1\t/p",
                                  "bogus\ta\tb", "allocator\tonly-name"])
def test_malformed_manifest_lines(line):
    with pytest.raises(manifest.ManifestError):
        manifest.parse_manifest(line + "\n")


@pytest.mark.parametrize("rc,text", [(1, "exit 1"), (124, "timed out"),
                                     (139, "killed by SIGSEGV"), (134, "killed by SIGABRT"),
                                     (3, "exit 3 (malloc did not come from the preloaded library)")])
def test_describe_rc(rc, text):
    assert report.describe_rc(rc) == text


@pytest.fixture
def run_dir(tmp_path):
    """Two repetitions of glibc and jemalloc; libmesh crashed in rep 1 and is fine in rep 2."""
    files = {}

    def put(name, text):
        p = tmp_path / name
        p.write_text(text)
        files[name] = str(p)
        return str(p)

    put("1-glibc.json", gbench_doc({"pair/16": 15.0, "batch": 30.0}))
    put("1-jemalloc.json", gbench_doc({"pair/16": 10.0, "batch": 20.0}))
    full = gbench_doc({"pair/16": 20.0, "batch": 10.0})
    put("1-libmesh.json", full[: full.index('"batch/real_time"')])  # died during "batch"
    put("2-glibc.json", gbench_doc({"pair/16": 16.0, "batch": 31.0}))
    put("2-jemalloc.json", gbench_doc({"pair/16": 11.0, "batch": 22.0}))
    put("2-libmesh.json", gbench_doc({"pair/16": 22.0, "batch": 11.0}))
    lines = ["meta\tsuite\tmicro", "meta\tmin_time\t0.05",
             "allocator\tglibc\t-", "allocator\tjemalloc\t/j.so", "allocator\tlibmesh\t/m.so",
             "skipped\ttcmalloc\t/t.so not found"]
    for rep in (1, 2):
        for alloc in ("glibc", "jemalloc", "libmesh"):
            rc = 139 if (rep, alloc) == (1, "libmesh") else 0
            lines.append(f"run\t{alloc}\t{rep}\t{rc}\t0.5\t{files[f'{rep}-{alloc}.json']}")
    man = tmp_path / "manifest.tsv"
    man.write_text("\n".join(lines) + "\n")
    return man


def test_collect_keeps_completed_results_of_a_crashed_run(run_dir):
    c = report.collect(manifest.read_manifest(str(run_dir)))
    assert c.failed
    assert any("tcmalloc: skipped" in n for n in c.notes)
    assert any("libmesh rep 1: micro-bench killed by SIGSEGV; 1 benchmark(s) completed" in n
               for n in c.notes)
    mesh = sorted((s.benchmark, s.rep, s.value) for s in c.samples if s.allocator == "libmesh")
    assert [(b, r) for b, r, _ in mesh] == [("batch", 2), ("pair/16", 1), ("pair/16", 2)]
    assert [v for _, _, v in mesh] == pytest.approx([11.0, 20.0, 22.0])


def test_missing_output_and_benchmark_errors_are_noted(tmp_path):
    bad = tmp_path / "err.json"
    bad.write_text(json.dumps({"context": {}, "benchmarks": [
        {"name": "pair/16/real_time", "run_type": "iteration", "error_occurred": True,
         "error_message": "malloc returned NULL", "real_time": 0, "time_unit": "ns"}]}))
    m = manifest.parse_manifest(
        f"allocator\ta\t-\nrun\ta\t1\t0\t1\t{tmp_path / 'nothing.json'}\nrun\ta\t2\t0\t1\t{bad}\n")
    c = report.collect(m)
    assert c.failed and not c.samples
    assert any("a rep 1: no output" in n for n in c.notes)
    assert any("a rep 2: pair/16: malloc returned NULL" in n for n in c.notes)


def test_json_export(run_dir):
    c = report.collect(manifest.read_manifest(str(run_dir)))
    s = report.summarize(c, [("libmesh", "jemalloc")])
    d = json.loads(json.dumps(report.to_json(c, s)))
    assert d["schema"] == report.SCHEMA and d["unit"] == "ns/op"
    status = {a["name"]: a["status"] for a in d["allocators"]}
    assert status == {"glibc": "ok", "jemalloc": "ok", "libmesh": "failed", "tcmalloc": "skipped"}
    assert len(d["runs"]) == 6
    crashed = [r for r in d["runs"] if r["rc"] == 139][0]
    assert crashed["truncated"] and len(crashed["results"]) == 1
    pair = [b for b in d["summary"]["benchmarks"] if b["benchmark"] == "pair/16"][0]
    assert pair["median"]["glibc"] == 15.5
    # per-rep ratios 20/10 and 22/11 -> 2.0
    assert pair["ratio_median"]["libmesh/jemalloc"] == pytest.approx(2.0)
    assert d["machine"]["host_name"] == "box"


def test_cli_with_manifest_writes_table_and_json(run_dir, tmp_path, capsys):
    out = tmp_path / "all.json"
    rc = perf_table.main(["--manifest", str(run_dir), "--json", str(out),
                          "--ratio", "libmesh/jemalloc"])
    captured = capsys.readouterr()
    assert rc == 0
    lines = captured.out.splitlines()
    assert lines[0].startswith("micro-bench: median over 2 repetition(s); min time 0.05 s")
    assert lines[1].split()[3:] == ["glibc", "jemalloc", "libmesh", "libmesh/jemalloc"]
    assert lines[3].split() == ["pair/16", "15.5", "10.5", "21.0", "2.00"]
    assert "note: tcmalloc: skipped" in captured.err
    assert json.loads(out.read_text())["summary"]["allocators"][-1] == "tcmalloc"


def test_cli_positional_runs(tmp_path, capsys):
    a = tmp_path / "a.json"
    a.write_text(gbench_doc({"x": 4.0}))
    b = tmp_path / "b.json"
    b.write_text(gbench_doc({"x": 2.0}))
    rc = perf_table.main([f"mine={a}", f"theirs={b}", f"mine={a}", "--ratio", "mine/theirs"])
    lines = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert lines[0].startswith("micro-bench: median over 2 repetition(s)")
    assert lines[3].split() == ["x", "4.00", "2.00", "2.00"]


@pytest.mark.parametrize("argv", [[], ["no-equals-sign"], ["--ratio", "bad", "a=b.json"]])
def test_cli_usage_errors(argv, capsys):
    assert perf_table.main(argv) == 2


def test_cli_exit_1_without_figures(tmp_path, capsys):
    assert perf_table.main([f"a={tmp_path / 'missing.json'}"]) == 1


def test_cli_runs_as_a_script(tmp_path):
    a = tmp_path / "a.json"
    a.write_text(gbench_doc({"x": 4.0}))
    p = subprocess.run([sys.executable, os.path.join(SCRIPTS, "perf_table.py"), f"g={a}",
                        "--format", "markdown"], capture_output=True, text=True, check=True)
    assert "| x | 4.00 |" in p.stdout
