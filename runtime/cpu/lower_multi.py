"""CPU lowering of ops with several outputs (other than fused groups, which loops.py lowers):
the op writes each output straight into the memory its `output` node was given."""
from .emit import lowers
from .lower_shape import copy_into


@lowers("split")
def _split(n, ctx):
    """Each piece is copied into its output's memory: a copy keeps every piece C-contiguous
    (a Numba slice view would be, only along the first axis)."""
    x, axis = ctx.value(n.inputs[0]), n.attrs["axis"]
    for out in sorted(ctx.users[n], key=lambda u: u.attrs["index"]):
        start, stop = n.attrs["bounds"][out.attrs["index"]]
        key = ", ".join([":"] * axis + [f"{start}:{stop}"])
        dest = ctx.dest(out)
        ctx.mod.emit(copy_into(ctx.mod, f"{x}[{key}]", dest, ctx.types[out]))
        ctx.names[out] = dest
    return None                 # the node itself has no value: its outputs do
