#!/usr/bin/python3
"""Checks that docs/user-guide.md agrees with the sources it documents.

usage: scripts/check_docs.py [--fix] [--guide FILE] [--library LIBMESH_SO]
  --fix              rewrite the generated blocks of the guide instead of checking them
  --guide FILE       check FILE instead of docs/user-guide.md
  --library PATH     also run a program under this libmesh.so with MALLOCSTATS=1 and check
                     that the guide explains every line of the report
  -h, --help         show this text

Checks:
  * the environment-variable table (between the "generated:options" markers) is exactly the
    one generated from mesh/include/mesh/options.def;
  * the statistics table (between the "generated:stats" markers) is exactly the one generated
    from mesh/include/mesh/stats_fields.def;
  * every function of mesh/include/mesh/mesh.h is named in the guide;
  * with --library: every "Label:" line of the MALLOCSTATS report appears as `Label:`.
Exit status: 0 when the guide matches, 1 when it drifted (what to change is printed; --fix
repairs the generated tables), 2 on bad usage.
"""
import argparse
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs/user-guide.md"
OPTIONS_DEF = ROOT / "mesh/include/mesh/options.def"
STATS_DEF = ROOT / "mesh/include/mesh/stats_fields.def"
HEADER = ROOT / "mesh/include/mesh/mesh.h"

_STRING = r'"((?:[^"\\]|\\.)*)"'
_OPTION = re.compile(r"MESH_OPTION\(\s*(\w+)\s*,\s*" + _STRING +
                     r"\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*" + _STRING + r"\s*\)")
_STAT = re.compile(r"MESH_STAT\(\s*(\w+)\s*,\s*" + _STRING + r"\s*,\s*" + _STRING + r"\s*\)")


def _defs_text_from_string(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)  # comments
    return re.sub(r'"\s*\n\s*"', "", text)  # "split " "string literals"


def _defs_text(path: pathlib.Path) -> str:
    return _defs_text_from_string(path.read_text())


def parse_options(text: str):
    """[(name, env, default, min, max, help)] in the order of options.def."""
    return [m.groups() for m in _OPTION.finditer(text)]


def parse_stats(text: str):
    """[(name, label, description)] in the order of stats_fields.def."""
    return [m.groups() for m in _STAT.finditer(text)]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def options_table(options) -> str:
    rows = ["| variable | `mesh_set_option` name | default | range | effect |",
            "|---|---|---|---|---|"]
    for name, env, default, lo, hi, help_text in options:
        rows.append(f"| `{env}` | `{name}` | {default} | {lo}–{hi} | {_cell(help_text)} |")
    return "\n".join(rows)


def stats_table(stats) -> str:
    rows = ["| field (`mesh_stats` member, JSON key, `malloc_info` name) | label | meaning |",
            "|---|---|---|"]
    for name, label, doc in stats:
        rows.append(f"| `{name}` | {_cell(label)} | {_cell(doc)} |")
    return "\n".join(rows)


def _block_re(tag: str):
    """Group 2 is the text between the marker lines (without the newlines around it)."""
    return re.compile(r"(<!-- generated:" + tag + r" begin[^>]*-->\n)(.*?)\n?(<!-- generated:" +
                      tag + r" end -->)", re.S)


def header_functions(text: str):
    return re.findall(r"^MESH_API\b[^(;]*?\b(\w+)\s*\(", text, re.M)


def report_labels(library: pathlib.Path):
    """Labels of the MALLOCSTATS=1 report, from a real run of Python under the library (not a
    coreutils program: those close stderr before the report is written)."""
    env = dict(os.environ, LD_PRELOAD=str(library), MALLOCSTATS="1")
    proc = subprocess.run([sys.executable, "-c", "pass"], env=env, capture_output=True, text=True,
                          timeout=60)
    labels = re.findall(r"^([^:\n]+):[ \t]+\S+[ \t]*$", proc.stderr, re.M)
    return labels, proc


def check(guide_text: str, library=None):
    """Returns (problems, fixed guide text)."""
    problems = []
    fixed = guide_text
    generated = {
        "options": options_table(parse_options(_defs_text(OPTIONS_DEF))),
        "stats": stats_table(parse_stats(_defs_text(STATS_DEF))),
    }
    for tag, want in generated.items():
        block = _block_re(tag)
        m = block.search(fixed)
        if m is None:
            problems.append(f"the guide has no <!-- generated:{tag} begin --> ... "
                            f"<!-- generated:{tag} end --> block")
            continue
        if m.group(2) != want:
            problems.append(f"the {tag} table drifted from its .def file; expected:\n{want}\n"
                            f"found:\n{m.group(2)}")
            fixed = fixed[:m.start(2)] + want + "\n" + fixed[m.start(3):]

    functions = header_functions(HEADER.read_text())
    if not functions:
        problems.append(f"found no MESH_API function in {HEADER.relative_to(ROOT)}")
    for fn in functions:
        if not re.search(r"\b" + re.escape(fn) + r"\b", guide_text):
            problems.append(f"{fn}() of mesh/mesh.h is not described in the guide")

    if library is not None:
        labels, proc = report_labels(library)
        if not labels:
            problems.append(f"MALLOCSTATS=1 under {library} printed no report "
                            f"(exit {proc.returncode}):\n{proc.stderr[-1000:]}")
        for label in labels:
            if f"`{label}:`" not in guide_text:
                problems.append(f"the MALLOCSTATS report line '{label}:' is not explained "
                                f"(the guide should show it as `{label}:`)")
    return problems, fixed


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        print(f"check_docs.py: error: {message}", file=sys.stderr)
        sys.exit(2)


def main(argv) -> int:
    parser = _Parser(prog="scripts/check_docs.py", add_help=False,
                     usage="scripts/check_docs.py [--fix] [--guide FILE] [--library LIBMESH_SO]")
    parser.add_argument("--fix", action="store_true")
    parser.add_argument("--guide", type=pathlib.Path, default=GUIDE)
    parser.add_argument("--library", type=pathlib.Path)
    parser.add_argument("-h", "--help", action="store_true")
    args = parser.parse_args(argv)
    if args.help:
        print(__doc__.strip())
        return 0
    if args.library is not None and not args.library.is_file():
        parser.error(f"--library {args.library}: no such file")
    if not args.guide.is_file():
        print(f"check_docs.py: {args.guide} does not exist", file=sys.stderr)
        return 1
    text = args.guide.read_text()
    problems, fixed = check(text, args.library)
    if args.fix:
        if fixed != text:
            args.guide.write_text(fixed)
            print(f"check_docs.py: rewrote the generated tables of {args.guide}")
        problems = [p for p in problems if "drifted from its .def file" not in p]
    if problems:
        print(f"{args.guide}: {len(problems)} problem(s):")
        for p in problems:
            print(f"- {p}")
        if not args.fix and any("drifted" in p for p in problems):
            print("run scripts/check_docs.py --fix to regenerate the tables")
        return 1
    print(f"{args.guide.name} matches options.def, stats_fields.def and mesh.h")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
