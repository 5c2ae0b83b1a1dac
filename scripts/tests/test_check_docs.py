"""Tests of scripts/check_docs.py, and the check itself on docs/user-guide.md (so the guide
cannot drift from options.def, stats_fields.def and mesh.h without a failing test)."""
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts/check_docs.py"
GUIDE = ROOT / "docs/user-guide.md"
BUILD = pathlib.Path(os.environ.get("MESH_BUILD_DIR", ROOT / "build"))

sys.path.insert(0, str(ROOT / "scripts"))
import check_docs  # noqa: E402


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_user_guide_matches_the_sources():
    proc = run()
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_user_guide_explains_every_mallocstats_line():
    library = BUILD / "mesh/libmesh.so"
    if not library.exists():
        pytest.skip(f"{library} is not built (set MESH_BUILD_DIR to a build directory)")
    proc = run("--library", library)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_drifted_table_is_reported_and_fixed(tmp_path):
    guide = tmp_path / "guide.md"
    text = GUIDE.read_text()
    assert "| `MALLOCSTATS` | `stats` | 0 |" in text
    guide.write_text(text.replace("| `MALLOCSTATS` | `stats` | 0 |", "| `MALLOCSTATS` | `stats` | 1 |"))
    proc = run("--guide", guide)
    assert proc.returncode == 1
    assert "options table drifted" in proc.stdout and "--fix" in proc.stdout
    proc = run("--guide", guide, "--fix")
    assert proc.returncode == 0, proc.stdout
    assert guide.read_text() == text


def test_missing_block_and_missing_function_are_reported(tmp_path):
    guide = tmp_path / "guide.md"
    text = GUIDE.read_text()
    start = text.index("<!-- generated:stats begin")
    end = text.index("<!-- generated:stats end -->") + len("<!-- generated:stats end -->")
    guide.write_text((text[:start] + text[end:]).replace("mesh_release_free_memory", "release()"))
    proc = run("--guide", guide)
    assert proc.returncode == 1
    assert "no <!-- generated:stats begin" in proc.stdout
    assert "mesh_release_free_memory() of mesh/mesh.h" in proc.stdout
    # --fix cannot invent a missing block: still a failure.
    assert run("--guide", guide, "--fix").returncode == 1


def test_parsers_read_split_literals_and_skip_comments():
    options = check_docs.parse_options(check_docs._defs_text_from_string(
        '/* MESH_OPTION(fake, "NOPE", 1, 0, 2, "commented out") */\n'
        'MESH_OPTION(period_ms, "MESH_PERIOD_MS", 100, 0, 3600000,\n'
        '            "first half; "\n            "second half")\n'))
    assert options == [("period_ms", "MESH_PERIOD_MS", "100", "0", "3600000",
                        "first half; second half")]
    stats = check_docs.parse_stats('MESH_STAT(allocs, "Alloc Count", "calls | that returned")')
    assert check_docs.stats_table(stats).splitlines()[-1] == \
        "| `allocs` | Alloc Count | calls \\| that returned |"


def test_header_functions_are_found():
    names = check_docs.header_functions((ROOT / "mesh/include/mesh/mesh.h").read_text())
    assert "mesh_get_stats" in names and "mesh_compact" in names


def test_usage():
    proc = run("--help")
    assert proc.returncode == 0 and "usage:" in proc.stdout
    proc = run("--no-such-flag")
    assert proc.returncode == 2 and "usage:" in proc.stderr
    proc = run("--library", "/nonexistent/libmesh.so")
    assert proc.returncode == 2 and "usage:" in proc.stderr
