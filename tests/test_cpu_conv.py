"""Convolution and pooling on the CPU backend against the interpreter: several configurations
in one compiled function (1x1, depthwise, grouped + dilated, asymmetric padding, pools with
ceil_mode and padding) with their gradients, fed two batch sizes; and a full
conv -> relu -> maxpool -> flatten -> dense SGD training step over several calls.

Each test builds one function per backend (compiles are the slow part)."""
import numpy as np
import pytest

import graphc as gc

rng = np.random.default_rng(0)


def close(got, want, rtol=2e-5, atol=2e-5):
    for u, v in zip(got, want):
        assert u.shape == v.shape and u.dtype == v.dtype, (u.shape, v.shape, u.dtype, v.dtype)
        np.testing.assert_allclose(u, v, rtol=rtol, atol=atol)


@pytest.fixture(scope="module")
def conv_fns():
    weights = {"pointwise": (5, 4, 1, 1), "depthwise": (4, 1, 3, 3), "grouped": (6, 2, 3, 3),
               "asymmetric": (3, 4, 2, 3)}
    with gc.Graph():
        x = gc.placeholder((None, 4, 6, 6), gc.float32, name="x")
        ws = {k: gc.variable(rng.normal(size=s).astype(np.float32), name=k) for k, s in weights.items()}
        ys = [gc.conv2d(x, ws["pointwise"]),
              gc.conv2d(x, ws["depthwise"], stride=2, padding="same", groups=4),
              gc.conv2d(x, ws["grouped"], padding=((2, 1), (0, 2)), dilation=2, groups=2),
              gc.conv2d(x, ws["asymmetric"], stride=(2, 1), padding=((1, 0), (0, 2)))]
        pools = [gc.max_pool2d(gc.relu(ys[0]), 3, 2, padding=1, ceil_mode=True),
                 gc.avg_pool2d(ys[2], 2, 1, padding=1, count_include_pad=False),
                 gc.avg_pool2d(ys[3], (2, 3), ceil_mode=True),
                 gc.global_avg_pool2d(ys[1])]
        loss = sum(gc.sum(gc.tanh(p)) for p in pools)
        grads = gc.grad(loss, [x] + list(ws.values()))
        outs = ys + pools + grads
        fns = gc.function([x], outs, backend="interp"), gc.function([x], outs, backend="cpu")
    return fns


@pytest.mark.parametrize("batch", [2, 3])
def test_conv_and_pool_configs_match_interpreter(conv_fns, batch):
    fi, fc = conv_fns
    x = rng.normal(size=(batch, 4, 6, 6)).astype(np.float32)
    close(fc(x), fi(x))


def test_conv_steps_call_the_helpers(conv_fns):
    conv_fns[1](rng.normal(size=(2, 4, 6, 6)).astype(np.float32))    # its shapes decide the code
    src = conv_fns[1].source
    assert "conv2d_by_" in src                  # a forward convolution calls its path's helper
    for helper in ["conv2d_grad_input_into", "conv2d_grad_weight_into", "max_pool2d_into",
                   "max_pool2d_grad_into", "avg_pool2d_into", "avg_pool2d_grad_into"]:
        assert f"{helper}(" in src, helper


@pytest.mark.parametrize("xs, ws, stride, pads, groups, path", [
    ((1, 8, 9, 9), (8, 1, 3, 3), (1, 1), ((1, 1), (1, 1)), 8, "depthwise"),
    ((2, 16, 5, 5), (8, 16, 1, 1), (1, 1), ((0, 0), (0, 0)), 1, "gemm"),
    ((1, 3, 9, 9), (8, 3, 3, 3), (1, 1), ((1, 1), (1, 1)), 1, "direct"),
    ((1, 128, 64, 64), (128, 128, 3, 3), (1, 1), ((1, 1), (1, 1)), 1, "winograd"),
    ((1, 32, 16, 16), (16, 32, 3, 3), (1, 1), ((1, 1), (1, 1)), 1, "wide"),
    ((1, 32, 16, 16), (16, 32, 3, 3), (2, 2), ((1, 1), (1, 1)), 1, "im2col")])
def test_each_path_helper_is_conv2d_into_on_its_shapes(xs, ws, stride, pads, groups, path):
    """conv2d_helper names the path conv2d_into takes at run time (conv2d_path decides both),
    and that helper computes what conv2d_into does, bit for bit."""
    oh = (xs[2] + sum(pads[0]) - ws[2]) // stride[0] + 1
    ow = (xs[3] + sum(pads[1]) - ws[3]) // stride[1] + 1
    name = ck.conv2d_helper(xs, ws, (xs[0], ws[0], oh, ow), stride, pads, (1, 1), groups)
    assert name == f"conv2d_by_{path}"
    x, w = rng.normal(size=xs).astype(np.float32), rng.normal(size=ws).astype(np.float32)
    attrs = (*stride, *pads[0], *pads[1], 1, 1, groups)
    want, got = np.empty((xs[0], ws[0], oh, ow), np.float32), np.full((xs[0], ws[0], oh, ow), np.nan, np.float32)
    ck.conv2d_into(x, w, want, *attrs)
    getattr(ck, name)(x, w, got, *attrs)
    np.testing.assert_array_equal(got, want)
    assert ck.conv2d_helper((None,) + xs[1:], ws, (None, ws[0], oh, ow), stride, pads, (1, 1), groups) == name
    assert ck.conv2d_helper(xs[:2] + (None, None), ws, xs[:2] + (None, None), stride, pads, (1, 1), groups) == \
        "conv2d_into"                           # the plane's size unknown: conv2d_into picks at run time


def test_conv_relu_maxpool_flatten_dense_training_step():
    with gc.Graph():
        x = gc.placeholder((None, 2, 6, 6), gc.float32, name="x")
        y = gc.placeholder((None,), gc.int64, name="y")
        W = gc.variable((rng.normal(size=(4, 2, 3, 3)) * 0.3).astype(np.float32), name="W")
        b = gc.variable(np.zeros((1, 4, 1, 1), np.float32), name="b")
        D = gc.variable((rng.normal(size=(36, 3)) * 0.3).astype(np.float32), name="D")
        h = gc.max_pool2d(gc.relu(gc.conv2d(x, W, padding="same") + b), 2)
        logits = gc.reshape(h, (-1, 36)) @ D
        loss = gc.mean(gc.nn.softmax_cross_entropy(logits, y))
        gW, gb, gD = gc.grad(loss, [W, b, D])
        updates = {W: W - 0.1 * gW, b: b - 0.1 * gb, D: D - 0.1 * gD}
        fi = gc.function([x, y], [loss], updates, backend="interp")
        fc = gc.function([x, y], [loss], updates, backend="cpu")
        start = {v: gc.get_value(v).copy() for v in (W, b, D)}
        xs = rng.normal(size=(4, 5, 2, 6, 6)).astype(np.float32)
        ys = rng.integers(0, 3, size=(4, 5))
        losses_i = [fi(xb, yb)[0] for xb, yb in zip(xs, ys)]
        after_i = {v: gc.get_value(v).copy() for v in start}
        for v, value in start.items():
            gc.set_value(v, value)
        losses_c = [fc(xb, yb)[0] for xb, yb in zip(xs, ys)]
        after_c = {v: gc.get_value(v).copy() for v in start}
    close(losses_c, losses_i, rtol=1e-5, atol=1e-6)
    close(list(after_c.values()), list(after_i.values()), rtol=1e-5, atol=1e-6)
    assert losses_i[-1] != losses_i[0]
    assert not np.allclose(after_i[W], start[W])


def test_max_pool_ties_nans_and_padding_match_the_interpreter():
    """The CPU pools' first-maximum rule (row-major; a nan wins, the first nan): ties, nans, a
    window over the padding, 2x2, 3x3 and 2x3 windows (the loops specialized by size and not)."""
    x = np.zeros((1, 2, 5, 5))
    x[0, 0, 1:3, 1:3] = 1.0                           # a 2x2 tie
    x[0, 1, 0, 1], x[0, 1, 2, 2], x[0, 1, 3, 3] = np.nan, np.nan, 2.0
    for kernel, padding in [(2, 0), (3, 1), ((2, 3), ((1, 0), (0, 1)))]:
        with gc.Graph():
            p = gc.placeholder((1, 2, 5, 5), gc.float64)
            y = gc.max_pool2d(p, kernel, stride=1, padding=padding)
            dx = gc.grad(gc.sum(y * gc.constant(np.arange(1.0, 1.0 + np.prod(y.shape)).reshape(y.shape))), [p])[0]
            ref = gc.function([p], [y, dx])(x)
            got = gc.function([p], [y, dx], backend="cpu")(x)
        for a, b in zip(ref, got):
            np.testing.assert_array_equal(a, b)


def test_a_step_calling_blas_through_a_conv_or_a_scan_body_gets_no_parallel_loops():
    """Numba's threads and OpenBLAS's fight over the cores (an LSTM step: 1.7 s a call with
    parallel loops, 13-38 ms without): a conv, or a scan whose body has a matmul, counts as BLAS;
    but not a conv the blocked kernel takes (a constant float32 weight, a known plane)."""
    with gc.Graph():
        x = gc.placeholder((2, 1, 5, 5), gc.float32)
        conv = gc.function([x], [gc.conv2d(x, gc.variable(np.ones((2, 1, 3, 3), np.float32)))], backend="cpu")
        blocked = gc.function([x], [gc.relu(gc.conv2d(x, gc.constant(np.ones((2, 1, 3, 3), np.float32))))],
                              backend="cpu")
        unknown = gc.placeholder((2, 1, None, 5), gc.float32)
        any_plane = gc.function([unknown], [gc.conv2d(unknown, gc.constant(np.ones((2, 1, 3, 3), np.float32)))],
                                backend="cpu")
        xs = gc.placeholder((4, 2, 3), gc.float32)
        U = gc.constant(np.ones((3, 3), np.float32))
        (h, _) = gc.scan(lambda h, x_t: (gc.tanh(h @ U + x_t), None), gc.constant(np.zeros((2, 3), np.float32)), xs)
        rnn = gc.function([xs], [h], backend="cpu")
        plain = gc.function([xs], [gc.tanh(xs) * 2.0], backend="cpu")
    assert not conv.parallel and not rnn.parallel and not any_plane.parallel and plain.parallel and blocked.parallel
    with gc.Graph():                  # a classifier at batch 1 (a GEMV) may share the step; a GEMM may not
        x = gc.placeholder((1, 2, 5, 5), gc.float32)
        h = gc.reshape(gc.relu(gc.conv2d(x, gc.constant(np.ones((2, 2, 3, 3), np.float32)))), (1, 18))
        gemv = gc.function([x], [h @ gc.constant(np.ones((18, 4), np.float32))], backend="cpu")
        xb = gc.placeholder((None, 2, 5, 5), gc.float32)
        hb = gc.reshape(gc.relu(gc.conv2d(xb, gc.constant(np.ones((2, 2, 3, 3), np.float32)))), (-1, 18))
        gemm = gc.function([xb], [hb @ gc.constant(np.ones((18, 4), np.float32))], backend="cpu")
    assert gemv.parallel and not gemm.parallel


# ---------------------------------------------------------------- the helpers' paths, directly
# conv_kernels.py dispatches on shape classes: direct loops (conv_direct.py) at stride 1 with
# few multiply-adds per output (DIRECT_MAX_MACS), with the 3-wide kernel rows fused or not;
# im2col + GEMM otherwise (many channels, strides), a plain GEMM for 1x1 kernels; the GEMM again when a direct walk
# would multiply an inf or nan by its zero columns. Each is checked against ops/conv.py.

from graphc.ops.conv import conv2d_ref, grad_input_ref, grad_weight_ref, conv_out  # noqa: E402
from graphc.ops.pool import MaxPool2D, MaxPool2DGrad, MaxPool2DSelect, pool_attrs, pool_shape  # noqa: E402
from graphc.runtime.cpu import conv_kernels as ck  # noqa: E402
from graphc.runtime.cpu import pool_kernels as pk  # noqa: E402

HELPER_CASES = [  # (x shape, w shape, stride, ((t, b), (l, r)), dilation, groups)
    ((3, 1, 9, 11), (4, 1, 3, 3), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),     # direct, W5's class
    ((2, 4, 7, 6), (6, 2, 3, 3), (1, 1), ((2, 1), (0, 2)), (2, 1), 2),      # direct, padded, grouped, dilated
    ((2, 3, 8, 7), (5, 3, 2, 5), (1, 1), ((1, 0), (2, 2)), (1, 2), 1),      # direct, kw != 3
    ((2, 4, 5, 5), (4, 1, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 4),      # direct, depthwise
    ((2, 20, 6, 5), (20, 20, 3, 3), (1, 1), ((1, 1), (0, 1)), (1, 1), 1),   # GEMM: 3600 MACs per output
    ((2, 3, 9, 8), (4, 3, 3, 3), (2, 1), ((1, 0), (0, 1)), (1, 2), 1),      # GEMM: strided
    ((2, 4, 5, 6), (6, 2, 1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1), 2),      # 1x1: a GEMM, not direct
    ((0, 2, 5, 5), (3, 2, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),      # an empty batch
    ((2, 16, 14, 14), (8, 16, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),  # wide: a GEMM per tap
    ((1, 32, 15, 16), (8, 16, 3, 2), (1, 1), ((2, 0), (1, 3)), (2, 1), 2),  # wide, grouped, dilated, asymmetric
]


def _helper_outputs(x, w, g, stride, pads, dilation, groups):
    (pt, pb), (pl, pr) = pads
    attrs = (*stride, pt, pb, pl, pr, *dilation, groups)
    y, dx, dw = (np.empty(g.shape, x.dtype), np.empty(x.shape, x.dtype), np.empty(w.shape, x.dtype))
    ck.conv2d_into(x, w, y, *attrs)
    ck.conv2d_grad_input_into(g, w, dx, *attrs)
    ck.conv2d_grad_weight_into(x, g, dw, *attrs)
    return y, dx, dw


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs, ws, stride, pads, dilation, groups", HELPER_CASES)
def test_conv_helpers_each_path_match_the_references(xs, ws, stride, pads, dilation, groups, dtype):
    x, w = rng.normal(size=xs).astype(dtype), rng.normal(size=ws).astype(dtype)
    oh, ow = (conv_out(s, k, st, d, p) for s, k, st, d, p in zip(xs[2:], ws[2:], stride, dilation, pads))
    g = rng.normal(size=(xs[0], ws[0], oh, ow)).astype(dtype)
    attrs = dict(stride=stride, padding=pads, dilation=dilation, groups=groups)
    want = [conv2d_ref(x, w, **attrs), grad_input_ref(g, w, xs[2:], **attrs), grad_weight_ref(x, g, ws[2:], **attrs)]
    tol = 2e-5 if dtype == np.float32 else 1e-12
    close(_helper_outputs(x, w, g, stride, pads, dilation, groups), want, rtol=tol, atol=tol)


def test_direct_path_dispatch_follows_the_measured_rule():
    assert ck._direct(1, 3, 3, 8, 1, 1) and ck._direct(8, 3, 3, 16, 1, 1)
    assert not ck._direct(20, 3, 3, 20, 1, 1) and not ck._direct(1, 3, 3, 8, 2, 1)
    assert ck._wide(16, 3, 3, 8, 1, 1, 196) and ck._wide(128, 3, 3, 32, 1, 1, 56 * 56)
    assert ck._wide(128, 3, 3, 128, 1, 1, 28 * 28) and not ck._wide(128, 3, 3, 128, 1, 1, 14 * 14)
    assert not ck._wide(256, 3, 3, 256, 1, 1, 14 * 14) and not ck._wide(64, 3, 3, 64, 2, 2, 56 * 56)
    assert not ck._wide(64, 1, 1, 64, 1, 1, 56 * 56) and not ck._wide(128, 3, 3, 32, 1, 1, 7 * 7)


def test_the_wide_path_keeps_the_references_infs_and_nans():
    """conv_wide.py multiplies the padding's zeros like the reference: an inf weight at the
    border gives nan there; an inf input at the last column (its junk columns read past the
    row) stays where the reference has it."""
    from graphc.runtime.cpu.conv_wide import wide_conv2d_into
    x, w = rng.normal(size=(1, 16, 14, 14)), rng.normal(size=(4, 16, 3, 3))
    x[0, 3, 5, 13] = np.inf
    w[2, 1, 0, 0] = -np.inf
    want = conv2d_ref(x, w, stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1)
    got = np.empty(want.shape)
    wide_conv2d_into(x, w, got, 1, 1, 1, 1, 1, 1, 1)
    assert np.array_equal(np.isnan(got), np.isnan(want)) and np.isnan(want).any()
    finite = np.isfinite(want)
    # float64 sums of 144 terms in another order: an output near 0 by cancellation (0.0022 from
    # terms of ~1) is off by a few 1e-15, more than rtol alone allows
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-12, atol=1e-13)
    assert np.array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)])


def test_conv_gradients_with_an_inf_keep_the_references_values():
    """An inf where the direct walks' junk columns would read it (the last input column, the
    weights) gives the reference's infs and nans, not extra nans: those go to the GEMM."""
    x, w = rng.normal(size=(2, 1, 6, 7)), rng.normal(size=(3, 1, 3, 3))
    x[0, 0, 2, 6] = np.inf
    w[1, 0, 0, 0] = -np.inf
    g = rng.normal(size=(2, 3, 4, 5))
    attrs = dict(stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1)
    _, dx, dw = _helper_outputs(x, w, g, (1, 1), ((0, 0), (0, 0)), (1, 1), 1)
    np.testing.assert_allclose(dx, grad_input_ref(g, w, (6, 7), **attrs), rtol=1e-12)
    np.testing.assert_allclose(dw, grad_weight_ref(x, g, (3, 3), **attrs), rtol=1e-12)
    assert np.isfinite(dw[:, 0, :, :2]).all()       # taps that never read the inf column


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hw, kernel, stride, pad, ceil", [
    ((9, 11), 2, 2, 0, False),      # the 2x2 stride-2 flat path, odd sizes (last row/column unused)
    ((9, 11), 2, 2, 0, True),       # ceil_mode: the last windows overhang, the general path
    ((8, 8), 2, 2, 1, False),       # padded: the general path's clipped windows
    ((7, 9), 3, 2, 1, False),       # overlapping 3x3 windows
    ((6, 7), (2, 3), (1, 2), 0, False),
])
def test_max_pool_grad_paths_match_the_reference(hw, kernel, stride, pad, ceil, dtype):
    x = rng.integers(-2, 3, size=(2, 3) + hw).astype(dtype)     # many ties
    x[0, 0, 0, 0], x[1, 2, 3, 4], x[1, 1, 4, 2] = np.nan, np.nan, np.inf
    op = MaxPool2DGrad()
    attrs = pool_attrs("max_pool2d_grad", kernel, stride, pad, ceil)
    g = rng.normal(size=pool_shape("max_pool2d", x.shape, **attrs)).astype(dtype)
    want = op.ref(x, g, **attrs)
    got = np.empty_like(x)
    (kh, kw), (sh, sw), ((pt, _), (pl, _)) = attrs["kernel"], attrs["stride"], attrs["padding"]
    pk.max_pool2d_grad_into(x, g, got, kh, kw, sh, sw, pt, pl)
    if sh >= kh and sw >= kw:           # one g per position: exactly the reference's
        np.testing.assert_array_equal(got, want)
    else:                               # overlapping: summed in x's dtype, the reference in float64
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(got == 0, want == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hw, kernel, stride, pad, ceil", [
    ((9, 11), 2, 2, 0, False),      # the flat 2x2 path (last row/column unused)
    ((8, 6), 2, 2, 0, False),       # the flat 2x2 path, even sizes
    ((9, 11), 2, 2, 0, True),       # the general path
    ((7, 9), 3, 2, 1, False),
])
def test_max_pool_forward_and_select_paths_match_the_reference(hw, kernel, stride, pad, ceil, dtype):
    """The pooled maxima (a nan wins) and G read at each window's first arg-max (row-major
    order; ties in every position of a window, nans, an inf) are exactly the reference's."""
    x = rng.integers(-2, 3, size=(2, 3) + hw).astype(dtype)
    x[0, 0, 0, 0], x[1, 2, 3, 4], x[1, 1, 4, 2], x[0, 1, 1, 1] = np.nan, np.nan, np.inf, np.nan
    x[1, 0, 0, 1] = x[1, 0, 1, 0] = np.nan                       # two nans in one window
    x[0, 2, :4, :4] = [[0, 1, 1, 0], [1, 1, 0, 1], [0, 0, 1, 1], [1, 0, 0, 1]]  # first max anywhere
    attrs = pool_attrs("max_pool2d_grad", kernel, stride, pad, ceil)
    (kh, kw), (sh, sw), ((pt, _), (pl, _)) = attrs["kernel"], attrs["stride"], attrs["padding"]
    G = rng.normal(size=x.shape).astype(dtype)
    pooled = np.empty(pool_shape("max_pool2d", x.shape, **attrs), dtype)
    pk.max_pool2d_into(x, pooled, kh, kw, sh, sw, pt, pl)
    np.testing.assert_array_equal(pooled, MaxPool2D().ref(x, **attrs))
    pk.max_pool2d_select_into(x, G, pooled, kh, kw, sh, sw, pt, pl)
    np.testing.assert_array_equal(pooled, MaxPool2DSelect().ref(x, G, **attrs))


def test_the_parallel_depthwise_convolution_is_the_serial_one():
    """parallel_planes.py runs conv_depthwise.py's kernel on runs of an image's input channels
    (steps without BLAS): 3 channels, a run each; 20 of 2 images, runs of 3, the last of 2."""
    from graphc.runtime.cpu.config import configure_once
    from graphc.runtime.cpu.parallel_planes import conv2d_by_depthwise_bias_parallel, conv2d_by_depthwise_parallel
    configure_once()
    for c, attrs in [(3, (1, 1, 1, 1, 1, 1, 1, 1, 3)), (3, (2, 1, 1, 0, 0, 2, 1, 2, 3)), (20, (1, 1, 1, 1, 1, 1, 1, 1, 20)),
                     (20, (2, 2, 0, 1, 1, 0, 1, 1, 20))]:
        x = rng.normal(size=(2, c, 9, 8)).astype(np.float32)
        w = rng.normal(size=(2 * c, 1, 3, 3)).astype(np.float32)        # channel multiplier 2
        oh, ow = (conv_out(s, 3, st, d, p) for s, st, d, p in
                  zip((9, 8), attrs[:2], attrs[6:8], ((attrs[2], attrs[3]), (attrs[4], attrs[5]))))
        want, got = np.empty((2, 2 * c, oh, ow), np.float32), np.empty((2, 2 * c, oh, ow), np.float32)
        ck.conv2d_by_depthwise(x, w, want, *attrs)
        conv2d_by_depthwise_parallel(x, w, got, *attrs)
        np.testing.assert_array_equal(got, want)
        bias = rng.normal(size=2 * c).astype(np.float32)      # each run's slice of the biases
        ck.conv2d_by_depthwise_bias(x, w, bias, 1, want, *attrs)
        conv2d_by_depthwise_bias_parallel(x, w, bias, 1, got, *attrs)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("threaded", [False, True])
def test_a_depthwise_convs_batch_norm_and_relu_fold_into_its_kernel(threaded):
    """conv (depthwise, constant weight) * s + t, relu'd, is one conv2d_by_depthwise_bias call
    (parallel on an image of PLANES_PARALLEL_MIN values or more): w * s and the bias t; the
    values are the interpreter's, a nan input stays a nan through the relu."""
    hw = 24 if threaded else 6                      # 32 x 24 x 24 = 18432 values an image
    with gc.Graph():
        x = gc.placeholder((2, 32, hw, hw), gc.float32, name="x")
        w = gc.constant(rng.normal(size=(32, 1, 3, 3)).astype(np.float32))
        per = lambda: gc.constant(rng.normal(size=(1, 32, 1, 1)).astype(np.float32))   # noqa: E731
        y = gc.relu(gc.conv2d(x, w, padding="same", groups=32) * per() + per())
        cpu, interp = gc.function([x], [y], backend="cpu"), gc.function([x], [y], backend="interp")
    xv = rng.normal(size=(2, 32, hw, hw)).astype(np.float32)
    xv[1, 3, 2, 2] = np.nan
    got, want = cpu(xv)[0], interp(xv)[0]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
    call = "conv2d_by_depthwise_bias_parallel(" if threaded else "conv2d_by_depthwise_bias("
    assert call in cpu.source and "def conv2d_" not in cpu.source
