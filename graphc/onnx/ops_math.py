"""ONNX elementwise, comparison, logical, activation, reduction and softmax ops -> graphc ops.

Activations graphc has no op for are exact compositions (Selu = gamma * elu, HardSigmoid =
clip of an affine, PRelu = where, Mish = x * tanh(softplus)). ONNX's binary ops broadcast as
numpy does, so they map one to one.
"""
import math

import numpy as np

import graphc as gc

from .registry import converts, dtype_of, ints, norm_axis, present, rank, shape_of, unsupported

UNARY = {"Abs": gc.abs, "Neg": gc.negative, "Exp": gc.exp, "Log": gc.log, "Sqrt": gc.sqrt,
         "Reciprocal": gc.reciprocal, "Tanh": gc.tanh, "Sigmoid": gc.sigmoid, "Softplus": gc.softplus,
         "Relu": gc.relu, "Sign": gc.sign, "Not": gc.logical_not, "Erf": gc.erf, "Floor": gc.floor,
         "Ceil": gc.ceil, "Round": gc.round, "IsNaN": gc.isnan}
BINARY = {"Add": gc.add, "Sub": gc.subtract, "Mul": gc.multiply, "Equal": gc.equal, "Greater": gc.greater,
          "Less": gc.less, "GreaterOrEqual": gc.greater_equal, "LessOrEqual": gc.less_equal,
          "And": gc.logical_and, "Or": gc.logical_or, "Xor": gc.not_equal}


def arith(x):
    """A value for graphc arithmetic: numpy arrays stay numpy (folded), nodes stay nodes."""
    return gc.as_node(x) if isinstance(x, np.ndarray) else x


@converts(*UNARY)
def unary(cx, node, inputs, attrs):
    return [UNARY[node.op_type](arith(inputs[0]))]


@converts(*BINARY)
def binary(cx, node, inputs, attrs):
    a, b = inputs
    if node.op_type == "Xor" and dtype_of(a) != np.bool_:
        raise unsupported(cx, node, "Xor of non-bool tensors")
    return [BINARY[node.op_type](arith(a), arith(b))]


@converts("Mod")
def mod(cx, node, inputs, attrs):
    # fmod=0: the sign of the divisor (numpy's mod, ONNX allows it for integers only);
    # fmod=1: the sign of the dividend (C's fmod)
    a, b = (arith(v) for v in inputs)
    return [(gc.fmod if attrs.get("fmod", 0) else gc.mod)(a, b)]


@converts("IsInf")
def isinf(cx, node, inputs, attrs):
    x = arith(inputs[0])
    out = gc.isinf(x)
    if not attrs.get("detect_negative", 1):
        out = out & (x > 0)
    if not attrs.get("detect_positive", 1):
        out = out & (x < 0)
    return [out]


@converts("Div")
def div(cx, node, inputs, attrs):
    a, b = inputs
    if dtype_of(a).kind != "f":        # integer division: graphc's divide is true division, so
        a, b = (cx.static(v, node, "integer operands") for v in (a, b))     # done at import
        q = np.floor_divide(a, b)                    # known at import: C's division, toward zero
        return [(q + ((np.remainder(a, b) != 0) & ((a < 0) ^ (b < 0)))).astype(a.dtype)]
    return [gc.divide(arith(a), arith(b))]


@converts("Pow")
def pow_(cx, node, inputs, attrs):
    a, b = inputs
    if dtype_of(b) != dtype_of(a):          # opset 12+: the exponent may have its own type
        b = b.astype(dtype_of(a)) if isinstance(b, np.ndarray) else gc.cast(b, dtype_of(a))
    return [gc.power(arith(a), arith(b))]


@converts("Identity", "Dropout")
def identity(cx, node, inputs, attrs):
    if node.op_type == "Dropout":
        training = present(inputs, 2)
        if attrs.get("is_test", 1) == 0 and cx.opset < 7 or (training is not None and bool(cx.static(
                training, node, "training_mode").reshape(-1)[0])):
            raise unsupported(cx, node, "Dropout in training mode (graphc imports models for inference)")
        if len(node.output) > 1 and node.output[1]:     # in inference the mask keeps everything
            return [inputs[0], np.ones(known(cx, node, inputs[0]), np.bool_)]
    return [inputs[0]]


def known(cx, node, x):
    if None in shape_of(x):
        raise unsupported(cx, node, f"an output shaped like an input of unknown shape {shape_of(x)}")
    return shape_of(x)


@converts("Sum", "Mean", "Max", "Min")
def variadic(cx, node, inputs, attrs):
    f = {"Sum": gc.add, "Mean": gc.add, "Max": gc.maximum, "Min": gc.minimum}[node.op_type]
    out = arith(inputs[0])
    for x in inputs[1:]:
        out = f(out, arith(x))
    if node.op_type == "Mean":
        out = out / len(inputs)
    if len(inputs) == 1:
        out = gc.reshape(out, shape_of(out)) if not isinstance(out, np.ndarray) else out
    return [out]


@converts("Clip")
def clip(cx, node, inputs, attrs):
    x = arith(inputs[0])
    if cx.opset < 11:
        lo, hi = attrs.get("min"), attrs.get("max")
    else:
        lo, hi = present(inputs, 1), present(inputs, 2)
    if lo is not None:
        x = gc.maximum(x, arith(lo) if not np.isscalar(lo) else np.asarray(lo, dtype_of(x)))
    if hi is not None:
        x = gc.minimum(x, arith(hi) if not np.isscalar(hi) else np.asarray(hi, dtype_of(x)))
    return [x]


@converts("Where")
def where(cx, node, inputs, attrs):
    c, a, b = (arith(v) for v in inputs)
    return [gc.where(c, a, b)]


@converts("Cast", "CastLike")
def cast(cx, node, inputs, attrs):
    if node.op_type == "Cast":
        to = cx.dtype(attrs["to"], f"the target type of Cast node {node.name!r}")
    else:
        to = dtype_of(inputs[1])
    x = inputs[0]
    if isinstance(x, np.ndarray):
        return [x.astype(to)]
    return [gc.cast(x, to) if dtype_of(x) != to else x]

# ---------------------------------------------------------------- activations


def scalar(x, v):
    return np.asarray(v, dtype_of(x))


@converts("Shrink")
def shrink(cx, node, inputs, attrs):
    x = arith(inputs[0])
    lambd, bias = scalar(x, attrs.get("lambd", 0.5)), scalar(x, attrs.get("bias", 0.0))
    return [gc.where(x < -lambd, x + bias, gc.where(x > lambd, x - bias, scalar(x, 0)))]


@converts("Swish")
def swish(cx, node, inputs, attrs):
    x = arith(inputs[0])
    return [x * gc.sigmoid(x * scalar(x, attrs.get("alpha", 1.0)))]


@converts("LeakyRelu", "Elu", "Selu", "Celu", "HardSigmoid", "HardSwish", "Softsign", "ThresholdedRelu",
          "PRelu", "Mish", "Gelu")
def activation(cx, node, inputs, attrs):
    x, t = arith(inputs[0]), node.op_type
    if t == "LeakyRelu":
        return [gc.leaky_relu(x, attrs.get("alpha", 0.01))]
    if t == "Elu":
        return [gc.elu(x, attrs.get("alpha", 1.0))]
    if t == "Selu":
        alpha, gamma = attrs.get("alpha", 1.67326319217681884765625), attrs.get("gamma", 1.05070102214813232421875)
        return [scalar(x, gamma) * gc.elu(x, alpha)]
    if t == "Celu":
        alpha = attrs.get("alpha", 1.0)
        return [scalar(x, alpha) * gc.elu(x / scalar(x, alpha), 1.0)]
    if t in ("HardSigmoid", "HardSwish"):
        alpha, beta = (attrs.get("alpha", 0.2), attrs.get("beta", 0.5)) if t == "HardSigmoid" else (1 / 6, 0.5)
        h = gc.maximum(gc.minimum(x * scalar(x, alpha) + scalar(x, beta), scalar(x, 1)), scalar(x, 0))
        return [h if t == "HardSigmoid" else x * h]
    if t == "Softsign":
        return [x / (gc.abs(x) + scalar(x, 1))]
    if t == "ThresholdedRelu":
        return [gc.where(x > scalar(x, attrs.get("alpha", 1.0)), x, scalar(x, 0))]
    if t == "PRelu":
        slope = arith(inputs[1])
        if rank(slope) == 1 and rank(x) > 2 and shape_of(slope)[0] == shape_of(x)[1] != shape_of(x)[-1]:
            slope = gc.reshape(slope, (-1,) + (1,) * (rank(x) - 2))    # a per-channel slope (opset < 7)
        return [gc.where(x < scalar(x, 0), slope * x, x)]
    if t == "Mish":
        return [x * gc.tanh(gc.softplus(x))]
    if attrs.get("approximate", "none") != "tanh":     # Gelu, exact: 0.5 x (1 + erf(x / sqrt 2))
        return [scalar(x, 0.5) * x * (scalar(x, 1) + gc.erf(x * scalar(x, 1 / math.sqrt(2))))]
    inner = scalar(x, math.sqrt(2 / math.pi)) * (x + scalar(x, 0.044715) * x * x * x)
    return [scalar(x, 0.5) * x * (scalar(x, 1) + gc.tanh(inner))]

# ---------------------------------------------------------------- reductions


def reduce_axes(cx, node, inputs, attrs, input_since):
    """The axes (a tuple, or None for all, or () for none) of a Reduce* node: an attribute
    before opset `input_since`, the optional second input from it on."""
    if cx.opset >= input_since:
        axes = present(inputs, 1)
        axes = None if axes is None else ints(cx.static(axes, node, "axes"))
    else:
        axes = attrs.get("axes")
        axes = None if axes is None else tuple(axes)
    if not axes:
        return () if attrs.get("noop_with_empty_axes", 0) else None
    n = rank(inputs[0])
    return tuple(sorted({norm_axis(a, n, cx, node) for a in axes}))


@converts("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare",
          "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp")
def reduce(cx, node, inputs, attrs):
    t = node.op_type
    axes = reduce_axes(cx, node, inputs, attrs, 13 if t == "ReduceSum" else 18)
    x = arith(inputs[0])
    if axes == ():
        return [x]
    keep = bool(attrs.get("keepdims", 1))
    if t in ("ReduceMax", "ReduceMin") and any(shape_of(x)[a] == 0 for a in (axes or range(rank(x)))):
        raise unsupported(cx, node, f"{t} over an empty axis")
    if t == "ReduceLogSumExp":
        m = gc.max(x, axis=axes, keepdims=True)
        s = gc.log(gc.sum(gc.exp(x - m), axis=axes, keepdims=True)) + m
        return [s if keep else gc.squeeze(s, axes if axes is not None else tuple(range(rank(x))))]
    pre = {"ReduceSumSquare": gc.square, "ReduceL1": gc.abs, "ReduceL2": gc.square}.get(t)
    f = {"ReduceMean": gc.mean, "ReduceMax": gc.max, "ReduceMin": gc.min, "ReduceProd": gc.prod}.get(t, gc.sum)
    out = f(pre(x) if pre else x, axis=axes, keepdims=keep)
    post = {"ReduceL2": gc.sqrt, "ReduceLogSum": gc.log}.get(t)
    return [post(out) if post else out]


@converts("ArgMax", "ArgMin")
def arg_extreme(cx, node, inputs, attrs):
    x = arith(inputs[0])
    axis = norm_axis(attrs.get("axis", 0), rank(x), cx, node)
    keep = bool(attrs.get("keepdims", 1))
    f = gc.argmax if node.op_type == "ArgMax" else gc.argmin
    if attrs.get("select_last_index", 0):
        key = tuple(slice(None, None, -1) if a == axis else slice(None) for a in range(rank(x)))
        out = np.asarray(shape_of(x)[axis] - 1, np.int64) - gc.cast(f(x[key], axis=axis, keepdims=keep), np.int64)
    else:
        out = f(x, axis=axis, keepdims=keep)
    return [gc.cast(out, np.int64) if out.dtype != np.int64 else out]

# ---------------------------------------------------------------- softmax


@converts("Softmax", "LogSoftmax", "Hardmax")
def softmax(cx, node, inputs, attrs):
    x = arith(inputs[0])
    n = rank(x)
    if node.op_type == "Hardmax":
        f = hardmax
    else:
        f = gc.softmax if node.op_type == "Softmax" else gc.log_softmax
    if cx.opset >= 13:
        return [f(x, axis=norm_axis(attrs.get("axis", -1), n, cx, node))]
    # before opset 13: the input is flattened to 2-D at `axis` (default 1), normalized per row
    axis = norm_axis(attrs.get("axis", 1), n, cx, node)
    shape = shape_of(x)
    if None in shape[axis:]:
        raise unsupported(cx, node, f"opset-{cx.opset} {node.op_type} of a shape {shape} unknown after axis {axis}")
    flat = gc.reshape(x, (-1, math.prod(shape[axis:])))
    return [gc.reshape(f(flat, axis=1), tuple(-1 if d is None else d for d in shape))]


def hardmax(x, axis):
    """1 at the first maximum along axis, 0 elsewhere: one_hot of argmax, moved back into place."""
    n, depth = rank(x), shape_of(x)[axis]
    hot = gc.one_hot(gc.argmax(x, axis=axis), depth, dtype=dtype_of(x))    # the new axis is last
    order = tuple(range(axis)) + (n - 1,) + tuple(range(axis, n - 1))
    return gc.transpose(hot, order)
