#!/usr/bin/python3
"""Fails when a file in mesh/src includes a header from a higher layer.

Layers, lowest first: platform, common, arena, miniheap, global, thread, frontend, entry.
"""
import pathlib
import re
import sys

LAYERS = ["platform", "common", "arena", "miniheap", "global", "thread", "frontend", "entry"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/[^"]+"', re.M)


def violations(src: pathlib.Path):
    for path in sorted(src.rglob("*")):
        if path.suffix not in (".h", ".cc"):
            continue
        layer = path.relative_to(src).parts[0]
        if layer not in LAYERS:
            yield f"{path}: not in a known layer"
            continue
        for target in INCLUDE.findall(path.read_text()):
            if target in LAYERS and LAYERS.index(target) > LAYERS.index(layer):
                yield f"{path}: layer '{layer}' includes higher layer '{target}'"


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
