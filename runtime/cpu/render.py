"""The text of a generated module (codegen.py builds what it says): kernels, then `step`, each
line with its comment in one column, long calls one argument per line, the buffer table; and
the map from nodes to the lines computing them (Program.node_map). Also the text that runs:
each kernel in a module of its own, and the step bare, importing them."""
import re

from .emit import Call
from .target import CPU

WIDTH = 100               # a call or def longer than this gets one argument per line
COMMENT_COLUMN = 56       # where the step's comments start (two spaces after longer code)


def render(mod, words, params, param_notes, returns, header, jit, locations=True, target=CPU):
    """The module's text as a reader sees it (fn.source), and the 1-based line of each
    statement of `step`. (What runs on the CPU is `kernel_module` for each kernel and
    `runnable_step`; the CUDA backend runs this text itself, with `target` its own.)"""
    out = [_printable(header)] + target.header() + [""]
    for key, name in mod.kernels.items():
        out += [""] + kernel_text(key, name, target)
    if jit:
        out += ["", '@njit(cache=True, error_model="numpy")']
    else:
        out += ["", target.step_note]
    out += _aligned(_signature("step", params, param_notes))
    out += _buffer_block(words)
    primary = _primary(mod.stmts)
    rows, starts = [], []
    for k, s in enumerate(mod.stmts):
        starts.append(len(rows))
        rows += _statement(s, words.comment(s, primary.get(s.node) == k, locations))
    ret = ", ".join(returns) + ("," if len(returns) == 1 else "")
    names = [o.name for o in words.outputs]
    said = "outputs: " + ", ".join(names) if names else None
    if len(f"    return ({ret})") + len(said or "") < WIDTH + 20:     # the comment fits beside it
        rows.append((f"    return ({ret})", said))
    else:
        rows += [("    return (", "outputs")] + [(f"        {r},", o) for r, o in zip(returns, names)] \
            + [("    )", None)]
    first = len(out) + 1
    out += _aligned(rows)
    return "\n".join(out) + "\n", [first + k for k in starts]


def runnable_step(mod, params, returns, jit, kernel_modules):
    """The step's module as it runs: its kernels imported from their own modules, no comments,
    the arguments named by position (p0, p1, ...). Two graphs that differ only in names (of
    nodes, inputs, variables) then run one module, compiled once; and the text, which keys the
    kernel cache, does not move when a graph moves in its script."""
    rename = {p: f"p{k}" for k, p in enumerate(params)}
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, params)) + r")\b") if params else None

    def positional(text):
        return pattern.sub(lambda m: rename[m.group(1)], text) if pattern else text
    out = CPU.header() + [""]
    out += [f"from {kernel_modules[key]} import {mod.base[key]}" + (f" as {name}" if name != mod.base[key] else "")
            for key, name in mod.kernels.items()]
    out += ["", ""] + (['@njit(cache=True, error_model="numpy")'] if jit else [])
    out.append(f"def step({', '.join(rename[p] for p in params)}):")
    out += ["    " + positional(str(s.text)) for s in mod.stmts]
    ret = ", ".join(positional(r) for r in returns) + ("," if len(returns) == 1 else "")
    return "\n".join(out + [f"    return ({ret})"]) + "\n"


def kernel_text(key, name, target=CPU):
    """One kernel's definition: its decorator, signature and body."""
    params_k, text, fastmath, parallel = key
    if target is not CPU:
        return [target.decorator] + _aligned(_signature(name, params_k, [None] * len(params_k))) + text.split("\n") + [""]
    flags = 'cache=True, error_model="numpy"'
    if fastmath:
        flags += f", fastmath={{{', '.join(repr(f) for f in sorted(fastmath))}}}"
    if parallel:
        flags += ", parallel=True"
    return [f"@njit({flags})"] + _aligned(_signature(name, params_k, [None] * len(params_k))) + text.split("\n") + [""]


def kernel_module(key, name):
    """The text of a module holding one kernel: it is compiled (and cached by Numba) once,
    for every graph and function whose code contains the same kernel."""
    return "\n".join(["# one kernel of graphc's generated code"] + CPU.header() + ["", ""] + kernel_text(key, name))


def _signature(name, params, notes):
    """`def name(a, b):` on one line, or one parameter per line (with its note) when long."""
    line = f"def {name}({', '.join(params)}):"
    if len(line) <= WIDTH:
        return [(line, None)]
    return [(f"def {name}(", None)] + [(f"    {p},", c) for p, c in zip(params, notes)] + [("):", None)]


def _statement(s, comment):
    """The (code, comment) rows of one statement: a long call gets one argument per line."""
    text = s.text
    if not isinstance(text, Call) or len("    " + text) <= WIDTH:
        return [("    " + text, comment)]
    pad = "    " * (1 + text.indent)
    rows = [(f"{pad}{text.head}(", comment)]
    rows += [(f"{pad}    {a},", note) for a, note in zip(text.args, text.notes)]
    return rows + [(f"{pad})", None)]


def _aligned(rows):
    """Code with its comments lined up in one column (or two spaces after longer code)."""
    widths = [len(code) for code, c in rows if c]
    col = min(COMMENT_COLUMN, max(widths) + 2) if widths else 0
    return [code if not c else (code.ljust(col) if len(code) + 2 <= col else code + "  ") + "# " + _printable(c)
            for code, c in rows]


def _printable(text):
    """Comment text on one line: a name holding a line break must not end the comment."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _buffer_block(words):
    """The step's opening comment: each buffer with the values it holds in turn (the memory
    plan hands a buffer to a new value once the last reader of its value has run), and the
    variables written in place by their updates."""
    ctx, holds = words.ctx, {}
    for n in words.nodes:
        target = ctx.plan.target(n)
        if isinstance(target, str) and target != "fresh":
            holds.setdefault(target, []).append(n.name)
    in_place = [n for n in words.nodes if n.op.kind != "source" and ctx.plan.target(n) is not None
                and not isinstance(ctx.plan.target(n), str)]
    # shapes as the graph was built: None is a dimension fed at call time (one step serves all)
    rows = [(buf.name, f"{buf.dtype.name} {buf.family_shape}", holds.get(buf.name, [])) for buf in ctx.plan.buffers]
    rows += [(ctx.names[ctx.plan.target(n)], f"{n.dtype.name} {n.shape}", ["written in place by " + n.name])
             for n in in_place]
    width = max((len(r[0]) for r in rows), default=0)
    lines = []
    for name, kind, values in rows:
        lines += _wrap(f"    #   {name.ljust(width)}  {kind}: ", [_printable(v) for v in values])
    if not lines:
        return []
    return ["    # buffers, each with the values it holds in turn"
            + ("; variables updated in place:" if in_place else ":")] + lines


def _wrap(head, items):
    lines, line = [], head
    for k, item in enumerate(items):
        piece = item + (", " if k < len(items) - 1 else "")
        if len(line) + len(piece) > WIDTH and line != head:
            lines.append(line.rstrip())
            line = "    #" + " " * (len(head) - 5)
        line += piece
    return lines + [line.rstrip()]


def _primary(stmts):
    """node -> index of the statement that says what the node is: its first kernel call, else
    its first line (allocations and the output section aside)."""
    first = {}
    for k, s in enumerate(stmts):
        if s.role == "compute" and (s.node not in first or s.kernel and not stmts[first[s.node]].kernel):
            first[s.node] = k
    return first


def node_map(stmts, lines, words, nodes):
    """Program.node_map (see Program)."""
    primary = _primary(stmts)
    used = {}           # a value without a line of its own -> the first line whose comment names it
    for k, s in enumerate(stmts):
        if s.role in ("alloc", "check") or s.role == "compute" and primary[s.node] != k:
            continue
        stack = list(s.node.inputs) if s.role == "compute" else [s.node]
        while stack:
            x = stack.pop()
            if x in words.expr and x not in used:
                used[x] = k
                stack.extend(x.inputs)
    out = {}
    for n in nodes:
        if n.op.kind == "source":
            continue
        k = primary.get(n)
        if k is None and n.op.name == "output" and n.inputs[0] in primary:
            # the producer's statement that writes this output's memory, else its main one
            dest = words.ctx.names.get(n)
            k = next((j for j, s in enumerate(stmts) if s.node is n.inputs[0] and s.kernel
                      and dest in s.text.args), primary[n.inputs[0]])
        if k is None:                           # a view or a size: the line reading it first
            k = used.get(n)
            out[n] = (None, lines[k] if k is not None else None)
        else:
            out[n] = (stmts[k].kernel, lines[k])
    return out
