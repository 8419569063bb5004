"""A convolution whose epilogue is a per-channel affine map and maybe a relu (a bias, a batch
norm folded at import, ...) runs as one blocked-kernel call, the epilogue in its registers:

    relu((conv2d(x, w) + b) * s + t)  =  relu(conv2d(x, w * s) + (b * s + t))

with the scale folded into the packed weight and the shift into a bias the micro-kernel's
sums start from (conv_blocked.py), both once, when the step is compiled. What the generic
epilogue kernel (lower_conv._conv_epilogue) would do as a second pass over each image's
output is then gone. Measured (ms, median of 200 calls each, the two taking turns in one
process, conv + bias + relu, generic epilogue vs folded, two runs): 1x1 64 -> 256 at 56x56
0.357 / 0.368 vs 0.305 / 0.339; 256 -> 64 0.396 / 0.390 vs 0.379 / 0.385; 3x3 64 -> 64 0.823 /
0.803 vs 0.790 / 0.788; 256 -> 256 at 14x14 0.846 / 0.787 vs 0.799 / 0.780. The sums are
rounded in another order than the reference's (the products of w * s, the bias first), as
onnxruntime's fused Conv does; within float32 rounding.
"""
import numpy as np

from graphc.core.region import Param, Ref

from . import conv_blocked, conv_interleaved

AFFINE = {"add", "subtract", "multiply"}


def affine_epilogue(n, ctx, x, w, out_type, residual=False):
    """(scale, shift, relu, res) if fused node n is conv2d followed by add, subtract or multiply
    by float32 constants that are one value per channel (or one in all), then, if `residual`,
    maybe an add of res (an input of the output's shape, C-contiguous: a residual block's
    shortcut; or res + such a constant, the shortcut's own batch norm, computed beside the
    chain), then maybe a relu, with its last step its only output; else None."""
    region = n.attrs["region"]
    steps, o = region.steps, ctx.types[w].shape[0]
    if region.outputs != (len(steps) - 1,) or out_type.dtype != "float32":
        return None
    scale, shift, relu, res = np.ones(o, np.float64), np.zeros(o, np.float64), False, None
    chain, side = Ref(0), {}                          # the conv's value so far; res + k beside it
    for j, s in enumerate(steps[1:], start=1):
        if relu or (res is not None and s.op.name != "relu"):   # a relu only as the last step
            return None
        if chain not in s.operands:
            got = _shortcut(s, n, ctx, out_type, o) if residual else None
            if got is None:
                return None
            side[Ref(j)] = got
            continue
        prev, chain = chain, Ref(j)
        if s.op.name == "relu" and s.operands == (prev,):
            relu = True
            continue
        rest = [p for p in s.operands if p != prev]
        if s.op.name not in AFFINE or len(s.operands) != 2 or len(rest) != 1:
            return None
        q = rest[0]
        k = _per_channel(n.inputs[q.index], o) if isinstance(q, Param) else None
        if s.op.name == "add" and q in side:              # + (shortcut + its constant)
            res, k = side[q]
            shift = shift + k
        elif (s.op.name == "add" and k is None and residual and isinstance(q, Param)
              and _residual(n.inputs[q.index], ctx, out_type)):
            res = n.inputs[q.index]
        elif k is None:
            return None
        elif s.op.name == "add":
            shift = shift + k
        elif s.op.name == "multiply":
            scale, shift = scale * k, shift * k
        elif s.operands[0] == prev:                   # conv - k
            shift = shift - k
        else:                                         # k - conv
            scale, shift = -scale, k - shift
    if not (np.isfinite(scale).all() and np.isfinite(shift).all()):
        return None                   # w * inf would turn a 0 weight's products into nans
    return scale, shift, relu, res


def _shortcut(s, n, ctx, out_type, o):
    """(res, k) if region step s is add(res, k) of an input of the output's shape and a float32
    constant per channel (either order); else None."""
    if s.op.name != "add" or len(s.operands) != 2 or not all(isinstance(p, Param) for p in s.operands):
        return None
    a, b = (n.inputs[p.index] for p in s.operands)
    for r, c in ((a, b), (b, a)):
        k = _per_channel(c, o)
        if k is not None and _residual(r, ctx, out_type):
            return r, k
    return None


def _residual(node, ctx, out_type):
    """Can the kernel read node at the output's own indices: float32, the output's shape, C order?"""
    t = ctx.types[node]
    return t.dtype == "float32" and tuple(t.shape) == tuple(out_type.shape) and ctx.layout.get(node) == "C"


def _per_channel(node, o):
    """The o values (float64) of a float32 constant that holds one value per output channel
    of an NCHW tensor ((1, O, 1, 1), (O, 1, 1), ...) or one value in all; else None."""
    if node.op.name != "constant" or node.dtype != "float32":
        return None
    v = np.asarray(node.attrs["value"])
    if v.size == 1:
        return np.full(o, float(v.reshape(-1)[0]))
    shape = (1,) * (4 - v.ndim) + v.shape if v.ndim <= 4 else None
    if shape is None or shape[0] != 1 or shape[2:] != (1, 1) or shape[1] != o:
        return None
    return v.reshape(o).astype(np.float64)


def pack(layout, value, groups):
    """A float32 weight packed for its kernel: layout ("blocked", rows) for conv_blocked's tiles
    of `rows` output channels, ("interleaved", None) for conv_interleaved's."""
    kind, rows = layout
    if kind == "interleaved":
        return conv_interleaved.pack_weights(value, groups)
    return conv_blocked.pack_weights(value, groups, rows)


def packed_affine(ctx, w, groups, scale, shift, layout):
    """The step's constants: w scaled per output channel and packed for its kernel (`layout`,
    as pack takes it), and the shift as a bias, padded as that kernel reads it."""
    done = ctx.__dict__.setdefault("packed_affine", {})
    key = (w, groups, scale.tobytes(), shift.tobytes(), layout)
    if key not in done:
        value = w.attrs["value"].astype(np.float64) * scale.reshape(-1, 1, 1, 1)
        base = ctx.value(w)
        wpk = pack(layout, value.astype(np.float32), groups)
        bias = shift.astype(np.float32)
        bias = (conv_interleaved.pack_bias(bias, groups) if layout[0] == "interleaved"
                else conv_blocked.pack_bias(bias, groups, wpk.shape[-1]))
        done[key] = (ctx.param(f"{base}_scaled{len(done)}", "const", wpk,
                               f"{w.name} times its epilogue's scale, packed for its kernel"),
                     ctx.param(f"{base}_bias{len(done)}", "const", bias,
                               f"{w.name}'s epilogue as a bias per output channel"))
    return done[key]


def scaled_depthwise(ctx, w, scale, shift):
    """The step's constants for conv2d_by_depthwise_bias: the depthwise weight times its
    epilogue's scale per output channel (no packing), and the shift as a bias."""
    done = ctx.__dict__.setdefault("scaled_depthwise", {})
    key = (w, scale.tobytes(), shift.tobytes())
    if key not in done:
        value = (w.attrs["value"].astype(np.float64) * scale.reshape(-1, 1, 1, 1)).astype(np.float32)
        base = ctx.value(w)
        done[key] = (ctx.param(f"{base}_dwscaled{len(done)}", "const", value, f"{w.name} times its epilogue's scale"),
                     ctx.param(f"{base}_dwbias{len(done)}", "const", shift.astype(np.float32),
                               f"{w.name}'s epilogue as a bias per output channel"))
    return done[key]
