"""Building the programs of the perf matrix and libmesh (Release), with fallbacks.

A tree in the middle of a change must still give numbers for whatever builds:
  1. Configure the top level in BUILD and build every wanted program there.
  2. Programs that did not build (or a tree that does not configure) are retried from their own
     directory, which configures stand-alone: perf/ in BUILD/perf-standalone, stress/ in
     BUILD/stress-standalone.
  3. libmesh comes from the top-level build (target `mesh`); with a top level that does not
     configure, from BUILD/notests (tests and fuzzing off). With --rev it is built from a clean
     `git archive` of that commit in BUILD/rev-<commit>/ instead, so the figures belong to
     exactly that commit whatever the work tree holds.
A workload whose program cannot be built is left out with a note; libmesh that cannot be built
is reported as skipped. All compiler output goes to one log file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Callable

# Where each CMake target's program ends up, relative to a top-level build directory, and in
# which stand-alone subproject it can be built alone.
TARGETS = {
    "micro-bench": ("perf/micro-bench", "perf"),
    "fragmenter": ("perf/fragmenter", "perf"),
    "churn": ("perf/churn", "perf"),
    "fork-latency": ("perf/fork-latency", "perf"),
    "kvstore": ("perf/kvstore", "perf"),
    "test-stress": ("stress/test-stress", "stress"),
    "larson": ("stress/larson", "stress"),
}
# The classic tier's programs (perf/classic/, see perf/CMakeLists.txt).
CLASSIC_TARGETS = ("cfrac-like", "espresso-like", "barnes-like", "false-sharing",
                   "glibc-simple-like", "glibc-thread-like", "xmalloc-like", "malloc-large-like",
                   "mleak-like", "rptest-like", "mstress-like", "alloc-test-like")
TARGETS.update({t: (f"perf/{t}", "perf") for t in CLASSIC_TARGETS})


@dataclass
class Outcome:
    programs: dict[str, str] = field(default_factory=dict)  # target -> absolute path
    libmesh: str | None = None
    libmesh_problem: str | None = None
    notes: list[str] = field(default_factory=list)
    cmake_dir: str | None = None  # a configured build directory (for the compiler version)
    libmesh_commit: str | None = None  # set with --rev


class Builder:
    def __init__(self, root: str, build_dir: str, log_path: str,
                 log: Callable[[str], None], jobs: int = 2):
        self.root = root
        self.build_dir = build_dir
        self.log_path = log_path
        self.log = log
        self.jobs = jobs

    # --- helpers ----------------------------------------------------------------------------
    def _cmd(self, argv: list[str], cwd: str | None = None, stdin=None) -> bool:
        with open(self.log_path, "a", encoding="utf-8") as logf:
            logf.write("$ " + " ".join(argv) + "\n")
            logf.flush()
            try:
                p = subprocess.run(argv, cwd=cwd or self.root, stdout=logf,
                                   stderr=subprocess.STDOUT, stdin=stdin)
            except OSError as e:
                logf.write(f"cannot run: {e}\n")
                return False
        return p.returncode == 0

    def _configure(self, src: str, bld: str, *extra: str) -> bool:
        return self._cmd(["cmake", "-S", src, "-B", bld, "-DCMAKE_BUILD_TYPE=Release", *extra])

    def _build(self, bld: str, targets: list[str]) -> bool:
        return self._cmd(["cmake", "--build", bld, f"-j{self.jobs}", "--target", *targets])

    # --- programs -----------------------------------------------------------------------------
    def programs(self, targets: list[str], want_mesh: bool, rev: str | None) -> Outcome:
        out = Outcome()
        bd = self.build_dir
        os.makedirs(bd, exist_ok=True)
        self.log(f"configuring {bd} (Release)")
        top_ok = self._configure(self.root, bd)
        mesh_dir = bd if top_ok else None
        if top_ok:
            out.cmake_dir = bd
            if targets:
                self.log(f"building {', '.join(targets)} in {bd}")
            if targets and not self._build(bd, targets):
                for t in targets:  # which ones failed?
                    self._build(bd, [t])
            for t in targets:
                path = os.path.join(bd, TARGETS[t][0])
                if os.path.isfile(path) and os.access(path, os.X_OK):
                    out.programs[t] = os.path.abspath(path)
        else:
            out.notes.append(f"the project does not configure (cmake -S . -B {bd}); "
                             f"programs built stand-alone, see {self.log_path}")
            self.log(f"warning: {bd} does not configure; trying without tests")
            nt = os.path.join(bd, "notests")
            if self._configure(self.root, nt, "-DMESH_BUILD_TESTS=OFF", "-DMESH_BUILD_FUZZ=OFF"):
                mesh_dir = nt
                out.cmake_dir = nt

        missing = [t for t in targets if t not in out.programs]
        for sub in ("perf", "stress"):
            group = [t for t in missing if TARGETS[t][1] == sub]
            if not group:
                continue
            sbd = os.path.join(bd, f"{sub}-standalone")
            self.log(f"building {', '.join(group)} stand-alone in {sbd}")
            if self._configure(os.path.join(self.root, sub), sbd):
                out.cmake_dir = out.cmake_dir or sbd
                for t in group:
                    self._build(sbd, [t])
                    path = os.path.join(sbd, t)
                    if os.path.isfile(path) and os.access(path, os.X_OK):
                        out.programs[t] = os.path.abspath(path)
        for t in targets:
            if t not in out.programs:
                out.notes.append(f"{t} does not build (see {self.log_path}); its workload is "
                                 "left out")

        if want_mesh:
            if rev:
                self.libmesh_at(rev, out)
            elif mesh_dir is None:
                out.libmesh_problem = f"the project does not configure (log: {self.log_path})"
            else:
                self.log(f"building libmesh in {mesh_dir}")
                lib = os.path.join(mesh_dir, "mesh", "libmesh.so")
                if self._build(mesh_dir, ["mesh"]) and os.path.isfile(lib):
                    out.libmesh = os.path.realpath(lib)
                else:
                    out.libmesh_problem = (f"libmesh does not build (cmake --build {mesh_dir} "
                                           f"--target mesh; log: {self.log_path})")
        return out

    def libmesh_at(self, rev: str, out: Outcome) -> None:
        """Builds libmesh of commit REV from a clean git archive (BUILD/rev-<commit>/); sets
        out.libmesh (the library) or out.libmesh_problem, and out.libmesh_commit."""
        sha = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                             cwd=self.root, capture_output=True, text=True).stdout.strip()
        if not sha:
            out.libmesh_problem = f"--rev {rev}: no such commit"
            return
        out.libmesh_commit = sha
        base = os.path.join(self.build_dir, f"rev-{sha[:12]}")
        src, bld = os.path.join(base, "src"), os.path.join(base, "build")
        if not os.path.isfile(os.path.join(src, "CMakeLists.txt")):
            shutil.rmtree(src, ignore_errors=True)
            os.makedirs(src)
            self.log(f"exporting {sha[:12]} to {src}")
            with open(self.log_path, "a", encoding="utf-8") as logf:
                archive = subprocess.Popen(["git", "archive", "--format=tar", sha],
                                           cwd=self.root, stdout=subprocess.PIPE, stderr=logf)
                ok = self._cmd(["tar", "-x", "-C", src], stdin=archive.stdout)
                archive.stdout.close()
                ok = archive.wait() == 0 and ok
            if not ok:
                out.libmesh_problem = f"--rev {rev}: git archive failed (log: {self.log_path})"
                return
        self.log(f"building libmesh of {sha[:12]} in {bld}")
        lib = os.path.join(bld, "mesh", "libmesh.so")
        if (self._configure(src, bld, "-DMESH_BUILD_TESTS=OFF", "-DMESH_BUILD_PERF=OFF",
                            "-DMESH_BUILD_FUZZ=OFF")
                and self._build(bld, ["mesh"]) and os.path.isfile(lib)):
            out.libmesh = os.path.realpath(lib)
        else:
            out.libmesh_problem = (f"libmesh of {sha[:12]} does not build "
                                   f"(log: {self.log_path})")


def existing(build_dir: str, targets: list[str]) -> Outcome:
    """--no-build: whatever BUILD already holds (top-level layout, then stand-alone ones)."""
    out = Outcome(cmake_dir=build_dir)
    for t in targets:
        rel, sub = TARGETS[t]
        for path in (os.path.join(build_dir, rel),
                     os.path.join(build_dir, f"{sub}-standalone", t)):
            if os.path.isfile(path) and os.access(path, os.X_OK):
                out.programs[t] = os.path.abspath(path)
                break
        else:
            out.notes.append(f"{t} not found in {build_dir} (--no-build); its workload is left out")
    lib = os.path.join(build_dir, "mesh", "libmesh.so")
    if os.path.isfile(lib):
        out.libmesh = os.path.realpath(lib)
    else:
        out.libmesh_problem = f"{lib} not found (--no-build)"
    return out
