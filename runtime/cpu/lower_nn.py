"""CPU lowering of the row kernels (softmax, log_softmax, argmax/argmin), one_hot and the
random-number ops."""
import numpy as np

from .emit import CONTRACT, PARALLEL_MIN, axes_name, loops, lowers


@lowers("softmax", "log_softmax")
def _softmax(n, ctx):
    """softmax / log_softmax along any axis, each row (the values along the axis) read from
    memory once: its max, then exp(x - max) written out and summed, then out scaled (softmax)
    or out = (x - max) - log(sum) (log_softmax); the last two passes find the row in cache."""
    t = ctx.types[n]
    nd, axis, dtype = t.ndim, n.attrs["axis"], t.dtype
    lines = [f"    {', '.join(f'n{k}' for k in range(nd))}{',' if nd == 1 else ''} = x.shape"]
    parallel = ctx.mod.parallel and int(np.prod(t.shape)) >= PARALLEL_MIN and nd > 1
    if axis == nd - 1:
        lines += _softmax_rows(n, ctx, parallel)
    else:
        parallel = parallel and axis > 0
        lines += _softmax_columns(n, ctx, parallel)
    # softmax_rows, log_softmax_cols; a vector has one row: plain softmax
    what = n.op.name if nd == 1 else f"{n.op.name}_{axes_name(nd, (axis,))}"
    name = ctx.mod.kernel(what, ["x", "out"], lines, fastmath=CONTRACT, parallel=parallel)
    dest = ctx.dest(n)
    ctx.mod.call(name, [ctx.value(n.inputs[0]), dest], [n.inputs[0].name, f"-> {n.name}"])
    return dest


def _exp_nonpositive(ctx, dtype):
    """The exp for x - max, which is never above 0: the target's cheaper one for that range
    (fastmath.exp_nonpos32) where the target names one, else its exp."""
    try:
        return ctx.t.math("exp_nonpos", dtype)
    except KeyError:
        return ctx.t.math("exp", dtype)


def _softmax_rows(n, ctx, parallel):
    """Along the last axis: one contiguous row at a time, vectorized max, exp and sum."""
    t, lit = ctx.types[n], ctx.t.lit
    nd, dtype = t.ndim, t.dtype
    exp = _exp_nonpositive(ctx, dtype)
    loop, idx, depth = loops([f"n{k}" for k in range(nd - 1)], parallel)
    pad = "    " * depth
    lines = loop
    if idx:
        lines.append(pad + f"xr, outr = x[{', '.join(idx)}], out[{', '.join(idx)}]")
    else:
        lines.append(pad + "xr, outr = x, out")
    lines += [pad + "# row_max reads the row from memory; the passes after it find it in cache",
              pad + f"m = row_max(xr, {lit(-np.inf, dtype)})",
              pad + f"for j in range(n{nd - 1}):",
              pad + f"    outr[j] = {exp}(xr[j] - m)",
              pad + f"s = row_sum(outr, {lit(0, dtype)})"]
    if n.op.name == "log_softmax":
        lines += [pad + f"ls = {ctx.t.math('log', dtype)}(s)",
                  pad + f"for j in range(n{nd - 1}):",
                  pad + "    outr[j] = (xr[j] - m) - ls          # x - m exactly first: accurate where x is near m"]
    else:
        lines += [pad + f"r = {lit(1, dtype)} / s",
                  pad + f"for j in range(n{nd - 1}):",
                  pad + "    outr[j] = outr[j] * r"]
    return lines


def _softmax_columns(n, ctx, parallel):
    """Along an axis that is not the last: a running max and sum for every position of the
    axes after it, so that each inner loop runs along the last axis (contiguous, vectorized)
    rather than striding down the axis."""
    t, lit = ctx.types[n], ctx.t.lit
    nd, axis, dtype = t.ndim, n.attrs["axis"], t.dtype
    exp = _exp_nonpositive(ctx, dtype)
    loop, idx, depth = loops([f"n{k}" for k in range(axis)], parallel)
    pad = "    " * depth
    inner = [f"i{k}" for k in range(axis + 1, nd)]
    at = ", ".join(inner)                                          # m[i2, i3]
    xs = ", ".join(idx + ["j"] + inner)                            # x[i0, j, i2, i3]

    def over_axis(body):
        """for j along the axis, then for every position after it: the body."""
        rows = [pad + f"for j in range(n{axis}):"]
        for k, i in enumerate(inner):
            rows.append(pad + "    " * (k + 1) + f"for {i} in range(n{axis + 1 + k}):")
        return rows + [pad + "    " * (len(inner) + 1) + b for b in body]

    def over_positions(body):
        rows = [pad + "    " * k + f"for {i} in range(n{axis + 1 + k}):" for k, i in enumerate(inner)]
        return rows + [pad + "    " * len(inner) + b for b in body]

    lines = loop + [pad + f"# the max and the sum along axis {axis} for every position after it, updated",
                    pad + "# row by row: the inner loops run along the last axis (contiguous memory)",
                    pad + f"m = np.full(x.shape[{axis + 1}:], {lit(-np.inf, dtype)})",
                    pad + f"s = np.zeros(x.shape[{axis + 1}:], np.{dtype.name})"]
    lines += over_axis([f"v = x[{xs}]", f"m[{at}] = v if v > m[{at}] or v != v else m[{at}]     # nan wins"])
    lines += over_axis([f"e = {exp}(x[{xs}] - m[{at}])", f"out[{xs}] = e", f"s[{at}] += e"])
    if n.op.name == "log_softmax":
        lines += over_positions([f"s[{at}] = {ctx.t.math('log', dtype)}(s[{at}])"])
        lines += over_axis([f"out[{xs}] = (x[{xs}] - m[{at}]) - s[{at}]"])
    else:
        lines += over_positions([f"s[{at}] = {lit(1, dtype)} / s[{at}]"])
        lines += over_axis([f"out[{xs}] = out[{xs}] * s[{at}]"])
    return lines


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
    ctx.mod.call(name, [ctx.value(n.inputs[0]), dest], [n.inputs[0].name, f"-> {n.name}"])
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
    oidx = ix0 if n.attrs.get("keepdims") else ", ".join(idx)         # keepdims: out has a 1 at the axis
    lines += [pad + f"best = x[{ix0}]", pad + "at = 0", pad + f"for j in range(1, {dims[axis]}):",
              pad + f"    v = x[{ix}]", pad + f"    if {cond}:", pad + "        best = v", pad + "        at = j",
              pad + f"out[{oidx}] = at"]
    name = ctx.mod.kernel(f"{n.op.name}_{axes_name(nd, axes)}", ["x", "out"], lines)
    ctx.mod.call(name, [ctx.value(x), dest], [x.name, f"-> {n.name}"])
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
