"""The banded im2col + GEMM of runtime/cpu/conv_im2col.py against the references.

fill_cols writes each kernel tap's row segment with its padding apart; the edge cases are
in the bounds: padding wider than the kernel's reach (a tap reading nothing of a row),
strides that skip the last input column, dilation, and bands that end mid-image. Drawn at
random (hypothesis) against an im2col built with numpy from the padded image, and the whole
convolution against ops/conv.py with bands of a few rows, so that several bands, the last
one short, are exercised on small shapes.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphc.ops.conv import conv2d_ref, conv_out
from graphc.runtime.cpu.conv_im2col import _span, fill_cols, im2col_conv2d_into


def numpy_cols(x, kh, kw, stride, pads, dilation, rows):
    """im2col of output rows `rows` of x (C, H, W): pad with zeros, then read each tap."""
    (sh, sw), ((pt, pb), (pl, pr)), (dh, dw) = stride, pads, dilation
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr)))
    ow_n = conv_out(x.shape[2], kw, sw, dw, (pl, pr))
    out = []
    for c in range(x.shape[0]):
        for i in range(kh):
            for j in range(kw):
                out.append(np.concatenate([xp[c, oh * sh + i * dh, j * dw:j * dw + (ow_n - 1) * sw + 1:sw]
                                           for oh in rows]))
    return np.array(out)


geometry = st.fixed_dictionaries(dict(
    c=st.integers(1, 3), h=st.integers(1, 7), w=st.integers(1, 7), kh=st.integers(1, 3), kw=st.integers(1, 4),
    sh=st.integers(1, 3), sw=st.integers(1, 3), pt=st.integers(0, 4), pb=st.integers(0, 2),
    pl=st.integers(0, 5), pr=st.integers(0, 2), dh=st.integers(1, 2), dw=st.integers(1, 3)))


def _out_hw(g):
    return (conv_out(g["h"], g["kh"], g["sh"], g["dh"], (g["pt"], g["pb"])),
            conv_out(g["w"], g["kw"], g["sw"], g["dw"], (g["pl"], g["pr"])))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(geometry, st.data())
def test_fill_cols_matches_numpy_im2col_on_any_band(g, data):
    oh_n, ow_n = _out_hw(g)
    if oh_n < 1 or ow_n < 1:
        return
    r0 = data.draw(st.integers(0, oh_n - 1))
    r1 = data.draw(st.integers(r0 + 1, oh_n))
    x = np.random.default_rng(0).normal(size=(g["c"], g["h"], g["w"])).astype(np.float32)
    k = g["c"] * g["kh"] * g["kw"]
    cols = np.full((k, (r1 - r0) * ow_n + 3), np.float32(7.0))    # wider than the band: slack kept
    fill_cols(x, cols, r0, r1, ow_n, g["kh"], g["kw"], g["sh"], g["sw"], g["pt"], g["pl"], g["dh"], g["dw"])
    want = numpy_cols(x, g["kh"], g["kw"], (g["sh"], g["sw"]), ((g["pt"], g["pb"]), (g["pl"], g["pr"])),
                      (g["dh"], g["dw"]), range(r0, r1))
    np.testing.assert_array_equal(cols[:, :(r1 - r0) * ow_n], want)
    assert (cols[:, (r1 - r0) * ow_n:] == 7.0).all()


@pytest.mark.parametrize("off, step, n_in, n_out, want", [
    (0, 1, 5, 5, (0, 5)), (-2, 1, 5, 7, (2, 7)), (-2, 1, 3, 4, (2, 4)), (-9, 1, 3, 4, (4, 4)),
    (-3, 2, 7, 5, (2, 5)), (1, 2, 7, 5, (0, 3)), (6, 1, 5, 3, (0, 0)), (-1, 3, 1, 2, (1, 1)),
])
def test_span_is_the_outputs_reading_inside_the_row(off, step, n_in, n_out, want):
    assert _span(off, step, n_in, n_out) == want
    inside = [o for o in range(n_out) if 0 <= o * step + off < n_in]
    lo, hi = want
    assert inside == list(range(lo, hi))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs, ws, stride, pads, dilation, groups, tile", [
    ((2, 3, 9, 8), (4, 3, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1, 100),     # 27 * 8 > 100: a row a band
    ((1, 4, 11, 9), (6, 2, 3, 2), (2, 1), ((2, 0), (1, 3)), (1, 2), 2, 300),    # grouped, bands of 2 rows
    ((2, 2, 12, 10), (3, 2, 5, 5), (3, 2), ((2, 2), (2, 2)), (1, 1), 1, 1000),  # strided, last band short
    ((1, 3, 6, 6), (2, 3, 3, 3), (1, 1), ((0, 0), (0, 0)), (2, 2), 1, 1 << 22), # one band
])
def test_banded_convolution_matches_the_reference(xs, ws, stride, pads, dilation, groups, tile, dtype):
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=xs).astype(dtype), rng.normal(size=ws).astype(dtype)
    want = conv2d_ref(x, w, stride=stride, padding=pads, dilation=dilation, groups=groups)
    got = np.full(want.shape, np.nan, dtype)
    (pt, _), (pl, _) = pads
    im2col_conv2d_into(x, w, got, *stride, pt, pl, *dilation, groups, tile)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
