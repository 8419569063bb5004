"""conv2d, its gradient ops and the pooling ops against DIRECT numpy loops (one output position
at a time, written apart from the im2col references in ops/conv.py and ops/pool.py): stride,
padding (symmetric, asymmetric, "same"), dilation, groups (depthwise too), ceil_mode,
count_include_pad; the canonical attrs (equal convolutions are one node) and the build-time errors."""
import math

import numpy as np
import pytest

import graphc as gc

try:
    from .test_ops import F32, F64, check, run, sample
except ImportError:
    from test_ops import F32, F64, check, run, sample

# ---------------------------------------------------------------- direct loops (the oracle)


def conv_size(size, k, s, d, before, after):
    return (size + before + after - d * (k - 1) - 1) // s + 1


def tap(x, n, c, y, xx):
    """x[n, c, y, xx] (c may be a range), 0 outside the image: the zero padding."""
    return x[n, c, y, xx] if 0 <= y < x.shape[2] and 0 <= xx < x.shape[3] else np.zeros_like(x[n, c, 0, 0])


def direct_conv(x, w, stride, pads, dilation, groups):
    (sh, sw), ((t, b), (left, r)), (dh, dw) = stride, pads, dilation
    n_, c_ = x.shape[:2]
    o_, cg, kh, kw = w.shape
    og = o_ // groups
    oh_n = conv_size(x.shape[2], kh, sh, dh, t, b)
    ow_n = conv_size(x.shape[3], kw, sw, dw, left, r)
    y = np.zeros((n_, o_, oh_n, ow_n))
    for n in range(n_):
        for o in range(o_):
            chans = slice((o // og) * cg, (o // og + 1) * cg)
            for oh in range(oh_n):
                for ow in range(ow_n):
                    acc = 0.0
                    for i in range(kh):
                        for j in range(kw):
                            v = tap(x, n, chans, oh * sh + i * dh - t, ow * sw + j * dw - left)
                            acc += float(np.dot(v, w[o, :, i, j]))
                    y[n, o, oh, ow] = acc
    return y


def direct_grad_input(g, w, size, stride, pads, dilation, groups):
    (sh, sw), ((t, _), (left, _)), (dh, dw) = stride, pads, dilation
    n_, o_, oh_n, ow_n = g.shape
    _, cg, kh, kw = w.shape
    og = o_ // groups
    dx = np.zeros((n_, cg * groups) + tuple(size))
    for n in range(n_):
        for o in range(o_):
            c0 = (o // og) * cg
            for oh in range(oh_n):
                for ow in range(ow_n):
                    for i in range(kh):
                        for j in range(kw):
                            y, xx = oh * sh + i * dh - t, ow * sw + j * dw - left
                            if 0 <= y < size[0] and 0 <= xx < size[1]:
                                dx[n, c0:c0 + cg, y, xx] += g[n, o, oh, ow] * w[o, :, i, j]
    return dx


def direct_grad_weight(x, g, kernel, stride, pads, dilation, groups):
    (sh, sw), ((t, _), (left, _)), (dh, dw) = stride, pads, dilation
    n_, o_, oh_n, ow_n = g.shape
    cg, og = x.shape[1] // groups, o_ // groups
    dwt = np.zeros((o_, cg) + tuple(kernel))
    for n in range(n_):
        for o in range(o_):
            chans = slice((o // og) * cg, (o // og + 1) * cg)
            for oh in range(oh_n):
                for ow in range(ow_n):
                    for i in range(kernel[0]):
                        for j in range(kernel[1]):
                            dwt[o, :, i, j] += g[n, o, oh, ow] * tap(x, n, chans, oh * sh + i * dh - t,
                                                                      ow * sw + j * dw - left)
    return dwt


def pool_size(size, k, s, before, after, ceil_mode):
    """PyTorch's pooling output size (aten/src/ATen/native/Pool.h pooling_output_shape)."""
    out = (size + before + after - k + ((s - 1) if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + before:
        out -= 1
    return out


def pool_windows(shape, kernel, stride, pads, ceil_mode):
    """For each output (oh, ow): the window's clipped row and column ranges and the padded
    (include_pad) extent, as PyTorch's avg_pool2d computes them."""
    (kh, kw), (sh, sw), ((t, b), (left, r)) = kernel, stride, pads
    h, w = shape[2:]
    oh_n, ow_n = pool_size(h, kh, sh, t, b, ceil_mode), pool_size(w, kw, sw, left, r, ceil_mode)
    for oh in range(oh_n):
        for ow in range(ow_n):
            y0, x0 = oh * sh - t, ow * sw - left
            y1, x1 = min(y0 + kh, h + b), min(x0 + kw, w + r)
            padded = (y1 - y0) * (x1 - x0)
            yield oh, ow, (max(y0, 0), min(y1, h)), (max(x0, 0), min(x1, w)), padded
    return oh_n, ow_n


def pooled_shape(shape, kernel, stride, pads, ceil_mode):
    return shape[:2] + tuple(pool_size(s, k, st, p[0], p[1], ceil_mode)
                             for s, k, st, p in zip(shape[2:], kernel, stride, pads))


def direct_pool(x, kind, kernel, stride, pads, ceil_mode, include_pad=True, g=None, G=None):
    """kind: "max", "avg", "max_grad" (g scattered to the first arg-max), "max_select" (G read
    there), "avg_grad" (g / count spread over the window)."""
    out_shape = pooled_shape(x.shape, kernel, stride, pads, ceil_mode)
    grad = kind in ("max_grad", "avg_grad")
    out = np.zeros(x.shape if grad else out_shape)
    for oh, ow, (y0, y1), (x0, x1), padded in pool_windows(x.shape, kernel, stride, pads, ceil_mode):
        for n in range(x.shape[0]):
            for c in range(x.shape[1]):
                if kind.startswith("max"):
                    best, at = -np.inf, None
                    for y in range(y0, y1):              # row-major: the first maximum wins
                        for xx in range(x0, x1):
                            if at is None or x[n, c, y, xx] > best:
                                best, at = x[n, c, y, xx], (y, xx)
                    if kind == "max":
                        out[n, c, oh, ow] = best
                    elif kind == "max_grad":
                        out[n, c, at[0], at[1]] += g[n, c, oh, ow]
                    else:
                        out[n, c, oh, ow] = G[n, c, at[0], at[1]]
                else:
                    count = padded if include_pad else (y1 - y0) * (x1 - x0)
                    if kind == "avg":
                        out[n, c, oh, ow] = x[n, c, y0:y1, x0:x1].sum() / count
                    else:
                        out[n, c, y0:y1, x0:x1] += g[n, c, oh, ow] / count
    return out

# ---------------------------------------------------------------- conv2d


#   x shape, w shape, stride, padding (as given), the explicit pads it means, dilation, groups
CONVS = [
    pytest.param((2, 3, 5, 5), (4, 3, 3, 3), 1, "valid", ((0, 0), (0, 0)), 1, 1, id="valid"),
    pytest.param((1, 2, 6, 7), (3, 2, 3, 2), (2, 3), 1, ((1, 1), (1, 1)), 1, 1, id="stride-pad"),
    pytest.param((2, 2, 5, 6), (2, 2, 2, 3), 1, ((1, 0), (2, 1)), ((1, 0), (2, 1)), 1, 1, id="asymmetric"),
    pytest.param((1, 2, 6, 6), (3, 2, 3, 3), 2, "same", ((0, 1), (0, 1)), 1, 1, id="same-stride2"),
    pytest.param((1, 2, 5, 5), (2, 2, 3, 3), 1, "same", ((1, 1), (1, 1)), 1, 1, id="same"),
    pytest.param((1, 1, 4, 5), (1, 1, 2, 2), 1, "same", ((0, 1), (0, 1)), 1, 1, id="same-even-kernel"),
    pytest.param((1, 2, 7, 7), (2, 2, 3, 3), 1, (2, 1), ((2, 2), (1, 1)), (2, 1), 1, id="dilation"),
    pytest.param((2, 4, 5, 5), (6, 2, 3, 3), 1, 1, ((1, 1), (1, 1)), 1, 2, id="groups"),
    pytest.param((2, 3, 5, 5), (3, 1, 3, 3), 1, 1, ((1, 1), (1, 1)), 1, 3, id="depthwise"),
    pytest.param((2, 3, 5, 5), (6, 1, 3, 3), 2, "same", ((1, 1), (1, 1)), 1, 3, id="depthwise-x2-same"),
    pytest.param((2, 3, 4, 4), (5, 3, 1, 1), 1, 0, ((0, 0), (0, 0)), 1, 1, id="1x1"),
    pytest.param((1, 2, 3, 3), (2, 2, 3, 3), 1, "valid", ((0, 0), (0, 0)), 1, 1, id="one-position"),
]


@pytest.mark.parametrize("xs, ws, stride, padding, pads, dilation, groups", CONVS)
@pytest.mark.parametrize("dtype", [F32, F64], ids=str)
def test_conv2d_matches_direct_loops(xs, ws, stride, padding, pads, dilation, groups, dtype):
    x, w = sample(dtype, xs, seed=1), sample(dtype, ws, seed=2)
    st, dil = (stride, stride) if isinstance(stride, int) else stride, (dilation,) * 2 if isinstance(
        dilation, int) else dilation
    out, got = run(lambda a, b: gc.conv2d(a, b, stride=stride, padding=padding, dilation=dilation, groups=groups),
                   x, w)
    assert out.attrs["padding"] == pads
    expected = direct_conv(x.astype(F64), w.astype(F64), st, pads, dil, groups).astype(dtype)
    if padding == "same":
        assert expected.shape[2:] == tuple(math.ceil(s / st[k]) for k, s in enumerate(xs[2:]))
    check(out, got, expected, op="conv2d", rtol=1e-5 if dtype == F32 else 1e-12, atol=1e-5 if dtype == F32 else 0)


@pytest.mark.parametrize("xs, ws, stride, padding, pads, dilation, groups", CONVS)
def test_conv2d_gradient_ops_match_direct_loops(xs, ws, stride, padding, pads, dilation, groups):
    x, w = sample(F64, xs, seed=3), sample(F64, ws, seed=4)
    st, dil = (stride, stride) if isinstance(stride, int) else stride, (dilation,) * 2 if isinstance(
        dilation, int) else dilation
    y_shape = direct_conv(x, w, st, pads, dil, groups).shape
    g = sample(F64, y_shape, seed=5)
    attrs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    out, got = run(lambda a, b: gc.conv2d_grad_input(a, b, xs[2:], **attrs), g, w)
    check(out, got, direct_grad_input(g, w, xs[2:], st, pads, dil, groups), op="conv2d_grad_input", rtol=1e-12)
    out, got = run(lambda a, b: gc.conv2d_grad_weight(a, b, ws[2:], **attrs), x, g)
    check(out, got, direct_grad_weight(x, g, ws[2:], st, pads, dil, groups), op="conv2d_grad_weight",
          rtol=1e-12)


def test_conv2d_unknown_batch_size():
    x, w = sample(F32, (3, 2, 5, 5), seed=1), sample(F32, (4, 2, 3, 3), seed=2)
    out, got = run(lambda a, b: gc.conv2d(a, b, padding="same"), x, w, shapes=[(None, 2, 5, 5), w.shape])
    assert out.shape == (None, 4, 5, 5)
    check(out, got, direct_conv(x, w, (1, 1), ((1, 1), (1, 1)), (1, 1), 1).astype(F32), rtol=1e-5, atol=1e-5)


def test_equal_convolutions_are_one_node():
    with gc.Graph():
        x, w = gc.placeholder((2, 3, 6, 6)), gc.placeholder((4, 3, 3, 3))
        a = gc.conv2d(x, w, padding=1)
        assert gc.conv2d(x, w, stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1)) is a
        assert gc.conv2d(x, w, padding="same") is a
        assert gc.conv2d(x, w, padding=(1, 1)) is a
        assert gc.conv2d(x, w, padding="valid") is gc.conv2d(x, w, padding=0)
        assert gc.conv2d(x, w, padding=2) is not a


CONV_ERRORS = [
    pytest.param((2, 3, 5), (4, 3, 3, 3), {}, gc.ShapeError, "rank 4", id="input-rank"),
    pytest.param((2, 3, 5, 5), (4, 3, 3), {}, gc.ShapeError, "rank 4", id="weight-rank"),
    pytest.param((2, 3, 5, 5), (4, 2, 3, 3), {}, gc.ShapeError, "3 channels", id="channels"),
    pytest.param((2, 4, 5, 5), (4, 2, 3, 3), {"groups": 3}, gc.ShapeError, "groups=3", id="groups-in"),
    pytest.param((2, 4, 5, 5), (3, 2, 3, 3), {"groups": 2}, gc.ShapeError, "does not divide the 3 output",
                 id="groups-out"),
    pytest.param((2, 3, 2, 5), (4, 3, 3, 3), {}, gc.ShapeError, "not positive", id="too-small"),
    pytest.param((2, 3, 5, 5), (4, 3, 3, 3), {"dilation": 3}, gc.ShapeError, "not positive", id="dilated-too-big"),
    pytest.param((2, 3, 5, 5), (4, 3, 3, 3), {"stride": 0}, gc.ShapeError, "stride", id="stride-0"),
    pytest.param((2, 3, 5, 5), (4, 3, 3, 3), {"padding": "full"}, gc.ShapeError, "padding", id="padding-word"),
    pytest.param((2, 3, 5, 5), (4, 3, 3, 3), {"padding": -1}, gc.ShapeError, "padding", id="padding-negative"),
    pytest.param((2, 3, 5, 5), (4, 3, 3, 3), {"groups": 0}, gc.ShapeError, "groups", id="groups-0"),
]


@pytest.mark.parametrize("xs, ws, kwargs, error, text", CONV_ERRORS)
def test_conv2d_errors(xs, ws, kwargs, error, text):
    with gc.Graph():
        x, w = gc.placeholder(xs), gc.placeholder(ws)
        with pytest.raises(error, match=text) as e:
            gc.conv2d(x, w, **kwargs)
    assert "conv2d" in str(e.value) and "test_ops_conv.py" in str(e.value)


def test_conv2d_dtype_errors():
    with gc.Graph():
        xi, w = gc.placeholder((1, 1, 3, 3), gc.int32), gc.placeholder((1, 1, 2, 2))
        with pytest.raises(gc.DTypeError, match="float"):
            gc.conv2d(xi, w)
        with pytest.raises(gc.DTypeError, match="one dtype"):
            gc.conv2d(gc.placeholder((1, 1, 3, 3), gc.float64), w)
        with pytest.raises(gc.ShapeError, match="known input size"):
            gc.conv2d(gc.placeholder((1, 1, None, 3)), w, stride=2, padding="same")
        with pytest.raises(gc.ShapeError, match="not the shape"):
            gc.conv2d_grad_input(gc.placeholder((1, 1, 3, 3)), w, (3, 3))

# ---------------------------------------------------------------- pooling


#   x shape, kernel, stride, padding (as given), the explicit pads, ceil_mode
POOLS = [
    pytest.param((2, 3, 6, 6), 2, None, 0, ((0, 0), (0, 0)), False, id="2x2"),
    pytest.param((1, 2, 7, 6), 3, 2, 0, ((0, 0), (0, 0)), False, id="overlap"),
    pytest.param((1, 2, 7, 7), 3, 2, 1, ((1, 1), (1, 1)), False, id="padded"),
    pytest.param((1, 2, 5, 6), (2, 3), (2, 1), (1, 0), ((1, 1), (0, 0)), False, id="rect"),
    pytest.param((1, 2, 5, 5), 2, 2, 0, ((0, 0), (0, 0)), True, id="ceil"),
    pytest.param((1, 2, 6, 5), 3, 2, 1, ((1, 1), (1, 1)), True, id="ceil-padded"),
    pytest.param((1, 1, 4, 4), 2, 3, ((1, 0), (0, 1)), ((1, 0), (0, 1)), True, id="ceil-asymmetric"),
]


@pytest.mark.parametrize("xs, kernel, stride, padding, pads, ceil_mode", POOLS)
@pytest.mark.parametrize("dtype", [F32, F64], ids=str)
def test_max_pool2d_matches_direct_loops(xs, kernel, stride, padding, pads, ceil_mode, dtype):
    x = sample(dtype, xs, seed=6, step=0.5)      # rounded: windows with ties (the first maximum wins)
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    s = k if stride is None else (stride, stride) if isinstance(stride, int) else stride
    out, got = run(lambda a: gc.max_pool2d(a, kernel, stride, padding, ceil_mode), x)
    assert out.attrs["padding"] == pads
    check(out, got, direct_pool(x, "max", k, s, pads, ceil_mode).astype(dtype), op="max_pool2d")
    g = sample(dtype, got.shape, seed=7)
    out, got = run(lambda a, b: gc.max_pool2d_grad(a, b, kernel, stride, padding, ceil_mode), x, g)
    check(out, got, direct_pool(x, "max_grad", k, s, pads, ceil_mode, g=g).astype(dtype), op="max_pool2d_grad")
    G = sample(dtype, x.shape, seed=8)
    out, got = run(lambda a, b: gc.max_pool2d_select(a, b, kernel, stride, padding, ceil_mode), x, G)
    check(out, got, direct_pool(x, "max_select", k, s, pads, ceil_mode, G=G).astype(dtype), op="max_pool2d_select")


@pytest.mark.parametrize("xs, kernel, stride, padding, pads, ceil_mode", POOLS)
@pytest.mark.parametrize("include_pad", [True, False])
def test_avg_pool2d_matches_direct_loops(xs, kernel, stride, padding, pads, ceil_mode, include_pad):
    x = sample(F64, xs, seed=9)
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    s = k if stride is None else (stride, stride) if isinstance(stride, int) else stride
    out, got = run(lambda a: gc.avg_pool2d(a, kernel, stride, padding, ceil_mode, include_pad), x)
    check(out, got, direct_pool(x, "avg", k, s, pads, ceil_mode, include_pad), op="avg_pool2d", rtol=1e-12)
    g = sample(F64, got.shape, seed=10)
    out, got = run(lambda a: gc.avg_pool2d_grad(a, xs[2:], kernel, stride, padding, ceil_mode, include_pad), g)
    check(out, got, direct_pool(x, "avg_grad", k, s, pads, ceil_mode, include_pad, g=g), op="avg_pool2d_grad",
          rtol=1e-12)


def test_avg_pool2d_float32_and_known_divisor():
    """count_include_pad at a corner of a padded 3x3 window: 4 inputs, divided by 9 or by 4."""
    x = np.ones((1, 1, 4, 4), F32)
    for include, corner in [(True, 4 / 9), (False, 1.0)]:
        out, got = run(lambda a: gc.avg_pool2d(a, 3, 1, 1, count_include_pad=include), x)
        assert got.dtype == F32 and got.shape == (1, 1, 4, 4)
        np.testing.assert_allclose(got[0, 0, 0, 0], corner, rtol=1e-6)


def test_global_avg_pool2d_keeps_dims():
    x = sample(F32, (2, 3, 4, 5), seed=11)
    out, got = run(gc.global_avg_pool2d, x, shapes=[(None, 3, 4, 5)])
    assert out.shape == (None, 3, 1, 1)
    check(out, got, x.mean(axis=(2, 3), keepdims=True), rtol=1e-6)


def test_pool_errors():
    with gc.Graph():
        x = gc.placeholder((1, 2, 5, 5))
        with pytest.raises(gc.ShapeError, match="rank 4"):
            gc.max_pool2d(gc.placeholder((2, 5, 5)), 2)
        with pytest.raises(gc.ShapeError, match="half the kernel"):
            gc.max_pool2d(x, 2, padding=2)
        with pytest.raises(gc.ShapeError, match="not positive"):
            gc.avg_pool2d(x, 6)
        with pytest.raises(gc.ShapeError, match="kernel"):
            gc.max_pool2d(x, 0)
        with pytest.raises(gc.DTypeError, match="float"):
            gc.max_pool2d(gc.placeholder((1, 2, 5, 5), gc.int64), 2)
        with pytest.raises(gc.ShapeError, match="should have the shape"):
            gc.max_pool2d_grad(x, gc.placeholder((1, 2, 3, 3)), 2)
        with pytest.raises(gc.ShapeError, match="max_pool2d"):
            gc.max_pool2d(x, 2, padding="same")
        assert gc.max_pool2d(x, 2) is gc.max_pool2d(x, (2, 2), stride=2, padding=((0, 0), (0, 0)))


OPS_TESTED = {"conv2d", "conv2d_grad_input", "conv2d_grad_weight", "max_pool2d", "max_pool2d_grad",
              "max_pool2d_select", "avg_pool2d", "avg_pool2d_grad"}


@pytest.mark.parametrize("backend", ["interp", "cpu"])
def test_conv_and_pool_ops_take_an_empty_batch(backend):
    """N = 0 through every conv/pool op (the fuzzer found max_pool2d_select's reference failing)."""
    with gc.Graph():
        x = gc.placeholder((None, 2, 4, 4), gc.float64)
        w = gc.constant(np.ones((3, 2, 3, 3)))
        outs = [gc.max_pool2d_select(x, x * 2, 2), gc.max_pool2d(x, 2), gc.avg_pool2d(x, 2),
                gc.conv2d(x, w, padding="same"), gc.global_avg_pool2d(x)]
        got = gc.function([x], outs, backend=backend)(np.zeros((0, 2, 4, 4)))
    assert [g.shape for g in got] == [(0, 2, 2, 2), (0, 2, 2, 2), (0, 2, 2, 2), (0, 3, 4, 4), (0, 2, 1, 1)]
