"""The readable table of a perf-matrix document (fresh or loaded from results/)."""

from __future__ import annotations

from typing import Any

from . import palette, stats, table

LEGEND = ("every figure: lower is better. Cells are medians over the repetitions; 'libmesh "
          "range' is libmesh's min-max. libmesh/peer ratios are formed per repetition, then "
          "reduced to the median [min-max]; below 1 means libmesh did better.")


CANONICAL = palette.ORDER


def allocators_with_data(doc: dict[str, Any]) -> list[str]:
    """Allocators with at least one figure: the usual peers first, libmesh last, then others."""
    seen = {a for f in doc.get("figures", []) for a in f.get("median", {})}
    given = [a["name"] for a in doc.get("allocators", [])] + sorted(seen)
    order = [a for a in CANONICAL if a in seen]
    order += [a for a in dict.fromkeys(given) if a in seen and a not in CANONICAL]
    return order


def caption(doc: dict[str, Any]) -> list[str]:
    m = doc.get("machine") or {}
    commit = doc.get("commit") or "?"
    if doc.get("rev"):
        commit += f" (libmesh built from --rev {doc['rev']})"
    elif doc.get("dirty"):
        commit += " + uncommitted changes to libmesh"
    lines = [f"perf matrix: {doc.get('mode', '?')} mode, {doc.get('reps', '?')} repetition(s), "
             f"commit {commit}, {doc.get('date', '?')}"]
    facts = [m.get("cpu_model"), f"{m.get('cores')} cores" if m.get("cores") else None,
             f"{m['mem_total_mb'] / 1024:.1f} GiB" if m.get("mem_total_mb") else None,
             f"kernel {m['kernel']}" if m.get("kernel") else None, m.get("compiler")]
    load = m.get("load_before")
    if load:
        facts.append(f"load avg {load[0]:.1f} at start")
    lines.append("machine: " + ", ".join(str(f) for f in facts if f))
    lines.append(LEGEND)
    return lines


def _ratio_cell(r: dict[str, Any] | None, show_range: bool) -> str:
    if not r:
        return table.MISSING
    cell = table.format_ratio(r.get("median"))
    if show_range and len(r.get("samples", [])) > 1:
        cell += f" [{table.format_ratio(r.get('min'))}-{table.format_ratio(r.get('max'))}]"
    return cell


def render(doc: dict[str, Any], style: str = "text") -> str:
    allocs = allocators_with_data(doc)
    labels = [p for p in doc.get("ratio_pairs", [])
              if all(a in allocs for a in stats.parse_ratio_spec(p))]
    multi = (doc.get("reps") or 1) > 1
    show_range = multi and "libmesh" in allocs
    headers = ["figure", "unit"] + allocs
    if show_range:
        headers.append("libmesh range")
    headers += labels
    rows: list[list[str]] = []
    previous = None
    figs = doc.get("figures", [])
    for f in figs:
        if previous is not None and f["workload"] != previous and style == "text":
            rows.append([""] * len(headers))
        previous = f["workload"]
        cells = [f["name"], f.get("unit", "")]
        cells += [table.format_number(f.get("median", {}).get(a)) for a in allocs]
        if show_range:
            lo, hi = f.get("min", {}).get("libmesh"), f.get("max", {}).get("libmesh")
            cells.append(table.MISSING if lo is None
                         else f"{table.format_number(lo)}-{table.format_number(hi)}")
        cells += [_ratio_cell(f.get("ratios", {}).get(lbl), multi) for lbl in labels]
        rows.append(cells)
    if labels:
        for kind in ("time", "memory"):
            chosen = [f for f in figs if f.get("kind") == kind]
            if not chosen:
                continue
            gm = []
            for lbl in labels:
                gm.append(table.format_ratio(stats.geomean(
                    (f.get("ratios", {}).get(lbl) or {}).get("median") for f in chosen)))
            if style == "text":
                rows.append([""] * len(headers))
            rows.append([f"geomean of {kind} ratios", ""] + [""] * (len(headers) - 2 - len(labels))
                        + gm)
    return table.render(headers, rows, style=style)


def render_tier(doc: dict[str, Any], tier: str = "classic", style: str = "text") -> str | None:
    """The tier's table: per program the median time of every allocator relative to the tier's
    peer (paired per repetition), then the geomean of those ratios and of the peak-PSS ratios.
    None when the document has no such tier."""
    summary = (doc.get("tiers") or {}).get(tier)
    if not summary:
        return None
    peer = summary["peer"]
    allocs = allocators_with_data(doc)
    by_name = {f["name"]: f for f in doc.get("figures", [])}
    multi = (doc.get("reps") or 1) > 1
    headers = [f"{tier}: time / {peer}"] + allocs
    rows: list[list[str]] = []
    for w in summary["workloads"]:
        f = by_name.get(f"{w}.seconds")
        if f is None:
            continue
        cells = [w]
        for a in allocs:
            if a == peer:
                cells.append(table.format_ratio(1.0) if f["median"].get(peer) else table.MISSING)
            else:
                cells.append(_ratio_cell(f.get("ratios", {}).get(f"{a}/{peer}"), False))
        rows.append(cells)
    if style == "text":
        rows.append([""] * len(headers))
    n = len(summary["workloads"])
    for key, label in (("time_geomean", "geomean of time ratios"),
                       ("pss_geomean", "geomean of peak PSS ratios")):
        cells = [label]
        for a in allocs:
            v = summary[key].get(a)
            cell = table.format_ratio(v)
            covered = summary["programs"].get(a, 0)
            if v is not None and covered < n:
                cell += f" ({covered}/{n})"
            cells.append(cell)
        rows.append(cells)
    text = table.render(headers, rows, style=style)
    if multi:
        text += ("\n(ratios are medians of per-repetition ratios; below 1 is faster or smaller "
                 f"than {peer})")
    return text


def notes(doc: dict[str, Any]) -> list[str]:
    out = []
    for a in doc.get("allocators", []):
        if a.get("status") == "skipped":
            out.append(f"{a['name']}: skipped ({a.get('note')})")
    for fl in doc.get("failures", []):
        out.append(f"{fl['allocator']} rep {fl['rep']} {fl['label']}: {fl['why']}; "
                   f"reproduce: {fl['reproducer']}")
    out += doc.get("notes", [])
    return out
