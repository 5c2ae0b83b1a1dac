"""Facts about the machine, the toolchain and the source tree, for the result files.

Everything here degrades to None (or an empty string) instead of raising: a missing /proc file
or a tree without git must not stop a perf run.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess

# Debian packages whose version identifies each peer allocator (and glibc).
PACKAGES = {
    "glibc": "libc6",
    "jemalloc": "libjemalloc2",
    "tcmalloc": "libtcmalloc-minimal4",
    "mimalloc": "libmimalloc2.0",
}


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _run(argv: list[str], cwd: str | None = None) -> str | None:
    try:
        p = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def cpu_model(cpuinfo: str | None = None) -> str | None:
    text = _read("/proc/cpuinfo") if cpuinfo is None else cpuinfo
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("model name", "Model", "cpu model"):
            return " ".join(value.split()) or None
    return platform.processor() or None


def mem_total_mb(meminfo: str | None = None) -> int | None:
    text = _read("/proc/meminfo") if meminfo is None else meminfo
    m = re.search(r"^MemTotal:\s+(\d+)\s*kB", text, re.M)
    return int(m.group(1)) // 1024 if m else None


def os_name() -> str | None:
    m = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', _read("/etc/os-release"), re.M)
    return m.group(1) if m else None


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def compiler(build_dir: str | None) -> str | None:
    """First line of `<CXX> --version` for the compiler the build directory uses."""
    cxx = None
    if build_dir:
        m = re.search(r"^CMAKE_CXX_COMPILER:[A-Z]*=(.+)$",
                      _read(os.path.join(build_dir, "CMakeCache.txt")), re.M)
        if m:
            cxx = m.group(1).strip()
    out = _run([cxx or "c++", "--version"])
    return out.splitlines()[0] if out else None


def package_version(package: str) -> str | None:
    return _run(["dpkg-query", "-W", "-f=${Version}", package]) or None


def machine(build_dir: str | None = None) -> dict:
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = None
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "mem_total_mb": mem_total_mb(),
        "kernel": platform.release(),
        "os": os_name(),
        "arch": platform.machine(),
        "compiler": compiler(build_dir),
        "python": platform.python_version(),
    }


# What "dirty" looks at: the library's sources, not the harness (perf/, scripts/, results/).
LIBRARY_PATHS = ("mesh", "CMakeLists.txt")


def git_facts(root: str, rev: str = "HEAD") -> dict:
    """commit (12 hex digits), full hash, subject, commit_time (committer date, ISO 8601), and
    (for HEAD) whether libmesh's sources in the work tree differ from the commit (tracked files
    under LIBRARY_PATHS)."""
    full = _run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=root)
    if not full:
        return {"commit": "nogit", "commit_full": None, "subject": None, "dirty": None,
                "commit_time": None}
    when, _, subject = (_run(["git", "log", "-1", "--format=%cI%n%s", full], cwd=root)
                        or "").partition("\n")
    dirty = None
    if rev == "HEAD":
        status = _run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                       *LIBRARY_PATHS], cwd=root)
        dirty = None if status is None else bool(status)
    return {"commit": full[:12], "commit_full": full, "subject": subject or None, "dirty": dirty,
            "commit_time": when or None}
