"""The report page's HTML, CSS and script (report.py gathers what it shows).

One file, nothing fetched when it is opened: the SVG of every graph, the highlighted
code and the data the script links by (as JSON) are all inline. The script is plain
JavaScript: a click on a node (in any graph, a profile row) or on a line (of the
generated module or of the user's file) selects nodes; the page then marks with CSS
classes the nodes in every graph (`sel`), the kernel's lines (`k-sel`), the step's
statement (`step-sel`) and the user's line (`loc-sel`).
"""
import html
import json

MEMORY_BOUND = 4.0        # flops per byte: below this a CPU kernel waits on memory, not arithmetic

CSS = """
body{font-family:Helvetica,Arial,sans-serif;margin:0 0 0 0;color:#212529;background:#fff}
header{background:#1c3d5a;color:#fff;padding:10px 18px}header h1{margin:0;font-size:20px}
nav a{color:#cfe2ff;margin-right:12px;font-size:13px}
main{padding:0 18px 18px 18px;margin-right:320px}
h2{border-bottom:2px solid #dee2e6;padding-top:14px}h3{margin:14px 0 4px 0}
.note{background:#fff3bf;border:1px solid #ffd43b;padding:6px 10px;font-size:13px}
.graph{overflow:auto;max-height:560px;border:1px solid #dee2e6;background:#fcfcfc;margin:4px 0}
.graph svg{display:block}
.pair{display:flex;gap:8px}.pair>div{flex:1;min-width:0}
g.node,g.cluster{cursor:pointer}
g.node.sel polygon,g.node.sel ellipse,g.node.sel path,g.node.sel rect{stroke:#f03e3e!important;stroke-width:4px!important}
g.cluster.sel>polygon,g.cluster.sel>rect,g.cluster.sel>path{stroke:#f03e3e!important;stroke-width:4px!important}
pre.code{font-family:Menlo,Consolas,monospace;font-size:12px;max-height:520px;overflow:auto;
 border:1px solid #dee2e6;background:#fafafa;margin:4px 0;padding:4px 0}
.ln{display:block;white-space:pre;cursor:pointer;padding-right:8px}.ln:hover{background:#f1f3f5}
.no{display:inline-block;width:4em;color:#adb5bd;text-align:right;margin-right:1em;user-select:none}
.ln.k-sel{background:#e7f5ff}.ln.step-sel{background:#ffe066}.ln.loc-sel{background:#b2f2bb}
table{border-collapse:collapse;font-size:12px;margin:6px 0}
td,th{border:1px solid #dee2e6;padding:2px 6px;text-align:left}th{background:#f1f3f5;cursor:pointer}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr.sel td{background:#ffe066}
#panel{position:fixed;right:0;top:0;width:300px;height:100%;overflow:auto;background:#f8f9fa;
 border-left:1px solid #dee2e6;padding:10px;font-size:13px;box-sizing:border-box}
#panel h3{margin-top:0}.k{color:#868e96}
""" + "".join(f".{k}{{color:{v}}}" for k, v in {
    "k": "#0b7285", "kn": "#0b7285", "kd": "#0b7285", "nf": "#1864ab;font-weight:bold", "nd": "#5f3dc4",
    "s": "#2b8a3e", "s1": "#2b8a3e", "s2": "#2b8a3e", "sd": "#2b8a3e", "c1": "#868e96;font-style:italic",
    "ch": "#868e96", "mi": "#c92a2a", "mf": "#c92a2a", "o": "#495057", "ow": "#0b7285", "nb": "#862e9c"}.items())

SCRIPT = r"""
const D = JSON.parse(document.getElementById('data').textContent);
const $$ = (q, el) => Array.from((el || document).querySelectorAll(q));
function idOf(title) { const m = /^(?:cluster_)?n(\d+)/.exec(title.trim()); return m ? +m[1] : null; }
$$('svg g.node, svg g.cluster').forEach(g => {
  const t = g.querySelector('title'); if (!t) return;
  const id = idOf(t.textContent);
  if (id === null || !(id in D.nodes)) return;
  g.dataset.node = id;
  g.addEventListener('click', e => { e.stopPropagation(); selectNodes([id], 'graph'); });
});
function clear() {
  $$('.sel').forEach(e => e.classList.remove('sel'));
  $$('.k-sel, .step-sel, .loc-sel').forEach(e => e.classList.remove('k-sel', 'step-sel', 'loc-sel'));
}
function mark(pre, first, last, cls) {
  let top = null;
  for (let l = first; l <= last; l++) {
    const el = pre.querySelector('.ln[data-line="' + l + '"]');
    if (el) { el.classList.add(cls); if (top === null) top = el; }
  }
  return top;
}
function scrollTo(pre, el) { if (el) pre.scrollTop = el.offsetTop - pre.offsetTop - 60; }
function stmtOf(line) { return D.stmts.find(s => s[0] <= line && line <= s[1]); }
function selectNodes(ids, from) {
  clear();
  const src = document.getElementById('source');
  const runs = new Set(), shown = new Set(ids);
  ids.forEach(id => { const r = D.nodes[id].runs; if (r !== null) runs.add(r); });
  Object.keys(D.nodes).forEach(k => { if (runs.has(D.nodes[k].runs)) shown.add(+k); });
  shown.forEach(id => $$('[data-node="' + id + '"]').forEach(g => g.classList.add('sel')));
  let first = null;
  runs.forEach(r => {
    const n = D.nodes[r];
    if (n.kernel && D.kernels[n.kernel]) mark(src, D.kernels[n.kernel][0], D.kernels[n.kernel][1], 'k-sel');
    if (n.line) { const s = stmtOf(n.line) || [n.line, n.line]; const el = mark(src, s[0], s[1], 'step-sel'); first = first || el; }
  });
  shown.forEach(id => {
    const w = D.nodes[id].where; if (!w) return;
    const i = w.lastIndexOf(':'), file = w.slice(0, i), line = +w.slice(i + 1);
    $$('pre.user').forEach(p => { if (p.dataset.file === file) scrollTo(p, mark(p, line, line, 'loc-sel')); });
  });
  $$('#profile tbody tr').forEach(tr => {
    if (tr.dataset.nodes.split(',').some(x => runs.has(+x))) tr.classList.add('sel');
  });
  if (from !== 'source') scrollTo(src, first);
  panel(ids.map(id => D.nodes[id]));
}
function panel(list) {
  const p = document.getElementById('selected');
  p.innerHTML = list.slice(0, 12).map(n => '<h3>' + esc(n.name) + '</h3><div><span class="k">op</span> ' + esc(n.op) +
    '<br><span class="k">type</span> ' + esc(n.type) + '<br><span class="k">built at</span> ' + esc(n.where || '-') +
    '<br><span class="k">kernel</span> ' + esc(n.kernel || '(none: a view, or folded away)') +
    '<br><span class="k">step line</span> ' + esc(n.line || '-') +
    '<br><span class="k">bytes moved</span> ' + n.bytes.toLocaleString() + '<br><span class="k">flops</span> ' +
    n.flops.toLocaleString() + '</div>').join('') + (list.length > 12 ? '<p>... and ' + (list.length - 12) + ' more</p>' : '');
}
function esc(s) { return String(s).replace(/[&<>"]/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c])); }
document.getElementById('source').addEventListener('click', e => {
  const ln = e.target.closest('.ln'); if (!ln) return;
  const line = +ln.dataset.line, s = stmtOf(line);
  let ids = [];
  if (s) ids = Object.keys(D.nodes).filter(k => D.nodes[k].runs === +k && D.nodes[k].line >= s[0] && D.nodes[k].line <= s[1]);
  else {
    const k = Object.keys(D.kernels).find(k => D.kernels[k][0] <= line && line <= D.kernels[k][1]);
    if (k) ids = Object.keys(D.nodes).filter(i => D.nodes[i].runs === +i && D.nodes[i].kernel === k);
  }
  if (ids.length) selectNodes(ids.map(Number), 'source');
});
$$('pre.user').forEach(p => p.addEventListener('click', e => {
  const ln = e.target.closest('.ln'); if (!ln) return;
  const w = p.dataset.file + ':' + ln.dataset.line;
  const ids = Object.keys(D.nodes).filter(k => D.nodes[k].where === w).map(Number);
  if (ids.length) selectNodes(ids, 'user');
}));
$$('#profile tbody tr').forEach(tr => tr.addEventListener('click', () => {
  const ids = tr.dataset.nodes ? tr.dataset.nodes.split(',').map(Number) : [];
  if (ids.length) selectNodes(ids, 'profile');
}));
$$('#profile th').forEach((th, col) => th.addEventListener('click', () => {
  const body = document.querySelector('#profile tbody'), rows = $$('tr', body);
  const dir = th.dataset.dir === 'asc' ? -1 : 1; th.dataset.dir = dir === 1 ? 'asc' : 'desc';
  rows.sort((a, b) => { const x = a.children[col].dataset.v, y = b.children[col].dataset.v;
    return (isNaN(x) ? x.localeCompare(y) : x - y) * dir; });
  rows.forEach(r => body.appendChild(r));
}));
"""


def page(d):
    """The whole page as one string."""
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in [("s1", "1 graph"), ("s2", "2 gradient"), ("s3", "3 passes"),
                  ("s4", "4 optimized + memory"), ("s5", "5 kernels"), ("s6", "6 your code"), ("s7", "7 profile")])
    parts = [f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>graphc report: {esc(d["title"])}</title>'
             f'<style>{CSS}</style></head><body><header><h1>graphc report: {esc(d["title"])}</h1><nav>{nav}</nav></header>',
             '<aside id="panel"><div id="selected"><h3>Select a node</h3><p>Click a node in any graph, a line of '
             'the generated module or of your code, or a row of the profile: the page marks the same work '
             'everywhere (red border: nodes; blue: the kernel; yellow: the step line; green: your line).</p>'
             '</div></aside><main>']
    if not d["graphviz"]:
        parts.append(f'<p class="note" id="graphviz-note">{esc(d["hint"])}</p>')
    parts.append('<h2 id="s1">1. The graph as you built it</h2><p>Each node: op, name, shape and dtype, '
                 'and the file:line that built it. Blue: placeholders, orange: variables, grey: constants, '
                 'red border: outputs.</p>' + _graph(d["user_graph"], "user"))
    parts.append('<h2 id="s2">2. The gradient graph</h2>')
    g = d["gradient"]
    if g is None:
        parts.append("<p>This function computes no gradients (its updates need nothing beyond its outputs).</p>")
    else:
        parts.append(f'<p>{g["count"]} nodes that gc.grad and the updates built beyond the outputs. Green: the '
                     f'{len(g["reused"])} forward nodes they reuse ({esc(", ".join(g["reused"][:20]))}'
                     f'{"..." if len(g["reused"]) > 20 else ""}); dashed: an update to its variable.</p>'
                     + _graph(g["svg"], "gradient"))
    parts.append(f'<h2 id="s3">3. The passes, in order</h2><p>{esc(d["pass_note"])} Yellow: nodes a pass made.</p>')
    for k, p in enumerate(d["passes"]):
        parts.append(f'<section class="pass" data-pass="{esc(p["name"])}"><h3>{k + 1}. {esc(p["name"])}</h3>'
                     f'<p>{esc(p["doc"])}. {p["ms"]:.2f} ms; nodes {p["before_n"]} &rarr; {p["after_n"]}; '
                     f'{p["changed"]} new.</p><div class="pair"><div><b>before</b>{_graph(p["before"], "before")}'
                     f'</div><div><b>after</b>{_graph(p["after"], "after")}</div></div></section>')
    parts.append('<h2 id="s4">4. The optimized graph and its memory plan</h2><p>What runs: fused groups are the '
                 'blue clusters (one kernel each).</p>' + _graph(d["final_graph"], "final") + _memory(d["memory"]))
    parts.append('<h2 id="s5">5. The generated kernel module</h2><p>fn.source: the kernels (Numba), then '
                 '<code>step</code>, which calls them in order. Click a line to see the nodes it computes.</p>'
                 + _kernels(d) + _code(d["source"], 'id="source"'))
    parts.append('<h2 id="s6">6. Your code</h2>')
    if d["user_files"]:
        parts.append("<p>The files that built the graph; click a line to select the nodes it built.</p>")
        for path, lines in d["user_files"].items():
            parts.append(f"<h3>{esc(path)}</h3>" + _code(lines, f'class="user" data-file="{esc(path)}"'))
    else:
        parts.append("<p>No file of yours is known for these nodes (they were built inside graphc).</p>")
    parts.append(_profile(d["profile"]))
    parts.append(f'</main><script type="application/json" id="data">{as_json(_script_data(d))}</script>'
                 f'<script>{SCRIPT}</script></body></html>')
    return "\n".join(parts)


def _script_data(d):
    return {"nodes": d["nodes"], "kernels": d["kernels"], "stmts": d["stmts"]}


def _graph(svg, kind):
    return f'<div class="graph {kind}">{svg}</div>'


def _code(lines, attrs):
    body = "".join(f'<span class="ln" data-line="{k}"><span class="no">{k}</span>{line}</span>'
                   for k, line in enumerate(lines, 1))
    return f'<pre {_with_code_class(attrs)}>{body}</pre>'


def _with_code_class(attrs):
    return attrs.replace('class="', 'class="code ', 1) if 'class="' in attrs else 'class="code" ' + attrs


def _memory(m):
    rows = "".join(f'<tr><td>{esc(b["name"])}</td><td>{esc(b["type"])}</td><td>'
                   + ", ".join(_ref(i, n) for i, n in b["values"]) + "</td></tr>" for b in m["buffers"])
    out = (f'<h3>Buffers</h3><p>{len(m["buffers"])} buffers, allocated once per shape and reused by every call; '
           f'{m["saved"]} values live in a buffer an earlier value handed on (its last reader had run).</p>'
           f'<table class="memory"><thead><tr><th>buffer</th><th>dtype, shape</th><th>values it holds in turn'
           f'</th></tr></thead><tbody>{rows}</tbody></table>')
    if m["in_place"]:
        out += "<h3>Updates in place</h3><ul>" + "".join(
            f"<li>{_ref(i, n)} is written straight into variable {esc(v)}</li>" for i, n, v in m["in_place"]) + "</ul>"
    if m["views"]:
        out += "<h3>Views (no memory of their own)</h3><p>" + ", ".join(
            f"{_ref(i, n)} of {esc(r)}" for i, n, r in m["views"]) + "</p>"
    if m["fresh"]:
        out += "<p>Outputs, written into new arrays the caller keeps: " + ", ".join(_ref(i, n) for i, n in m["fresh"]) + "</p>"
    return out


def _ref(node_id, name):
    return f'<span class="ref" data-node="{node_id}">{esc(name)}</span>'


def _kernels(d):
    users = {}
    for i, n in d["nodes"].items():
        if n["kernel"] and n["runs"] == i:
            users.setdefault(n["kernel"], []).append((i, n["name"]))
    rows = "".join(f'<tr><td><code>{esc(k)}</code></td><td class="num">{a}-{b}</td><td>'
                   + ", ".join(_ref(i, n) for i, n in users.get(k, [])) + "</td></tr>" for k, (a, b) in d["kernels"].items())
    return ('<table class="kernels"><thead><tr><th>kernel</th><th>lines</th><th>nodes it computes</th></tr></thead>'
            f"<tbody>{rows}</tbody></table>")


def _profile(p):
    rows = p["rows"]
    out = [f'<h2 id="s7">7. Profile of one call</h2><p>The step replayed as plain Python with a timer around each '
           f'statement (best of several calls, on copies of the variables): {p["replayed_us"]:.0f} us in all, against '
           f'{p["whole_us"]:.0f} us for one call of the real step (the replay adds ~1 us of Python per call). Bytes: '
           f'what a statement\'s nodes read and write; flops: estimated per op. Below {MEMORY_BOUND:g} flops per byte a '
           'kernel waits on memory rather than on arithmetic. Click a header to sort, a row to select its nodes.</p>',
           _bars(rows)]
    head = ["line", "kernel", "us", "% of step", "bytes", "flops", "flops/byte", "GB/s", "bound by"]
    total = sum(r["us"] for r in rows) or 1
    body = []
    for r in rows:
        inten = r["flops"] / r["bytes"] if r["bytes"] else 0
        gbs = r["bytes"] / (r["us"] * 1e3) if r["us"] > 0 else 0
        bound = "-" if not r["bytes"] else ("memory" if inten < MEMORY_BOUND else "arithmetic")
        cells = [(r["first"], r["first"]), (r["kernel"], r["kernel"]), (r["us"], f'{r["us"]:.1f}'),
                 (r["us"] / total, f'{100 * r["us"] / total:.1f}'), (r["bytes"], f'{r["bytes"]:,}'),
                 (r["flops"], f'{r["flops"]:,}'), (inten, f"{inten:.2f}"), (gbs, f"{gbs:.2f}"), (bound, bound)]
        tds = "".join(f'<td data-v="{esc(v)}"{" class=num" if isinstance(v, (int, float)) else ""}>{esc(t)}</td>'
                      for v, t in cells)
        body.append(f'<tr data-nodes="{",".join(map(str, r["nodes"]))}">{tds}</tr>')
    out.append('<table id="profile"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"
               + "".join(body) + "</tbody></table>")
    return "".join(out)


def _bars(rows):
    """Inline SVG: time per kernel (the statements calling one kernel summed), longest first."""
    per = {}
    for r in rows:
        per[r["kernel"]] = per.get(r["kernel"], 0) + r["us"]
    items = sorted(per.items(), key=lambda kv: -kv[1])[:30]
    if not items:
        return ""
    top, w, h = items[0][1] or 1, 420, 16
    bars = []
    for k, (name, us) in enumerate(items):
        y = 4 + k * (h + 3)
        bars.append(f'<text x="236" y="{y + 12}" text-anchor="end">{esc(name[:38])}</text>'
                    f'<rect x="240" y="{y}" width="{max(w * us / top, 1):.1f}" height="{h}" fill="#4dabf7"/>'
                    f'<text x="{244 + w * us / top:.1f}" y="{y + 12}">{us:.1f} us</text>')
    return (f'<svg class="bars" xmlns="http://www.w3.org/2000/svg" width="760" height="{8 + len(items) * (h + 3)}" '
            f'font-family="Helvetica,sans-serif" font-size="11">{"".join(bars)}</svg>')


def esc(s):
    return html.escape(str(s))


def as_json(obj):
    """JSON safe inside a <script> element."""
    return json.dumps(obj).replace("</", "<\\/")
