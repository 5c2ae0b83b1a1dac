"""Tests of scripts/setup-max-map-count.sh against a fake /proc/sys and a fake sysctl.

The real system is never touched: every run points MESH_PROC_SYS_DIR, MESH_SYSCTL,
MESH_SYSCTL_D and MESH_FAKE_UID into tmp_path.
"""
import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "setup-max-map-count.sh"

FAKE_SYSCTL = """#!/bin/sh
# Records its arguments and applies "-w vm.max_map_count=V" to the fake proc file.
echo "$@" >> "{log}"
[ -n "{fail}" ] && exit 1
case "$2" in
  vm.max_map_count=*) echo "${{2#vm.max_map_count=}}" > "{proc}" ;;
esac
"""


class Env:
    """A fake system: proc file, sysctl stand-in with a call log, sysctl.d directory."""

    def __init__(self, tmp_path, current=65530, uid=0, sysctl_fails=False):
        self.proc_dir = tmp_path / "proc-sys"
        (self.proc_dir / "vm").mkdir(parents=True)
        self.proc_file = self.proc_dir / "vm" / "max_map_count"
        self.proc_file.write_text(f"{current}\n")
        self.log = tmp_path / "sysctl.log"
        self.sysctl = tmp_path / "fake-sysctl"
        self.sysctl.write_text(FAKE_SYSCTL.format(log=self.log, proc=self.proc_file,
                                                  fail="yes" if sysctl_fails else ""))
        self.sysctl.chmod(0o755)
        self.sysctl_d = tmp_path / "sysctl.d"
        self.uid = uid

    def run(self, *args):
        env = dict(os.environ,
                   MESH_PROC_SYS_DIR=str(self.proc_dir),
                   MESH_SYSCTL=str(self.sysctl),
                   MESH_SYSCTL_D=str(self.sysctl_d),
                   MESH_FAKE_UID=str(self.uid))
        return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True,
                              text=True, timeout=30)

    def sysctl_calls(self):
        return self.log.read_text().splitlines() if self.log.exists() else []

    def current(self):
        return int(self.proc_file.read_text())


@pytest.fixture
def fake(tmp_path):
    return Env(tmp_path)


def test_help_exits_zero_with_usage(fake):
    r = fake.run("--help")
    assert r.returncode == 0
    assert "usage:" in r.stdout
    assert "--persist" in r.stdout and "--check" in r.stdout
    assert fake.sysctl_calls() == []


def test_bad_flag_prints_usage_and_exits_2(fake):
    r = fake.run("--frobnicate")
    assert r.returncode == 2
    assert "usage:" in r.stderr
    assert fake.sysctl_calls() == []


def test_two_values_are_a_usage_error(fake):
    r = fake.run("100000", "200000")
    assert r.returncode == 2
    assert "usage:" in r.stderr


@pytest.mark.parametrize("bad", ["abc", "0", "-5", "12x", "99999999999", "2147483648", ""])
def test_bad_value_is_an_error(fake, bad):
    r = fake.run(bad)
    assert r.returncode == 1
    assert "positive integer" in r.stderr
    assert fake.sysctl_calls() == []
    assert fake.current() == 65530


def test_sets_default_value_as_root(fake):
    r = fake.run()
    assert r.returncode == 0, r.stderr
    assert "current 65530" in r.stdout
    assert "target 1000000" in r.stdout
    assert fake.sysctl_calls() == ["-w vm.max_map_count=1000000"]
    assert fake.current() == 1000000
    assert "set to 1000000" in r.stdout


def test_sets_given_value(fake):
    r = fake.run("262144")
    assert r.returncode == 0, r.stderr
    assert "target 262144" in r.stdout
    assert fake.sysctl_calls() == ["-w vm.max_map_count=262144"]
    assert fake.current() == 262144


def test_leading_zeros_are_decimal(fake):
    r = fake.run("0100000")
    assert r.returncode == 0, r.stderr
    assert fake.sysctl_calls() == ["-w vm.max_map_count=100000"]


def test_does_not_lower_a_higher_value(tmp_path):
    fake = Env(tmp_path, current=2000000)
    r = fake.run()
    assert r.returncode == 0, r.stderr
    assert "already" in r.stdout
    assert fake.sysctl_calls() == []
    assert fake.current() == 2000000


def test_not_root_is_an_error(tmp_path):
    fake = Env(tmp_path, uid=1000)
    r = fake.run()
    assert r.returncode == 1
    assert "root" in r.stderr
    assert "current 65530" in r.stdout  # still shows the current value
    assert fake.sysctl_calls() == []
    assert fake.current() == 65530


def test_check_below_target_exits_1_without_changing(fake):
    r = fake.run("--check")
    assert r.returncode == 1
    assert "current 65530" in r.stdout
    assert fake.sysctl_calls() == []
    assert fake.current() == 65530


def test_check_at_target_exits_0(tmp_path):
    fake = Env(tmp_path, current=1000000)
    r = fake.run("--check")
    assert r.returncode == 0
    assert fake.sysctl_calls() == []


def test_check_with_value_and_without_root(tmp_path):
    fake = Env(tmp_path, current=65530, uid=1000)
    assert fake.run("60000", "--check").returncode == 0
    assert fake.run("--check", "70000").returncode == 1
    assert fake.sysctl_calls() == []


def test_persist_writes_sysctl_d_file(fake):
    r = fake.run("500000", "--persist")
    assert r.returncode == 0, r.stderr
    conf = fake.sysctl_d / "90-libmesh-max-map-count.conf"
    assert conf.exists()
    lines = [l for l in conf.read_text().splitlines() if not l.startswith("#")]
    assert lines == ["vm.max_map_count = 500000"]
    assert fake.current() == 500000


def test_persist_needs_root(tmp_path):
    fake = Env(tmp_path, uid=1000)
    r = fake.run("--persist")
    assert r.returncode == 1
    assert not (fake.sysctl_d / "90-libmesh-max-map-count.conf").exists()


def test_sysctl_failure_is_reported(tmp_path):
    fake = Env(tmp_path, sysctl_fails=True)
    r = fake.run()
    assert r.returncode == 1
    assert "failed" in r.stderr
    assert fake.current() == 65530


def test_missing_proc_file_is_an_error(fake):
    fake.proc_file.unlink()
    r = fake.run("--check")
    assert r.returncode == 1
    assert "cannot read" in r.stderr
