"""Winograd's F(2x2, 3x3) convolution (runtime/cpu/conv_winograd.py) against ops/conv.py.

The cases cover what the block structure can get wrong: odd output sizes (the last block
cut), padding of 0, 1, 2 and asymmetric (the zeroed frame), a batch, several bands of block
rows, float32 rounding at the sizes it runs at, and the dispatch (conv_kernels.py) that sends
only large 3x3 stride-1 convolutions there, and never inputs with an inf or a nan.
"""
import numpy as np
import pytest

from graphc.ops.conv import conv2d_ref
from graphc.runtime.cpu import conv_kernels as ck
from graphc.runtime.cpu.conv_winograd import kernel_transform, winograd_conv2d_into

rng = np.random.default_rng(3)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])


def test_kernel_transform_is_g_w_gt():
    w = rng.normal(size=(3, 2, 3, 3))
    u = np.empty((16, 3, 2))
    kernel_transform(w, u)
    want = np.einsum("ai,ocij,bj->aboc", G, w, G).reshape(16, 3, 2)
    np.testing.assert_allclose(u, want, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs, o, pads, tile", [
    ((1, 3, 6, 6), 2, ((1, 1), (1, 1)), 1 << 21),      # even output, one band
    ((2, 4, 7, 5), 3, ((1, 1), (1, 1)), 1 << 21),      # odd output rows and columns, a batch
    ((1, 2, 9, 8), 4, ((0, 0), (0, 0)), 1 << 21),      # no padding: 7 x 6 output
    ((1, 3, 5, 7), 2, ((2, 0), (1, 2)), 1 << 21),      # asymmetric padding
    ((1, 2, 4, 3), 1, ((3, 3), (2, 2)), 1 << 21),      # padding wider than the kernel
    ((2, 3, 11, 9), 2, ((1, 1), (1, 1)), 100),         # bands of one or two block rows, the last short
])
def test_winograd_matches_the_reference(xs, o, pads, tile, dtype):
    x, w = rng.normal(size=xs).astype(dtype), rng.normal(size=(o, xs[1], 3, 3)).astype(dtype)
    want = conv2d_ref(x, w, stride=(1, 1), padding=pads, dilation=(1, 1), groups=1)
    got = np.full(want.shape, np.nan, dtype)
    winograd_conv2d_into(x, w, got, pads[0][0], pads[1][0], tile)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


def test_float32_rounding_at_a_real_size():
    """64 channels (a sum of 576 products): within 1e-5 of the largest output, as the ONNX
    acceptance asks 1e-4 of the largest logit."""
    x = rng.normal(size=(1, 64, 16, 16)).astype(np.float32)
    w = (rng.normal(size=(32, 64, 3, 3)) / 24).astype(np.float32)
    want = conv2d_ref(x.astype(np.float64), w.astype(np.float64), stride=(1, 1), padding=((1, 1), (1, 1)),
                      dilation=(1, 1), groups=1)
    got = np.empty(want.shape, np.float32)
    winograd_conv2d_into(x, w, got, 1, 1, 1 << 21)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_dispatch_sends_only_large_3x3_stride_1_convolutions():
    w = ck._winograd
    assert w(64, 3, 3, 64, 1, 1, 1, 1, 1, 224, 224) and w(512, 3, 3, 512, 1, 1, 1, 1, 1, 28, 28)
    assert not w(64, 3, 3, 64, 1, 1, 1, 1, 1, 56, 56) and not w(512, 3, 3, 512, 1, 1, 1, 1, 1, 14, 14)
    assert not w(256, 3, 3, 256, 2, 2, 1, 1, 1, 56, 56) and not w(256, 3, 3, 256, 1, 1, 2, 2, 1, 56, 56)
    assert not w(128, 3, 3, 128, 1, 1, 1, 1, 2, 112, 112) and not w(256, 5, 5, 256, 1, 1, 1, 1, 1, 56, 56)


def test_a_compiled_conv_epilogue_on_the_winograd_path_matches_the_interpreter():
    """Through the generated step: conv2d + bias + relu fused (fuse_conv_epilogue), the
    convolution large enough for Winograd, against the numpy interpreter."""
    import graphc as gc
    xv = rng.normal(size=(2, 128, 64, 64)).astype(np.float32)
    assert ck._winograd(128, 3, 3, 128, 1, 1, 1, 1, 1, 64, 64)
    with gc.Graph():
        x = gc.placeholder((None, 128, 64, 64), gc.float32)
        w = gc.constant((rng.normal(size=(128, 128, 3, 3)) / 34).astype(np.float32))
        b = gc.constant(rng.normal(size=(1, 128, 1, 1)).astype(np.float32))
        y = gc.relu(gc.conv2d(x, w, padding="same") + b)
        want = gc.function([x], [y], backend="interp")(xv)
        got = gc.function([x], [y], backend="cpu")(xv)
    want, got = (v[0] if isinstance(v, (list, tuple)) else v for v in (want, got))
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_an_inf_input_takes_the_other_paths():
    """The transforms would turn an inf into inf - inf = nan; conv2d_into checks first."""
    x = rng.normal(size=(1, 128, 64, 64)).astype(np.float32)
    w = rng.normal(size=(128, 128, 3, 3)).astype(np.float32)
    assert ck._winograd(128, 3, 3, 128, 1, 1, 1, 1, 1, 64, 64)
    x[0, 5, 10, 20] = np.inf
    want = conv2d_ref(x, w, stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1)
    got = np.empty(want.shape, np.float32)
    ck.conv2d_into(x, w, got, 1, 1, 1, 1, 1, 1, 1, 1, 1)
    assert np.array_equal(np.isinf(got), np.isinf(want)) and np.isinf(want).any()
    assert np.array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-4, atol=1e-3)
