"""The CPU pooling helpers (runtime/cpu/pool_kernels.py), called directly, against the references
of ops/pool.py: the separable forward passes (max over rows then columns, sums of rows then
columns scaled by 1 / count), their specialised window widths and strides (2 and 3 wide,
strides 1 and 2, the general loop otherwise), windows clipped by padding on either side or
overhanging in ceil_mode, tiny images whose every window touches padding, nans, infs and ties.
The max pool's value is exact; averages are summed in float64 as the reference does, in
another order, so they match to float32 rounding (float64: 1e-12)."""
import numpy as np
import pytest

from graphc.ops.pool import AvgPool2D, AvgPool2DGrad, MaxPool2D, MaxPool2DGrad, MaxPool2DSelect, pool_attrs, pool_shape
from graphc.runtime.cpu import pool_kernels as pk

rng = np.random.default_rng(7)

CONFIGS = [  # (H, W), kernel, stride, padding, ceil_mode
    ((5, 6), 1, 1, 0, False),
    ((5, 6), 1, 2, 0, True),
    ((7, 8), 2, 1, 0, False),
    ((7, 8), 2, 2, 1, False),
    ((7, 9), 2, 2, 0, True),           # the last window overhangs the end
    ((9, 11), 3, 1, 1, False),         # Inception's branch pool
    ((11, 11), 3, 2, 1, False),        # ResNet's stem pool
    ((11, 12), 3, 2, 0, True),         # SqueezeNet's, overhanging
    ((10, 10), 3, 3, 1, True),
    ((8, 9), (2, 3), (1, 2), ((1, 0), (0, 1)), False),     # asymmetric padding
    ((8, 9), (3, 2), (3, 1), ((0, 1), (1, 0)), True),
    ((9, 10), (2, 3), (2, 3), ((1, 1), (1, 1)), True),     # stride 3: the general column loop
    ((6, 7), (5, 4), (2, 1), ((2, 1), (2, 0)), False),     # more than three rows per window
    ((1, 1), 3, 1, 1, False),          # tiny: every window touches the padding
    ((2, 2), 3, 2, 1, True),
    ((2, 3), (3, 3), (1, 2), ((1, 1), (0, 1)), False),
]
DTYPES = [np.float32, np.float64]


def _attrs(config, op):
    hw, kernel, stride, pad, ceil = config
    return hw, pool_attrs(op, kernel, stride, pad, ceil)


def _data(shape, dtype):
    """Small integers (ties everywhere), with nans, +-inf and an all -inf row."""
    x = rng.integers(-2, 3, size=shape).astype(dtype)
    flat = x.reshape(-1)
    spots = rng.choice(flat.size, size=min(flat.size, 6), replace=False)
    flat[spots[:2]] = np.nan
    flat[spots[2:4]] = np.inf
    flat[spots[4:]] = -np.inf
    if shape[2] > 2:
        x[0, 1, 1, :] = -np.inf
    return x


def _max_args(attrs):
    (kh, kw), (sh, sw), ((pt, _), (pl, _)) = attrs["kernel"], attrs["stride"], attrs["padding"]
    return kh, kw, sh, sw, pt, pl


def _avg_args(attrs, include_pad):
    (kh, kw), (sh, sw), ((pt, pb), (pl, pr)) = attrs["kernel"], attrs["stride"], attrs["padding"]
    return kh, kw, sh, sw, pt, pb, pl, pr, include_pad


def _close(got, want, dtype):
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got, want, **tol)          # nans where the reference has them


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", CONFIGS)
def test_max_pool_value_select_and_grad_match_the_reference(config, dtype):
    hw, attrs = _attrs(config, "max_pool2d")
    x = _data((2, 3) + hw, dtype)
    pooled_shape = pool_shape("max_pool2d", x.shape, **attrs)
    got = np.full(pooled_shape, 7, dtype)
    pk.max_pool2d_into(x, got, *_max_args(attrs))
    np.testing.assert_array_equal(got, MaxPool2D().ref(x, **attrs))      # a nan wins, exactly
    G = rng.normal(size=x.shape).astype(dtype)
    pk.max_pool2d_select_into(x, G, got, *_max_args(attrs))
    np.testing.assert_array_equal(got, MaxPool2DSelect().ref(x, G, **attrs))
    g = rng.normal(size=pooled_shape).astype(dtype)
    dx = np.full(x.shape, 7, dtype)
    pk.max_pool2d_grad_into(x, g, dx, *_max_args(attrs))
    _close(dx, MaxPool2DGrad().ref(x, g, **attrs), dtype)


def test_max_pool_of_a_nan_or_an_inf_window_is_that_value():
    x = np.full((1, 1, 4, 6), -np.inf, np.float32)
    x[0, 0, 0, 1], x[0, 0, 2, 4] = np.nan, np.inf
    got = np.empty((1, 1, 2, 3), np.float32)
    pk.max_pool2d_into(x, got, 3, 3, 2, 2, 1, 1)
    np.testing.assert_array_equal(got, [[[[np.nan, np.nan, -np.inf], [-np.inf, -np.inf, np.inf]]]])


@pytest.mark.parametrize("include_pad", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", CONFIGS)
def test_avg_pool_and_its_gradient_match_the_reference(config, dtype, include_pad):
    hw, attrs = _attrs(config, "avg_pool2d")
    x = rng.normal(size=(2, 3) + hw).astype(dtype)
    pooled_shape = pool_shape("avg_pool2d", x.shape, **attrs)
    got = np.full(pooled_shape, 7, dtype)
    pk.avg_pool2d_into(x, got, *_avg_args(attrs, include_pad))
    _close(got, AvgPool2D().ref(x, **attrs, count_include_pad=include_pad), dtype)
    g = rng.normal(size=pooled_shape).astype(dtype)
    dx = np.full(x.shape, 7, dtype)
    pk.avg_pool2d_grad_into(g, dx, *_avg_args(attrs, include_pad))
    _close(dx, AvgPool2DGrad().ref(g, hw, **attrs, count_include_pad=include_pad), dtype)


def test_avg_pool_keeps_infs_and_nans_where_the_reference_has_them():
    x = rng.normal(size=(1, 2, 6, 7))
    x[0, 0, 1, 1], x[0, 0, 4, 5], x[0, 1, 2, 2], x[0, 1, 2, 4] = np.nan, np.inf, np.inf, -np.inf
    attrs = pool_attrs("avg_pool2d", 3, 1, 1, False)
    got = np.empty(pool_shape("avg_pool2d", x.shape, **attrs))
    pk.avg_pool2d_into(x, got, *_avg_args(attrs, False))
    want = AvgPool2D().ref(x, **attrs, count_include_pad=False)
    assert np.isnan(want).any() and np.isinf(want).any()
    _close(got, want, np.float64)


def test_strided_views_and_an_empty_batch():
    """The generated steps may pass views (a transposed tensor) and an empty batch."""
    base = rng.normal(size=(3, 2, 9, 8)).astype(np.float32)
    x = base.transpose(1, 0, 2, 3)                   # not C-contiguous
    attrs = pool_attrs("max_pool2d", 3, 2, 1, True)
    got = np.empty(pool_shape("max_pool2d", x.shape, **attrs), np.float32)
    pk.max_pool2d_into(x, got, *_max_args(attrs))
    np.testing.assert_array_equal(got, MaxPool2D().ref(x, **attrs))
    got[:] = 0
    pk.avg_pool2d_into(x, got, *_avg_args(attrs, True))
    _close(got, AvgPool2D().ref(x, **attrs, count_include_pad=True), np.float32)
    empty = np.empty((0, 2, 9, 8), np.float32)
    out = np.empty((0, 2) + got.shape[2:], np.float32)
    pk.max_pool2d_into(empty, out, *_max_args(attrs))
    pk.avg_pool2d_into(empty, out, *_avg_args(attrs, False))
    pk.avg_pool2d_grad_into(out, empty, *_avg_args(attrs, False))


@pytest.mark.parametrize("config", CONFIGS[::3])
def test_the_parallel_pools_are_the_serial_ones_plane_by_plane(config):
    """parallel_planes.py (the steps without BLAS) runs the serial kernels on runs of planes
    (2 x 3 planes: one a task; 3 x 13: runs of 3)."""
    from graphc.runtime.cpu import parallel_planes as pp
    from graphc.runtime.cpu.config import configure_once
    configure_once()                  # Numba's threading layer, as a CPU function starts it
    for planes in ((2, 3), (3, 13)):
        _parallel_is_serial(config, planes, pp)


def _parallel_is_serial(config, planes, pp):
    hw, attrs = _attrs(config, MaxPool2D)
    x = _data(planes + hw, np.float32)
    shape = pool_shape("max_pool2d", x.shape, **attrs)
    want, got = np.empty(shape, np.float32), np.empty(shape, np.float32)
    pk.max_pool2d_into(x, want, *_max_args(attrs))
    pp.max_pool2d_parallel_into(x, got, *_max_args(attrs))
    np.testing.assert_array_equal(got, want)
    hw, attrs = _attrs(config, AvgPool2D)
    shape = pool_shape("avg_pool2d", x.shape, **attrs)
    want, got = np.empty(shape, np.float32), np.empty(shape, np.float32)
    for include_pad in (0, 1):
        pk.avg_pool2d_into(x, want, *_avg_args(attrs, include_pad))
        pp.avg_pool2d_parallel_into(x, got, *_avg_args(attrs, include_pad))
        np.testing.assert_array_equal(got, want)
