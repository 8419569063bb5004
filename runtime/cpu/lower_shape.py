"""CPU lowering of shape ops: views where Numba allows (transpose, reshape of a contiguous
value, slicing), otherwise copies into the value's buffer (broadcast_like, concatenate, pad,
unslice, and reshapes of strided values)."""
from graphc.ops.slicing import fmt_key, index_key
from graphc.runtime.memory import kshape

from .emit import Call, index, loops, lowers, unpack


@lowers("transpose")
def _transpose(n, ctx):
    x, axes = ctx.names[n.inputs[0]], n.attrs["axes"]
    if axes == (1, 0):
        return f"{x}.T"
    if len(axes) <= 1:
        return x
    return f"{x}.transpose({axes})"


@lowers("reshape", "expand_dims", "squeeze", "reshape_like")
def _reshape(n, ctx):
    x = n.inputs[0]
    if ctx.plan.target(n) is None:              # a view of a C-contiguous value
        return f"{ctx.value(x)}.reshape({ctx.shape(n, reshape=True)})"
    dest = ctx.dest(n)
    ctx.mod.emit(copy_into(ctx.mod, ctx.value(x), f"{dest}.reshape({ctx.shape(x, reshape=True)})",
                           ctx.types[x], ctx.layout.get(x), notes=[x.name, f"-> {n.name}"]))
    return dest


@lowers("getitem")
def _getitem(n, ctx):
    key = index_key(n.attrs["index"])
    text = ", ".join(fmt_key(k) for k in key)
    x = ctx.value(n.inputs[0])
    if ctx.types[n.inputs[0]].ndim == 0:
        # a 0-d value is a 1-element array in the step, so numpy's key (only None and ...
        # index a 0-d array) does not apply: x[None] is the same element in another shape
        if ctx.plan.target(n) is None:
            return f"{x}.reshape({ctx.shape(n, reshape=True)})"
        dest = ctx.dest(n)
        ctx.mod.emit(f"{dest}[0] = {x}[0]")
        return dest
    if ctx.plan.target(n) is None:
        return f"{x}[{text}]"
    dest = ctx.dest(n)                           # every index an int: one element
    ctx.mod.emit(f"{dest}[0] = {x}[{text}]")
    return dest


@lowers("broadcast_like")
def _broadcast(n, ctx):
    dest = ctx.dest(n)
    ctx.mod.emit(copy_into(ctx.mod, ctx.value(n.inputs[0]), dest, ctx.types[n.inputs[0]],
                           ctx.layout.get(n.inputs[0]), out_type=ctx.types[n],
                           notes=[n.inputs[0].name, f"-> {n.name}"]))
    return dest


def copy_into(mod, src, dst, t, layout="A", out_type=None, notes=None):
    """The step line (a Call) copying src (broadcasting) into dst of out_type's shape (default: t's)."""
    out_shape = kshape((out_type or t).shape)
    shape = kshape(t.shape)
    nd = len(out_shape)
    dims = [f"n{k}" for k in range(nd)]
    lines = [unpack(dims, "dst.shape")]
    loop, idx, depth = loops(dims, False)
    lines += loop
    lines.append("    " * depth + f"dst[{', '.join(idx)}] = src[{index(shape, out_shape, idx)}]")
    name = mod.kernel("copy" if shape == out_shape else "copy_broadcast", ["src", "dst"], lines)
    return Call(name, [src, dst], notes)


@lowers("concatenate")
def _concatenate(n, ctx):
    dest, axis, start = ctx.dest(n), n.attrs["axis"], 0
    # sizes along the axis known when the graph was built are literals; one fed at call time
    # is read off the piece (`start` then counts at run time): the step's text is the same
    # for every size fed
    known = all(x.type.shape[axis] is not None for x in n.inputs)
    if not known:
        ctx.mod.emit("start = 0")
    for x in n.inputs:
        value = ctx.value(x)
        if known:
            size = ctx.types[x].shape[axis]
            span = f"{start}:{start + size}"
            start += size
        else:
            span = f"start:start + {value}.shape[{axis}]"
        key = ", ".join([":"] * axis + [span])
        if ctx.types[x].dtype != ctx.types[n].dtype:
            value = f"{value}.astype(np.{ctx.types[n].dtype.name})"
        ctx.mod.emit(f"{dest}[{key}] = {value}")
        if not known:
            ctx.mod.emit(f"start += {ctx.value(x)}.shape[{axis}]")
    return dest


@lowers("pad")
def _pad(n, ctx):
    dest = ctx.dest(n)
    ctx.mod.emit(f"{dest}.fill({ctx.t.lit(n.attrs['value'], ctx.types[n].dtype)})")
    # dest[1:-2, :] = x: the middle, from the pad widths alone (no size of this call)
    key = ", ".join(f"{a or ''}:{-b if b else ''}" for a, b in n.attrs["pad_width"])
    if key:
        ctx.mod.emit(f"{dest}[{key}] = {ctx.value(n.inputs[0])}")
    else:
        ctx.mod.emit(f"{dest}[0] = {ctx.value(n.inputs[0])}[0]")
    return dest


@lowers("unslice")
def _unslice(n, ctx):
    dest = ctx.dest(n)
    ctx.mod.emit(f"{dest}.fill({ctx.t.lit(0, ctx.types[n].dtype)})")
    key = index_key(n.attrs["index"])
    text = ", ".join(fmt_key(k) for k in key)
    g = ctx.value(n.inputs[0])
    if ctx.types[n.inputs[0]].shape == () or all(not isinstance(k, slice) and k is not None for k in key):
        ctx.mod.emit(f"{dest}[{text or '0'}] = {g}[0]")
    else:
        ctx.mod.emit(f"{dest}[{text}] = {g}")
    return dest
