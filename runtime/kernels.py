"""Lowering of each node to kernel text and step lines (the CPU backend): the loops.

Elementwise work (a fused group or a single op) becomes one loop nest;
broadcasting is static: an input of size 1 along an axis is indexed with 0
there, so the loop reads it in place. Reductions run their elementwise
prologue inside the reduction loop. Every other op is lowered in
runtime/lowerings.py.
"""
import numpy as np

from graphc.ops import REGISTRY
from graphc.ops.fused import body_types
from graphc.ops.lowering import cast, lit

from .memory import kshape

PARALLEL_MIN = 1 << 17     # elements: below this a parallel loop costs more than it saves
CONTRACT = {"contract"}    # FMA contraction only: the inlined math depends on the order of operations


class Ctx:
    """Everything lowering needs: the module being written, names of values, concrete types, the plan."""

    def __init__(self, mod, names, types, plan, nodes):
        self.mod, self.names, self.types, self.plan = mod, names, types, plan
        self.users = {n: [] for n in nodes}
        for n in nodes:
            for i in n.inputs:
                self.users[i].append(n)

    def dest(self, n):
        """Where n's result is written: a fresh array, a buffer, or a variable (in place)."""
        target = self.plan.target(n)
        if target == "fresh":
            name = f"out{n.id}"
            shape, dtype = kshape(self.types[n].shape), self.types[n].dtype
            self.mod.emit(f"{name} = np.empty({shape}, np.{dtype.name})")
            return name
        if isinstance(target, str):
            return target
        return self.names[target]          # a variable node: written in place

    def value(self, x):
        """A step expression for x that Numba can hand to a kernel (a literal constant becomes an array)."""
        if self.plan.inlined(x):
            v = x.attrs["value"].reshape(-1)[0]
            return f"np.full(1, {lit(v, x.dtype)})"
        return self.names[x]


def lower(n, ctx):
    """Emit the step lines (and kernels) computing n; return the expression naming its value."""
    op = n.op.name
    if op == "fused" and n.attrs.get("reduce") is None:
        return _elementwise(n, ctx)
    if n.op.kind == "elementwise":
        return _elementwise(n, ctx)
    if op == "fused" or op in ("sum", "mean", "max", "min", "prod"):
        return _reduction(n, ctx)
    if op == "fused_output":
        return ctx.names[n]
    from .lowerings import LOWER
    return LOWER[op](n, ctx)

# ---------------------------------------------------------------- loops


def _loops(dims, parallel, indent=1):
    """Lines opening a loop nest over dims (names of sizes); returns (lines, index names, body indent)."""
    lines, idx = [], []
    for k, d in enumerate(dims):
        rng = "prange" if parallel and k == 0 else "range"
        lines.append("    " * (indent + k) + f"for i{k} in {rng}({d}):")
        idx.append(f"i{k}")
    return lines, idx, indent + len(dims)


def _index(shape, domain, idx):
    """Index of an input of `shape` inside a loop over `domain` (right-aligned broadcasting)."""
    off = len(domain) - len(shape)
    parts = ["0" if s == 1 and domain[off + j] != 1 else idx[off + j] for j, s in enumerate(shape)]
    return ", ".join(parts)


class Body:
    """The scalar statements of a loop body: loads of inputs, then one line per body op."""

    def __init__(self, ctx, inputs, body, in_types):
        self.ctx, self.inputs, self.body = ctx, inputs, body
        self.in_types = in_types
        self.inner_types = body_types(tuple(in_types), body) if body else []
        self.params, self.arg_exprs, self.operand = [], [], {}
        for k, x in enumerate(inputs):
            if ctx.plan.inlined(x):
                self.operand[k] = lit(x.attrs["value"].reshape(-1)[0], x.dtype)
            else:
                self.params.append(f"a{k}")
                self.arg_exprs.append(ctx.value(x))

    def const(self, k):
        x = self.inputs[k]
        return x.attrs["value"].reshape(-1)[0].item() if self.ctx.plan.inlined(x) else None

    def lines(self, domain, idx, pad, flat=False):
        """Statements computing every body entry v<j> at the loop index; loads first.

        domain: the loop's (concrete) shape; flat: one index over a C-contiguous domain,
        where an input is either domain-shaped (read through its flat view a<k>f) or a scalar."""
        out = []
        for k, x in enumerate(self.inputs):
            if k in self.operand:
                continue
            shape = kshape(self.in_types[k].shape)
            if flat:
                load = f"a{k}f[{idx[0]}]" if shape == tuple(domain) else f"a{k}[{', '.join('0' for _ in shape)}]"
            else:
                load = f"a{k}[{_index(shape, domain, idx)}]"
            out.append(pad + f"x{k} = {load}")
            self.operand[("load", k)] = f"x{k}"
        for j, (op_name, attrs, refs) in enumerate(self.body):
            args, ins, consts = [], [], []
            for src, k in refs:
                if src == "in":
                    args.append(self.operand.get(k) or self.operand[("load", k)])
                    ins.append(self.in_types[k].dtype)
                    consts.append(self.const(k))
                else:
                    args.append(f"v{k}")
                    ins.append(self.inner_types[k].dtype)
                    consts.append(None)
            expr = REGISTRY[op_name].scalar(args, ins, self.inner_types[j].dtype, consts, **dict(attrs))
            out.append(pad + f"v{j} = {expr}")
        return out

    def result(self, j):
        return f"v{j}" if self.body else (self.operand.get(0) or self.operand[("load", 0)])


def _elementwise(n, ctx):
    """A fused group or a single elementwise op: one loop nest writing every needed output."""
    if n.op.name == "fused":
        body, outs = n.attrs["body"], n.attrs["outs"]
    else:
        body, outs = ((n.op.name, tuple(sorted(n.attrs.items())), tuple(("in", k) for k in range(len(n.inputs)))),), (0,)
    if len(outs) > 1:
        users = sorted(ctx.users[n], key=lambda u: u.attrs["index"])
        dests = [ctx.dest(u) for u in users]
        for u, d in zip(users, dests):
            ctx.names[u] = d
    else:
        dests = [ctx.dest(n)]
    domain_shape = kshape(ctx.types[n].shape)
    b = Body(ctx, n.inputs, body, [ctx.types[x] for x in n.inputs])
    size = int(np.prod(domain_shape))
    parallel = ctx.mod.parallel and size >= PARALLEL_MIN
    flat = len(domain_shape) > 1 and all(
        ctx.plan.layout.get(x) == "C" and (kshape(ctx.types[x].shape) == tuple(domain_shape)
                                           or all(d == 1 for d in ctx.types[x].shape))
        for k, x in enumerate(n.inputs) if k not in b.operand)
    outs_params = [f"out{k}" for k in range(len(outs))]
    if flat:
        lines = ["    n = out0.size"]
        lines += [f"    a{k}f = a{k}.reshape(n)" for k, x in enumerate(n.inputs)
                  if k not in b.operand and kshape(ctx.types[x].shape) == tuple(domain_shape)]
        lines += [f"    o{k} = out{k}.reshape(n)" for k in range(len(outs))]
        loop, idx, depth = _loops(["n"], parallel)
    else:
        dims = [f"n{k}" for k in range(len(domain_shape))]
        lines = [f"    {', '.join(dims)}{',' if len(dims) == 1 else ''} = out0.shape"]
        loop, idx, depth = _loops(dims, parallel)
    lines += loop
    pad = "    " * depth
    lines += b.lines(tuple(domain_shape), idx, pad, flat=flat)
    out_idx = ", ".join(idx)
    for k, j in enumerate(outs):
        lines.append(pad + f"{'o' if flat else 'out'}{k}[{out_idx}] = v{j}")
    name = ctx.mod.kernel("fused" if n.op.name == "fused" else n.op.name, b.params + outs_params, lines,
                          fastmath=CONTRACT, parallel=parallel)
    ctx.mod.emit(f"{name}({', '.join(b.arg_exprs + dests)})")
    return dests[0]

# ---------------------------------------------------------------- reductions


REDUCE_INIT = {"sum": 0, "mean": 0, "prod": 1}


def _combine(op, acc, v, dtype):
    if op in ("sum", "mean"):
        return f"{acc} + {v}"
    if op == "prod":
        return f"{acc} * {v}"
    if dtype == np.bool_:
        return f"{acc} | {v}" if op == "max" else f"{acc} & {v}"
    if dtype.kind == "f":                                  # nan wins, as in numpy
        cmp = ">" if op == "max" else "<"
        return f"{v} if ({v} {cmp} {acc} or {v} != {v}) else {acc}"
    return f"max({acc}, {v})" if op == "max" else f"min({acc}, {v})"


def _init(op, dtype):
    if op in REDUCE_INIT:
        return lit(REDUCE_INIT[op], dtype)
    if dtype == np.bool_:
        return lit(op == "min", dtype)
    if dtype.kind == "f":
        return lit(-np.inf if op == "max" else np.inf, dtype)
    info = np.iinfo(dtype)
    return lit(info.min if op == "max" else info.max, dtype)


def _reduction(n, ctx):
    if n.op.name == "fused":
        body, outs = n.attrs["body"], n.attrs["outs"]
        op, axes, keepdims = n.attrs["reduce"]
    else:
        body, outs = (), (0,)
        op, axes, keepdims = n.op.name, n.attrs["axis"], n.attrs["keepdims"]
    dest = ctx.dest(n)
    b = Body(ctx, n.inputs, body, [ctx.types[x] for x in n.inputs])
    src_dtype = b.inner_types[outs[0]].dtype if body else ctx.types[n.inputs[0]].dtype
    domain_shape = kshape(ctx.types[n.inputs[0]].shape if not body else b.inner_types[outs[0]].shape)
    dtype = ctx.types[n].dtype
    nd = len(domain_shape)
    dims = [f"n{k}" for k in range(nd)]
    lines = [f"    {', '.join(dims)}{',' if nd == 1 else ''} = a_shape"]
    v = lambda: cast(b.result(outs[0]), src_dtype, dtype)   # noqa: E731
    trailing = tuple(axes) == tuple(range(nd - len(axes), nd))
    count = " * ".join(dims[a] for a in axes) or "1"
    kept = [k for k in range(nd) if k not in axes]
    size = int(np.prod(domain_shape))
    parallel = ctx.mod.parallel and size >= PARALLEL_MIN and bool(kept)
    # float sums, maxima and minima over a row go through the vectorized row_* helpers
    row_fn = {"sum": "row_sum", "mean": "row_sum", "max": "row_max", "min": "row_min"}.get(op)
    vector_sum = row_fn is not None and dtype.kind == "f"
    if trailing:
        if vector_sum:          # the prologue fills a row; row_sum adds it up in SIMD lanes
            lines.append(f"    row = np.empty({count}, np.{dtype.name})")
        loop, idx, depth = _loops([dims[k] for k in kept], parallel)
        lines += loop
        pad = "    " * depth
        if vector_sum and parallel:
            lines.append(pad + f"row = np.empty({count}, np.{dtype.name})")     # one per thread
        if not vector_sum:
            lines.append(pad + f"acc = {_init(op, dtype)}")
        inner = [f"for i{a} in range({dims[a]}):" for a in axes]
        for k, text in enumerate(inner):
            lines.append(pad + "    " * k + text)
        ipad = pad + "    " * len(inner)
        all_idx = [f"i{k}" for k in range(nd)]
        lines += b.lines(tuple(domain_shape), all_idx, ipad)
        if vector_sum:
            flat = " + ".join(f"i{a}" + "".join(f" * {dims[c]}" for c in axes if c > a) for a in axes) or "0"
            lines.append(ipad + f"row[{flat}] = {v()}")
            lines.append(pad + f"acc = {row_fn}(row, {_init(op, dtype)})")
        else:
            lines.append(ipad + f"acc = {_combine(op, 'acc', v(), dtype)}")
        if op == "mean":
            lines.append(pad + f"acc = acc / {cast(count, np.dtype('int64'), dtype)}")
        oidx = _out_index(nd, kept, axes, keepdims)
        lines.append(pad + f"out[{oidx}] = acc")
    else:
        lines.append(f"    out.fill({_init(op, dtype)})")
        loop, idx, depth = _loops(dims, False)
        lines += loop
        pad = "    " * depth
        lines += b.lines(tuple(domain_shape), idx, pad)
        oidx = _out_index(nd, kept, axes, keepdims)
        lines.append(pad + f"out[{oidx}] = {_combine(op, f'out[{oidx}]', v(), dtype)}")
        if op == "mean":
            lines += ["    flat = out.reshape(out.size)", "    for k in range(out.size):",
                      f"        flat[k] = flat[k] / {cast(count, np.dtype('int64'), dtype)}"]
    shape_src = b.arg_exprs[0] if not body else None
    params = b.params + ["out", "a_shape"]
    name = ctx.mod.kernel(f"{op}_reduce", params, lines, fastmath=CONTRACT, parallel=parallel)
    shape_expr = f"{shape_src}.shape" if shape_src else repr(tuple(domain_shape))
    ctx.mod.emit(f"{name}({', '.join(b.arg_exprs + [dest, shape_expr])})")
    return dest


def _out_index(nd, kept, axes, keepdims):
    if keepdims:
        return ", ".join("0" if k in axes else f"i{k}" for k in range(nd))
    return ", ".join(f"i{k}" for k in kept) or "0"
