"""The committed perf history in results/: one JSON file per recorded run and history.csv.

  results/<date>-<commit>.json   the whole document of one run (see matrix.py for the schema);
                                 "-dirty" is added when libmesh's sources differed from the
                                 commit, "-2", "-3"... when the name is taken
  results/history.csv            one row per recorded run: identification columns, then one
                                 column per figure and allocator ("<figure>@<allocator>", the
                                 median) and per figure and ratio ("<figure>@libmesh/jemalloc",
                                 the median of the per-repetition ratios), and per tier the
                                 geomeans ("classic.time_geomean@<allocator>/jemalloc",
                                 "classic.pss_geomean@..."). A run with figures
                                 no earlier run had widens the header; old rows leave them empty.
"""

from __future__ import annotations

import csv
import json
import os
from typing import Any

from .matrix import SCHEMA

ID_COLUMNS = ["date", "created", "commit", "dirty", "rev", "mode", "reps", "cpu_model", "cores",
              "load_before", "result_file"]


class StoreError(ValueError):
    pass


def load(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise StoreError(f"cannot read {path}: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise StoreError(f"{path} is not JSON: {e}") from None
    if not isinstance(doc, dict) or str(doc.get("schema", "")).split("/")[0] != SCHEMA.split("/")[0]:
        raise StoreError(f"{path} is not a perf-matrix result (schema {SCHEMA})")
    doc.setdefault("figures", [])
    return doc


def save(doc: dict[str, Any], path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def result_name(doc: dict[str, Any], taken: set[str]) -> str:
    stem = f"{doc.get('date', 'undated')}-{doc.get('commit') or 'nogit'}"
    if doc.get("dirty") and not doc.get("rev"):
        stem += "-dirty"
    name, n = f"{stem}.json", 2
    while name in taken:
        name, n = f"{stem}-{n}.json", n + 1
    return name


def record(doc: dict[str, Any], results_dir: str) -> tuple[str, str]:
    """Writes the result file and appends its history row; returns both paths."""
    os.makedirs(results_dir, exist_ok=True)
    name = result_name(doc, set(os.listdir(results_dir)))
    path = os.path.join(results_dir, name)
    save(doc, path)
    hist = os.path.join(results_dir, "history.csv")
    append_history(hist, history_row(doc, name))
    return path, hist


def all_results(results_dir: str) -> list[tuple[str, dict[str, Any]]]:
    """Every result file in results_dir, oldest first (by creation time in the document)."""
    out = []
    try:
        names = sorted(os.listdir(results_dir))
    except OSError:
        return []
    for name in names:
        if not name.endswith(".json"):
            continue
        path = os.path.join(results_dir, name)
        try:
            out.append((path, load(path)))
        except StoreError:
            continue
    out.sort(key=lambda pd: (pd[1].get("created") or "", pd[0]))
    return out


def resolve(ref: str, results_dir: str, mode: str | None = None) -> tuple[str, dict[str, Any]]:
    """A reference run: a file path, 'latest', or a prefix of a commit hash or of a result file
    name in results_dir. Several matches: the newest (of the given mode, if any has it)."""
    if os.path.isfile(ref):
        return ref, load(ref)
    found = all_results(results_dir)
    if ref == "latest":
        matches = found
    else:
        low = ref.lower()
        matches = [(p, d) for p, d in found
                   if str(d.get("commit_full") or d.get("commit") or "").lower().startswith(low)
                   or os.path.basename(p).lower().startswith(low)]
    if mode:
        same = [(p, d) for p, d in matches if d.get("mode") == mode]
        matches = same or matches
    if not matches:
        where = f"in {results_dir}" if found else f"({results_dir} holds no result)"
        raise StoreError(f"no result matches '{ref}' {where}")
    return matches[-1]


# --- history.csv -------------------------------------------------------------------------------

def history_row(doc: dict[str, Any], result_file: str) -> dict[str, str]:
    m = doc.get("machine") or {}
    load = m.get("load_before")
    row = {
        "date": doc.get("date", ""),
        "created": doc.get("created", ""),
        "commit": doc.get("commit") or "",
        "dirty": "" if doc.get("dirty") is None else str(bool(doc.get("dirty"))).lower(),
        "rev": doc.get("rev") or "",
        "mode": doc.get("mode", ""),
        "reps": str(doc.get("reps", "")),
        "cpu_model": m.get("cpu_model") or "",
        "cores": str(m.get("cores") or ""),
        "load_before": f"{load[0]:.2f}" if load else "",
        "result_file": result_file,
    }
    for f in doc.get("figures", []):
        for alloc, value in f.get("median", {}).items():
            row[f"{f['name']}@{alloc}"] = _num(value)
        for label, r in f.get("ratios", {}).items():
            row[f"{f['name']}@{label}"] = _num(r.get("median"))
    for tier, summary in (doc.get("tiers") or {}).items():
        for key in ("time_geomean", "pss_geomean"):
            for alloc, value in summary.get(key, {}).items():
                row[f"{tier}.{key}@{alloc}/{summary['peer']}"] = _num(value)
    return row


def _num(v: Any) -> str:
    return "" if v is None else f"{float(v):.6g}"


def read_history(path: str) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = [dict(r) for r in reader]
            return list(reader.fieldnames or []), rows
    except FileNotFoundError:
        return [], []


def append_history(path: str, row: dict[str, str],
                   first_columns: list[str] | None = None) -> None:
    append_rows(path, [row], first_columns)


def append_rows(path: str, new_rows: list[dict[str, str]],
                first_columns: list[str] | None = None) -> None:
    """Appends rows to a CSV history; a new file starts with first_columns (default: those of
    history.csv), and columns no earlier row had widen the header (the file is rewritten)."""
    old_header, rows = read_history(path)
    header = old_header or list(first_columns or ID_COLUMNS)
    new_cols = [k for r in new_rows for k in r if k not in header]
    new_cols = list(dict.fromkeys(new_cols))
    if new_cols or not old_header:  # new file, or a wider header: rewrite it whole
        header = header + new_cols
        tmp = path + ".tmp"
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=header, restval="")
            w.writeheader()
            for r in rows + new_rows:
                w.writerow({k: r.get(k, "") for k in header})
        os.replace(tmp, path)
        return
    with open(path, "a", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=header, restval="")
        for r in new_rows:
            w.writerow({k: r.get(k, "") for k in header})
