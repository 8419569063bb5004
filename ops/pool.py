"""2-D max and average pooling over NCHW tensors, and the ops their gradients are made of.

    max_pool2d(x)               the max of each window (padding is -inf: never chosen)
    max_pool2d_grad(x, g)       g of each window added at its arg-max in x: dL/dx of max_pool2d
    max_pool2d_select(x, G)     G read at each window's arg-max (the adjoint of max_pool2d_grad in g)
    avg_pool2d(x)               the mean of each window
    avg_pool2d_grad(g)          g / count spread over each window: dL/dx of avg_pool2d (linear)

Ties go to the FIRST maximum in row-major window order, in the reference and in every
backend alike, so the gradient is deterministic. ceil_mode follows PyTorch: the last window
may hang over the end, but must start inside the input or its left padding; padding is at
most half the kernel. count_include_pad=True divides by the window's size within the padded
input (not the overhang of ceil_mode), False by its number of input elements.
global_avg_pool2d is mean over H and W, kept as (N, C, 1, 1).
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from graphc.core.errors import ShapeError
from graphc.core.types import TensorType, fmt_shape

from .base import Op, apply, register
from .conv import check_float, check_rank4, explicit_pads, pair
from .reductions import mean


def pool_out(size, k, s, pads, ceil_mode):
    if size is None:
        return None
    span = size + pads[0] + pads[1] - k
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + pads[0]:
        out -= 1                       # the last window would start in the right padding
    return out


def pool_attrs(op, kernel, stride, padding, ceil_mode):
    kernel = pair(kernel, "kernel", op)
    stride = kernel if stride is None else pair(stride, "stride", op)
    pads = explicit_pads(padding, op)
    for k, p in zip(kernel, pads):
        if max(p) > k // 2:
            raise ShapeError(f"{op}: padding {padding!r} is more than half the kernel {kernel}")
    return {"kernel": kernel, "stride": stride, "padding": pads, "ceil_mode": bool(ceil_mode)}


def pool_shape(op, x, kernel, stride, padding, ceil_mode):
    n, c, h, w = x
    out = tuple(pool_out(size, k, s, p, ceil_mode) for size, k, s, p in zip((h, w), kernel, stride, padding))
    if any(v is not None and v < 1 for v in out):
        raise ShapeError(f"{op}: output size {out} is not positive: input {fmt_shape(x)}, kernel {kernel}, "
                         f"stride {stride}, padding {padding}")
    return (n, c) + out


def windows(x, kernel, stride, padding, out_hw, fill):
    """(N, C, OH, OW, kh * kw): each output position's window of x padded with fill (and, in
    ceil_mode, with fill past the end), in row-major window order."""
    (kh, kw), (sh, sw) = kernel, stride
    ends = [max(p[1], (o - 1) * s + k - size - p[0]) for p, o, s, k, size in
            zip(padding, out_hw, stride, kernel, x.shape[2:])]
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0][0], ends[0]), (padding[1][0], ends[1])), constant_values=fill)
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :out_hw[0], :out_hw[1]]
    return win.reshape(win.shape[:4] + (kh * kw,)), xp.shape


def argmax_positions(x, kernel, stride, padding, ceil_mode):
    """The flat index into x's padded (H', W') of each window's first maximum, and that shape."""
    out_hw = pool_shape("max_pool2d", x.shape, kernel, stride, padding, ceil_mode)[2:]
    win, padded = windows(x, kernel, stride, padding, out_hw, -np.inf)
    k = np.argmax(win, axis=-1)
    oh, ow = np.meshgrid(np.arange(out_hw[0]), np.arange(out_hw[1]), indexing="ij")
    rows = oh * stride[0] + k // kernel[1]
    cols = ow * stride[1] + k % kernel[1]
    return rows * padded[3] + cols, padded


def divisors(size_hw, kernel, stride, padding, out_hw, count_include_pad):
    """(OH, OW): how many elements each average divides by."""
    counts = []
    for size, k, s, (t, b), o in zip(size_hw, kernel, stride, padding, out_hw):
        start = np.arange(o) * s - t
        lo, hi = (-t, size + b) if count_include_pad else (0, size)
        counts.append(np.minimum(start + k, hi) - np.maximum(start, lo))
    return np.outer(counts[0], counts[1])


class PoolOp(Op):
    kind = "opaque"

    def label(self, node):
        return list(node.attrs.items())


@register
class MaxPool2D(PoolOp):
    name = "max_pool2d"

    def canonical(self, types, kernel, stride=None, padding=0, ceil_mode=False):
        check_rank4(self.name, "input", types[0])
        return pool_attrs(self.name, kernel, stride, padding, ceil_mode)

    def infer(self, types, kernel, stride, padding, ceil_mode):
        check_float(self.name, *types)
        return TensorType(pool_shape(self.name, types[0].shape, kernel, stride, padding, ceil_mode), types[0].dtype)

    def ref(self, x, kernel, stride, padding, ceil_mode):
        out_hw = pool_shape(self.name, x.shape, kernel, stride, padding, ceil_mode)[2:]
        win, _ = windows(x, kernel, stride, padding, out_hw, -np.inf)
        return np.max(win, axis=-1)

    def grad(self, node, g):
        return [max_pool2d_grad(node.inputs[0], g, **node.attrs)]


class MaxPoolAdjoint(PoolOp):
    """The two linear maps (in their second input) through each window's arg-max of x."""

    def canonical(self, types, kernel, stride=None, padding=0, ceil_mode=False):
        check_rank4(self.name, "input", types[0])
        check_rank4(self.name, "gradient", types[1])
        return pool_attrs(self.name, kernel, stride, padding, ceil_mode)

    def shapes(self, types, attrs):
        x, other = types
        check_float(self.name, x, other)
        y = pool_shape(self.name, x.shape, **attrs)
        want, got = (x.shape, other.shape) if self.name == "max_pool2d_select" else (y, other.shape)
        if any(a is not None and b is not None and a != b for a, b in zip(want, got)):
            raise ShapeError(f"{self.name}: {fmt_shape(got)} should have the shape {fmt_shape(want)}")
        return x.shape, y


@register
class MaxPool2DGrad(MaxPoolAdjoint):
    name = "max_pool2d_grad"

    def infer(self, types, **attrs):
        return TensorType(self.shapes(types, attrs)[0], types[0].dtype)

    def ref(self, x, g, **attrs):
        pos, padded = argmax_positions(x, **attrs)
        n, c = x.shape[:2]
        dx = np.zeros((n * c, padded[2] * padded[3]), np.float64)
        rows = np.arange(n * c)[:, None, None]
        np.add.at(dx, (rows, pos.reshape(n * c, *pos.shape[2:])), g.reshape(n * c, *g.shape[2:]))
        (t, _), (left, _) = attrs["padding"]
        dx = dx.reshape(n, c, padded[2], padded[3])[:, :, t:t + x.shape[2], left:left + x.shape[3]]
        return dx.astype(x.dtype)

    def grad(self, node, G):
        x, g = node.inputs
        return [None, max_pool2d_select(x, G, **node.attrs)]    # piecewise constant in x


@register
class MaxPool2DSelect(MaxPoolAdjoint):
    name = "max_pool2d_select"

    def infer(self, types, **attrs):
        return TensorType(self.shapes(types, attrs)[1], types[0].dtype)

    def ref(self, x, G, **attrs):
        pos, padded = argmax_positions(x, **attrs)
        (t, _), (left, _) = attrs["padding"]
        Gp = np.zeros(G.shape[:2] + padded[2:], G.dtype)
        Gp[:, :, t:t + G.shape[2], left:left + G.shape[3]] = G
        # flat sizes spelled out: -1 cannot be worked out for an empty batch
        Gp = Gp.reshape(G.shape[0], G.shape[1], Gp.shape[2] * Gp.shape[3])
        flat = pos.reshape(pos.shape[0], pos.shape[1], pos.shape[2] * pos.shape[3])
        return np.take_along_axis(Gp, flat, axis=2).reshape(pos.shape)

    def grad(self, node, g):
        x, G = node.inputs
        return [None, max_pool2d_grad(x, g, **node.attrs)]


class AvgPoolOp(PoolOp):
    def canonical(self, types, kernel, stride=None, padding=0, ceil_mode=False, count_include_pad=True, **extra):
        check_rank4(self.name, "input", types[0])
        return {**pool_attrs(self.name, kernel, stride, padding, ceil_mode),
                "count_include_pad": bool(count_include_pad), **extra}


@register
class AvgPool2D(AvgPoolOp):
    name = "avg_pool2d"

    def infer(self, types, **attrs):
        check_float(self.name, *types)
        attrs.pop("count_include_pad")
        return TensorType(pool_shape(self.name, types[0].shape, **attrs), types[0].dtype)

    def ref(self, x, kernel, stride, padding, ceil_mode, count_include_pad):
        out_hw = pool_shape(self.name, x.shape, kernel, stride, padding, ceil_mode)[2:]
        win, _ = windows(x.astype(np.float64), kernel, stride, padding, out_hw, 0.0)
        div = divisors(x.shape[2:], kernel, stride, padding, out_hw, count_include_pad)
        return (np.sum(win, axis=-1) / div).astype(x.dtype)

    def grad(self, node, g):
        x = node.inputs[0]
        if None in x.shape[2:]:
            raise ShapeError(f"the gradient of avg_pool2d needs the input's spatial size, got {fmt_shape(x.shape)}")
        return [avg_pool2d_grad(g, x.shape[2:], **node.attrs)]


@register
class AvgPool2DGrad(AvgPoolOp):
    """dL/dx of avg_pool2d for an x of spatial size input_size, given g = dL/dy."""
    name = "avg_pool2d_grad"

    def canonical(self, types, input_size, kernel, **attrs):
        return super().canonical(types, kernel, input_size=pair(input_size, "input_size", self.name), **attrs)

    def infer(self, types, input_size, count_include_pad, **attrs):
        (g,) = types
        check_float(self.name, g)
        x = g.shape[:2] + input_size
        y = pool_shape(self.name, x, **attrs)
        if any(a is not None and a != b for a, b in zip(g.shape[2:], y[2:])):
            raise ShapeError(f"{self.name}: the gradient {fmt_shape(g.shape)} is not the shape of avg_pool2d's "
                             f"output {fmt_shape(y)} for an input {fmt_shape(x)}")
        return TensorType(x, g.dtype)

    def ref(self, g, input_size, kernel, stride, padding, ceil_mode, count_include_pad):
        n, c, oh, ow = g.shape
        (kh, kw), (sh, sw), ((t, b), (left, r)) = kernel, stride, padding
        div = divisors(input_size, kernel, stride, padding, (oh, ow), count_include_pad)
        share = g.astype(np.float64) / div
        dx = np.zeros((n, c, max(input_size[0] + t + b, (oh - 1) * sh + kh),
                       max(input_size[1] + left + r, (ow - 1) * sw + kw)))
        for i in range(kh):
            for j in range(kw):
                dx[:, :, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw] += share
        return dx[:, :, t:t + input_size[0], left:left + input_size[1]].astype(g.dtype)

    def grad(self, node, G):
        attrs = {k: v for k, v in node.attrs.items() if k != "input_size"}
        return [avg_pool2d(G, **attrs)]

# ---------------------------------------------------------------- user functions


def max_pool2d(x, kernel, stride=None, padding=0, ceil_mode=False, name=None):
    """The max of each kernel window of x (N, C, H, W); stride defaults to the kernel."""
    return apply("max_pool2d", [x], name=name, kernel=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)


def max_pool2d_grad(x, g, kernel, stride=None, padding=0, ceil_mode=False, name=None):
    """dL/dx of max_pool2d(x, ...) given g = dL/dy: each window's g at its first arg-max."""
    return apply("max_pool2d_grad", [x, g], name=name, kernel=kernel, stride=stride, padding=padding,
                 ceil_mode=ceil_mode)


def max_pool2d_select(x, G, kernel, stride=None, padding=0, ceil_mode=False, name=None):
    """G (x's shape) read at each window's first arg-max of x: max_pool2d's shape."""
    return apply("max_pool2d_select", [x, G], name=name, kernel=kernel, stride=stride, padding=padding,
                 ceil_mode=ceil_mode)


def avg_pool2d(x, kernel, stride=None, padding=0, ceil_mode=False, count_include_pad=True, name=None):
    """The mean of each kernel window of x (N, C, H, W); stride defaults to the kernel."""
    return apply("avg_pool2d", [x], name=name, kernel=kernel, stride=stride, padding=padding,
                 ceil_mode=ceil_mode, count_include_pad=count_include_pad)


def avg_pool2d_grad(g, input_size, kernel, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                    name=None):
    """dL/dx of avg_pool2d(x, ...) given g = dL/dy; input_size: x's (H, W)."""
    return apply("avg_pool2d_grad", [g], name=name, input_size=input_size, kernel=kernel, stride=stride,
                 padding=padding, ceil_mode=ceil_mode, count_include_pad=count_include_pad)


def global_avg_pool2d(x, name=None):
    """The mean over H and W of x (N, C, H, W), kept as (N, C, 1, 1)."""
    return mean(x, axis=(2, 3), keepdims=True, name=name)
