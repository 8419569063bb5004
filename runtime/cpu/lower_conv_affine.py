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

from .conv_blocked import pack_bias, pack_weights

AFFINE = {"add", "subtract", "multiply"}


def affine_epilogue(n, ctx, x, w, out_type):
    """(scale, shift, relu) per output channel if fused node n is conv2d followed by add,
    subtract or multiply by float32 constants that are one value per channel (or one in all),
    then maybe a relu, with its last step its only output; else None."""
    region = n.attrs["region"]
    steps, o = region.steps, ctx.types[w].shape[0]
    if region.outputs != (len(steps) - 1,) or out_type.dtype != "float32":
        return None
    scale, shift, relu = np.ones(o, np.float64), np.zeros(o, np.float64), False
    for j, s in enumerate(steps[1:], start=1):
        if relu:                                      # a relu only as the last step
            return None
        if s.op.name == "relu" and s.operands == (Ref(j - 1),):
            relu = True
            continue
        if s.op.name not in AFFINE or len(s.operands) != 2 or Ref(j - 1) not in s.operands:
            return None
        other = [p for p in s.operands if p != Ref(j - 1)]
        k = _per_channel(n.inputs[other[0].index], o) if len(other) == 1 and isinstance(other[0], Param) else None
        if k is None:
            return None
        if s.op.name == "add":
            shift = shift + k
        elif s.op.name == "multiply":
            scale, shift = scale * k, shift * k
        elif s.operands[0] == Ref(j - 1):             # conv - k
            shift = shift - k
        else:                                         # k - conv
            scale, shift = -scale, k - shift
    if not (np.isfinite(scale).all() and np.isfinite(shift).all()):
        return None                   # w * inf would turn a 0 weight's products into nans
    return scale, shift, relu


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


def packed_affine(ctx, w, groups, scale, shift, rows):
    """The step's constants: w scaled per output channel and packed in tiles of `rows` output
    channels (conv_blocked.tile_rows), and the shift as a bias."""
    done = ctx.__dict__.setdefault("packed_affine", {})
    key = (w, groups, scale.tobytes(), shift.tobytes(), rows)
    if key not in done:
        value = w.attrs["value"].astype(np.float64) * scale.reshape(-1, 1, 1, 1)
        base = ctx.value(w)
        wpk = pack_weights(value.astype(np.float32), groups, rows)
        done[key] = (ctx.param(f"{base}_scaled{len(done)}", "const", wpk,
                               f"{w.name} times its epilogue's scale, packed for conv2d_by_blocked_bias"),
                     ctx.param(f"{base}_bias{len(done)}", "const", pack_bias(shift.astype(np.float32), groups, wpk.shape[-1]),
                               f"{w.name}'s epilogue as a bias per output channel"))
    return done[key]
