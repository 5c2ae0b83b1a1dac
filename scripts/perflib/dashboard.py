"""results/index.html: the perf and stress history on one static, self-contained page.

Written by `run-perf.sh --record`, `run-stress.sh --record` and scripts/plot_results.py, from
what results/ holds: the result files (<date>-<commit>.json) and stress-history.csv. No server,
nothing fetched: the charts are inline SVG drawn here, and a small inline script adds the
details of a point (hover shows them, click pins them), the quick/full switch, and `#select=`
links. The page works without the script too (every point has a <title> tooltip).

Sections:
  regressions   every figure that regressed between two consecutive runs of one mode, by the
                rule of compare.judge(), with its p-value and the peers' changes
  trends        one chart per figure (grouped by workload): the median of each allocator over
                the runs of the mode, oldest left; a red triangle marks a regression, a green
                one an improvement, a grey diamond a move the peers shared (the machine)
  stress        the stress programs' history (exit status, seconds, peak PSS, meshes)
  latest        the newest run's table and its comparison with the run before it

Runs are ordered by the time of their commit (commit_time; looked up in git for older result
files without it), then by when they ran, so a range measured later still falls in place.
"""

from __future__ import annotations

import html
import json
import math
import os
import subprocess
import time
from typing import Any

from . import compare, mtable, palette, store, workloads

MAX_RUNS = 120  # per mode: the newest ones (older runs stay in results/)
STRESS_HISTORY = "stress-history.csv"
W, H = 430, 230
ML, MR, MT, MB = 50, 10, 24, 46


# --- data -----------------------------------------------------------------------------------------

def _commit_times(root: str | None, commits: list[str]) -> dict[str, str]:
    if not root or not commits:
        return {}
    try:
        p = subprocess.run(["git", "log", "--no-walk=unsorted", "--format=%H %cI", *commits],
                           cwd=root, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return {}
    out = {}
    if p.returncode == 0:
        for line in p.stdout.splitlines():
            sha, _, when = line.partition(" ")
            out[sha] = when
    return out


def ordered_runs(results_dir: str, root: str | None) -> list[dict[str, Any]]:
    """Result documents, oldest commit first (see the module doc)."""
    docs = []
    for path, doc in store.all_results(results_dir):
        doc.setdefault("_file", os.path.basename(path))
        docs.append(doc)
    missing = [d["commit_full"] for d in docs if not d.get("commit_time") and d.get("commit_full")]
    # commits of older files may be gone from the repository: ask for each one that exists
    known = {}
    for sha in missing:
        known.update(_commit_times(root, [sha]))
    for d in docs:
        d.setdefault("commit_time", None)
        if not d["commit_time"]:
            d["commit_time"] = known.get(d.get("commit_full") or "")
    def key(d):
        when = d.get("commit_time") or d.get("created") or ""
        return (_utc(when), d.get("created") or "")
    return sorted(docs, key=key)


def _utc(iso: str) -> float:
    """Seconds since the epoch of an ISO 8601 time (any offset); 0 when unreadable."""
    try:
        from datetime import datetime
        return datetime.fromisoformat(iso).timestamp()
    except (ValueError, TypeError):
        return 0.0


def machine_text(doc: dict[str, Any]) -> str:
    m = doc.get("machine") or {}
    parts = [m.get("cpu_model"), f"{m['cores']} cores" if m.get("cores") else None,
             f"kernel {m['kernel']}" if m.get("kernel") else None]
    load = m.get("load_before")
    if load:
        parts.append(f"load {load[0]:.2f}")
    return ", ".join(str(p) for p in parts if p)


def run_info(doc: dict[str, Any]) -> dict[str, Any]:
    return {"commit": doc.get("commit") or "?", "full": doc.get("commit_full") or "",
            "subject": doc.get("subject") or "", "date": doc.get("date") or "",
            "created": doc.get("created") or "", "commit_time": doc.get("commit_time") or "",
            "mode": doc.get("mode"), "reps": doc.get("reps"), "machine": machine_text(doc),
            "file": doc.get("_file", ""), "rev": bool(doc.get("rev"))}


def mode_data(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Charts and flags of the runs of one mode (oldest first)."""
    figs: dict[str, dict[str, Any]] = {}
    for i, d in enumerate(docs):
        for f in d.get("figures", []):
            e = figs.setdefault(f["name"], {"name": f["name"], "unit": f.get("unit", ""),
                                            "kind": f.get("kind", "info"),
                                            "label": f.get("label", ""), "s": {},
                                            "flags": {}})
            for alloc, reps in (f.get("samples") or {}).items():
                e["s"].setdefault(alloc, [None] * len(docs))[i] = sorted(
                    float(v) for v in reps.values())
    for i in range(1, len(docs)):
        for c in compare.compare(docs[i], docs[i - 1]):
            if c.figure in figs and c.verdict in ("worse", "better", "machine"):
                j = c.judgement
                figs[c.figure]["flags"][i] = {"v": c.verdict, "p": j.own.p, "c": c.change,
                                              "why": j.why}
    names = sorted(figs, key=workloads.figure_sort_key)
    out = []
    for n in names:
        e = figs[n]
        e["allocs"] = palette.sort_allocs(e["s"])
        out.append(e)
    return {"figures": out}


def _median(vals: list[float] | None) -> float | None:
    if not vals:
        return None
    s = sorted(vals)
    k = len(s)
    return s[k // 2] if k % 2 else (s[k // 2 - 1] + s[k // 2]) / 2


# --- SVG ------------------------------------------------------------------------------------------

def _nice_ticks(top: float, n: int = 4) -> list[float]:
    if top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return [step * k for k in range(0, int(math.ceil(top / step - 1e-9)) + 1)]


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:g}M"
    if a >= 1e4:
        return f"{v / 1e3:g}k"
    return f"{v:.4g}"


def svg_chart(cid: str, title: str, xlabels: list[str], series: dict[str, list[float | None]],
              point_attrs, flags: dict[int, dict[str, Any]] | None = None,
              fails: dict[str, set[int]] | None = None) -> str:
    """A line chart: one line per series, x = run position, y from 0. point_attrs(alloc, i)
    gives the data attributes and the tooltip of a point."""
    n = len(xlabels)
    vals = [v for ys in series.values() for v in ys if v is not None]
    ticks = _nice_ticks(max(vals) * 1.05 if vals else 1.0)
    top = ticks[-1] or 1.0
    pw, ph = W - ML - MR, H - MT - MB

    def x(i):
        return ML + (pw * (i + 0.5) / n if n else 0)

    def y(v):
        return MT + ph * (1 - v / top)

    e = html.escape
    out = [f'<svg id="{e(cid)}" class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" '
           f'role="img" aria-label="{e(title)}">',
           f'<text x="{ML}" y="14" class="ctitle">{e(title)}</text>']
    for t in ticks:
        out.append(f'<line x1="{ML}" x2="{W - MR}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
                   f'class="grid"/><text x="{ML - 4}" y="{y(t) + 3:.1f}" class="ytick">'
                   f'{_fmt(t)}</text>')
    every = max(1, math.ceil(n / 14))
    for i, lab in enumerate(xlabels):
        if i % every == 0 or i == n - 1:
            out.append(f'<text transform="translate({x(i):.1f},{H - MB + 10}) rotate(-40)" '
                       f'class="xtick">{e(lab)}</text>')
    others = [a for a in series if a not in palette.COLORS]
    for alloc in palette.sort_allocs(series):
        ys = series[alloc]
        col = palette.color(alloc, others)
        pts = [(x(i), y(v)) for i, v in enumerate(ys) if v is not None]
        width = 2.2 if alloc == "libmesh" else 1.2
        if len(pts) > 1:
            out.append(f'<polyline fill="none" stroke="{col}" stroke-width="{width}" points="'
                       + " ".join(f"{a:.1f},{b:.1f}" for a, b in pts) + '"/>')
        for i, v in enumerate(ys):
            if v is None:
                continue
            attrs, tip = point_attrs(alloc, i)
            r = 3.6 if alloc == "libmesh" else 2.6
            out.append(f'<circle class="pt" cx="{x(i):.1f}" cy="{y(v):.1f}" r="{r}" '
                       f'fill="{col}" {attrs}><title>{e(tip)}</title></circle>')
        for i in sorted((fails or {}).get(alloc, ())):
            v = ys[i] if i < len(ys) and ys[i] is not None else 0.0
            cx, cy = x(i), y(v)
            out.append(f'<path class="fail" d="M{cx - 5:.1f},{cy - 5:.1f}L{cx + 5:.1f},'
                       f'{cy + 5:.1f}M{cx - 5:.1f},{cy + 5:.1f}L{cx + 5:.1f},{cy - 5:.1f}">'
                       f'<title>{e(alloc)} failed in this run</title></path>')
    mesh = series.get("libmesh") or []
    for i, fl in sorted((flags or {}).items()):
        v = mesh[i] if i < len(mesh) and mesh[i] is not None else top
        cx, cy = x(i), y(v) - 9
        p = "-" if fl.get("p") is None else f"{fl['p']:.2g}"
        label = f"{fl['v']}: {fl['c'] * 100:+.1f}%, p={p}" if fl.get("c") is not None else fl["v"]
        if fl["v"] == "machine":
            shape = (f'<path d="M{cx:.1f},{cy - 5:.1f}L{cx + 4:.1f},{cy:.1f}L{cx:.1f},'
                     f'{cy + 5:.1f}L{cx - 4:.1f},{cy:.1f}Z"/>')
        elif fl["v"] == "worse":
            shape = (f'<path d="M{cx - 5:.1f},{cy + 3:.1f}L{cx + 5:.1f},{cy + 3:.1f}L{cx:.1f},'
                     f'{cy - 6:.1f}Z"/>')
        else:
            shape = (f'<path d="M{cx - 5:.1f},{cy - 4:.1f}L{cx + 5:.1f},{cy - 4:.1f}L{cx:.1f},'
                     f'{cy + 5:.1f}Z"/>')
        text = (f'<text x="{cx:.1f}" y="{cy - 8:.1f}" class="ftext">p={p}</text>'
                if fl["v"] == "worse" else "")
        out.append(f'<g class="flag flag-{fl["v"]}" data-i="{i}">{shape}{text}'
                   f'<title>{e(label)}; {e(fl.get("why", ""))}</title></g>')
    out.append("</svg>")
    return "".join(out)


# --- stress history -------------------------------------------------------------------------------

def stress_data(results_dir: str) -> dict[str, Any]:
    _, rows = store.read_history(os.path.join(results_dir, STRESS_HISTORY))
    runs: dict[str, dict[str, Any]] = {}
    for r in rows:
        key = r.get("created", "")
        run = runs.setdefault(key, {"commit": r.get("commit", ""), "subject": r.get("subject", ""),
                                    "date": r.get("date", ""), "created": key,
                                    "mode": r.get("mode", ""),
                                    "machine": ", ".join(x for x in (
                                        r.get("cpu_model"), f"{r['cores']} cores" if r.get(
                                            "cores") else "") if x),
                                    "rows": {}})
        prog = r.get("program", "?")
        if r.get("round") and r.get("round") != "1":
            prog += f"#{r['round']}"
        run["rows"].setdefault(prog, {})[r.get("allocator", "?")] = {
            k: r.get(k, "") for k in ("exit", "seconds", "peak_rss_mib", "peak_pss_mib",
                                      "meshes", "note")}
    ordered = sorted(runs.values(), key=lambda x: x["created"])[-MAX_RUNS:]
    programs = list(dict.fromkeys(p for run in ordered for p in run["rows"]))
    return {"runs": ordered, "programs": programs}


def _num(text: str) -> float | None:
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


# --- the page -------------------------------------------------------------------------------------

def render(results_dir: str, root: str | None = None) -> str:
    e = html.escape
    docs = ordered_runs(results_dir, root)
    modes: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        modes.setdefault(d.get("mode") or "?", []).append(d)
    latest = max(docs, key=lambda d: d.get("created") or "") if docs else None
    data: dict[str, Any] = {"modes": {}, "runs": {}}
    body: list[str] = []
    regress_rows: list[str] = []
    for mode, mdocs in modes.items():
        mdocs = mdocs[-MAX_RUNS:]
        md = mode_data(mdocs)
        runs = [run_info(d) for d in mdocs]
        labels = [r["commit"][:7] for r in runs]
        data["runs"][mode] = runs
        data["modes"][mode] = [{"name": f["name"], "unit": f["unit"], "kind": f["kind"],
                                "label": f["label"], "s": f["s"],
                                "flags": {str(i): fl for i, fl in f["flags"].items()}}
                               for f in md["figures"]]
        sections = []
        current = None
        for fi, f in enumerate(md["figures"]):
            wl = f["name"].partition(".")[0]
            if wl != current:
                if current is not None:
                    sections.append("</div>")
                sections.append(f'<h3 id="wl-{e(mode)}-{e(wl)}">{e(wl)}</h3><div class="grid">')
                current = wl
            series = {a: [_median(v) for v in f["s"][a]] for a in f["allocs"]}

            def attrs(alloc, i, fi=fi, f=f):
                r = runs[i]
                vals = f["s"][alloc][i] or []
                tip = (f"{alloc} {r['commit']} {r['subject'][:70]}\n{r['machine']}\n"
                       f"median {_fmt(_median(vals) or 0)} {f['unit']}; values "
                       + ", ".join(_fmt(v) for v in vals))
                return (f'data-m="{e(mode)}" data-f="{fi}" data-i="{i}" data-a="{e(alloc)}"',
                        tip)
            title = f"{f['name']} [{f['unit']}]"
            cid = f"chart-{mode}-{f['name']}"
            sections.append(f'<figure class="cell" id="fig-{e(mode)}-{e(f["name"])}">'
                            + svg_chart(cid, title, labels, series, attrs, f["flags"])
                            + f'<figcaption>{e(f["label"])} ({e(f["kind"])})</figcaption>'
                            + "</figure>")
            for i, fl in f["flags"].items():
                if fl["v"] != "worse":
                    continue
                r = runs[i]
                regress_rows.append(
                    (r["commit_time"] or r["created"],
                     f'<tr class="reg"><td>{e(mode)}</td><td><a href="#select={e(mode)}/'
                     f'{fi}/{i}" class="sel">{e(f["name"])}</a></td><td><code>'
                     f'{e(r["commit"][:12])}</code> {e(r["subject"][:80])}</td><td>against '
                     f'<code>{e(runs[i - 1]["commit"][:12])}</code></td><td class="num">'
                     f'{fl["c"] * 100:+.1f}%</td><td class="num">{fl["p"]:.2g}</td><td>'
                     f'{e(fl["why"])}</td></tr>'))
        if current is not None:
            sections.append("</div>")
        toc = " ".join(f'<a href="#wl-{e(mode)}-{e(w)}">{e(w)}</a>' for w in dict.fromkeys(
            f["name"].partition(".")[0] for f in md["figures"]))
        body.append(f'<section class="mode" data-mode="{e(mode)}"><h2>Trends: {e(mode)} runs '
                    f'({len(runs)}, oldest left)</h2><p class="toc">{toc}</p>'
                    + "".join(sections) + "</section>")

    regress_rows.sort(key=lambda t: _utc(t[0]), reverse=True)
    if regress_rows:
        reg_html = ('<table class="regs"><tr><th>mode</th><th>figure</th><th>commit</th>'
                    '<th>compared with</th><th>change</th><th>p</th><th>libmesh; peers; '
                    'libmesh/peer ratios</th></tr>' + "".join(r for _, r in regress_rows)
                    + "</table>")
    else:
        reg_html = '<p class="none">No regression between consecutive runs of one mode.</p>'

    stress = stress_data(results_dir)
    stress_html = stress_section(stress)
    data["stress"] = stress

    latest_html = ""
    if latest:
        same = [d for d in modes[latest.get("mode") or "?"] if d is not latest
                and (d.get("created") or "") < (latest.get("created") or "")]
        cmp_html = ""
        if same:
            before = max(same, key=lambda d: d.get("created") or "")
            cmp = compare.compare(latest, before)
            cmp_html = (f"<h3>Against the run before it ({e(before['_file'])})</h3><pre>"
                        + e("\n".join(compare.header_lines(latest, before, before["_file"])))
                        + "\n\n" + e(compare.render(cmp)) + "</pre>")
        latest_html = (f'<section id="latest"><h2>Latest run: {e(latest.get("_file", ""))}</h2>'
                       f'<p>{e(latest.get("subject") or "")}</p><pre>'
                       + e("\n".join(mtable.caption(latest))) + "\n\n"
                       + e(mtable.render(latest)) + "</pre>" + cmp_html + "</section>")

    counts = ", ".join(f"{len(v)} {k}" for k, v in modes.items())
    default_mode = (latest or {}).get("mode") or (next(iter(modes)) if modes else "")
    tabs = "".join(f'<button type="button" class="tab" data-mode="{e(m)}">{e(m)} '
                   f'({len(v)})</button>' for m, v in modes.items())
    generated = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return PAGE.format(
        generated=e(generated), counts=e(counts or "no runs yet"), tabs=tabs,
        default_mode=e(default_mode), regressions=reg_html, trends="".join(body),
        stress=stress_html, latest=latest_html, data=payload, css=CSS, js=JS,
        alpha=compare.ALPHA, effects=e(", ".join(f"{v * 100:g}% ({k})"
                                                 for k, v in compare.MIN_EFFECT.items())))


def stress_section(stress: dict[str, Any]) -> str:
    e = html.escape
    runs, programs = stress["runs"], stress["programs"]
    if not runs:
        return ('<p class="none">No stress run recorded yet: <code>scripts/run-stress.sh '
                '--record</code> adds one.</p>')
    labels = [f"{r['commit'][:7]}" for r in runs]
    charts, table_rows = [], []
    head = "".join(f'<th title="{e(r["subject"])}">{e(r["commit"][:7])}<br>{e(r["date"][5:])}'
                   f'<br>{e(r["mode"])}</th>' for r in runs)
    for pi, prog in enumerate(programs):
        allocs = palette.sort_allocs(a for r in runs for a in r["rows"].get(prog, {}))
        for metric, unit in (("seconds", "s"), ("peak_pss_mib", "MiB")):
            series, fails = {}, {}
            for a in allocs:
                series[a] = [_num(r["rows"].get(prog, {}).get(a, {}).get(metric)) for r in runs]
                fails[a] = {i for i, r in enumerate(runs)
                            if (r["rows"].get(prog, {}).get(a, {}).get("exit") or "0") != "0"}

            def attrs(alloc, i, pi=pi, prog=prog):
                r = runs[i]
                c = r["rows"].get(prog, {}).get(alloc, {})
                tip = (f"{prog} under {alloc}: exit {c.get('exit')}, {c.get('seconds')} s, "
                       f"peak PSS {c.get('peak_pss_mib')} MiB, meshes {c.get('meshes') or '-'}"
                       f"\n{r['commit']} {r['subject'][:70]}")
                return f'data-s="{pi}" data-i="{i}" data-a="{e(alloc)}"', tip
            name = "peak PSS" if metric == "peak_pss_mib" else metric
            charts.append(f'<figure class="cell" id="stress-{e(prog)}-{metric}">'
                          + svg_chart(f"stress-chart-{prog}-{metric}",
                                      f"{prog}: {name} [{unit}]", labels, series, attrs,
                                      fails=fails) + "</figure>")
        for a in allocs:
            cells = []
            for i, r in enumerate(runs):
                c = r["rows"].get(prog, {}).get(a)
                if not c:
                    cells.append("<td></td>")
                    continue
                ok = c.get("exit") == "0"
                meshes = f", {c['meshes']} meshes" if c.get("meshes") else ""
                cells.append(f'<td class="{"ok" if ok else "bad"} sel-s" data-s="{pi}" '
                             f'data-i="{i}" data-a="{e(a)}" title="exit {e(c.get("exit", ""))}, '
                             f'{e(c.get("seconds", ""))} s, PSS {e(c.get("peak_pss_mib", ""))} '
                             f'MiB{e(meshes)} {e(c.get("note", ""))}">'
                             f'{"ok" if ok else "FAIL " + e(c.get("exit", ""))}'
                             f'<br><small>{e(c.get("seconds", ""))} s</small></td>')
            table_rows.append(f"<tr><th>{e(prog)}</th><th>{e(a)}</th>{''.join(cells)}</tr>")
    return ('<div class="scroll"><table class="stress"><tr><th>program</th><th>allocator</th>'
            + head + "</tr>" + "".join(table_rows) + '</table></div><div class="grid">'
            + "".join(charts) + "</div>")


def write(results_dir: str, root: str | None = None) -> str:
    """Writes results_dir/index.html; returns its path."""
    path = os.path.join(results_dir, "index.html")
    text = render(results_dir, root)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#263238;color:#fff;padding:10px 18px}
header h1{font-size:20px;margin:0 0 4px}
main{padding:8px 18px 40px;margin-right:360px}
h2{border-bottom:2px solid #ccc;padding-bottom:2px;margin-top:28px}
h3{margin:18px 0 4px}
.grid{display:flex;flex-wrap:wrap;gap:8px}
figure.cell{margin:0;background:#fff;border:1px solid #ddd;padding:4px}
figcaption{font-size:11px;color:#555;max-width:420px}
.chart .ctitle{font-size:12px;font-weight:600}
.chart .grid{stroke:#e4e4e4}
.chart .ytick{font-size:9px;text-anchor:end;fill:#555}
.chart .xtick{font-size:9px;text-anchor:end;fill:#555}
.chart .pt{cursor:pointer;stroke:#fff;stroke-width:.8}
.chart .pt:hover,.chart .pt.on{stroke:#000;stroke-width:2}
.flag-worse path{fill:#c00}
.flag-better path{fill:#2a2}
.flag-machine path{fill:none;stroke:#777;stroke-width:1.5}
.ftext{font-size:9px;fill:#c00;text-anchor:middle;font-weight:600}
.fail{stroke:#c00;stroke-width:2.2}
table{border-collapse:collapse;background:#fff}
td,th{border:1px solid #ddd;padding:2px 6px;font-size:12px;vertical-align:top}
td.num{text-align:right}
table.regs tr.reg td{background:#fff3f3}
table.stress td.ok{background:#eaf7ea;cursor:pointer}
table.stress td.bad{background:#fbdada;font-weight:600;cursor:pointer}
.scroll{overflow-x:auto;max-width:100%}
pre{background:#fff;border:1px solid #ddd;padding:8px;overflow-x:auto;font-size:11.5px}
.none{color:#555;font-style:italic}
.tab{font:inherit;margin-right:4px;padding:3px 10px;border:1px solid #888;background:#eee;
cursor:pointer}
.tab.on{background:#263238;color:#fff}
#details{position:fixed;top:0;right:0;width:340px;height:100%;overflow:auto;background:#fff;
border-left:2px solid #263238;padding:10px 12px;box-sizing:border-box;font-size:12.5px}
#details h4{margin:4px 0}
#details table{margin-top:6px}
#js-errors{color:#c00;white-space:pre-wrap}
.legend span{display:inline-block;margin-right:10px}
.legend i{display:inline-block;width:14px;height:3px;vertical-align:middle;margin-right:3px}
.toc a{margin-right:8px}
"""

JS = r"""
(function(){
var D=JSON.parse(document.getElementById('dashboard-data').textContent);
function esc(s){return String(s==null?'':s).replace(/[&<>"]/g,function(c){
 return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c];});}
function fmt(v){if(v==null)return '-';var a=Math.abs(v);
 return a>=100?v.toFixed(0):a>=10?v.toFixed(1):a>=1?v.toFixed(2):v.toPrecision(3);}
function raw(v){return Math.abs(v)>=1e4?v.toFixed(0):v.toPrecision(4);}
function median(a){if(!a||!a.length)return null;var s=a.slice().sort(function(x,y){return x-y;});
 var k=s.length;return k%2?s[(k-1)/2]:(s[k/2-1]+s[k/2])/2;}
var panel=document.getElementById('detail-body');
function runHtml(r){return '<h4>'+esc(r.commit)+'</h4><div>'+esc(r.subject)+'</div>'+
 '<div>ran '+esc(r.created)+(r.commit_time?' &middot; committed '+esc(r.commit_time):'')+'</div>'+
 '<div>machine: '+esc(r.machine)+'</div><div>'+esc(r.mode)+' mode, '+esc(r.reps)+
 ' repetition(s)'+(r.file?' &middot; '+esc(r.file):'')+'</div>';}
function perf(m,f,i,a){
 var fig=D.modes[m][f],r=D.runs[m][i],h=runHtml(r);
 h+='<h4>'+esc(fig.name)+' ['+esc(fig.unit)+']</h4><table><tr><th>allocator</th>'+
  '<th>median</th><th>values (one per repetition)</th></tr>';
 Object.keys(fig.s).forEach(function(al){var v=fig.s[al][i];if(!v)return;
  h+='<tr'+(al===a?' style="font-weight:bold"':'')+'><td>'+esc(al)+'</td><td>'+fmt(median(v))+
  '</td><td>'+v.map(raw).join(', ')+'</td></tr>';});
 h+='</table>';var fl=fig.flags[String(i)];
 if(fl)h+='<p class="flagline"><b>'+esc(fl.v)+'</b> against the run before: '+
  (fl.c==null?'':(fl.c*100).toFixed(1)+'%')+(fl.p==null?'':', p='+Number(fl.p).toPrecision(2))+
  '<br><small>'+esc(fl.why)+'</small></p>';
 return h;}
function stress(p,i,a){
 var r=D.stress.runs[i],prog=D.stress.programs[p],rows=r.rows[prog]||{};
 var h='<h4>'+esc(r.commit)+'</h4><div>'+esc(r.subject)+'</div><div>ran '+esc(r.created)+
  '</div><div>machine: '+esc(r.machine)+'</div><div>'+esc(r.mode)+' stress run</div>';
 h+='<h4>'+esc(prog)+'</h4><table><tr><th>allocator</th><th>exit</th><th>s</th>'+
  '<th>peak PSS MiB</th><th>peak RSS MiB</th><th>meshes</th><th>note</th></tr>';
 Object.keys(rows).forEach(function(al){var c=rows[al];
  h+='<tr'+(al===a?' style="font-weight:bold"':'')+'><td>'+esc(al)+'</td><td>'+esc(c.exit)+
  '</td><td>'+esc(c.seconds)+'</td><td>'+esc(c.peak_pss_mib)+'</td><td>'+
  esc(c.peak_rss_mib)+'</td><td>'+esc(c.meshes)+'</td><td>'+esc(c.note)+'</td></tr>';});
 return h+'</table>';}
var pinned=false;
function show(el,pin){
 var h;
 if(el.hasAttribute('data-m'))h=perf(el.getAttribute('data-m'),+el.getAttribute('data-f'),
  +el.getAttribute('data-i'),el.getAttribute('data-a'));
 else h=stress(+el.getAttribute('data-s'),+el.getAttribute('data-i'),el.getAttribute('data-a'));
 panel.innerHTML=(pin?'<div><small>pinned (click another point, or Esc)</small></div>':'')+h;
 document.querySelectorAll('.on').forEach(function(x){if(x.classList.contains('pt'))
  x.classList.remove('on');});
 if(el.classList.contains('pt'))el.classList.add('on');
}
document.addEventListener('mouseover',function(ev){var t=ev.target;
 if(!pinned&&t.closest&&(t.classList.contains('pt')||t.classList.contains('sel-s')))show(t,false);});
document.addEventListener('click',function(ev){var t=ev.target.closest?
 ev.target.closest('.pt,.sel-s'):null;if(t){pinned=true;show(t,true);}});
document.addEventListener('keydown',function(ev){if(ev.key==='Escape')pinned=false;});
function mode(m){document.querySelectorAll('section.mode').forEach(function(s){
  s.style.display=s.getAttribute('data-mode')===m?'':'none';});
 document.querySelectorAll('.tab').forEach(function(b){
  b.classList.toggle('on',b.getAttribute('data-mode')===m);});}
document.querySelectorAll('.tab').forEach(function(b){b.addEventListener('click',function(){
 mode(b.getAttribute('data-mode'));});});
function select(spec){var p=spec.split('/');if(p.length<3)return false;
 var q='.pt[data-m="'+p[0]+'"][data-f="'+p[1]+'"][data-i="'+p[2]+'"][data-a="'+
  (p[3]||'libmesh')+'"]';var el=document.querySelector(q);if(!el)return false;
 mode(p[0]);pinned=true;show(el,true);
 var cell=el.closest('figure');if(cell)cell.scrollIntoView();return true;}
window.addEventListener('hashchange',function(){var h=decodeURIComponent(location.hash);
 if(h.indexOf('#select=')===0)select(h.slice(8));});
mode(document.body.getAttribute('data-default-mode'));
var h0=decodeURIComponent(location.hash);
if(h0.indexOf('#select=')===0)select(h0.slice(8));
document.body.setAttribute('data-ready','1');
})();
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>libmesh performance and stress history</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{css}</style></head>
<body data-default-mode="{default_mode}">
<script>window.onerror=function(m,s,l){{var e=document.getElementById('js-errors');
if(e)e.textContent+=m+' (line '+l+')\\n';}};</script>
<header><h1>libmesh: performance and stress history</h1>
<div>{counts} run(s) in results/; page written {generated} by scripts/perflib/dashboard.py.
Every figure is lower-is-better.</div></header>
<aside id="details"><div id="detail-body"><h4>Details</h4><p>Hover over a point for its
commit, subject, machine and raw values; click to pin them.</p></div><div class="legend">
<span><i style="background:#d62728"></i>libmesh</span><span><i style="background:#1f77b4"></i>jemalloc</span>
<span><i style="background:#7f7f7f"></i>glibc</span><span><i style="background:#2ca02c"></i>tcmalloc</span>
<span><i style="background:#ff7f0e"></i>mimalloc</span></div>
<p><span style="color:#c00">&#9650;</span> regression, <span style="color:#2a2">&#9660;</span>
improvement, &#9671; the machine moved (the peers too) &mdash; each against the run before.</p>
<div id="js-errors"></div></aside>
<main>
<section id="regressions"><h2>Regressions</h2>
<p>Between consecutive runs of one mode: Mann-Whitney U over the repetitions, p &lt; {alpha}
and a change beyond {effects}, not shared by jemalloc and glibc (see perf/README.md).
Runs of one repetition cannot show any.</p>{regressions}</section>
<p class="modes">Runs: {tabs}</p>
{trends}
<section id="stress"><h2>Stress history</h2>{stress}</section>
{latest}
</main>
<script type="application/json" id="dashboard-data">{data}</script>
<script>{js}</script>
</body></html>
"""
