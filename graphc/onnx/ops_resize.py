"""ONNX Resize and Upsample in mode "nearest": each output position reads one input position,
fixed at import (ONNX's coordinate transform and rounding, for static shapes), so the op is a
static gather along each axis. An integer upscale (the common 2x of detection and
segmentation nets) is a broadcast instead; other positions are joined slices.
Linear and cubic modes are not supported (named in the error).
"""
import math

import numpy as np

import graphc as gc

from .ops_math import arith
from .registry import converts, ints, norm_axis, present, rank, shape_of, unsupported

TRANSFORMS = {
    "half_pixel": lambda i, s, n_in, n_out: (i + 0.5) / s - 0.5,
    "pytorch_half_pixel": lambda i, s, n_in, n_out: (i + 0.5) / s - 0.5 if n_out > 1 else 0 * i,
    "align_corners": lambda i, s, n_in, n_out: i * (n_in - 1) / (n_out - 1) if n_out > 1 else 0 * i,
    "asymmetric": lambda i, s, n_in, n_out: i / s,
    "tf_half_pixel_for_nn": lambda i, s, n_in, n_out: (i + 0.5) / s,
}
ROUNDING = {"round_prefer_floor": lambda x: np.ceil(x - 0.5), "round_prefer_ceil": lambda x: np.floor(x + 0.5),
            "floor": np.floor, "ceil": np.ceil}


def source_positions(n_in, n_out, scale, transform, rounding):
    i = np.arange(n_out, dtype=np.float64)
    x = TRANSFORMS[transform](i, scale, n_in, n_out)
    return np.clip(ROUNDING[rounding](x), 0, n_in - 1).astype(np.int64)


def gather_axis(x, idx, axis):
    """x's slices at positions idx along axis: a broadcast for a whole-number upscale, else
    runs of consecutive positions as slices, joined."""
    n = shape_of(x)[axis]
    if np.array_equal(idx, np.arange(n)):
        return x
    reps = len(idx) // n
    if reps * n == len(idx) and np.array_equal(idx, np.repeat(np.arange(n), reps)):
        shape = shape_of(x)
        y = gc.expand_dims(x, axis + 1)
        y = gc.broadcast_to(y, shape[:axis + 1] + (reps,) + shape[axis + 1:])
        return gc.reshape(y, shape[:axis] + (n * reps,) + shape[axis + 1:])
    pre, runs, start = (slice(None),) * axis, [], 0
    for k in range(1, len(idx) + 1):
        if k == len(idx) or idx[k] != idx[k - 1] + 1:
            runs.append(x[pre + (slice(int(idx[start]), int(idx[k - 1]) + 1),)])
            start = k
    return runs[0] if len(runs) == 1 else gc.concatenate(runs, axis=axis)


def nearest(cx, node, x, scales, sizes, transform, rounding, axes=None):
    shape = shape_of(x)
    if None in shape:
        raise unsupported(cx, node, f"a {node.op_type} of an input of unknown shape {shape}")
    axes = list(range(rank(x))) if axes is None else [norm_axis(a, rank(x), cx, node) for a in axes]
    if transform not in TRANSFORMS or rounding not in ROUNDING:
        raise unsupported(cx, node, f"coordinate_transformation_mode={transform!r}, nearest_mode={rounding!r}")
    for k, axis in enumerate(axes):
        n_in = shape[axis]
        if sizes is not None:
            n_out, scale = int(sizes[k]), int(sizes[k]) / n_in
        else:
            scale = float(scales[k])
            n_out = int(math.floor(n_in * scale))
        x = gather_axis(x, source_positions(n_in, n_out, scale, transform, rounding), axis)
    return x


@converts("Resize")
def resize(cx, node, inputs, attrs):
    mode = attrs.get("mode", "nearest")
    if mode != "nearest":
        raise unsupported(cx, node, f"Resize mode {mode!r} (graphc imports mode 'nearest')")
    if attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch":
        raise unsupported(cx, node, f"keep_aspect_ratio_policy={attrs['keep_aspect_ratio_policy']!r}")
    x = arith(inputs[0])
    if cx.opset < 11:
        scales, sizes = cx.static(inputs[1], node, "scales"), None
        transform, rounding = "asymmetric", "floor"
    else:
        scales, sizes = present(inputs, 2), present(inputs, 3)
        scales = None if scales is None else cx.static(scales, node, "scales")
        scales = None if scales is not None and scales.size == 0 else scales      # "" or an empty tensor
        sizes = None if sizes is None else ints(cx.static(sizes, node, "sizes"))
        transform = attrs.get("coordinate_transformation_mode", "half_pixel")
        rounding = attrs.get("nearest_mode", "round_prefer_floor")
    if scales is None and sizes is None:
        raise unsupported(cx, node, "a Resize with neither scales nor sizes")
    return [nearest(cx, node, x, None if scales is None else scales.reshape(-1), sizes, transform, rounding,
                    attrs.get("axes"))]


@converts("Upsample")
def upsample(cx, node, inputs, attrs):
    if attrs.get("mode", "nearest") != "nearest":
        raise unsupported(cx, node, f"Upsample mode {attrs['mode']!r} (graphc imports mode 'nearest')")
    scales = attrs["scales"] if "scales" in attrs else cx.static(inputs[1], node, "scales").reshape(-1)
    return [nearest(cx, node, arith(inputs[0]), scales, None, "asymmetric", "floor")]
