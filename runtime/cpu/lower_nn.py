"""CPU lowering of the row kernels (softmax, log_softmax, argmax/argmin), one_hot and the
random-number ops."""
import numpy as np

from graphc.runtime.memory import kshape

from .emit import CONTRACT, PARALLEL_MIN, axes_name, loops, lowers


@lowers("softmax", "log_softmax")
def _softmax(n, ctx):
    """Row kernel: the max, the sum of exp(x - max), then each element; any axis."""
    log = n.op.name == "log_softmax"
    t = ctx.types[n]
    nd, axis = t.ndim, n.attrs["axis"]
    dtype = t.dtype
    exp, logf = ctx.t.math("exp", dtype), ctx.t.math("log", dtype)
    dims = [f"n{k}" for k in range(nd)]
    outer = [k for k in range(nd) if k != axis]
    size = int(np.prod(t.shape))
    parallel = ctx.mod.parallel and size >= PARALLEL_MIN and bool(outer)
    last = axis == nd - 1            # a row is contiguous: row_sum can add it up in SIMD lanes
    lines = [f"    {', '.join(dims)}{',' if nd == 1 else ''} = x.shape"]
    loop, idx, depth = loops([dims[k] for k in outer], parallel)
    lines += loop
    pad = "    " * depth
    ix = ", ".join("j" if k == axis else f"i{outer.index(k)}" for k in range(nd))
    row = ", ".join(f"i{k}" for k in range(nd - 1)) if last else ""
    zero = ctx.t.lit(0, dtype)
    if last:
        lines.append(pad + f"m = row_max(x[{row}], {ctx.t.lit(-np.inf, dtype)})" if row else
                     pad + f"m = row_max(x, {ctx.t.lit(-np.inf, dtype)})")
    else:
        lines += [pad + f"m = {ctx.t.lit(-np.inf, dtype)}",
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
        lines += [pad + f"r = {ctx.t.lit(1, dtype)} / s",
                  pad + f"for j in range({dims[axis]}):",
                  pad + f"    out[{ix}] = out[{ix}] * r"]
    # softmax_rows, log_softmax_cols; a vector has one row: plain softmax
    what = n.op.name if nd == 1 else f"{n.op.name}_{axes_name(nd, (axis,))}"
    name = ctx.mod.kernel(what, ["x", "out"], lines, fastmath=CONTRACT, parallel=parallel)
    dest = ctx.dest(n)
    ctx.mod.call(name, [ctx.value(n.inputs[0]), dest], [n.inputs[0].name, f"-> {n.name}"])
    return dest


@lowers("one_hot")
def _one_hot(n, ctx):
    t = ctx.types[n.inputs[0]]
    dtype = ctx.types[n].dtype
    dims = [f"n{k}" for k in range(t.ndim)]
    lines = ["    out.fill(" + ctx.t.lit(0, dtype) + ")", "    depth = out.shape[-1]"]
    if dims:
        lines.append(f"    {', '.join(dims)}{',' if len(dims) == 1 else ''} = idx.shape")
    loop, ix, depth = loops(dims, False)
    lines += loop
    pad = "    " * depth
    where = ", ".join(ix)
    lines += [pad + f"k = idx[{where or '0'}]",
              pad + "if 0 <= k < depth:",
              pad + f"    out[{where + ', ' if where else ''}k] = {ctx.t.lit(1, dtype)}"]
    name = ctx.mod.kernel("one_hot", ["idx", "out"], lines)
    dest = ctx.dest(n)
    out = dest if t.ndim else f"{dest}.reshape(({ctx.types[n].shape[-1]},))"
    ctx.mod.call(name, [ctx.value(n.inputs[0]), out], [n.inputs[0].name, f"-> {n.name}"])
    return dest


@lowers("argmax", "argmin")
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
        name = ctx.mod.kernel(f"{n.op.name}_all", ["x", "out"], lines)
        ctx.mod.call(name, [ctx.value(x), f"{dest}.reshape(1)"], [x.name, f"-> {n.name}"])
        return dest
    axis, nd = axes[0], t.ndim
    dims = [f"n{k}" for k in range(nd)]
    outer = [k for k in range(nd) if k != axis]
    lines = [f"    {', '.join(dims)} = x.shape"]
    loop, idx, depth = loops([dims[k] for k in outer], False)
    lines += loop
    pad = "    " * depth
    ix = ", ".join("j" if k == axis else f"i{outer.index(k)}" for k in range(nd))
    ix0 = ix.replace("j", "0")
    lines += [pad + f"best = x[{ix0}]", pad + "at = 0", pad + f"for j in range(1, {dims[axis]}):",
              pad + f"    v = x[{ix}]", pad + f"    if {cond}:", pad + "        best = v", pad + "        at = j",
              pad + f"out[{', '.join(idx)}] = at"]
    name = ctx.mod.kernel(f"{n.op.name}_{axes_name(nd, axes)}", ["x", "out"], lines)
    out_shape = tuple(d for k, d in enumerate(t.shape) if k != axis)
    ctx.mod.call(name, [ctx.value(x), f"{dest}.reshape({out_shape})"], [x.name, f"-> {n.name}"])
    return dest


@lowers("random_uniform", "random_normal")
def _random(n, ctx):
    """Every element from the hash of its index, the call counter and the op's key: the
    formula of ops/random.py, compiled for one element (rng_* in fastmath.py)."""
    from graphc.ops.random import COUNTER_STEP, stream_key
    dtype = ctx.types[n].dtype
    key = stream_key(n.attrs["seed"], n.attrs["stream"])
    draw = "rng_uniform" if n.op.name == "random_uniform" else "rng_normal"
    lines = ["    flat = out.reshape(out.size)",
             f"    offset = np.uint64(counter[0]) * np.uint64({COUNTER_STEP}) + np.uint64({key})",
             "    for i in range(flat.size):",
             f"        flat[i] = np.{dtype.name}({draw}(rng_bits(np.uint64(i) + offset)))"]
    name = ctx.mod.kernel(n.op.name, ["counter", "out"], lines)
    dest = ctx.dest(n)
    ctx.mod.call(name, [ctx.value(n.inputs[1]), dest], [n.inputs[1].name, f"-> {n.name}"])
    return dest
