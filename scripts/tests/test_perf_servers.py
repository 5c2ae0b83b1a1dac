"""The real-program workloads: the RESP client and the value checks (scripts/perflib/resp.py),
the driver's checks (scripts/perflib/servers.py), perf/pyheap.py, and tiny real runs when
Debian's redis-server (and a built libmesh) are there."""

import json
import os
import shutil
import socket
import subprocess
import sys
import threading

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from perflib import matrix, resp, servers, workloads  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(ROOT, "scripts")
REDIS = shutil.which("redis-server")
BUILD = os.environ.get("MESH_BUILD_DIR", os.path.join(ROOT, "build"))
LIBMESH = os.path.join(BUILD, "mesh", "libmesh.so")
needs_redis = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed "
                                 "(scripts/install-deps.sh installs it)")


# --- RESP ---------------------------------------------------------------------------------------

def test_encode():
    assert resp.encode(b"SET", "k", 12) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n"
    assert resp.encode(b"GET", b"") == b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n"


def test_reader_every_reply_type_fed_byte_by_byte():
    wire = (b"+OK\r\n-ERR wrong\r\n:42\r\n$5\r\nhe\r\nl\r\n$-1\r\n*3\r\n$1\r\na\r\n$-1\r\n:7\r\n"
            b"*-1\r\n*0\r\n")
    r = resp.Reader()
    got = []
    for i in range(len(wire)):
        r.feed(wire[i:i + 1])
        while (v := r.get()) is not resp.Reader.NEED:
            got.append(v)
    assert got[0] == b"OK"
    assert isinstance(got[1], resp.RespError) and str(got[1]) == "ERR wrong"
    assert got[2:] == [42, b"he\r\nl", None, [b"a", None, 7], None, []]


def test_reader_rejects_a_broken_bulk_string():
    r = resp.Reader()
    r.feed(b"$2\r\nabcd\r\n")
    with pytest.raises(resp.ProtocolError):
        r.get()


def test_values_are_derived_from_id_and_version():
    sizes = set()
    for k in range(2000):
        v = resp.value_for(k, 1)
        assert 64 <= len(v) <= 512 and v.startswith(b"%d/1:" % k)
        assert v == resp.value_for(k, 1)
        assert v != resp.value_for(k, 2) and v != resp.value_for(k + 1, 1)
        sizes.add(len(v))
    assert min(sizes) < 100 and max(sizes) > 470  # spread over the whole range
    assert len(resp.value_for(5, 3, 16, 16)) == 16


def test_key_book_detects_a_wrong_value():
    book = resp.KeyBook(10)
    book.set_command(3, 1)
    book.set_command(4, 2)
    assert book.check(3, resp.value_for(3, 1)) is None
    assert book.check(4, resp.value_for(4, 2)) is None
    assert book.check(4, resp.value_for(4, 1)) is not None  # an older version
    assert book.check(3, resp.value_for(4, 2)) is not None  # another key's value
    flipped = bytearray(resp.value_for(3, 1))
    flipped[-1] ^= 1
    m = book.check(3, bytes(flipped))
    assert m is not None and "k:00000003" in m.describe()
    assert book.check(3, None) is not None  # the key is gone
    book.del_command(3)
    assert book.check(3, None) is None and book.check(3, b"x") is not None
    assert book.check(4, resp.value_for(4, 1), version=1) is None
    assert book.live_ids() == [4]


class FakeRedis:
    """A RESP server on a Unix socket with SET/GET/MGET/DEL/DBSIZE over a dict, for the client
    tests; `data` can be changed behind the client's back."""

    def __init__(self, path):
        self.data = {}
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _reply(self, v):
        if v is None:
            return b"$-1\r\n"
        if isinstance(v, int):
            return b":%d\r\n" % v
        if isinstance(v, list):
            return b"*%d\r\n" % len(v) + b"".join(self._reply(x) for x in v)
        return b"$%d\r\n%s\r\n" % (len(v), v)

    def _serve(self):
        conn, _ = self.sock.accept()
        reader = resp.Reader()
        while True:
            data = conn.recv(65536)
            if not data:
                return
            reader.feed(data)
            out = []
            while (cmd := reader.get()) is not resp.Reader.NEED:
                name, args = cmd[0].upper(), cmd[1:]
                if name == b"SET":
                    self.data[args[0]] = args[1]
                    out.append(b"+OK\r\n")
                elif name == b"GET":
                    out.append(self._reply(self.data.get(args[0])))
                elif name == b"MGET":
                    out.append(self._reply([self.data.get(k) for k in args]))
                elif name == b"DEL":
                    out.append(self._reply(int(self.data.pop(args[0], None) is not None)))
                elif name == b"DBSIZE":
                    out.append(self._reply(len(self.data)))
                else:
                    out.append(b"-ERR unknown command\r\n")
            conn.sendall(b"".join(out))


@pytest.fixture
def fake_server(tmp_path):
    path = str(tmp_path / "fake.sock")
    srv = FakeRedis(path)
    client = resp.Client.unix(path, timeout=10)
    book = resp.KeyBook(300)
    resp.check_replies("SET", client.pipeline([book.set_command(k, 1) for k in range(300)]),
                       b"OK")
    resp.check_replies("DEL", client.pipeline([book.del_command(k) for k in range(0, 300, 3)]),
                       1)
    yield srv, client, book
    client.close()


def test_verify_all_passes_on_intact_data(fake_server):
    _, client, book = fake_server
    checked, bad = resp.verify_all(client, book, batch=64)
    assert checked == 200 and bad == []


def test_verify_all_catches_a_corrupted_value(fake_server):
    srv, client, book = fake_server
    srv.data[resp.key_name(7)] = resp.value_for(8, 1)
    _, bad = resp.verify_all(client, book, batch=64)
    assert [m.key_id for m in bad] == [7]


def test_verify_all_catches_a_lost_key_a_resurrected_key_and_the_count(fake_server):
    srv, client, book = fake_server
    del srv.data[resp.key_name(1)]
    srv.data[resp.key_name(3)] = b"zombie"  # key 3 was deleted
    _, bad = resp.verify_all(client, book, batch=64)
    ids = sorted(m.key_id for m in bad)
    assert ids == [1, 3]  # DBSIZE is right again: one lost, one back
    srv.data[resp.key_name(9999)] = b"extra"
    _, bad = resp.verify_all(client, book, batch=64)
    assert any(m.key_id == -1 and "DBSIZE" in m.describe() for m in bad)


def test_check_replies():
    resp.check_replies("SET", [b"OK", b"OK"], b"OK")
    with pytest.raises(resp.RespError):
        resp.check_replies("SET", [b"OK", resp.RespError("OOM")], b"OK")
    with pytest.raises(resp.RespError):
        resp.check_replies("DEL", [1, 0], 1)


def test_parse_info():
    info = resp.parse_info(b"# Memory\r\nused_memory:1024\r\nmem_allocator:jemalloc-5.3.0\r\n")
    assert info == {"used_memory": "1024", "mem_allocator": "jemalloc-5.3.0"}


# --- the driver's checks ----------------------------------------------------------------------

BINDINGS = """\
      8800:\tbinding file /usr/bin/redis-server [0] to /lib/libjemalloc.so.2 [0]: normal symbol `mallctl'
      8800:\tbinding file /usr/bin/redis-server [0] to /x/libmesh.so [0]: normal symbol `malloc'
      8800:\tbinding file /usr/bin/redis-server [0] to /usr/bin/redis-server [0]: normal symbol `free'
      8800:\tbinding file /usr/bin/redis-server [0] to /x/libmesh.so [0]: normal symbol `free' [GLIBC_2.2.5]
      8800:\tbinding file /lib/libc.so.6 [0] to /lib/libc.so.6 [0]: normal symbol `malloc'
"""


def test_parse_bindings_keeps_the_programs_own_references():
    found = servers.parse_bindings(BINDINGS, "/usr/bin/redis-server")
    assert found == {"malloc": {"/x/libmesh.so"}, "free": {"/x/libmesh.so"}}


def test_check_bindings_with_the_real_loader():
    env = servers.program_env(None, {})
    found = servers.check_bindings([servers.PYTHON, "-c", "pass"], env, "libc.so")
    assert "malloc" in found
    with pytest.raises(servers.WrongAllocator, match="does not bind"):
        servers.check_bindings([servers.PYTHON, "-c", "pass"], env, "libmesh")


@pytest.mark.skipif(not os.path.isfile(LIBMESH), reason=f"{LIBMESH} is not built")
def test_check_bindings_sees_a_preload():
    env = servers.program_env(os.path.realpath(LIBMESH), {"PYTHONMALLOC": "malloc"})
    found = servers.check_bindings([servers.PYTHON, "-c", "pass"], env, "libmesh")
    assert all("libmesh" in t for targets in found.values() for t in targets)


def test_parse_mesh_report():
    text = ("noise\nMESH COUNT:             2275\nMeshed MB (total):      8.8\n"
            "MH Alloc Count:         12504\nBytes In Use:           5189120\n"
            "Mappings:               4189\nMesh Pause Max ms:      7.785\n"
            "Mesh Pause p99 ms:      1.250\nMesh Waits:             908\n"
            "Mesh Wait Max ms:       3.287\nMesh Wait p99 ms:       2.621\n")
    assert servers.parse_mesh_report(text) == {
        "mesh_count": 2275.0, "meshed_mb": 8.8, "mh_alloc_count": 12504.0,
        "bytes_in_use": 5189120.0, "report_maps": 4189.0, "mesh_pause_max_ms": 7.785,
        "mesh_pause_p99_ms": 1.25, "mesh_wait_max_ms": 3.287, "mesh_wait_p99_ms": 2.621}
    assert servers.parse_mesh_report("nothing") == {}


def test_redis_jemalloc_statistics_tell_who_serves_malloc():
    big = str(100 << 20)
    servers._check_jemalloc_stats({"used_memory": big, "allocator_allocated": "30000"},
                                  "libmesh")
    servers._check_jemalloc_stats({"used_memory": big, "allocator_allocated": big},
                                  "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
    with pytest.raises(servers.WrongAllocator):
        servers._check_jemalloc_stats({"used_memory": big, "allocator_allocated": big},
                                      "libmesh")
    with pytest.raises(servers.WrongAllocator):
        servers._check_jemalloc_stats({"used_memory": big, "allocator_allocated": "30000"},
                                      "libjemalloc")
    servers._check_jemalloc_stats({"used_memory": "1000", "allocator_allocated": "1000"},
                                  "libmesh")  # too small to tell


def test_libmesh_runs_need_the_report():
    class A:
        allocator = "libmesh"
    with pytest.raises(servers.WrongAllocator, match="no MALLOCSTATS"):
        servers._check_report({}, A())
    with pytest.raises(servers.WrongAllocator, match="bytes at exit"):
        servers._check_report({"mh_alloc_count": 5, "bytes_in_use": 10}, A(), used_kb=1000)
    servers._check_report({"mh_alloc_count": 5, "bytes_in_use": 10 << 20}, A(), used_kb=1000)
    A.allocator = "jemalloc"
    servers._check_report({}, A())


def test_exit_statuses(monkeypatch, capsys):
    def wrong(args):
        raise servers.WrongAllocator("nope")

    def failed(args):
        raise servers.RunFailed("bad value")

    monkeypatch.setattr(servers, "run_cpython", wrong)
    assert servers.main(["cpython"]) == servers.EXIT_WRONG_ALLOCATOR
    assert "not serving malloc" in capsys.readouterr().err
    monkeypatch.setattr(servers, "run_cpython", failed)
    assert servers.main(["cpython"]) == servers.EXIT_FAILED
    monkeypatch.setattr(servers, "run_cpython", lambda args: {"idle_pss_kb": 5.0, "x": "y"})
    assert servers.main(["cpython"]) == 0
    assert capsys.readouterr().out == "idle_pss_kb=5\nx=y\n"
    with pytest.raises(SystemExit) as e:
        servers.main(["redis", "--keys", "0"])
    assert e.value.code == 2
    assert servers.main(["redis", "--server", "/nonexistent/redis-server"]) == 1


def test_monitor_samples_and_marks_phases():
    import time
    mon = servers.Monitor(os.getpid(), 0.01)
    mon.point("start")
    time.sleep(0.08)
    rec = mon.point("end", used_kb=1.0)
    mon.stop()
    s = mon.series("w", "a")
    assert rec["pss_kb"] > 0 and rec["maps"] > 0 and rec["used_kb"] == 1.0
    assert len(s["t"]) >= 4 and len(s["t"]) == len(s["pss_kb"])
    assert [p[0] for p in s["phases"]] == ["start", "end"]
    assert mon.peak_kb() == max(s["pss_kb"])
    main = servers.cpu_ns(os.getpid())
    assert main > 0 and servers.cpu_ns(os.getpid(), main_thread_only=False) >= main


# --- perf/pyheap.py ---------------------------------------------------------------------------

def test_pyheap_values_and_a_standalone_run():
    sys.path.insert(0, os.path.join(ROOT, "perf"))
    import pyheap
    kinds = {type(pyheap.make(i, 1)) for i in range(64)}
    assert kinds == {str, bytes, tuple, list}
    assert all(pyheap.make(i, 1) == pyheap.make(i, 1) for i in range(64))
    assert all(pyheap.make(i, 1) != pyheap.make(i, 2) for i in range(64))
    p = subprocess.run([servers.PYTHON, os.path.join(ROOT, "perf", "pyheap.py"), "--objects",
                        "4000", "--serve-seconds", "0.1", "--idle-seconds", "0"],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONMALLOC="malloc"))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert [ln for ln in lines if ln.startswith("phase")] == [
        "phase built", "phase dropped", "phase served", "phase idle", "phase verified"]
    assert "verify_errors=0" in lines and any(ln.startswith("dropped_pss_kb=") for ln in lines)
    live = int([ln for ln in lines if ln.startswith("live_objects=")][0].split("=")[1])
    assert 800 < live < 1200  # about a quarter


# --- the matrix side ----------------------------------------------------------------------------

def test_workload_parameters_and_allocator_arguments():
    quick, full = workloads.Settings(quick=True), workloads.Settings()
    r, c = workloads.BY_NAME["redis"], workloads.BY_NAME["cpython"]
    assert r.params(quick)[:2] == ["--keys", "50000"] and r.params(full)[:2] == ["--keys", "500000"]
    assert c.params(quick)[:2] == ["--objects", "50000"]
    job = r.jobs(full, "/usr/bin/redis-server")[0]
    assert job.driver and not job.sample_pss
    assert job.argv[:4] == [workloads.PYTHON, "-m", "perflib.servers", "redis"]
    assert job.env["PYTHONPATH"] == workloads.SCRIPTS_DIR
    # Redis links jemalloc: glibc must be preloaded to be measured at all.
    g = r.allocator_args("glibc", None)
    assert g[0].startswith("--preload=/") and g[0].endswith("libc.so.6")
    assert "--expect=libc.so" in g
    assert c.allocator_args("glibc", None)[:2] == ["--preload=", "--expect=libc.so"]
    assert r.allocator_args("libmesh", "/b/libmesh.so") == [
        "--preload=/b/libmesh.so", "--expect=/b/libmesh.so", "--allocator=libmesh"]


def test_redis_figures():
    w = workloads.BY_NAME["redis"]
    out = {"deleted_pss_kb": 2048, "served_pss_kb": 1024, "idle_pss_kb": 512,
           "server_peak_pss_kb": 4096, "full_pss_kb": 4096, "op_cpu_ns": 1500,
           "client_ns_per_op": 9000, "used_memory_kb": 1024, "maps": 300, "mesh_count": 4,
           "mesh_pause_max_ms": 1.5, "peak_pss_kb": 99999}
    figs = w.figures(out, "libmesh")
    assert figs["redis.deleted_pss_mb"] == 2.0 and figs["redis.idle_pss_mb"] == 0.5
    assert figs["redis.peak_pss_mb"] == 4.0  # the driver's sample of the server, not Python's
    assert figs["redis.op_cpu_ns"] == 1500 and figs["redis.mesh_count"] == 4
    assert "redis.mesh_count" not in w.figures(out, "jemalloc")
    assert workloads.metric_of("redis.op_cpu_ns").kind == "time"
    assert workloads.metric_of("cpython.idle_pss_mb").kind == "memory"


FAKE_DRIVER = r'''
import json, os, sys
args = dict(a.split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
assert "LD_PRELOAD" not in os.environ, "the driver must not be preloaded"
with open(args["--series-out"], "w") as f:
    json.dump({"t": [0.0, 0.5, 1.0], "pss_kb": [1024, 4096, 2048],
               "phases": [["deleted", 0.4], ["served", 0.8], ["idle", 1.0]]}, f)
base = 2048 if args["--allocator"] == "libmesh" else 4096
print(f"deleted_pss_kb={base}\nserved_pss_kb={base}\nidle_pss_kb={base}\nop_cpu_ns=1000")
print("preload=" + args["--preload"])
'''


def test_matrix_runs_a_driver_without_preload_and_keeps_the_series(tmp_path, monkeypatch):
    fake = tmp_path / "driver.py"
    fake.write_text(FAKE_DRIVER)

    class FakeRedis(workloads.Redis):
        def locate(self, programs):
            return "/bin/true"

        def jobs(self, s, program):
            job = super().jobs(s, program)[0]
            job.argv = [sys.executable, str(fake)]
            return [job]

    w = FakeRedis()
    monkeypatch.setitem(workloads.BY_NAME, "redis", w)
    allocs = [matrix.Allocator("jemalloc", "/l/libjemalloc.so.2"),
              matrix.Allocator("libmesh", "/b/libmesh.so")]
    plan = matrix.Plan(workloads.Settings(quick=True), [w], {}, allocs, 2, str(tmp_path))
    mx = matrix.Matrix(plan, lambda m: None)
    mx.run()
    assert not [r.problem for r in mx.runs if r.problem]
    rec = [r for r in mx.runs if r.allocator == "libmesh"][0]
    assert rec.figures["redis.served_pss_mb"] == 2.0 and rec.series["pss_kb"][1] == 4096
    assert "preload=/b/libmesh.so" in open(rec.stdout).read()
    assert "LD_PRELOAD" not in rec.reproducer and "--preload=/b/libmesh.so" in rec.reproducer
    series = matrix.series_entries(mx.runs)
    assert set(series["redis"]) == {"jemalloc", "libmesh"}
    assert series["redis"]["libmesh"]["rep"] == 2
    assert series["redis"]["libmesh"]["pss_mb"] == [1.0, 4.0, 2.0]
    from perflib import plots
    doc = {"series": series, "commit": "abc", "date": "2026-01-01", "mode": "quick",
           "workloads": {"redis": {"params": ["--keys", "1"]}}}
    pngs = plots.timeline_plots(doc, str(tmp_path / "plots"))
    assert [os.path.basename(p) for p in pngs] == ["timeline-redis.png"]
    with open(pngs[0], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_missing_program_leaves_the_workload_out(tmp_path, monkeypatch):
    class Gone(workloads.CPython):
        system_program = "/nonexistent/python3"

    w = Gone()
    plan = matrix.Plan(workloads.Settings(quick=True), [w], {}, [matrix.Allocator("glibc", None)],
                       1, str(tmp_path))
    mx = matrix.Matrix(plan, lambda m: None)
    assert mx.jobs == [] and any("cpython: left out" in n for n in mx.notes)


# --- tiny real runs -----------------------------------------------------------------------------

def _drive(workload, *extra, tmp_path):
    series = tmp_path / f"{workload}.json"
    argv = [servers.PYTHON, "-m", "perflib.servers", workload, "--serve-seconds", "0.3",
            "--idle-seconds", "0.2", "--sample-ms", "50", f"--series-out={series}", *extra]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=SCRIPTS))
    doc = json.loads(series.read_text()) if series.exists() else {}
    return p, workloads.parse_key_values(p.stdout), doc


@needs_redis
def test_redis_smoke_on_glibc_under_debians_redis(tmp_path):
    p, values, series = _drive("redis", "--keys", "3000", "--bench-seconds", "0.2",
                               f"--preload={servers.libc_path()}", "--expect=libc.so",
                               "--allocator=glibc", tmp_path=tmp_path)
    assert p.returncode == 0, p.stderr
    assert values["verify_errors"] == 0 and values["verified_keys"] == 750
    assert values["deleted_pss_kb"] > 1000 and values["op_cpu_ns"] > 0
    assert [ph[0] for ph in series["phases"]] == [
        "start", "loaded", "deleted", "served", "idle", "bench", "verified"]


@needs_redis
def test_redis_run_fails_loudly_when_the_preload_is_not_used(tmp_path):
    # No preload: Debian's Redis keeps its own jemalloc, which is not what --expect names.
    p, _, _ = _drive("redis", "--keys", "1000", "--expect=libmesh", "--allocator=libmesh",
                     tmp_path=tmp_path)
    assert p.returncode == servers.EXIT_WRONG_ALLOCATOR
    assert "not serving malloc" in p.stderr and "libjemalloc" in p.stderr


@needs_redis
@pytest.mark.skipif(not os.path.isfile(LIBMESH), reason=f"{LIBMESH} is not built")
def test_redis_smoke_under_libmesh(tmp_path):
    p, values, _ = _drive("redis", "--keys", "5000", "--bench-seconds", "0.2",
                          f"--preload={os.path.realpath(LIBMESH)}", "--allocator=libmesh",
                          tmp_path=tmp_path)
    assert p.returncode == 0, p.stderr
    assert values["verify_errors"] == 0 and "mesh_count" in values
    assert values["bytes_in_use"] > 0


def test_real_redis_value_checks_catch_a_changed_value(tmp_path):
    if REDIS is None:
        pytest.skip("redis-server is not installed")
    sock = str(tmp_path / "r.sock")
    proc = subprocess.Popen([REDIS, "--port", "0", "--unixsocket", sock, "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path), "--logfile", ""],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import time
        for _ in range(500):
            try:
                client = resp.Client.unix(sock, timeout=10)
                break
            except OSError:
                time.sleep(0.02)
        else:
            pytest.fail("redis-server did not start")
        book = resp.KeyBook(100)
        client.pipeline([book.set_command(k, 1) for k in range(100)])
        assert resp.verify_all(client, book)[1] == []
        client.call(b"SETRANGE", resp.key_name(42), 10, b"X")  # one byte changed in Redis
        _, bad = resp.verify_all(client, book)
        assert [m.key_id for m in bad] == [42]
        client.close()
    finally:
        proc.kill()
        proc.wait()


def test_cpython_smoke_on_glibc(tmp_path):
    p, values, series = _drive("cpython", "--objects", "4000", "--allocator=glibc",
                               tmp_path=tmp_path)
    assert p.returncode == 0, p.stderr
    assert values["verify_errors"] == 0 and values["verified"] > 0
    assert values["dropped_pss_kb"] > 1000
    assert [ph[0] for ph in series["phases"]] == [
        "start", "built", "dropped", "served", "idle", "verified"]
