"""DOT text (graphc.view.dot) as inline SVG for the report page: laid out by Graphviz's
`dot` when it is installed, else by a small layered layout here, so the page still
shows every graph (less tidily) on a machine without Graphviz.

Both give the same SVG structure the page's script reads: each node a
`<g class="node">` whose `<title>` is its DOT id (n12, or n12_0 for an op inside
fused node 12), each fused group a `<g class="cluster">` titled cluster_n12.
"""
import html
import re
import shutil
import subprocess

INSTALL_HINT = ("Graphviz's `dot` is not installed, so these graphs are laid out by graphc's small "
                "fallback layout. For tidier pictures install Graphviz (Debian/Ubuntu: "
                "apt-get install graphviz; macOS: brew install graphviz; conda: conda install graphviz) "
                "and write the report again.")


def dot_program():
    """The path of Graphviz's `dot`, or None (the tests replace this to try the fallback)."""
    return shutil.which("dot")


# fewer crossing-minimization rounds: 3x faster on a training step's ~300 nodes, nearly as tidy
DOT_OPTIONS = ["-Tsvg", "-Gmclimit=0.3", "-Gnslimit=2"]


def to_svg(dot_text):
    """(svg text, laid out by Graphviz?)"""
    return to_svgs([dot_text])[0]


def to_svgs(texts):
    """[(svg text, laid out by Graphviz?)] for DOT texts: each distinct text drawn once, the
    `dot` processes run side by side (a report draws ~20 graphs)."""
    from concurrent.futures import ThreadPoolExecutor
    dot = dot_program()
    distinct = list(dict.fromkeys(texts))

    def one(text):
        if dot is not None:
            try:
                out = subprocess.run([dot] + DOT_OPTIONS, input=text.encode(), capture_output=True,
                                     check=True, timeout=300).stdout.decode()
                return out[out.index("<svg"):], True
            except (subprocess.SubprocessError, OSError, ValueError):
                pass                                    # a graph dot cannot draw: the fallback can
        return fallback_svg(text), False
    with ThreadPoolExecutor(max_workers=4) as pool:
        drawn = dict(zip(distinct, pool.map(one, distinct)))
    return [drawn[t] for t in texts]


# ---------------------------------------------------------------- the fallback layout

_NODE = re.compile(r'^\s*(n\w+) \[label="((?:[^"\\]|\\.)*)"(.*)\];$')
_EDGE = re.compile(r'^\s*(n\w+) -> (n\w+)(?: \[(.*)\])?;$')
_CLUSTER = re.compile(r'^\s*subgraph (cluster_n\w+) \{$')
_CLUSTER_LABEL = re.compile(r'^\s*label="((?:[^"\\]|\\.)*)";.*fillcolor="([^"]+)"')
_FILL = re.compile(r'fillcolor="([^"]+)"')


def parse_dot(text):
    """(nodes {id: (label lines, fill, shape, bold)}, edges [(a, b, label, dashed)],
    clusters {cluster id: (label lines, fill, [member ids])}) of graphc's DOT text."""
    nodes, edges, clusters, current = {}, [], {}, None
    for line in text.splitlines():
        m = _CLUSTER.match(line)
        if m:
            current = m.group(1)
            clusters[current] = ([], "#e7f5ff", [])
            continue
        if current and line.strip() == "}":
            current = None
            continue
        m = _CLUSTER_LABEL.match(line)
        if current and m:
            clusters[current] = (_lines(m.group(1)), m.group(2), clusters[current][2])
            continue
        m = _NODE.match(line)
        if m:
            rest = m.group(3)
            fill = _FILL.search(rest)
            shape = re.search(r"shape=(\w+)", rest)
            nodes[m.group(1)] = (_lines(m.group(2)), fill.group(1) if fill else "#ffffff",
                                 shape.group(1) if shape else "box", "penwidth" in rest)
            if current:
                clusters[current][2].append(m.group(1))
            continue
        m = _EDGE.match(line)
        if m:
            attrs = m.group(3) or ""
            label = re.search(r'label="((?:[^"\\]|\\.)*)"', attrs)
            edges.append((m.group(1), m.group(2), label.group(1) if label else "", "dashed" in attrs))
    for a, b, _, _ in edges:                 # an edge may name a node drawn elsewhere
        for x in (a, b):
            nodes.setdefault(x, ([x], "#f8f9fa", "box", False))
    return nodes, edges, clusters


def _lines(label):
    return [s.replace('\\"', '"').replace("\\\\", "\\") for s in label.split("\\n")]


def layered(nodes, edges):
    """{id: (layer, position in layer)}: longest-path layers (an update's dashed edge back to
    its variable is left out, it would make a cycle), then two barycenter sweeps."""
    preds = {n: [] for n in nodes}
    for a, b, _, dashed in edges:
        if not dashed and a != b:
            preds[b].append(a)
    layer = {}

    def depth(n, seen=()):
        if n not in layer:
            layer[n] = 0 if n in seen else 1 + max((depth(p, seen + (n,)) for p in preds[n]), default=-1)
        return layer[n]
    for n in nodes:
        depth(n)
    rows = {}
    for n in nodes:
        rows.setdefault(layer[n], []).append(n)
    pos = {n: k for r in rows.values() for k, n in enumerate(r)}
    succs = {n: [] for n in nodes}
    for b, ps in preds.items():
        for a in ps:
            succs[a].append(b)
    for sweep in range(4):
        order = sorted(rows) if sweep % 2 == 0 else sorted(rows, reverse=True)
        for r in order:
            nbrs = preds if sweep % 2 == 0 else succs
            key = {n: (sum(pos[p] for p in nbrs[n]) / len(nbrs[n]) if nbrs[n] else pos[n]) for n in rows[r]}
            rows[r].sort(key=lambda n: key[n])
            for k, n in enumerate(rows[r]):
                pos[n] = k
    return {n: (layer[n], pos[n]) for n in nodes}, rows


def fallback_svg(dot_text):
    """SVG of graphc's DOT text without Graphviz: boxes in layers, straight edges."""
    nodes, edges, clusters = parse_dot(dot_text)
    if not nodes:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40"><text x="10" y="25">(empty graph)</text></svg>'
    place, rows = layered(nodes, edges)
    size = {n: (max(len(s) for s in lab) * 6.2 + 18, len(lab) * 13 + 10) for n, (lab, *_) in nodes.items()}
    gap_x, gap_y, xy, y = 24, 46, {}, 30
    widths = {r: sum(size[n][0] for n in ns) + gap_x * (len(ns) - 1) for r, ns in rows.items()}
    total_w = max(widths.values()) + 60
    for r in sorted(rows):
        x = (total_w - widths[r]) / 2
        h = max(size[n][1] for n in rows[r])
        for n in rows[r]:
            xy[n] = (x + size[n][0] / 2, y + h / 2)
            x += size[n][0] + gap_x
        y += h + gap_y
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w:.0f}pt" height="{y:.0f}pt" '
           f'viewBox="0 0 {total_w:.0f} {y:.0f}" font-family="Helvetica,sans-serif" font-size="10">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#495057"/></marker></defs>',
           '<g class="graph">']
    for cid, (label, fill, members) in clusters.items():
        if not members:
            continue
        x0 = min(xy[m][0] - size[m][0] / 2 for m in members) - 8
        x1 = max(xy[m][0] + size[m][0] / 2 for m in members) + 8
        y0 = min(xy[m][1] - size[m][1] / 2 for m in members) - 14 - 12 * len(label)
        y1 = max(xy[m][1] + size[m][1] / 2 for m in members) + 8
        out.append(f'<g class="cluster"><title>{cid}</title><rect x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" '
                   f'height="{y1 - y0:.1f}" rx="6" fill="{fill}" stroke="#1c7ed6"/>'
                   + _text(label, (x0 + x1) / 2, y0 + 12) + "</g>")
    for a, b, label, dashed in edges:
        (xa, ya), (xb, yb) = xy[a], xy[b]
        ya, yb = ya + size[a][1] / 2, yb - size[b][1] / 2
        style = ' stroke-dasharray="5,3" stroke="#e8590c"' if dashed else ' stroke="#495057"'
        out.append(f'<g class="edge"><title>{a}&#45;&gt;{b}</title><line x1="{xa:.1f}" y1="{ya:.1f}" '
                   f'x2="{xb:.1f}" y2="{yb:.1f}"{style} marker-end="url(#arrow)"/>'
                   + (_text([label], (xa + xb) / 2 + 6, (ya + yb) / 2) if label else "") + "</g>")
    for n, (label, fill, shape, bold) in nodes.items():
        (x, y0), (w, h) = xy[n], size[n]
        rx = h / 2 if shape == "ellipse" else 6
        stroke = ' stroke="#c92a2a" stroke-width="2.5"' if bold else ' stroke="#343a40"'
        out.append(f'<g class="node"><title>{n}</title><rect x="{x - w / 2:.1f}" y="{y0 - h / 2:.1f}" '
                   f'width="{w:.1f}" height="{h:.1f}" rx="{rx:.1f}" fill="{fill}"{stroke}/>'
                   + _text(label, x, y0 - h / 2 + 15) + "</g>")
    return "\n".join(out + ["</g></svg>"])


def _text(lines, x, y):
    return "".join(f'<text text-anchor="middle" x="{x:.1f}" y="{y + 13 * k:.1f}">{html.escape(s)}</text>'
                   for k, s in enumerate(lines))
