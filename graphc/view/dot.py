"""Graphviz DOT export: a picture of a graph, a function, or the nodes behind some outputs.

Shapes and colors tell node kinds apart: placeholders are blue ellipses
(fed), variables orange cylinders (state), constants grey notes, ops white
boxes, outputs a bold red border; an update is a dashed edge from the new
value to its variable.
"""
import os
import re
import shutil
import subprocess

from graphc.core.errors import GraphError
from graphc.core.graph import Graph, Node, ancestors
from graphc.core.region import Param
from graphc.core.types import TupleType, fmt_shape

STYLE = {
    "placeholder": 'shape=ellipse, style=filled, fillcolor="#cfe2ff"',
    "variable": 'shape=cylinder, style=filled, fillcolor="#ffd8a8"',
    "constant": 'shape=note, style=filled, fillcolor="#e9ecef"',
}
OP_STYLE = 'shape=box, style="rounded,filled", fillcolor="#ffffff"'


def _esc(s):
    return str(s).replace("\\", "\\\\").replace('"', '\\"')


def _label(n):
    head = n.op.name if n.name == n.op.name else f"{n.op.name}\\n{_esc(n.name)}"
    if n.op.name in ("placeholder", "variable"):
        head = f"{_esc(n.name)}\\n{n.op.name}"
    if n.op.name == "constant":
        v = n.attrs["value"]
        head = f"const {_esc(v.reshape(-1)[0]) if v.size == 1 else _esc(n.name)}"
    extra = "".join(f"\\n{_esc(text)}" if key is None else f"\\n{key}={_esc(text)}" for key, text in n.op.label(n))
    return f"{head}{extra}\\n{_type_text(n.type)}"


def _type_text(t):
    if isinstance(t, TupleType):
        return " ".join(_type_text(x) for x in t.types)
    return f"{fmt_shape(t.shape)} {t.dtype}"


def _collect(obj):
    """(nodes, outputs, updates, title) of a graph, a function, a node or a list of nodes."""
    if isinstance(obj, Graph):
        return obj.nodes, [], {}, obj.name
    if isinstance(obj, Node):
        obj = [obj]
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(n, Node) for n in obj):
        return ancestors(list(obj)), list(obj), {}, obj[0].graph.name
    if hasattr(obj, "nodes") and hasattr(obj, "outputs"):   # a compiled function
        updates = getattr(obj, "updates", {})
        # an updated variable that nothing reads is not among obj.nodes, but its update edge needs it
        nodes = list(obj.nodes) + [v for v in updates if v not in set(obj.nodes)]
        return nodes, obj.outputs, updates, getattr(obj, "graph", obj).name
    raise GraphError(f"to_dot needs a Graph, a function, a node or a list of nodes, got {obj!r}")


def to_dot(obj, rankdir="TB", highlight=()):
    """DOT text for a Graph, a compiled function, a node or a list of nodes.

    A fused node is drawn as a cluster of the ops it runs; nodes in
    `highlight` (e.g. what a pass changed) get a yellow fill."""
    nodes, outputs, updates, title = _collect(obj)
    outs, highlight = set(outputs), set(highlight)
    lines = [f'digraph "{_esc(title)}" {{', f"  rankdir={rankdir};",
             '  node [fontname="Helvetica", fontsize=10];', '  edge [fontname="Helvetica", fontsize=9];']
    for n in nodes:
        if n.op.name == "fused":
            lines += _fused_cluster(n, n in outs, n in highlight)
            continue
        style = STYLE.get(n.op.name, OP_STYLE)
        if n in highlight:   # any kind: constant folding makes new constants
            style = re.sub(r'fillcolor="[^"]*"', 'fillcolor="#fff3bf"', style)
        if n in outs:
            style += ', color="#c92a2a", penwidth=2.5'
        lines.append(f'  n{n.id} [label="{_label(n)}", {style}];')
    for n in nodes:
        if n.op.name == "fused":
            continue
        many = len(n.inputs) > 1 and n.op.name not in ("add", "multiply", "maximum", "minimum")
        for i, x in enumerate(n.inputs):
            label = f' [label="{i}"]' if many else ""
            src = _port(x, n.attrs["index"] if n.op.name == "output" else 0)
            lines.append(f"  {src} -> n{n.id}{label};")
    for var, value in updates.items():
        lines.append(f'  {_port(value)} -> n{var.id} [style=dashed, color="#e8590c", label="update"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _port(n, k=0):
    """The DOT id that stands for n's value (a fused node's value comes out of an inner op)."""
    if n.op.name != "fused":
        return f"n{n.id}"
    if n.attrs.get("reduce") is not None:
        return f"n{n.id}_r"
    return f"n{n.id}_{n.attrs['region'].outputs[k]}"


def _fused_cluster(n, is_output, changed):
    fill = "#fff3bf" if changed else "#e7f5ff"
    border = '; color="#c92a2a"; penwidth=2.5' if is_output else '; color="#1c7ed6"'
    kind = "fused reduction" if n.attrs.get("reduce") else "fused"
    region = n.attrs["region"]
    lines = [f"  subgraph cluster_n{n.id} {{",
             f'    label="{kind}\\n{_type_text(n.type)}"; style="rounded,filled"; '
             f'fillcolor="{fill}"{border}; fontname="Helvetica"; fontsize=10;']
    for j, step in enumerate(region.steps):
        extra = "".join(f"\\n{k}={_esc(v)}" for k, v in step.attrs if k not in ("dtype",))
        lines.append(f'    n{n.id}_{j} [label="{step.op.name}{extra}", {OP_STYLE}];')
    reduce = n.attrs.get("reduce")
    if reduce is not None:
        op, axis, keepdims = reduce
        lines.append(f'    n{n.id}_r [label="{op.name}\\naxis={axis}\\nkeepdims={keepdims}", {OP_STYLE}];')
    lines.append("  }")
    for j, step in enumerate(region.steps):
        for x in step.operands:
            origin = _port(n.inputs[x.index]) if isinstance(x, Param) else f"n{n.id}_{x.index}"
            lines.append(f"  {origin} -> n{n.id}_{j};")
    if reduce is not None:
        lines.append(f"  n{n.id}_{region.outputs[0]} -> n{n.id}_r;")
    return lines


def render(obj, path):
    """Write a picture of obj to path (.svg, .png or .pdf) with Graphviz's `dot` program."""
    fmt = os.path.splitext(path)[1].lstrip(".").lower()
    if fmt not in ("svg", "png", "pdf"):
        raise GraphError(f"render: cannot tell the format of {path!r}; end it in .svg, .png or .pdf")
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizNotFound(
            "render needs Graphviz's `dot` program, which is not on PATH. Install Graphviz "
            "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz; "
            "conda: conda install graphviz), or write the text with gc.to_dot and view it elsewhere")
    subprocess.run([dot, f"-T{fmt}", "-o", path], input=to_dot(obj).encode(), check=True)
    return path


class GraphvizNotFound(GraphError, RuntimeError):
    """Graphviz's `dot` is not installed."""
