"""Elementwise groups and reductions as CUDA kernels, from the ops' own scalar templates.

The loop body is the CPU backend's (runtime/cpu/loops.py `Body`: loads with static
broadcasting, one line per op from `Op.scalar`, integers wrapping as in numpy),
written for the CUDA target; only the loop around it differs:

- elementwise: a grid-stride loop over the output's elements, each thread
  unravelling its flat index into one index per axis;
- reductions, over any axes: each block reduces one output element (a grid-stride
  loop over the outputs), its threads striding through the reduced elements, then
  a tree in shared memory. With fewer outputs than blocks the GPU can run, each
  output's elements are split over several blocks, and a second kernel
  (`..._finish`) combines their partial results.
"""
import numpy as np

from graphc.core.types import TupleType
from graphc.runtime.cpu.emit import axes_name, ops_name
from graphc.runtime.cpu.loops import Body, _accumulate, _out_index, output_dests, single_step
from graphc.ops.fused import producer
from graphc.runtime.memory import kshape

from .kernels import LAUNCH


def unravel(flat, dims, names, pad):
    """Lines setting the index names (one per axis) from a flat C-order index."""
    if not dims:                     # nothing reduced (a sum of a 0-d value): one element
        return []
    if len(dims) == 1:
        return [pad + f"{names[0]} = {flat}"]
    lines = [pad + f"r = {flat}"]
    for k in range(len(dims) - 1, 0, -1):
        lines.append(pad + f"{names[k]} = r % {dims[k]}")
        lines.append(pad + f"r = r // {dims[k]}")
    return lines + [pad + f"{names[0]} = r"]


def _checked(b, lines, params):
    """A body with an integer-power check counts failures in `bad` and sets err[0] (no raise
    on a GPU); the step raises after the launch (stepkit.raise_if)."""
    if not b.check:
        return lines, params
    return ["    bad = 0"] + lines + ["    if bad:", "        err[0] = 1"], params + ["err"]


def _launch(ctx, b, name, args, notes, grid, block):
    """The step lines launching kernel `name` (with an error flag if its body checks)."""
    if b.check:
        flag = f"err{len(ctx.checked) - 1}"
        ctx.mod.emit(f"{flag} = error_flag()")
        args, notes = args + [flag], notes + ["set if the check fails"]
    ctx.mod.call(name, args, notes, head=f"{name}[{grid}, {block}]")
    if b.check:
        ctx.mod.emit(f"raise_if({flag}, {b.check!r})")


def lower_elementwise(n, ctx):
    """A fused group or a single elementwise op: one grid-stride kernel writing every output."""
    if n.op.name == "fused":
        body, outs = n.attrs["region"].steps, n.attrs["region"].outputs
    else:
        body, outs = (single_step(n),), (0,)
    users, dests = output_dests(n, ctx)
    t = ctx.types[n]
    domain = kshape((t.types[0] if isinstance(t, TupleType) else t).shape)
    b = Body(ctx, n.inputs, body, [ctx.types[x] for x in n.inputs], node=n)
    dims = [f"n{k}" for k in range(len(domain))]
    idx = [f"i{k}" for k in range(len(domain))]
    given, extra = {}, []
    if producer(n) is not None:     # a convolution and its epilogue: the convolution's kernel first
        given, extra = {0: f"acc[{', '.join(idx)}]"}, [_produce(n, b, ctx, dests[0])]
    lines = [f"    {', '.join(dims)}{',' if len(dims) == 1 else ''} = out0.shape",
             f"    size = {' * '.join(dims)}",
             "    i = cuda.grid(1)",
             "    while i < size:"]
    lines += unravel("i", dims, idx, "        ")
    lines += b.lines(tuple(domain), idx, "        ", given=given)
    lines += [f"        out{k}[{', '.join(idx)}] = v{j}" for k, j in enumerate(outs)]
    lines.append("        i += cuda.gridsize(1)")
    params = b.params + ["acc"] * bool(extra) + [f"out{k}" for k in range(len(outs))]
    lines, params = _checked(b, lines, params)
    name = ctx.mod.kernel(f"fused_{ops_name(body)}" if n.op.name == "fused" else n.op.name, params, lines)
    _launch(ctx, b, name, b.arg_exprs + extra + dests,
            [x.name for x in b.arg_nodes] + ["its convolution"] * bool(extra) + [f"-> {u.name}" for u in users],
            f"blocks({dests[0]}.size)", "THREADS")
    return dests[0]


def _produce(n, b, ctx, dest):
    """Launch the convolution of fused[conv2d, ...] into a scratch array; return its name. (On
    the GPU the epilogue is a second kernel reading it: what stays fused is the graph's node.)"""
    conv = n.attrs["region"].steps[0]
    dtype = b.inner_types[0].dtype
    acc = f"acc{len(ctx.launchers)}"
    ctx.mod.emit(f"{acc} = scratch({dest}.shape, np.{dtype.name})")
    launcher = LAUNCH[conv.op.name]
    ctx.launchers.append(launcher.__name__)
    attrs = [f"{k}={v!r}" for k, v in conv.attrs]     # ints and tuples of ints
    ctx.mod.call(launcher.__name__, [ctx.names[n.inputs[0]], ctx.names[n.inputs[1]], acc] + attrs,
                 [n.inputs[0].name, n.inputs[1].name, f"-> {acc}: {conv.op.name} of {n.name}"] + [None] * len(attrs))
    return acc


def lower_reduction(n, ctx):
    """sum / mean / prod / max / min over any axes, with a fused elementwise prologue or none."""
    if n.op.name == "fused":
        body, outs = n.attrs["region"].steps, n.attrs["region"].outputs
        op, axes, keepdims = n.attrs["reduce"]
    else:
        body, outs = (), (0,)
        op, axes, keepdims = n.op, n.attrs["axis"], n.attrs["keepdims"]
    t, dest = ctx.t, ctx.dest(n)
    b = Body(ctx, n.inputs, body, [ctx.types[x] for x in n.inputs], node=n)
    src_dtype = b.inner_types[outs[0]].dtype if body else ctx.types[n.inputs[0]].dtype
    domain = kshape(ctx.types[n.inputs[0]].shape if not body else b.inner_types[outs[0]].shape)
    dtype, nd = ctx.types[n].dtype, len(domain)
    dims = [f"n{k}" for k in range(nd)]
    kept = [k for k in range(nd) if k not in axes]
    init = t.lit(op.identity(dtype), dtype)
    count = t.cast("n_red", np.dtype("int64"), dtype)
    finish = (lambda acc: f"{acc} / {count}") if op.name == "mean" else (lambda acc: acc)     # noqa: E731
    oidx = _out_index(nd, kept, axes, keepdims)
    sizes = [f"    {', '.join(dims)}{',' if nd == 1 else ''} = a_shape",
             f"    n_out = {' * '.join(dims[k] for k in kept) or '1'}",
             f"    n_red = {' * '.join(dims[k] for k in axes) or '1'}"]
    pad = "        "
    lines = sizes + [
        f"    tree = cuda.shared.array(REDUCE_THREADS, np.{dtype.name})",
        "    t = cuda.threadIdx.x",
        "    split = cuda.gridDim.y",
        "    chunk = (n_red + split - 1) // split",
        "    start = cuda.blockIdx.y * chunk",
        "    stop = min(start + chunk, n_red)",
        "    o = cuda.blockIdx.x",
        "    while o < n_out:"]
    lines += unravel("o", [dims[k] for k in kept], [f"i{k}" for k in kept], pad) if kept else []
    lines += [pad + f"acc = {init}", pad + "j = start + t", pad + "while j < stop:"]
    lines += unravel("j", [dims[k] for k in axes], [f"i{k}" for k in axes], pad + "    ")
    lines += b.lines(tuple(domain), [f"i{k}" for k in range(nd)], pad + "    ")
    value = t.cast(b.result(outs[0]), src_dtype, dtype)       # (the loads are named by now)
    lines += [pad + f"    acc = {_accumulate(t, op, 'acc', value, dtype)}", pad + "    j += REDUCE_THREADS",
              pad + "tree[t] = acc", pad + "cuda.syncthreads()",
              pad + "s = REDUCE_THREADS // 2", pad + "while s > 0:",
              pad + "    if t < s:",
              pad + f"        tree[t] = {_accumulate(t, op, 'tree[t]', 'tree[t + s]', dtype)}",
              pad + "    cuda.syncthreads()", pad + "    s //= 2",
              pad + "if t == 0:",
              pad + "    if split == 1:",
              pad + f"        out[{oidx}] = {finish('tree[0]')}",
              pad + "    else:",
              pad + "        part[o, cuda.blockIdx.y] = tree[0]",
              pad + "cuda.syncthreads()",
              pad + "o += cuda.gridDim.x"]
    lines, params = _checked(b, lines, b.params + ["out", "part", "a_shape"])
    what = f"{op.name}_{axes_name(nd, axes)}" + (f"_of_{ops_name(body)}" if body else "")
    name = ctx.mod.kernel(what, params, lines)
    # the second stage: one thread per output combines its blocks' partial results
    second = sizes + ["    o = cuda.grid(1)", "    while o < n_out:"]
    second += unravel("o", [dims[k] for k in kept], [f"i{k}" for k in kept], pad) if kept else []
    second += [pad + "acc = part[o, 0]", pad + "for s in range(1, part.shape[1]):",
               pad + f"    acc = {_accumulate(t, op, 'acc', 'part[o, s]', dtype)}",
               pad + f"out[{oidx}] = {finish('acc')}", pad + "o += cuda.gridsize(1)"]
    finisher = ctx.mod.kernel(f"{what}_finish", ["part", "out", "a_shape"], second)

    built = kshape(b.built_types()[outs[0]].shape) if body else kshape(n.inputs[0].type.shape)
    src = b.arg_exprs[0] if not body else next(
        (e for e, x in zip(b.arg_exprs, b.arg_nodes) if kshape(x.type.shape) == built
         and kshape(ctx.types[x].shape) == tuple(domain)), None)
    shape = f"{src}.shape" if src else ctx.shape_of(f"{n.name}_loop", domain, built)
    k = len(ctx.mod.stmts)
    grid, part = f"g{k}", f"part{k}"
    ctx.mod.emit(f"{grid} = reduce_grid({shape}, {tuple(axes)!r})")
    ctx.mod.emit(f"{part} = partials({grid}, np.{dtype.name})")
    _launch(ctx, b, name, b.arg_exprs + [dest, part, shape],
            [x.name for x in b.arg_nodes] + [f"-> {n.name}", "partial results (split reductions)",
                                             "the shape reduced"], grid, "REDUCE_THREADS")
    ctx.mod.emit(f"if {grid}[1] > 1:")
    ctx.mod.call(finisher, [part, dest, shape], ["partial results", f"-> {n.name}", "the shape reduced"], indent=1,
                 head=f"{finisher}[blocks({grid}[0]), THREADS]")
    return dest
