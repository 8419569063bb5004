"""Lowering of each node to kernel text and step lines (the CPU backend).

Elementwise work (a fused group or a single op) becomes one loop nest;
broadcasting is static: an input of size 1 along an axis is indexed with 0
there, so the loop reads it in place. Reductions run their elementwise
prologue inside the reduction loop. matmul calls BLAS through np.dot.
Shape ops are views where Numba allows, else copies into their buffer.
"""
import numpy as np

from graphc.ops import REGISTRY
from graphc.ops.fused import body_types
from graphc.ops.lowering import cast, lit
from graphc.ops.shape import index_key

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

# ---------------------------------------------------------------- the other ops


def _matmul(n, ctx):
    a, b = n.inputs
    ta, tb, to = ctx.types[a], ctx.types[b], ctx.types[n]
    dest = ctx.dest(n)
    A, B = _blas_operand(a, ctx, to.dtype), _blas_operand(b, ctx, to.dtype)
    k = ta.shape[-1]
    if ta.ndim == 1:
        A = f"{A}.reshape(1, {k})"
    if tb.ndim == 1:
        B = f"{B}.reshape({k}, 1)"
    m = 1 if ta.ndim == 1 else ta.shape[-2]
    nn = 1 if tb.ndim == 1 else tb.shape[-1]
    batch = to.shape[:-2] if ta.ndim > 1 and tb.ndim > 1 else to.shape[:max(ta.ndim, tb.ndim) - 2]
    nbatch = int(np.prod(batch)) if batch else 1
    if to.dtype.kind != "f":
        name = _int_matmul_kernel(ctx)
        A, B = _batched(A, ta, batch, m, k, ctx), _batched(B, tb, batch, k, nn, ctx)
        ctx.mod.emit(f"{name}({A}, {B}, {dest}.reshape({nbatch}, {m}, {nn}))")
    elif tb.ndim <= 2 and ta.ndim >= 2:
        # a's batch axes fold into its rows: one BLAS call
        if ta.ndim > 2:
            A = f"{A}.reshape({nbatch * m}, {k})"
        ctx.mod.emit(f"matmul_into({A}, {B}, {dest}.reshape({nbatch * m}, {nn}))")
    else:
        A3, B3 = _batched(A, ta, batch, m, k, ctx), _batched(B, tb, batch, k, nn, ctx)
        ctx.mod.emit(f"d3 = {dest}.reshape({nbatch}, {m}, {nn})")
        ctx.mod.emit(f"for t in range({nbatch}):")
        ctx.mod.emit(f"    matmul_into({A3}[t], {B3}[t], d3[t])")
    return dest


def _blas_operand(x, ctx, dtype):
    """x in a form np.dot accepts: C-contiguous, a 2-D transpose of one, or a contiguous copy."""
    expr = ctx.value(x)
    if ctx.types[x].dtype != dtype:
        return f"{expr}.astype(np.{dtype.name})"
    blas_ok = ctx.plan.layout.get(x) == "C" or (
        x.op.name == "transpose" and x.ndim == 2 and ctx.plan.layout.get(x.inputs[0]) == "C")
    return expr if blas_ok else f"np.ascontiguousarray({expr})"


def _batched(expr, t, batch, rows, cols, ctx):
    """expr as a C-contiguous (prod(batch), rows, cols) array, broadcast along missing batch axes."""
    nb = int(np.prod(batch)) if batch else 1
    full = tuple(batch) + (rows, cols)
    return f"np.ascontiguousarray(np.broadcast_to({expr}.reshape({kshape(t.shape) if t.ndim > 1 else (rows, cols)}), " \
           f"{full})).reshape({nb}, {rows}, {cols})"


def _int_matmul_kernel(ctx):
    lines = ["    nb, m, n = out.shape", "    k = a.shape[2]",
             "    for t in range(nb):", "        for i in range(m):", "            for j in range(n):",
             "                acc = 0",
             "                for p in range(k):", "                    acc += a[t, i, p] * b[t, p, j]",
             "                out[t, i, j] = acc"]
    return ctx.mod.kernel("int_matmul", ["a", "b", "out"], lines)


def _transpose(n, ctx):
    x, axes = ctx.names[n.inputs[0]], n.attrs["axes"]
    if axes == (1, 0):
        return f"{x}.T"
    if len(axes) <= 1:
        return x
    return f"{x}.transpose({axes})"


def _reshape(n, ctx):
    shape = kshape(ctx.types[n].shape)
    x = n.inputs[0]
    if ctx.plan.target(n) is None:              # a view of a C-contiguous value
        return f"{ctx.value(x)}.reshape({shape})"
    dest = ctx.dest(n)
    ctx.mod.emit(copy_into(ctx.mod, ctx.value(x), f"{dest}.reshape({kshape(ctx.types[x].shape)})",
                           ctx.types[x], ctx.plan.layout.get(x)))
    return dest


def _getitem(n, ctx):
    key = index_key(n.attrs["index"])
    text = ", ".join(_key_text(k) for k in key)
    x = ctx.value(n.inputs[0])
    if ctx.plan.target(n) is None:
        return f"{x}[{text}]"
    dest = ctx.dest(n)                           # every index an int: one element
    ctx.mod.emit(f"{dest}[0] = {x}[{text}]")
    return dest


def _key_text(k):
    if isinstance(k, slice):
        parts = ["" if p is None else str(p) for p in (k.start, k.stop, k.step)]
        return ":".join(parts[:2]) + (f":{parts[2]}" if k.step is not None else "")
    return "None" if k is None else str(k)


def _broadcast(n, ctx):
    dest = ctx.dest(n)
    ctx.mod.emit(copy_into(ctx.mod, ctx.value(n.inputs[0]), dest, ctx.types[n.inputs[0]],
                           ctx.plan.layout.get(n.inputs[0]), out_type=ctx.types[n]))
    return dest


def copy_into(mod, src, dst, t, layout="A", out_type=None):
    """A step line copying src (broadcasting) into dst of out_type's shape (default: t's)."""
    out_shape = kshape((out_type or t).shape)
    shape = kshape(t.shape)
    nd = len(out_shape)
    dims = [f"n{k}" for k in range(nd)]
    lines = [f"    {', '.join(dims)}{',' if nd == 1 else ''} = dst.shape"]
    loop, idx, depth = _loops(dims, False)
    lines += loop
    lines.append("    " * depth + f"dst[{', '.join(idx)}] = src[{_index(shape, out_shape, idx)}]")
    name = mod.kernel("copy", ["src", "dst"], lines)
    return f"{name}({src}, {dst})"


def _concatenate(n, ctx):
    dest, axis, start = ctx.dest(n), n.attrs["axis"], 0
    for x in n.inputs:
        size = ctx.types[x].shape[axis]
        key = ", ".join([":"] * axis + [f"{start}:{start + size}"])
        value = ctx.value(x)
        if ctx.types[x].dtype != ctx.types[n].dtype:
            value = f"{value}.astype(np.{ctx.types[n].dtype.name})"
        ctx.mod.emit(f"{dest}[{key}] = {value}")
        start += size
    return dest


def _pad(n, ctx):
    dest = ctx.dest(n)
    ctx.mod.emit(f"{dest}.fill({lit(n.attrs['value'], ctx.types[n].dtype)})")
    key = ", ".join(f"{a}:{a + d}" for (a, _), d in zip(n.attrs["pad_width"], ctx.types[n.inputs[0]].shape))
    if key:
        ctx.mod.emit(f"{dest}[{key}] = {ctx.value(n.inputs[0])}")
    else:
        ctx.mod.emit(f"{dest}[0] = {ctx.value(n.inputs[0])}[0]")
    return dest


def _unslice(n, ctx):
    dest = ctx.dest(n)
    ctx.mod.emit(f"{dest}.fill({lit(0, ctx.types[n].dtype)})")
    key = index_key(n.attrs["index"])
    text = ", ".join(_key_text(k) for k in key)
    g = ctx.value(n.inputs[0])
    if ctx.types[n.inputs[0]].shape == () or all(not isinstance(k, slice) and k is not None for k in key):
        ctx.mod.emit(f"{dest}[{text or '0'}] = {g}[0]")
    else:
        ctx.mod.emit(f"{dest}[{text}] = {g}")
    return dest


def _softmax(n, ctx):
    """Row kernel: the max, the sum of exp(x - max), then each element; any axis."""
    log = n.op.name == "log_softmax"
    t = ctx.types[n]
    nd, axis = t.ndim, n.attrs["axis"]
    dtype = t.dtype
    exp = "exp32" if dtype == np.float32 else "math.exp"
    logf = "log32" if dtype == np.float32 else "math.log"
    dims = [f"n{k}" for k in range(nd)]
    outer = [k for k in range(nd) if k != axis]
    size = int(np.prod(t.shape))
    parallel = ctx.mod.parallel and size >= PARALLEL_MIN and bool(outer)
    last = axis == nd - 1            # a row is contiguous: row_sum can add it up in SIMD lanes
    lines = [f"    {', '.join(dims)}{',' if nd == 1 else ''} = x.shape"]
    loop, idx, depth = _loops([dims[k] for k in outer], parallel)
    lines += loop
    pad = "    " * depth
    ix = ", ".join("j" if k == axis else f"i{outer.index(k)}" for k in range(nd))
    row = ", ".join(f"i{k}" for k in range(nd - 1)) if last else ""
    zero = lit(0, dtype)
    if last:
        lines.append(pad + f"m = row_max(x[{row}], {lit(-np.inf, dtype)})" if row else
                     pad + f"m = row_max(x, {lit(-np.inf, dtype)})")
    else:
        lines += [pad + f"m = {lit(-np.inf, dtype)}",
                  pad + f"for j in range({dims[axis]}):",
                  pad + f"    m = x[{ix}] if x[{ix}] > m or x[{ix}] != x[{ix}] else m"]
    if log:
        lines += [pad + f"for j in range({dims[axis]}):",
                  pad + f"    out[{ix}] = {exp}(x[{ix}] - m)"]
    else:
        lines += [pad + f"for j in range({dims[axis]}):",
                  pad + f"    out[{ix}] = {exp}(x[{ix}] - m)"]
    if last:
        lines.append(pad + f"s = row_sum(out[{row}], {zero})" if row else pad + f"s = row_sum(out, {zero})")
    else:
        lines += [pad + f"s = {zero}", pad + f"for j in range({dims[axis]}):", pad + f"    s += out[{ix}]"]
    if log:
        lines += [pad + f"ls = {logf}(s)",                     # (x - m) - log s: exact x - m first
                  pad + f"for j in range({dims[axis]}):",
                  pad + f"    out[{ix}] = (x[{ix}] - m) - ls"]
    else:
        lines += [pad + f"r = {lit(1, dtype)} / s",
                  pad + f"for j in range({dims[axis]}):",
                  pad + f"    out[{ix}] = out[{ix}] * r"]
    name = ctx.mod.kernel(n.op.name, ["x", "out"], lines, fastmath=CONTRACT, parallel=parallel)
    dest = ctx.dest(n)
    ctx.mod.emit(f"{name}({ctx.value(n.inputs[0])}, {dest})")
    return dest


def _one_hot(n, ctx):
    t = ctx.types[n.inputs[0]]
    dtype = ctx.types[n].dtype
    dims = [f"n{k}" for k in range(t.ndim)]
    lines = ["    out.fill(" + lit(0, dtype) + ")", "    depth = out.shape[-1]"]
    if dims:
        lines.append(f"    {', '.join(dims)}{',' if len(dims) == 1 else ''} = idx.shape")
    loop, ix, depth = _loops(dims, False)
    lines += loop
    pad = "    " * depth
    where = ", ".join(ix)
    lines += [pad + f"k = idx[{where or '0'}]",
              pad + "if 0 <= k < depth:",
              pad + f"    out[{where + ', ' if where else ''}k] = {lit(1, dtype)}"]
    name = ctx.mod.kernel("one_hot", ["idx", "out"], lines)
    dest = ctx.dest(n)
    out = dest if t.ndim else f"{dest}.reshape(({ctx.types[n].shape[-1]},))"
    ctx.mod.emit(f"{name}({ctx.value(n.inputs[0])}, {out})")
    return dest


def _argreduce(n, ctx):
    """argmax/argmin over one axis, or over all (the index into the flattened input)."""
    x, t = n.inputs[0], ctx.types[n.inputs[0]]
    better = ">" if n.op.name == "argmax" else "<"
    axes = n.attrs["axis"]
    dest = ctx.dest(n)
    cond = f"v {better} best or (v != v and best == best)"    # the first nan wins, as in numpy
    if len(axes) != 1 or t.ndim <= 1:
        lines = ["    flat = np.ascontiguousarray(x).reshape(x.size)", "    best = flat[0]", "    at = 0",
                 "    for k in range(1, x.size):", "        v = flat[k]", f"        if {cond}:",
                 "            best = v", "            at = k", "    out[0] = at"]
        name = ctx.mod.kernel(n.op.name, ["x", "out"], lines)
        ctx.mod.emit(f"{name}({ctx.value(x)}, {dest}.reshape(1))")
        return dest
    axis, nd = axes[0], t.ndim
    dims = [f"n{k}" for k in range(nd)]
    outer = [k for k in range(nd) if k != axis]
    lines = [f"    {', '.join(dims)} = x.shape"]
    loop, idx, depth = _loops([dims[k] for k in outer], False)
    lines += loop
    pad = "    " * depth
    ix = ", ".join("j" if k == axis else f"i{outer.index(k)}" for k in range(nd))
    ix0 = ix.replace("j", "0")
    lines += [pad + f"best = x[{ix0}]", pad + "at = 0", pad + f"for j in range(1, {dims[axis]}):",
              pad + f"    v = x[{ix}]", pad + f"    if {cond}:", pad + "        best = v", pad + "        at = j",
              pad + f"out[{', '.join(idx)}] = at"]
    name = ctx.mod.kernel(n.op.name, ["x", "out"], lines)
    out_shape = tuple(d for k, d in enumerate(t.shape) if k != axis)
    ctx.mod.emit(f"{name}({ctx.value(x)}, {dest}.reshape({out_shape}))")
    return dest


def _random(n, ctx):
    """Every element from the hash of its index, the call counter and the op's key (ops/random.py)."""
    from graphc.ops.random import COUNTER_STEP, stream_key
    dtype = ctx.types[n].dtype
    key = stream_key(n.attrs["seed"], n.attrs["stream"])
    lines = ["    flat = out.reshape(out.size)",
             f"    offset = np.uint64(counter[0]) * np.uint64({COUNTER_STEP}) + np.uint64({key})",
             "    for i in range(flat.size):",
             "        bits = splitmix64(np.uint64(i) + offset)",
             "        u1 = np.float64(bits >> np.uint64(40)) * 5.9604644775390625e-08     # 2 ** -24"]
    if n.op.name == "random_uniform":
        lines.append(f"        flat[i] = np.{dtype.name}(u1)")
    else:
        lines += ["        u2 = np.float64(bits & np.uint64(0xFFFFFF)) * 5.9604644775390625e-08",
                  f"        flat[i] = np.{dtype.name}(math.sqrt(-2.0 * math.log1p(-u1)) * "
                  "math.cos(6.283185307179586 * u2))"]
    name = ctx.mod.kernel(n.op.name, ["counter", "out"], lines)
    dest = ctx.dest(n)
    ctx.mod.emit(f"{name}({ctx.value(n.inputs[1])}, {dest})")
    return dest


LOWER = {
    "matmul": _matmul, "transpose": _transpose, "reshape": _reshape, "expand_dims": _reshape,
    "squeeze": _reshape, "reshape_like": _reshape, "getitem": _getitem, "broadcast_to": _broadcast,
    "broadcast_like": _broadcast, "concatenate": _concatenate, "pad": _pad, "unslice": _unslice,
    "softmax": _softmax, "log_softmax": _softmax, "one_hot": _one_hot, "argmax": _argreduce,
    "argmin": _argreduce, "random_uniform": _random, "random_normal": _random,
}
