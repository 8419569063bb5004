"""The direct depthwise convolution (runtime/cpu/conv_depthwise.py), called alone and through
conv2d_into's dispatch, against ops/conv.py's numpy reference: strides 1..3, symmetric and
asymmetric padding, dilation 1..2, channel multipliers 1 and 2, kernels 1x1, 3x3, 5x5 and 3x1,
images so small that windows are all padding, inf and nan in inputs and weights (the padding's
zeros times an inf weight must give the reference's nan), float32 and float64."""
import itertools

import numpy as np
import pytest

from graphc.ops.conv import conv2d_ref, conv_out
from graphc.runtime.cpu.conv_depthwise import depthwise_conv2d_into
from graphc.runtime.cpu.conv_kernels import conv2d_into

rng = np.random.default_rng(7)

KERNELS = [(1, 1), (3, 3), (5, 5), (3, 1)]
PADS = [((0, 0), (0, 0)), ((1, 1), (1, 1)), ((2, 0), (1, 3))]


def configs():
    """(k, stride, pads, dilation, multiplier) combinations whose output is not empty on 9x8."""
    for k, s, pads, d, m in itertools.product(KERNELS, [1, 2, 3], PADS, [1, 2], [1, 2]):
        if all(conv_out(size, kk, s, d, p) >= 1 for size, kk, p in zip((9, 8), k, pads)):
            yield k, s, pads, d, m


def run_both(x, w, stride, pads, dil):
    """(depthwise_conv2d_into's result, conv2d_into's result, the reference)."""
    c = x.shape[1]
    want = conv2d_ref(x, w, (stride, stride), pads, (dil, dil), c)
    (pt, pb), (pl, pr) = pads
    args = (stride, stride, pt, pb, pl, pr, dil, dil)
    direct, dispatched = np.full_like(want, 7), np.full_like(want, 7)   # every entry must be written
    depthwise_conv2d_into(x, w, direct, *args)
    conv2d_into(x, w, dispatched, *args, c)
    return direct, dispatched, want


def tol(dtype):
    return dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_reference_over_configurations(dtype):
    n, c = 2, 3
    x = rng.standard_normal((n, c, 9, 8)).astype(dtype)
    count = 0
    for k, s, pads, d, m in configs():
        w = rng.standard_normal((c * m, 1) + k).astype(dtype)
        direct, dispatched, want = run_both(x, w, s, pads, d)
        where = f"k={k} stride={s} pads={pads} dilation={d} multiplier={m}"
        np.testing.assert_allclose(direct, want, err_msg=where, **tol(dtype))
        np.testing.assert_allclose(dispatched, want, err_msg=where, **tol(dtype))
        count += 1
    assert count > 100


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiny_images_whose_windows_are_all_padding(dtype):
    x = rng.standard_normal((1, 2, 1, 2)).astype(dtype)
    for pads, s, d in [(((3, 3), (3, 3)), 1, 1), (((4, 2), (2, 5)), 2, 2), (((3, 3), (3, 3)), 3, 1)]:
        w = rng.standard_normal((4, 1, 3, 3)).astype(dtype)
        direct, dispatched, want = run_both(x, w, s, pads, d)
        assert (want == 0).any(), pads                  # some windows read only padding
        np.testing.assert_allclose(direct, want, **tol(dtype))
        np.testing.assert_allclose(dispatched, want, **tol(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inf_and_nan_like_the_reference(dtype):
    x = rng.standard_normal((1, 3, 6, 7)).astype(dtype)
    x[0, 0, 0, 0], x[0, 1, 3, 3], x[0, 2, 5, 6] = np.inf, np.nan, -np.inf
    w = rng.standard_normal((6, 1, 3, 3)).astype(dtype)
    w[1, 0, 0, 0] = np.inf          # reads the padding at the top-left border: 0 * inf = nan there
    w[2, 0, 1, 1] = 0.0             # x's nan times 0 stays nan
    w[4, 0, 2, 1] = np.nan
    w[3, 0, 1, 1] = 0.0             # the inf in channel 1 times 0: nan
    for s, pads in [(1, ((1, 1), (1, 1))), (2, ((1, 0), (2, 1))), (1, ((0, 0), (0, 0)))]:
        direct, dispatched, want = run_both(x, w, s, pads, 1)
        assert np.isnan(want).any() and np.isinf(want).any()
        for got in (direct, dispatched):
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
            np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
            np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
            finite = np.isfinite(want)
            np.testing.assert_allclose(got[finite], want[finite], **tol(dtype))


def test_non_contiguous_input_and_weight():
    x = rng.standard_normal((2, 8, 10, 9)).astype(np.float32)[:, ::2, :, ::-1]
    w = rng.standard_normal((4, 1, 3, 6)).astype(np.float32)[:, :, :, ::2]
    direct, dispatched, want = run_both(x, w, 2, ((1, 1), (0, 2)), 1)
    np.testing.assert_allclose(direct, want, **tol(np.float32))
    np.testing.assert_allclose(dispatched, want, **tol(np.float32))
