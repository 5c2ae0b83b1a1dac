"""Command-line convention of every program in stress/, perf/ and scripts/:

  PROGRAM --help                     exits 0 and prints a usage text ("usage" in stdout)
  PROGRAM --definitely-not-a-flag    exits 2 and prints a usage text on stderr

Compiled programs are taken from the build directory (MESH_BUILD_DIR, default build/): every
executable in its stress/ and perf/ folders, plus every executable named in those folders'
CMakeLists.txt, which is skipped with a message when it has not been built. Scripts are every
*.sh and every *.py entry point in scripts/, stress/, perf/ and perf/classic/. Nothing is built
here, and only the two calls above are made (some programs need root or start long builds
otherwise).
"""
import os
import pathlib
import re
import signal
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("MESH_BUILD_DIR", ROOT / "build"))
PROGRAM_DIRS = ("stress", "perf")
SCRIPT_DIRS = ("scripts", "stress", "perf", "perf/classic")
BAD_FLAG = "--definitely-not-a-flag"
TIMEOUT_S = 60
USAGE = re.compile(r"usage", re.I)


# --- what to check ------------------------------------------------------------------------------

def _is_elf_executable(path: pathlib.Path) -> bool:
    if not path.is_file() or path.suffix == ".so" or not os.access(path, os.X_OK):
        return False
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def _declared_programs(cmake_lists: pathlib.Path):
    """Executables a CMakeLists.txt names literally: add_executable(NAME ...) and the entries of
    set(..._PROGRAMS ...) lists (targets created in a loop over such a list)."""
    if not cmake_lists.is_file():
        return set()
    text = re.sub(r"#[^\n]*", "", cmake_lists.read_text())
    names = set(re.findall(r"add_executable\(\s*([A-Za-z0-9_.+-]+)", text))
    for body in re.findall(r"set\(\s*\w*PROGRAMS\s+([^)]*)\)", text):
        names.update(re.findall(r"[A-Za-z0-9_.+-]+", body))
    return names


def built_program_cases():
    cases = []
    for folder in PROGRAM_DIRS:
        out = BUILD / folder
        found = {p.name for p in out.iterdir() if _is_elf_executable(p)} if out.is_dir() else set()
        for name in sorted(found | _declared_programs(ROOT / folder / "CMakeLists.txt")):
            cases.append(pytest.param(out / name, id=f"{folder}/{name}"))
    return cases


def _is_entry_point(path: pathlib.Path) -> bool:
    if path.suffix == ".sh":
        return True
    text = path.read_text(errors="replace")
    return text.startswith("#!") or re.search(r"^if __name__ == .__main__.:", text, re.M) is not None


def script_cases():
    cases = []
    for folder in SCRIPT_DIRS:
        for path in sorted((ROOT / folder).glob("*")):
            if path.suffix in (".sh", ".py") and path.is_file() and _is_entry_point(path):
                cases.append(pytest.param(path, id=f"{folder}/{path.name}"))
    return cases


def _interpreter(path: pathlib.Path):
    """How a user would start the file: its #! line, else sh or this Python."""
    first = path.read_text(errors="replace").split("\n", 1)[0]
    if first.startswith("#!"):
        return first[2:].split()
    return ["sh"] if path.suffix == ".sh" else [sys.executable]


# --- running ------------------------------------------------------------------------------------

def _run(cmd):
    """Runs cmd in its own process group (killed whole on timeout), without a terminal."""
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace",
                            start_new_session=True, cwd=ROOT)
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{' '.join(map(str, cmd))} did not finish within {TIMEOUT_S} s")
    return proc.returncode, out, err


def _show(what, code, out, err):
    return f"{what}: exit {code}\n--- stdout ---\n{out[-2000:]}\n--- stderr ---\n{err[-2000:]}"


def check_conventions(cmd):
    code, out, err = _run(cmd + ["--help"])
    shown = _show("--help", code, out, err)
    assert code == 0, shown
    assert USAGE.search(out), "--help printed no usage text on stdout\n" + shown

    code, out, err = _run(cmd + [BAD_FLAG])
    shown = _show(BAD_FLAG, code, out, err)
    assert code == 2, shown
    assert USAGE.search(err), f"{BAD_FLAG} printed no usage text on stderr\n" + shown


@pytest.mark.parametrize("program", built_program_cases())
def test_built_program(program):
    if not program.exists():
        pytest.skip(f"{program.name} is not built in {program.parent} "
                    f"(build it, or set MESH_BUILD_DIR to a build directory that has it)")
    check_conventions([str(program)])


@pytest.mark.parametrize("script", script_cases())
def test_script(script):
    check_conventions(_interpreter(script) + [str(script)])


@pytest.mark.parametrize("script", script_cases())
def test_script_is_executable(script):
    assert os.access(script, os.X_OK), f"{script.relative_to(ROOT)} is not executable (chmod +x)"


# --- the checks themselves ----------------------------------------------------------------------

def test_declared_programs_parsing(tmp_path):
    lists = tmp_path / "CMakeLists.txt"
    lists.write_text("set(STRESS_PROGRAMS\n  one\n  two  # a comment\n)\n"
                     "add_executable(three three.cc)\n"
                     "# add_executable(commented-out x.cc)\n"
                     "add_executable(${prog}-linked ${prog}.cc)\n")
    assert _declared_programs(lists) == {"one", "two", "three"}


def test_conventions_catch_a_bad_program(tmp_path):
    good = tmp_path / "good.sh"
    good.write_text('case "$1" in --help) echo "usage: good"; exit 0;;\n'
                    '*) echo "usage: good" >&2; exit 2;; esac\n')
    check_conventions(["sh", str(good)])
    bad = tmp_path / "bad.sh"
    bad.write_text('echo "usage: bad"; exit 1\n')
    with pytest.raises(AssertionError):
        check_conventions(["sh", str(bad)])
    quiet = tmp_path / "quiet.sh"
    quiet.write_text('case "$1" in --help) exit 0;; *) exit 2;; esac\n')
    with pytest.raises(AssertionError):
        check_conventions(["sh", str(quiet)])
