"""Lowering of the ops that are not plain loops: matmul (BLAS), shape ops (views where
Numba allows, else copies into their buffer), row kernels (softmax, log_softmax,
argmax/argmin), one_hot and random numbers. runtime/kernels.py handles the loops
(elementwise groups and reductions) and dispatches here through LOWER.
"""
import numpy as np

from graphc.ops.lowering import lit
from graphc.ops.shape import index_key

from .kernels import CONTRACT, PARALLEL_MIN, _index, _loops
from .memory import kshape


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
    "squeeze": _reshape, "reshape_like": _reshape, "getitem": _getitem,
    "broadcast_like": _broadcast, "concatenate": _concatenate, "pad": _pad, "unslice": _unslice,
    "softmax": _softmax, "log_softmax": _softmax, "one_hot": _one_hot, "argmax": _argreduce,
    "argmin": _argreduce, "random_uniform": _random, "random_normal": _random,
}
