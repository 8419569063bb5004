"""gc.report(fn, "report.html"): one self-contained HTML page about a compiled CPU function,
for a learner following the whole journey of one graph through the compiler.

The page (report_page.py writes it) shows the graph as the user built it, its
gradient part, every pass of the pipeline before and after (replayed here with the
pipeline's own instruments: DumpDot, Timing, Verify), the optimized graph and its
memory plan, the generated module highlighted by Pygments, and a profile of one call
(profile.py); a script in the page links a node to its kernel, its step line and the
user's line, and back. Graphs are SVG laid out by Graphviz when it is installed (svg.py).

The passes are replayed from the program gc.function handed the pipeline
(`Function.unoptimized`); graphs are hash-consed, so running the pipeline again on those
roots gives the very nodes that ran; the page says so (`exact`) or says where it differs.
"""
import importlib
import os
import tempfile

from graphc.core.errors import ArgumentError
from graphc.core.graph import ancestors

from . import dot as dotview
from . import profile as prof
from .svg import INSTALL_HINT, to_svgs


def report(fn, path, args=None, title=None):
    """Write the report page of a CPU function to path; return path.

    args: arrays to profile one call with (default: those of the most recent shape
    signature, random). The function's variables are not changed (the profile runs on
    copies); a function never called is compiled for args first."""
    from .report_page import page
    data = collect(fn, args, title)
    with open(path, "w", encoding="utf-8") as f:
        f.write(page(data))
    return path


def collect(fn, args=None, title=None):
    """Everything the page shows, as plain data (strings, numbers, lists, dicts)."""
    if getattr(fn, "backend", None) != "cpu":
        raise ArgumentError(f"gc.report needs a function compiled with backend='cpu', got {fn!r}")
    c, feeds = _compiled(fn, args)
    roots, outputs, exact = _unoptimized_roots(fn)
    data = {"title": title or repr(fn), "graphviz": True, "hint": INSTALL_HINT, "exact": exact}
    texts = []

    def draw(dot_text):                  # a mark now; every graph is laid out at once at the end
        texts.append(dot_text)
        return f"\x00svg{len(texts) - 1}\x00"
    forward = ancestors(outputs)
    data["user_graph"] = draw(_with_locations(dotview.to_dot(_Program(forward, outputs, {}, fn)), forward))
    data["gradient"] = _gradient(fn, roots, outputs, forward, draw)
    data["passes"], data["pass_note"] = _passes(fn, roots, draw, exact)
    data["final_graph"] = draw(dotview.to_dot(fn))
    data["memory"] = _memory(fn, c)
    data["source"], data["kernels"], data["stmts"] = _source(c)
    data["nodes"] = _node_info(fn, c, roots)
    data["user_files"] = _user_files(data["nodes"])
    rows, whole = prof.profile(fn, c, feeds)
    data["profile"] = _profile_rows(rows, whole, fn, c)
    drawn = to_svgs(texts)
    data["graphviz"] = all(by_dot for _, by_dot in drawn)
    return _fill(data, [svg for svg, _ in drawn])


def _fill(obj, svgs):
    """obj with each mark of `draw` replaced by its SVG."""
    if isinstance(obj, str) and obj.startswith("\x00svg"):
        return svgs[int(obj[4:-1])]
    if isinstance(obj, dict):
        return {k: _fill(v, svgs) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_fill(v, svgs) for v in obj]
    return obj


class _Program:
    """What to_dot draws of a function (nodes, outputs, updates), for a part of one."""

    def __init__(self, nodes, outputs, updates, fn):
        self.nodes, self.outputs, self.updates, self.graph = nodes, outputs, updates, fn.program_graph


def _compiled(fn, args):
    """(the Compiled step of args' signature, or of the latest one; the feeds to profile)."""
    if args is not None:
        args = [a for a in (args if isinstance(args, (list, tuple)) else [args])]
        import numpy as np
        args = [np.ascontiguousarray(a, dtype=x.dtype) for a, x in zip(args, fn.inputs)]
        sig = tuple(a.shape for a in args)
        c = fn._compiled.get(sig) or fn._compile_once(sig, tuple(args))
        return c, args
    if not fn._compiled:
        raise ArgumentError("gc.report: the function was never called; pass args=(arrays...) "
                            "so that it is compiled for their shapes")
    sig, c = list(fn._compiled.items())[-1]
    return c, prof.sample_feeds(fn, sig)


def _unoptimized_roots(fn):
    """(roots as the pipeline got them: outputs then update values; the outputs; exact?). The
    function keeps them (Function.unoptimized); graphs are hash-consed, so running the pipeline
    again on them gives the very nodes that ran, which `exact` checks."""
    outs, ups = fn.unoptimized
    roots = list(outs) + [ups[v] for v in fn.updates]
    if fn.pass_timing is None:
        return roots, list(outs), True
    from graphc.passes.pipeline import run_pipeline
    again = run_pipeline(roots)
    return roots, list(outs), all(a is b for a, b in zip(again, fn.outputs + list(fn.updates.values())))


def _with_locations(dot_text, nodes):
    """The user's file:line under each node's label (the user's graph, section 1)."""
    for n in nodes:
        if n.op.name == "fused" or not n.loc:
            continue
        label = dotview._label(n)
        where = dotview._esc(f"{os.path.basename(n.loc[0])}:{n.loc[1]}")
        dot_text = dot_text.replace(f'n{n.id} [label="{label}"', f'n{n.id} [label="{label}\\n{where}"', 1)
    return dot_text


def _gradient(fn, roots, outputs, forward, draw):
    """The nodes the updates need beyond the outputs (gradients, optimizer arithmetic), with
    the forward nodes they read marked green; None without such nodes."""
    values = roots[len(outputs):]
    fwd = set(forward)
    grad = [n for n in ancestors(values) if n not in fwd and n.op.kind != "source"]
    if not grad:
        return None
    mine = set(grad)
    reused = [x for x in dict.fromkeys(i for n in grad for i in n.inputs) if x not in mine]
    updates = {v: x for v, x in zip(fn.updates, values)}
    nodes = sorted(set(reused) | mine | set(updates), key=lambda n: n.id)
    text = dotview.to_dot(_Program(nodes, values, updates, fn), highlight=[x for x in reused if x in fwd])
    return {"svg": draw(text.replace("#fff3bf", "#b2f2bb")), "count": len(grad),
            "reused": [x.name for x in reused if x in fwd]}


def _passes(fn, roots, draw, exact):
    """One entry per pass: its name, doc, ms, node counts and before/after pictures."""
    from graphc.passes.pipeline import DEFAULT_PIPELINE, DumpDot, Timing, Verify, run_pipeline
    if fn.pass_timing is None:
        return [], "This function was built with optimize=False: no pass ran."
    timing = Timing()
    with tempfile.TemporaryDirectory() as tmp:
        run_pipeline(roots, instruments=(Verify(), timing, DumpDot(tmp)))
        out = []
        for k, (p, (name, sec, n0, n1)) in enumerate(zip(DEFAULT_PIPELINE, timing.rows)):
            stem = os.path.join(tmp, f"{k:02d}_{name}")
            before, after = (open(stem + s).read() for s in (".before.dot", ".after.dot"))
            out.append({"name": name, "doc": p.doc, "ms": sec * 1e3, "before_n": n0, "after_n": n1,
                        "changed": after.count("#fff3bf"), "before": draw(before), "after": draw(after)})
    note = ("The passes were run again on the program the function started from; graphs are "
            "hash-consed, so they made the very nodes that run." if exact else
            "The passes were run again on the roots found in the function's scratch graph; the "
            "result differs from what runs (the final graph below is what runs).")
    return out, note


def _memory(fn, c):
    """The memory plan of this signature (made again: plan_memory is deterministic)."""
    # the CPU backend by name, as graphc/function.py's BACKENDS loads it: importing graphc
    # (which exports gc.report) must not import the backend, which imports graphc
    _may_raise = importlib.import_module("graphc.runtime.cpu.codegen")._may_raise
    from graphc.runtime.cpu.channel_gather import channel_gathers
    from graphc.runtime.cpu.layout import aliases_in, layouts
    from graphc.runtime.memory import plan_memory
    nodes, types = fn.nodes, c.types
    in_place = not (fn.check_numerics or _may_raise(nodes, types))
    layout = layouts(nodes, types)
    gathers = {} if fn.check_numerics else channel_gathers(nodes, types, layout, set(fn.outputs) | set(fn.updates.values()))
    plan = plan_memory(nodes, fn.outputs, fn.updates, types, aliases_in(layout, gathers), in_place=in_place)
    buffers = [{"name": b.name, "type": f"{b.dtype.name} {tuple(b.shape)}",
                "values": [(n.id, n.name) for n in nodes if plan.target(n) == b.name]} for b in plan.buffers]
    in_place_rows = [(n.id, n.name, plan.target(n).name) for n in nodes
                     if n.op.kind != "source" and plan.target(n) is not None and not isinstance(plan.target(n), str)]
    views = [(n.id, n.name, plan.root[n].name) for n in nodes if n.op.kind != "source"
             and plan.target(n) is None and n.op.name != "size" and plan.root.get(n) is not n]
    fresh = [(n.id, n.name) for n in nodes if plan.target(n) == "fresh"]
    return {"buffers": buffers, "in_place": in_place_rows, "views": views, "fresh": fresh,
            "saved": sum(max(len(b["values"]) - 1, 0) for b in buffers)}


def _source(c):
    """(fn.source highlighted, one HTML line each; {kernel: [first, last line]}; statements)."""
    import ast
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer
    text = c.program.source
    lines = highlight(text, PythonLexer(), HtmlFormatter(nowrap=True)).split("\n")
    kernels = {}
    for d in ast.parse(text).body:
        if isinstance(d, ast.FunctionDef) and d.name != "step":
            first = min([d.lineno] + [x.lineno for x in d.decorator_list])
            kernels[d.name] = [first, d.end_lineno]
    stmts = [[a, b, k] for a, b, k, _ in prof.statements(text)]
    return lines[:len(text.split("\n"))], kernels, stmts


def _node_info(fn, c, roots):
    """{node id: name, op, type, where, kernel, line, bytes, flops} for every node drawn."""
    final = set(fn.nodes)
    by_name = {n.name: n for n in fn.nodes}
    kmap = c.program.node_map
    every = sorted(set(ancestors(roots)) | final | set(fn.updates), key=lambda n: n.id)
    views = _no_kernel(kmap)
    out = {}
    for n in every:
        runs = n if n in final else by_name.get(n.name)   # a pass rebuilding a node keeps its name
        kernel, line = kmap.get(runs, (None, None)) if runs is not None else (None, None)
        moved, flops = prof.cost(runs, c.types, lambda m: m in views) if runs in final else (0, 0)
        out[n.id] = {"name": n.name, "op": n.op.name, "type": dotview._type_text(c.types.get(n, n.type)),
                     "where": f"{n.loc[0]}:{n.loc[1]}" if n.loc else None, "kernel": kernel, "line": line,
                     "runs": runs.id if runs is not None else None, "bytes": moved, "flops": flops}
    return out


def _no_kernel(node_map):
    """The nodes no call computes: views and sizes. (A matmul without a kernel of its own is
    computed by the call on its line: matmul_into with the fused node's epilogue.)"""
    return {n for n, (k, _) in node_map.items() if k is None and n.op.name != "matmul"}


def _user_files(nodes):
    """{file: [highlighted lines]} of the user's files the nodes were built in (at most 4)."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer
    files = {}
    for info in nodes.values():
        if info["where"]:
            files.setdefault(info["where"].rsplit(":", 1)[0], None)
    out = {}
    for path in list(files)[:4]:
        try:
            text = open(path, encoding="utf-8").read()
        except OSError:
            continue
        if len(text) > 200_000:
            continue
        out[path] = highlight(text, PythonLexer(), HtmlFormatter(nowrap=True)).split("\n")[:len(text.split("\n"))]
    return out


def _profile_rows(rows, whole, fn, c):
    """One row per statement of the step: its lines, kernel, seconds, and its nodes' work."""
    by_line = {}
    for n, (kernel, line) in c.program.node_map.items():
        by_line.setdefault(line, []).append(n)
    views = _no_kernel(c.program.node_map)
    out = []
    for first, last, kernel, text, sec in rows:
        mine = [n for ln in range(first, last + 1) for n in by_line.get(ln, []) if n not in views]
        moved = flops = 0
        for n in mine:
            b, f = prof.cost(n, c.types, lambda m: m in views)
            moved, flops = moved + b, flops + f
        out.append({"first": first, "last": last, "kernel": kernel or text.split("(")[0][:40], "text": text,
                    "us": sec * 1e6, "bytes": moved, "flops": flops, "nodes": [n.id for n in mine]})
    return {"rows": out, "whole_us": whole * 1e6, "replayed_us": sum(r["us"] for r in out)}

