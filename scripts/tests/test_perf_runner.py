"""Running and measuring one program (scripts/perflib/runner.py)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from perflib import runner  # noqa: E402


def run_sh(tmp_path, script, timeout=20.0, env_extra=None):
    env = runner.child_env(None, env_extra or {})
    return runner.run(["/bin/sh", "-c", script], env, timeout, str(tmp_path / "o"),
                      str(tmp_path / "e"))


def test_exit_status_output_and_peak_rss(tmp_path):
    # Touch ~40 MiB so the peak RSS is clearly the program's own, not the launcher's.
    r = run_sh(tmp_path, "echo out; echo err >&2; "
               "/usr/bin/python3 -c 'b = bytearray(40 << 20); import time; time.sleep(0.4)'; "
               "exit 7")
    assert r.rc == 7 and not r.timed_out
    assert (tmp_path / "o").read_text() == "out\n"
    assert (tmp_path / "e").read_text() == "err\n"
    if os.access(runner.TIME, os.X_OK):
        assert r.peak_rss_kb is not None and r.peak_rss_kb > 40 * 1024
    # PSS is sampled from the direct child (sh here), so it is small but present.
    assert r.peak_pss_kb is not None and r.peak_pss_kb > 0


def test_signal_and_timeout(tmp_path):
    assert run_sh(tmp_path, "kill -SEGV $$").rc == 139
    r = run_sh(tmp_path, "sleep 30", timeout=0.3)
    assert r.timed_out and r.rc == runner.TIMEOUT_RC and r.seconds < 10


def test_preload_reaches_the_program_only(tmp_path):
    lib = tmp_path / "fake.so"
    lib.write_bytes(b"")
    env = runner.child_env(str(lib), {"EXTRA": "1"})
    r = runner.run(["/bin/sh", "-c", 'echo "pre=$LD_PRELOAD extra=$EXTRA"'], env, 20,
                   str(tmp_path / "o"), str(tmp_path / "e"))
    assert r.rc == 0
    assert (tmp_path / "o").read_text() == f"pre={lib} extra=1\n"


def test_child_env_removes_an_inherited_preload(monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", "/inherited.so")
    assert "LD_PRELOAD" not in runner.child_env(None, {})
    assert runner.child_env("/x.so", {})["LD_PRELOAD"] == "/x.so"


def test_missing_program(tmp_path):
    r = runner.run([str(tmp_path / "nope")], runner.child_env(None, {}), 5,
                   str(tmp_path / "o"), str(tmp_path / "e"))
    assert r.rc != 0


def test_reproducer_quotes():
    line = runner.reproducer(["/b/prog", "--filter=^a b$"], "/l/x.so", {"K": "v w"})
    assert line == "LD_PRELOAD=/l/x.so K='v w' /b/prog '--filter=^a b$'"
    assert runner.reproducer(["p"], None, {}) == "p"


@pytest.mark.parametrize("rc,text", [(124, "timed out"), (139, "killed by SIGSEGV"),
                                     (1, "exit 1"), (3, "exit 3 (malloc did not come from the "
                                                        "preloaded library)")])
def test_describe_rc(rc, text):
    assert runner.describe_rc(rc) == text


def test_pss_sampling_can_be_turned_off(tmp_path):
    # Programs that time their own mesh pauses run without the sampler walking their mappings.
    env = runner.child_env(None, {})
    r = runner.run(["/bin/sh", "-c", "sleep 0.3"], env, 20, str(tmp_path / "o"),
                   str(tmp_path / "e"), sample_pss=False)
    assert r.rc == 0 and r.peak_pss_kb is None


def test_pause_timing_workloads_are_not_sampled():
    from perflib import workloads
    s = workloads.Settings()
    for w in (workloads.Fragmenter(), workloads.KvStore()):
        assert all(not j.sample_pss for j in w.jobs(s, "/bin/true")), w.name
    assert all(j.sample_pss for j in workloads.TestStress().jobs(s, "/bin/true"))
