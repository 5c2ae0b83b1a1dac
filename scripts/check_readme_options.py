#!/usr/bin/python3
"""Checks that the README's environment-variable table matches mesh/include/mesh/options.def.

usage: scripts/check_readme_options.py [--print] [--help]
  --print   print the table generated from options.def instead of checking
  --help    show this text
Exit status: 0 when they match, 1 when they drift (a diff is printed), 2 on bad usage.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OPTION = re.compile(
    r'MESH_OPTION\(\s*(\w+),\s*"(\w+)",\s*(-?\d+),\s*(-?\d+),\s*(-?\d+),\s*"((?:[^"\\]|\\.)*)"\s*\)',
    re.S)


def options(defs_text: str):
    text = re.sub(r'"\s*\n\s*"', "", defs_text)  # join split string literals
    return [m.groups() for m in OPTION.finditer(text)]


def table(defs_text: str) -> str:
    rows = ["| variable | default | range | effect |", "|---|---|---|---|"]
    for _name, env, default, lo, hi, help_text in options(defs_text):
        rows.append(f"| `{env}` | {default} | {lo}–{hi} | {help_text} |")
    return "\n".join(rows)


def readme_table(readme_text: str) -> str:
    m = re.search(r"<!-- options-table:begin[^>]*-->\n(.*?)\n<!-- options-table:end -->", readme_text, re.S)
    return m.group(1) if m else ""


def main(argv) -> int:
    if argv in (["--help"], ["-h"]):
        print(__doc__)
        return 0
    if argv not in ([], ["--print"]):
        print(__doc__, file=sys.stderr)
        return 2
    defs = (ROOT / "mesh/include/mesh/options.def").read_text()
    want = table(defs)
    if argv == ["--print"]:
        print(want)
        return 0
    have = readme_table((ROOT / "README.md").read_text())
    if have == want:
        print(f"README options table matches options.def ({len(options(defs))} options)")
        return 0
    print("README options table drifted from options.def; expected:\n" + want + "\n\nfound:\n" + have)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
