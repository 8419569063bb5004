"""Channel shuffles read where they lie. ShuffleNet (and exporters of it) write a channel
shuffle as reshape (N, g, C/g, H, W), transpose (0, 2, 1, 3, 4), reshape (N, C, H, W): the
last reshape, of a transposed value, is a copy in the step (ShuffleNet v1 at 224x224: 16 of
them, 0.6-2.2 ms a call in all, measured per statement). Each such value is only read by a
depthwise convolution, which reads one input plane per channel anyway, so it can as well read the
source's planes in the shuffled order (conv_depthwise.shuffled_depthwise_into).

`channel_gathers` finds the reshapes whose value is a gather of whole channels of a 4-D
source, x[:, planes], and whose every reader is such a convolution. The memory plan then
counts the value as a view of the source (no buffer, and the source lives until the last
convolution reading it has run); the reshape's own lowering writes its view expression as
usual, which nothing uses (Numba would reject it: a reshape of a strided array). A lowering
that cannot take the plane map calls `materialize` and gets a real copy.
"""
import numpy as np

from graphc.core.region import Param
from graphc.ops.fused import producer

MAX_CHECKED = 1 << 22         # the gather is checked on an index array of the value's size


def channel_gathers(nodes, types, layout, roots):
    """{reshape node: planes (int64)} for the channel gathers read only by depthwise convs;
    roots (outputs, update values) are always made."""
    users = {n: [] for n in nodes}
    for n in nodes:
        for i in n.inputs:
            users[i].append(n)
    found = {}
    for n in nodes:
        if n.op.view != "reshape" or n in roots or not users[n]:
            continue
        planes = _planes(n, types, layout)
        if planes is not None and all(_reads_planes(u, n, types) for u in users[n]):
            found[n] = planes
    return found


def _planes(n, types, layout):
    """planes if n = reshape(transpose(reshape(y))) is y[:, planes] for a 4-D C-contiguous y."""
    t = n.inputs[0]
    if t.op.name != "transpose" or t.inputs[0].op.view != "reshape":
        return None
    y = t.inputs[0].inputs[0]
    shape = tuple(types[y].shape)
    if len(shape) != 4 or tuple(types[n].shape) != shape or layout.get(y) != "C" or None in shape:
        return None
    size = int(np.prod(shape))
    if size == 0 or size > MAX_CHECKED:
        return None
    index = np.arange(size).reshape(shape)
    moved = index.reshape(types[t.inputs[0]].shape).transpose(t.attrs["axes"]).reshape(shape)
    planes = moved[0, :, 0, 0] // (shape[2] * shape[3])
    if not np.array_equal(moved, index[:, planes]):
        return None                  # it moves values inside planes or across images
    return planes.astype(np.int64)


def _reads_planes(u, x, types):
    """Is u a depthwise convolution (alone or with its fused epilogue) whose only use of x
    is as its input image?"""
    if list(u.inputs).count(x) != 1:
        return False
    if u.op.name == "conv2d":
        image, w, attrs = u.inputs[0], u.inputs[1], u.attrs
    elif producer(u) is not None and producer(u).op.name == "conv2d":
        conv = producer(u)
        p, q = conv.operands[:2]
        uses = [o for s in u.attrs["region"].steps for o in s.operands if isinstance(o, Param) and o.index == p.index]
        if len(uses) != 1:                  # the epilogue reads x too
            return False
        image, w, attrs = u.inputs[p.index], u.inputs[q.index], conv.kwargs
    else:
        return False
    return image is x and w is not x and attrs["groups"] == types[x].shape[1] and types[w].shape[1] == 1


def materialize(x, ctx):
    """Make the gathered value x for a reader that needs it whole: a copy, once per step."""
    y, planes = source(x, ctx)
    name = f"gathered_{len(ctx.materialized)}"
    ctx.mod.emit(f"{name} = gather_planes({ctx.value(y)}, {planes})")
    ctx.materialized[x] = ctx.names[x] = name
    return name


def source(x, ctx):
    """(the 4-D value x gathers channels of, the step constant holding the planes)."""
    y = x.inputs[0].inputs[0].inputs[0]
    if x not in ctx.plane_params:
        ctx.plane_params[x] = ctx.param(f"planes_{len(ctx.plane_params)}", "const", ctx.gathers[x],
                                        f"the channels of {y.name} that {x.name} holds")
    return y, ctx.plane_params[x]


def pending(x, ctx):
    """Is x a channel gather not made yet (its readers take the source and the planes)?"""
    return x in ctx.gathers and x not in ctx.materialized
