#!/usr/bin/python3
"""Fails when a file in mesh/src includes a header from a folder its folder may not include.

Folders are layers, lowest first: platform, common, arena, miniheap, meshing, global, thread,
frontend, entry. A folder includes its own headers and those of the folders ALLOWED lists for it, all of
them lower layers:
  - meshing (the mesher, pair search, write barrier, mapping budget) sits below global: the
    global heap owns a Mesher, and the mesher reaches the span lists only through the SpanLists
    interface it declares (meshing/span_lists.h), never through global/.
  - thread may not include meshing: a thread heap never meshes, it sees only the global heap.
  - frontend (the malloc/free policy over a GlobalHeap and a ThreadHeap, which tests instantiate
    too) may not include meshing either: it frees and allocates, and meshing happens behind the
    global heap or through the environment's pacing hook.
Headers under mesh/include ("mesh/...") are the public API, not a layer: anyone may include them.
"""
import pathlib
import re
import sys

ALLOWED = {
    "platform": set(),
    "common": {"platform"},
    "arena": {"common", "platform"},
    "miniheap": {"arena", "common", "platform"},
    "meshing": {"miniheap", "arena", "common", "platform"},
    "global": {"meshing", "miniheap", "arena", "common", "platform"},
    "thread": {"global", "miniheap", "arena", "common", "platform"},
    "frontend": {"thread", "global", "miniheap", "arena", "common", "platform"},
    "entry": {"frontend", "thread", "global", "meshing", "miniheap", "arena", "common", "platform"},
}
PUBLIC = "mesh"  # mesh/include/mesh/*.h
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/[^"]+"', re.M)


def violations(src: pathlib.Path):
    for path in sorted(src.rglob("*")):
        if path.suffix not in (".h", ".cc"):
            continue
        layer = path.relative_to(src).parts[0]
        if layer not in ALLOWED:
            yield f"{path}: not in a known layer"
            continue
        for target in INCLUDE.findall(path.read_text()):
            if target in (layer, PUBLIC):
                continue
            if target not in ALLOWED:
                yield f"{path}: includes '{target}/', which is no layer"
            elif target not in ALLOWED[layer]:
                yield f"{path}: layer '{layer}' may not include '{target}/'"


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: check_layering.py MESH_SRC_DIR", file=sys.stderr)
        return 2
    bad = list(violations(pathlib.Path(sys.argv[1])))
    for line in bad:
        print(line)
    print(f"layering: {len(bad)} violation(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
