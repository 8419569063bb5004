"""Code generation for the CPU backend: one Python module per compiled graph.

The module holds small kernels (one loop nest each, Numba-compiled) and one
`step` function that calls them in order, like a person would write it
(Numba-compiled too when it is short, see JIT_STEP_MAX_LINES). Part of one
(tests/golden/ holds whole modules, pinned by tests/test_codegen_golden.py):

    @njit(cache=True, error_model="numpy", fastmath={'contract'})
    def fused_mul_sub(a1, a2, out0):
        ...

    def step(in0_x, in1_t, var_W1, var_b1, var_W2, buf0, ...):
        # buffers, each with the values it holds in turn; variables updated in place:
        #   buf0    float32 (8, 6): matmul, matmul_1
        #   var_W1  float32 (4, 6): written in place by fused_2
        matmul_into(in0_x, var_W1, buf0.reshape(8, 6))  # matmul = matmul(x, W1) -> buf0  <- mlp.py:9
        ...
        fused_mul_sub(buf10, var_W1, var_W1)  # fused_2 = fused[mul, sub](0.1, matmul_4, W1) -> var_W1 (in place)

Shape families. Kernels see only ranks, dtypes and which inputs broadcast along
which axes, not sizes, and the step's text holds no size fed for a None dimension:
the outputs' arrays and any shape it needs come in as arguments, which the runtime
makes for each shape signature, and a reshape writes -1 for its one unknown
dimension. So a new batch size generates the same text, and the module compiled
for the first one runs it (the memory plan, cheap Python, is made again).
What changes the code makes a new family: a None dimension fed as 1 (it broadcasts),
or a loop crossing PARALLEL_MIN elements (parallel or not).

The memory plan (`runtime/memory.py`) decides which buffer each value lives in;
this module turns the schedule into text a learner can follow: kernels named for
what they do (emit.py), every line of `step` saying which node it computes from
which values into which buffer and where the user built it, the buffers listed
with the values each holds in turn, long calls one argument per line; and
`Program.node_map` links each node to its kernel and line.

What runs is not that text but the same code cut for the kernel cache, which
files a module under the hash of its text (so the text depends on the graph
alone: no ids, no set order): each kernel in a module of its own
(`Program.kernel_sources`), and the step (`Program.cache_source`) importing them,
without comments and with its arguments named by position. A kernel is compiled
once for every graph and function containing it; a graph that differs from
another only in names, or moves in its script, runs the other's modules.
"""
import os

import numpy as np

from graphc.core.region import Ref
from graphc.core.types import TupleType
from graphc.runtime.memory import Buffer, kshape, plan_memory

from . import lower_conv, lower_linalg, lower_multi, lower_nn, lower_scan, lower_shape  # noqa: F401  (they fill the table of lowerings)
from .emit import Ctx, Module, ident, short
from .channel_gather import channel_gathers
from .layout import aliases_in, layouts
from .loops import int_power_checked, lower, single_step
from .lower_shape import copy_into
from .cache import module_name
from .render import kernel_module, node_map, render, runnable_step


# A step of up to this many statements is itself Numba-compiled: one call into Numba per call
# of the function (what matters for small graphs: W4's batch-1 forward). A longer step stays
# plain Python: Numba compiles a function that calls many others slowly (the W3 step alone
# took ~2.6 s), while calling the kernels from Python costs ~1 us each (W3: +4%).
JIT_STEP_MAX_LINES = 16


class Program:
    """What the runtime needs besides the source: how to build step's arguments, and its results.

    node_map: {node: (kernel, line)} for every node of the schedule that runs (not the
    sources): the kernel computing it (a generated kernel, or a helper such as matmul_into;
    None for a line without a kernel call, a view or a size) and the 1-based line of `source`
    with the statement computing it: the call (its first line when laid out one argument per
    line). A node of several outputs and each of its `output` nodes map to the kernel writing
    them; a fused node stands for every op of its region. A view, or a size (a constant of the
    shape), has no line of its own: it maps to the first line that uses it, whose comment names it.
    """

    def __init__(self):
        # (name, kind, payload): kind in feed | var | out | const | buf | shape | check, in
        # step's order: feeds, variables, outputs (payload: (k, Buffer)), then the others
        self.params = []
        self.outputs = []          # step returns these (outputs first, then update copies)
        self.in_place = []         # the variables the step updates in place
        self.raises = []           # the nodes whose kernels raise "graphc check k: ..." (k: index here)
        self.checks = []           # check_numerics: the values `check(k, value)` tests (k: index here)
        self.source = ""
        self.cache_source = ""     # the step's module as it runs: without the users' file:line,
        #                            importing its kernels from kernel_sources (one module each)
        self.kernel_sources = []
        self.node_map = {}


def generate(nodes, outputs, updates, types, inputs, parallel=False, header="# generated by graphc",
             jit_step=None, check_numerics=False):
    """Source and argument plan of a step function computing outputs and updates.

    nodes: topological order; types: concrete TensorType per node; inputs: placeholders in call order.
    check_numerics: a plain-Python step that calls `check(k, value)` on every float value it
    computes (and on the float feeds and variables first); off, none of it is written.
    """
    mod = Module(parallel)
    prog = Program()
    layout = layouts(nodes, types)
    # a step checking every value makes each (a gather's reader would skip it: channel_gather.py)
    gathers = {} if check_numerics else channel_gathers(nodes, types, layout, set(outputs) | set(updates.values()))
    # a step that may stop with an error (a failed check) leaves the variables as they were,
    # as the interpreter does: its updates are copied in at the end, never written in place
    in_place = not (check_numerics or _may_raise(nodes, types))
    plan = plan_memory(nodes, outputs, updates, types, aliases_in(layout, gathers), in_place=in_place)
    names, notes = {}, []
    param, variables, outs = step_arguments(prog, notes, names, nodes, outputs, updates, types, inputs, plan,
                                            check_numerics)

    ctx = Ctx(mod, names, types, plan, layout, nodes, param=param, outs=outs)
    ctx.gathers, ctx.materialized, ctx.plane_params = gathers, {}, {}
    lower_nodes(nodes, inputs, variables, ctx, prog, lower, check_numerics)
    prog.raises = ctx.checked
    prog.in_place = [v for v in variables if plan.in_place(v)]

    returns = step_returns(mod, plan, names, outputs, updates, lambda src: f"{src}.copy()",
                           lambda src, var, value: copy_into(mod, src, names[var], types.get(var, var.type),
                                                             notes=[value.name, f"-> {var.name}"]))
    words = Words(ctx, nodes, outputs)
    step = [p[0] for p in prog.params]
    jit = jit_step if jit_step is not None else len(mod.stmts) <= JIT_STEP_MAX_LINES
    jit = jit and not check_numerics           # check() is Python: the step calling it is too
    prog.source, lines = render(mod, words, step, notes, returns, header, jit)
    # what runs: each kernel in a module of its own, the step in one that imports them
    prog.kernel_sources = [kernel_module(key, mod.base[key]) for key in mod.kernels]
    imports = {key: module_name(src) for key, src in zip(mod.kernels, prog.kernel_sources)}
    prog.cache_source = runnable_step(mod, step, returns, jit, imports)
    prog.node_map = node_map(mod.stmts, lines, words, nodes)
    return prog


def lower_nodes(nodes, inputs, variables, ctx, prog, lower, check_numerics):
    """Write the statements computing each node of the schedule (`lower(n, ctx)` names its
    value), and with check_numerics the checks of the feeds, variables and every value made."""
    if check_numerics:
        for n in list(inputs) + variables:
            _check(n, ctx, prog)
    for n in nodes:
        if n.op.kind == "source" or n.op.name == "size" or n in ctx.names:
            continue
        ctx.mod.at(n)
        ctx.names[n] = lower(n, ctx)
        if check_numerics:
            for part in (sorted(ctx.users[n], key=lambda u: u.attrs["index"])
                         if isinstance(ctx.types[n], TupleType) else [n]):
                _check(part, ctx, prog)


def step_arguments(prog, notes, names, nodes, outputs, updates, types, inputs, plan, check_numerics, on=""):
    """Declare the step's arguments every backend passes alike, in the runtime's order: feeds,
    variables, the outputs' arrays, constants (and sizes), buffers, the checker. Fills `names`
    and prog.params; returns (param, the variables, {output: its argument}). `param(name, kind,
    payload, note)` adds any other argument later. on: where the values live, for the notes."""
    def param(name, kind, payload, note=None):
        prog.params.append((name, kind, payload))
        notes.append(note)
        return name

    for k, ph in enumerate(inputs):
        names[ph] = param(f"in{k}_{ident(ph.name)}", "feed", k, f"input {ph.name}{on}")
    # the runtime passes feeds, then variables, then constants and buffers: keep that order
    variables = [n for n in nodes if n.op.name == "variable"]
    variables += [v for v in updates if v not in variables]     # updated, but read by no node
    for n in variables:
        names[n] = param(f"var_{ident(n.name)}", "var", n,
                         f"variable {n.name}{on}" + (", updated in place" if plan.in_place(n) else ""))
    # the outputs' arrays come in as arguments: new ones each call, or the caller's (out=)
    outs = {}
    for k, o in enumerate(outputs):
        if plan.target(o) == "fresh" and o not in outs:
            buf = Buffer(f"out{k}", kshape(types[o].shape), types[o].dtype, kshape(o.type.shape))
            outs[o] = param(f"out{k}_{ident(o.name)}", "out", (k, buf), f"output {o.name}")
    for n in nodes:
        if n.op.name == "constant" and not plan.inlined(n):
            names[n] = param(f"const{len(prog.params)}", "const", n.attrs["value"], f"constant {n.name}")
        elif n.op.name == "size":
            value = np.asarray(np.prod([types[n.inputs[0]].shape[a] for a in n.attrs["axis"]]), n.dtype)
            names[n] = param(f"const{len(prog.params)}", "const", value, f"{n.name}, for these shapes")
    for buf in plan.buffers:
        param(buf.name, "buf", buf)
    if check_numerics:
        param("check", "check", None, "check_numerics: raises at the first value holding nan or inf")
    return param, variables, outs


def step_returns(mod, plan, names, outputs, updates, copy, copy_into_var):
    """The step's last statements: outputs first (computed from the old variable values), then
    the updates not written in place. copy(src) is the text of a copy of src;
    copy_into_var(src, var, value) the statement writing src into var. Returns the step's results."""
    returns = []
    for k, o in enumerate(outputs):
        if plan.needs_copy(o):
            mod.at(o, "output")
            mod.emit(f"result{k} = {copy(names[o])}", about=k)
            returns.append(f"result{k}")
        else:
            returns.append(names[o])
    pending = {}
    for var, value in updates.items():
        if plan.in_place(var):
            continue
        src = names[value]
        if plan.root[value].op.kind == "source":      # e.g. {a: b, b: a}: read b before a is written
            mod.at(value, "old")
            mod.emit(f"old_{len(pending)} = {copy(src)}")
            src = f"old_{len(pending)}"
        pending[var] = (value, src)
    for var, (value, src) in pending.items():
        mod.at(value, "update")
        mod.emit(copy_into_var(src, var, value), about=var)
    return returns

def _check(n, ctx, prog):
    """check_numerics: after the line computing n, `check(k, value)` if n is a float value with
    memory of its own (a view was checked as the value it views)."""
    t = ctx.types.get(n, n.type)
    if t.dtype.kind != "f" or n.op.kind != "source" and ctx.plan.target(n) is None:
        return
    ctx.mod.at(n, "check")
    ctx.mod.emit(f"check({len(prog.checks)}, {ctx.names[n]})")
    prog.checks.append(n)


def _may_raise(nodes, types):
    """Does a kernel of this step check for an error (an integer to a negative integer power)?"""
    for n in nodes:
        if n.op.name == "power":
            steps, inputs, inner = [single_step(n)], n.inputs, [types[n]]
        elif n.op.name == "fused":
            steps, inputs = n.attrs["region"].steps, n.inputs
            inner = n.attrs["region"].types(tuple(types[x] for x in inputs))
        else:
            continue
        for j, s in enumerate(steps):
            ins = [(inner[x.index] if isinstance(x, Ref) else types[inputs[x.index]]).dtype for x in s.operands]
            if int_power_checked(s, inner[j].dtype, ins, inputs):
                return True
    return False


# ---------------------------------------------------------------- the words of the comments


class Words:
    """How the step's comments name values: a node by its name, an inlined constant by its
    value, a view of a view by the chain (getitem(transpose)), so that a line names every
    node it reads, also those without a line of their own."""

    def __init__(self, ctx, nodes, outputs):
        self.ctx, self.nodes, self.outputs = ctx, nodes, outputs
        own = {s.node for s in ctx.mod.stmts if s.role == "compute"}
        # values without a line of their own: views, sizes (a multi-output node's parts are
        # written by its lines)
        self.expr = {n for n in nodes if n.op.kind != "source" and n not in own
                     and not (n.op.name == "output" and n.inputs[0] in own)}

    def value(self, x):
        if self.ctx.plan.inlined(x):
            return str(x.attrs["value"].reshape(-1)[0])      # numpy's shortest form for the dtype
        if x in self.expr and any(i in self.expr for i in x.inputs):
            return f"{x.name}({', '.join(self.value(i) for i in x.inputs)})"
        return x.name

    def parts(self, n):
        """n, or its output nodes when it has several outputs."""
        if isinstance(self.ctx.types[n], TupleType):
            return sorted(dict.fromkeys(self.ctx.users[n]), key=lambda u: u.attrs["index"])
        return [n]

    def dest(self, n):
        target = self.ctx.plan.target(n)
        name = self.ctx.names.get(n, "?")
        return name if target is None or isinstance(target, str) else f"{name} (in place)"

    def op(self, n):
        """fused[mul, add, tanh], sum(..., axis=1): the op, with what the DOT picture shows of it."""
        if n.op.name == "fused":
            ops = [short(s.op.name) for s in n.attrs["region"].steps]
            ops = ops if len(ops) <= 8 else ops[:7] + ["..."]
            if n.attrs.get("reduce"):
                op, axis, keepdims = n.attrs["reduce"]
                ops.append(f"{op.name}(axis={_attr('axis', axis)}{', keepdims=True' if keepdims else ''})")
            return f"fused[{', '.join(ops)}]", [], ""
        attrs = [f"{k}={_attr(k, v)}" for k, v in n.op.label(n) if k is not None and v is not False and v is not None]
        subscript = "".join(str(v) for k, v in n.op.label(n) if k is None)
        return n.op.name, attrs, subscript

    def compute(self, n):
        parts = self.parts(n)
        op, attrs, subscript = self.op(n)
        args = ", ".join([self.value(x) for x in n.inputs] + attrs)
        if len(parts) == 1 and parts[0] is n:
            return f"{n.name} = {op}({args}){subscript} -> {self.dest(n)}"
        return f"{n.name} = {op}({args}){subscript} -> " + ", ".join(f"{self.dest(p)} ({p.name})" for p in parts)

    def comment(self, s, primary, locations):
        """The comment of statement s (primary: the one line saying what s.node is)."""
        n = s.node
        if s.role == "alloc":
            return f"new array for output {s.about.name} (the caller keeps it)"
        if s.role == "check":
            return f"check_numerics: does {n.name} hold nan or inf?"
        if s.role == "output":
            return f"output {s.about}: a copy of {self.value(n)} (the caller keeps it)"
        if s.role == "old":
            return f"the old value of {n.name}: an update overwrites it"
        if s.role == "update":
            return f"{s.about.name} = {self.value(n)}: its update, written after the outputs"
        if not primary:          # a multi-output node's line writing one of its parts says which
            parts = self.parts(n)
            part = next((p for p in parts if len(parts) > 1 and s.kernel and self.ctx.names.get(p) in s.text.args),
                        None)
            return f"part of {n.name}" + (f": {part.name} -> {self.dest(part)}" if part is not None else "")
        where = _where(n.loc) if locations else None
        return self.compute(n) + (f"  <- {where}" if where else "")


def _attr(key, v):
    if key == "axis" and isinstance(v, tuple) and len(v) == 1:       # axis=1, not axis=(1,)
        v = v[0]
    text = v if isinstance(v, str) else repr(v)
    return text if len(text) <= 30 else text[:27] + "..."


def _where(loc):
    """file:line, the file relative to the working directory if it is under it, else its
    base name: what the comments show does not depend on where the machine keeps files."""
    if not loc:
        return None
    path = loc[0]
    if os.path.isabs(path):
        try:
            rel = os.path.relpath(path)
        except ValueError:                  # on another drive (Windows)
            rel = os.pardir
        outside = rel == os.pardir or rel.startswith(os.pardir + os.sep)
        path = os.path.basename(path) if outside else rel
    return f"{path}:{loc[1]}"
