"""CPU lowering of convolution and pooling: one step line per node, a call of a fixed helper
of conv_kernels.py (imported through fastmath, like matmul_into) with the destination and
the attrs as literals:

    conv2d_into(x, var_W, buf_3, 2, 2, 1, 1, 1, 1, 1, 1, 1)   # stride, pads (t b l r), dilation, groups

The helpers read every size off their arguments, so the line is the same for every batch size.
"""
from .emit import lowers

HELPERS = {"conv2d": "conv2d_into", "conv2d_grad_input": "conv2d_grad_input_into",
           "conv2d_grad_weight": "conv2d_grad_weight_into", "max_pool2d": "max_pool2d_into",
           "max_pool2d_grad": "max_pool2d_grad_into", "max_pool2d_select": "max_pool2d_select_into",
           "avg_pool2d": "avg_pool2d_into", "avg_pool2d_grad": "avg_pool2d_grad_into"}


def _ints(*values):
    return [str(int(v)) for v in values]


@lowers("conv2d", "conv2d_grad_input", "conv2d_grad_weight")
def _conv(n, ctx):
    a = n.attrs
    (pt, pb), (pl, pr) = a["padding"]
    consts = _ints(*a["stride"], pt, pb, pl, pr, *a["dilation"], a["groups"])
    return _call(n, ctx, consts, ["stride", None, "pad top", "bottom", "left", "right", "dilation", None, "groups"])


@lowers("max_pool2d", "max_pool2d_grad", "max_pool2d_select")
def _max_pool(n, ctx):
    a = n.attrs
    (pt, _), (pl, _) = a["padding"]    # the far padding and ceil_mode only set the output's size
    return _call(n, ctx, _ints(*a["kernel"], *a["stride"], pt, pl),
                 ["kernel", None, "stride", None, "pad top", "left"])


@lowers("avg_pool2d", "avg_pool2d_grad")
def _avg_pool(n, ctx):
    a = n.attrs
    (pt, pb), (pl, pr) = a["padding"]
    consts = _ints(*a["kernel"], *a["stride"], pt, pb, pl, pr) + [str(a["count_include_pad"])]
    return _call(n, ctx, consts, ["kernel", None, "stride", None, "pad top", "bottom", "left", "right",
                                  "count_include_pad"])


def _call(n, ctx, consts, const_notes):
    dest = ctx.dest(n)
    args = [ctx.value(x) for x in n.inputs] + [dest] + consts
    notes = [x.name for x in n.inputs] + [f"-> {n.name}"] + const_notes
    ctx.mod.call(HELPERS[n.op.name], args, notes)
    return dest
