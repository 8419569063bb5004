"""ONNX network ops -> graphc: Gemm, MatMul, Conv, pooling, normalizations, LRN.

graphc's conv and pools are 2-D (NCHW); a 1-D ONNX Conv/pool runs as 2-D with a height of 1.
BatchNormalization (inference) is an affine per channel, its scale and shift folded at import
when the statistics are initializers. LRN is a sum of shifted squares (pad + slices).
"""
import math

import numpy as np

import graphc as gc

from .ops_math import arith, scalar
from .registry import converts, dtype_of, present, rank, shape_of, unsupported


@converts("MatMul")
def matmul(cx, node, inputs, attrs):
    return [gc.matmul(arith(inputs[0]), arith(inputs[1]))]


@converts("Gemm")
def gemm(cx, node, inputs, attrs):
    a, b, c = arith(inputs[0]), arith(inputs[1]), present(inputs, 2)
    if attrs.get("transA", 0):
        a = gc.transpose(a)
    if attrs.get("transB", 0):
        b = gc.transpose(b)
    y = gc.matmul(a, b)
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    if alpha != 1.0:
        y = y * scalar(y, alpha)
    if c is not None and beta != 0.0:
        c = arith(c)
        y = y + (c if beta == 1.0 else c * scalar(c, beta))
    return [y]

# ---------------------------------------------------------------- conv and pools


def spatial(cx, node, x, kind):
    """x as NCHW: a 1-D (NCW) input gets a height of 1; 3-D and higher are refused."""
    n = rank(x)
    if n == 3:
        return gc.expand_dims(x, 2), True
    if n != 4:
        raise unsupported(cx, node, f"{kind} of a rank-{n} input (graphc has 1-D and 2-D {kind})")
    return x, False


def as_2d(values, squeezed, fill):
    """A per-spatial-axis attribute list for the 2-D op: a 1-D one gets `fill` for the height."""
    values = tuple(values)
    return ((fill,) + values) if squeezed else values


def explicit_pads(cx, node, attrs, in_hw, k_hw, s_hw, d_hw, squeezed):
    """((top, bottom), (left, right)) from ONNX pads or auto_pad (SAME_UPPER puts the odd pixel
    at the end, SAME_LOWER at the start; both keep ceil(size / stride))."""
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        pads = tuple(attrs.get("pads", (0,) * (2 * (2 - squeezed))))
        half = len(pads) // 2
        begin, end = as_2d(pads[:half], squeezed, 0), as_2d(pads[half:], squeezed, 0)
        return tuple(zip(begin, end))
    if auto == "VALID":
        return ((0, 0), (0, 0))
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise unsupported(cx, node, f"auto_pad={auto!r}")
    out = []
    for size, k, s, d in zip(in_hw, k_hw, s_hw, d_hw):
        if size is None:
            raise unsupported(cx, node, f"auto_pad={auto} of an input whose spatial size is unknown")
        total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small, big = total // 2, total - total // 2
        out.append((small, big) if auto == "SAME_UPPER" else (big, small))
    return tuple(out)


@converts("Conv")
def conv(cx, node, inputs, attrs):
    x, squeezed = spatial(cx, node, arith(inputs[0]), "Conv")
    w = arith(inputs[1])
    if squeezed:
        w = gc.expand_dims(w, 2)
    k_hw = shape_of(w)[2:]
    stride = as_2d(attrs.get("strides", (1,) * (2 - squeezed)), squeezed, 1)
    dil = as_2d(attrs.get("dilations", (1,) * (2 - squeezed)), squeezed, 1)
    pads = explicit_pads(cx, node, attrs, shape_of(x)[2:], k_hw, stride, dil, squeezed)
    options = {"stride": stride, "padding": pads, "dilation": dil, "groups": attrs.get("group", 1)}
    b = present(inputs, 2)
    if not squeezed and isinstance(inputs[1], np.ndarray) and (b is None or isinstance(b, np.ndarray)):
        cx.convs[node.output[0]] = (x, inputs[1], b, options)     # a BatchNormalization may fold in
    return [conv_with_bias(x, w, b, options, squeezed)]


def conv_with_bias(x, w, b, options, squeezed=False):
    # a depthwise Conv (ShuffleNet, MobileNet) is gc.conv2d too: the CPU backend runs it as a
    # direct loop (runtime/cpu/conv_depthwise.py), faster than the sum of padded strided views
    # this importer used to write for it
    y = gc.conv2d(x, w, **options)
    if b is not None:
        y = y + gc.reshape(arith(b), (1, -1, 1, 1))
    return gc.squeeze(y, 2) if squeezed else y


@converts("MaxPool", "AveragePool")
def pool(cx, node, inputs, attrs):
    x, squeezed = spatial(cx, node, arith(inputs[0]), node.op_type)
    if len(node.output) > 1 and node.output[1]:
        raise unsupported(cx, node, "MaxPool's Indices output")
    k = as_2d(attrs["kernel_shape"], squeezed, 1)
    stride = as_2d(attrs.get("strides", (1,) * (2 - squeezed)), squeezed, 1)
    dil = as_2d(attrs.get("dilations", (1,) * (2 - squeezed)), squeezed, 1)
    pads = explicit_pads(cx, node, attrs, shape_of(x)[2:], k, stride, dil, squeezed)
    ceil = bool(attrs.get("ceil_mode", 0))
    is_max = node.op_type == "MaxPool"
    if dil != (1, 1):
        if not is_max:
            raise unsupported(cx, node, f"AveragePool with dilations {attrs['dilations']}")
        y = dilated_max_pool(cx, node, x, k, stride, pads, dil, ceil)
        return [gc.squeeze(y, 2) if squeezed else y]
    include = bool(attrs.get("count_include_pad", 0))
    if any(max(p) > kk // 2 for p, kk in zip(pads, k)):
        # graphc's pools take padding up to half the kernel; more is an explicit pad first, exact for
        # max (pad with -inf) and for an average that counts the padding (pad with 0)
        if not (is_max or include) or ceil:
            raise unsupported(cx, node, f"pads {pads} wider than half the kernel {k} "
                                        "(with count_include_pad=0 or ceil_mode)")
        fill = -np.inf if is_max and dtype_of(x).kind == "f" else 0
        x = gc.pad(x, ((0, 0), (0, 0)) + tuple(pads), constant_values=fill)
        pads = ((0, 0), (0, 0))
    if is_max:
        y = gc.max_pool2d(x, k, stride=stride, padding=pads, ceil_mode=ceil)
    else:
        y = gc.avg_pool2d(x, k, stride=stride, padding=pads, ceil_mode=ceil, count_include_pad=include)
    return [gc.squeeze(y, 2) if squeezed else y]


def dilated_max_pool(cx, node, x, k, stride, pads, dil, ceil):
    """MaxPool with dilations (graphc's pool has none): the maximum of the kh * kw strided views
    of x padded with -inf, one per kernel tap."""
    hw = shape_of(x)[2:]
    if None in hw:
        raise unsupported(cx, node, "a dilated MaxPool of an input of unknown spatial size")
    outs, ends = [], []
    for size, kk, s, d, (p0, p1) in zip(hw, k, stride, dil, pads):
        span = size + p0 + p1 - (kk - 1) * d - 1
        o = (-(-span // s) if ceil else span // s) + 1
        if ceil and (o - 1) * s >= size + p0:
            o -= 1                                  # a last window starting in the end padding
        outs.append(o)
        ends.append(max(p1, (o - 1) * s + (kk - 1) * d + 1 - size - p0))
    fill = -np.inf if dtype_of(x).kind == "f" else np.iinfo(dtype_of(x)).min
    xp = gc.pad(x, ((0, 0), (0, 0), (pads[0][0], ends[0]), (pads[1][0], ends[1])), constant_values=fill)
    y = None
    for i in range(k[0]):
        for j in range(k[1]):
            a, b = i * dil[0], j * dil[1]
            tap = xp[:, :, a:a + (outs[0] - 1) * stride[0] + 1:stride[0], b:b + (outs[1] - 1) * stride[1] + 1:stride[1]]
            y = tap if y is None else gc.maximum(y, tap)
    return y


@converts("ConvTranspose")
def conv_transpose(cx, node, inputs, attrs):
    """The adjoint of a convolution: graphc's conv2d_grad_input, with the output size ONNX asks
    for (from output_shape, auto_pad or pads and output_padding)."""
    x, squeezed = spatial(cx, node, arith(inputs[0]), "ConvTranspose")
    w = arith(inputs[1])
    if squeezed:
        w = gc.expand_dims(w, 2)
    nd = 2 - squeezed
    k_hw = shape_of(w)[2:]
    stride = as_2d(attrs.get("strides", (1,) * nd), squeezed, 1)
    dil = as_2d(attrs.get("dilations", (1,) * nd), squeezed, 1)
    extra = as_2d(attrs.get("output_padding", (0,) * nd), squeezed, 0)
    in_hw = shape_of(x)[2:]
    if None in in_hw:
        raise unsupported(cx, node, "ConvTranspose of an input of unknown spatial size")
    full = [s * (i - 1) + e + (kk - 1) * d + 1 for s, i, e, kk, d in zip(stride, in_hw, extra, k_hw, dil)]
    auto = attrs.get("auto_pad", "NOTSET")
    target = attrs.get("output_shape")
    if target is None and auto in ("SAME_UPPER", "SAME_LOWER"):
        target = [i * s for i, s in zip(in_hw, stride)][-nd:]
    if target is not None:
        target = as_2d(tuple(target)[-nd:], squeezed, 1)
        pads = []
        for f, t in zip(full, target):
            total = f - t
            small, big = total // 2, total - total // 2
            pads.append((small, big) if auto == "SAME_UPPER" else (big, small))
        if any(p0 < 0 for p0, _ in pads):
            raise unsupported(cx, node, f"output_shape {attrs.get('output_shape')} needs a negative start padding")
    # a negative end padding (a larger output_shape) is more output at the end, as output_padding
    else:
        pads = explicit_pads(cx, node, attrs, in_hw, k_hw, stride, dil, squeezed)
    out_hw = tuple(f - p0 - p1 for f, (p0, p1) in zip(full, pads))
    pads = tuple((p0, max(p1, 0)) for p0, p1 in pads)
    y = gc.conv2d_grad_input(x, w, out_hw, stride=stride, padding=tuple(pads), dilation=dil,
                             groups=attrs.get("group", 1))
    b = present(inputs, 2)
    if b is not None:
        y = y + gc.reshape(arith(b), (1, -1, 1, 1))
    return [gc.squeeze(y, 2) if squeezed else y]


@converts("LpNormalization")
def lp_normalization(cx, node, inputs, attrs):
    x, p = arith(inputs[0]), attrs.get("p", 2)
    axis = attrs.get("axis", -1)
    if p not in (1, 2):
        raise unsupported(cx, node, f"p={p} (ONNX allows 1 and 2)")
    norm = gc.sum(gc.abs(x) if p == 1 else gc.square(x), axis=axis, keepdims=True)
    norm = norm if p == 1 else gc.sqrt(norm)
    zero = gc.equal(norm, scalar(x, 0))
    return [gc.where(zero, scalar(x, 0), x / gc.where(zero, scalar(x, 1), norm))]      # 0 / 0 is 0


@converts("MeanVarianceNormalization")
def mean_variance_normalization(cx, node, inputs, attrs):
    x = arith(inputs[0])
    axes = tuple(attrs.get("axes", (0, 2, 3)))
    m = gc.mean(x, axis=axes, keepdims=True)
    var = gc.mean(gc.square(x), axis=axes, keepdims=True) - gc.square(m)       # ONNX's own expansion
    return [(x - m) / (gc.sqrt(var) + scalar(x, 1e-9))]


@converts("GlobalAveragePool", "GlobalMaxPool")
def global_pool(cx, node, inputs, attrs):
    x = arith(inputs[0])
    axes = tuple(range(2, rank(x)))
    f = gc.mean if node.op_type == "GlobalAveragePool" else gc.max
    return [f(x, axis=axes, keepdims=True)]

# ---------------------------------------------------------------- normalizations


def per_channel(v, n):
    """A (C,) vector shaped to broadcast over (N, C, ...) of rank n."""
    shape = (1, -1) + (1,) * (n - 2)
    return v.reshape(shape) if isinstance(v, np.ndarray) else gc.reshape(v, shape)


@converts("BatchNormalization")
def batch_norm(cx, node, inputs, attrs):
    if attrs.get("training_mode", 0) or (cx.opset < 7 and not attrs.get("is_test", 0)):
        raise unsupported(cx, node, "BatchNormalization in training mode (graphc imports for inference)")
    if any(node.output[1:]):
        raise unsupported(cx, node, "BatchNormalization's running-statistics outputs (training mode)")
    x, scale, bias, mean, var = inputs
    n, eps, dt = rank(x), attrs.get("epsilon", 1e-5), dtype_of(x)
    if all(isinstance(v, np.ndarray) for v in (scale, bias, mean, var)):
        # the usual case: y = x * a + b with a, b computed here once, in float64
        a = scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
        b = bias.astype(np.float64) - mean.astype(np.float64) * a
        conv = cx.convs.get(node.input[0])
        if conv is not None and cx.uses[node.input[0]] == 1:
            # Conv -> BatchNormalization, the conv read by nothing else: one conv with the scale
            # folded into its weights and the shift into its bias (no pass over the activations)
            xin, w, cb, options = conv
            w2 = (w.astype(np.float64) * a.reshape(-1, 1, 1, 1)).astype(w.dtype)
            b2 = b if cb is None else b + cb.astype(np.float64) * a
            return [conv_with_bias(xin, w2, b2.astype(dt), options)]
        return [arith(x) * per_channel(a.astype(dt), n) + per_channel(b.astype(dt), n)]
    scale, bias, mean, var = (per_channel(arith(v), n) for v in (scale, bias, mean, var))
    return [(arith(x) - mean) / gc.sqrt(var + scalar(x, eps)) * scale + bias]


@converts("InstanceNormalization")
def instance_norm(cx, node, inputs, attrs):
    x, scale, bias = arith(inputs[0]), inputs[1], inputs[2]
    axes = tuple(range(2, rank(x)))
    m = gc.mean(x, axis=axes, keepdims=True)
    var = gc.mean(gc.square(x - m), axis=axes, keepdims=True)
    y = (x - m) / gc.sqrt(var + scalar(x, attrs.get("epsilon", 1e-5)))
    return [y * per_channel(arith(scale), rank(x)) + per_channel(arith(bias), rank(x))]


@converts("LayerNormalization")
def layer_norm(cx, node, inputs, attrs):
    x, scale, bias = arith(inputs[0]), arith(inputs[1]), present(inputs, 2)
    n = rank(x)
    axis = attrs.get("axis", -1) % n
    axes = tuple(range(axis, n))
    m = gc.mean(x, axis=axes, keepdims=True)
    var = gc.mean(gc.square(x - m), axis=axes, keepdims=True)
    inv = gc.reciprocal(gc.sqrt(var + scalar(x, attrs.get("epsilon", 1e-5))))
    y = (x - m) * inv * scale
    return [y + arith(bias) if bias is not None else y, m, inv]     # Y, Mean, InvStdDev


@converts("LRN")
def lrn(cx, node, inputs, attrs):
    """y = x / (bias + alpha / size * sum of x^2 over `size` neighbouring channels) ** beta."""
    x = arith(inputs[0])
    size = attrs["size"]
    alpha, beta, bias = attrs.get("alpha", 1e-4), attrs.get("beta", 0.75), attrs.get("bias", 1.0)
    n, c = rank(x), shape_of(x)[1]
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    sq = gc.pad(gc.square(x), ((0, 0), (before, after)) + ((0, 0),) * (n - 2))
    total = None
    for i in range(size):
        part = sq[(slice(None), slice(i, i + c))]
        total = part if total is None else total + part
    return [x / gc.power(scalar(x, bias) + total * scalar(x, alpha / size), scalar(x, beta))]


@converts("Flatten")
def flatten(cx, node, inputs, attrs):
    x = inputs[0]
    shape = shape_of(x)
    axis = attrs.get("axis", 1)
    axis = axis + len(shape) if axis < 0 else axis          # in [-r, r]
    outer, inner = shape[:axis], shape[axis:]
    dims = [math.prod(outer) if None not in outer else -1, math.prod(inner) if None not in inner else -1]
    if dims.count(-1) > 1:
        raise unsupported(cx, node, f"Flatten of a shape {shape} with unknown sizes on both sides of axis {axis}")
    if isinstance(x, np.ndarray):
        return [x.reshape(dims)]
    return [gc.reshape(x, tuple(dims))]

