"""Direct (no GEMM) loops for stride-1 convolutions with few channels, where im2col + BLAS
loses: W5's conv (1 -> 8 channels, 3x3 on 28x28, batch 32) took 0.37 ms as 32 im2col+GEMMs,
its weight gradient 0.41 ms; these loops take ~0.19 and ~0.15 ms (conv_kernels.py picks them).

The trick that makes them vectorize: an image plane (padded into a scratch plane when the
convolution pads) is one flat row of pitch Wp, and an output plane is kept "wide", with the
same pitch: output position p = oh * Wp + ow reads input p + i * dh * Wp + j * dw for tap
(i, j). So each tap is ONE contiguous loop over all rows, out_wide[p] += w * x_flat[p + off]
(the columns ow >= OW of the wide plane are junk, never copied out). The weight gradient is
the same walk as dot products (a zeroed wide copy of g against x_flat shifted by each tap's
offset), summed with reassociation allowed so that they vectorize; the input gradient is the
walk backwards, x_flat[p + off] += w * g_wide[p].
"""
import numpy as np
from numba import njit


@njit(cache=True, fastmath={"reassoc", "contract"})
def _dot(a, b):
    """sum(a * b) (one length) with reordered (vectorized) additions."""
    acc = a.dtype.type(0)
    for p in range(a.shape[0]):
        acc += a[p] * b[p]
    return acc


@njit(inline="always")
def _row_of_3_taps(acc, row, w3, off, dw, length):
    """The three taps of a kernel row in one pass: a third of the loads and stores of acc
    (W5's conv: 0.33 -> 0.19 ms; all nine taps in one
    loop of nine slices was slower, 0.35 ms: too many streams to vectorize)."""
    w0, w1, w2 = w3[0], w3[1], w3[2]
    s0, s1, s2 = row[off:off + length], row[off + dw:off + dw + length], row[off + 2 * dw:off + 2 * dw + length]
    for p in range(length):
        acc[p] += w0 * s0[p] + w1 * s1[p] + w2 * s2[p]


@njit(cache=True, fastmath={"reassoc", "contract"})
def _dots_of_3_taps(out3, a, row, off, dw, length):
    """out3[j] += sum(a * row[off + j * dw:][:length]) for j < 3, in one pass over a."""
    s0, s1, s2 = row[off:off + length], row[off + dw:off + dw + length], row[off + 2 * dw:off + 2 * dw + length]
    t0 = t1 = t2 = a.dtype.type(0)
    for p in range(length):
        t0 += a[p] * s0[p]
        t1 += a[p] * s1[p]
        t2 += a[p] * s2[p]
    out3[0] += t0
    out3[1] += t1
    out3[2] += t2


@njit(inline="always")
def _padded_planes(x, b, c0, cg, pt, pl, hp, wp):
    """x[b, c0:c0 + cg] as flat planes of pitch wp with the padding zeroed: a view when there is
    no padding, else a scratch copy."""
    h, w = x.shape[2], x.shape[3]
    if hp == h and wp == w:
        return np.ascontiguousarray(x[b, c0:c0 + cg]).reshape((cg, h * w))
    xp = np.zeros((cg, hp, wp), x.dtype)
    xp[:, pt:pt + h, pl:pl + w] = x[b, c0:c0 + cg]
    return xp.reshape((cg, hp * wp))


@njit(inline="always")
def _sizes(x_hw, k_hw, out_hw, pads, dil):
    """(Hp, Wp, L): the padded plane's sizes and the length of the wide output walk."""
    (h, w), (kh, kw), (oh_n, ow_n), (pt, pb, pl, pr), (dh, dw) = x_hw, k_hw, out_hw, pads, dil
    hp, wp = h + pt + pb, w + pl + pr
    return hp, wp, (oh_n - 1) * wp + ow_n


@njit(cache=True)
def direct_conv2d_into(x, w, out, pt, pb, pl, pr, dh, dw, groups):
    """out = conv2d(x, w) with stride 1, by taps over wide planes (see the module docstring)."""
    n = x.shape[0]
    o, cg, kh, kw = w.shape
    oh_n, ow_n = out.shape[2], out.shape[3]
    og = o // groups
    hp, wp, length = _sizes(x.shape[2:], (kh, kw), (oh_n, ow_n), (pt, pb, pl, pr), (dh, dw))
    acc = np.empty(length, out.dtype)
    for b in range(n):
        for g in range(groups):
            xf = _padded_planes(x, b, g * cg, cg, pt, pl, hp, wp)
            for oc in range(g * og, (g + 1) * og):
                acc[:] = 0
                for ci in range(cg):
                    row = xf[ci]
                    for i in range(kh):
                        if kw == 3:
                            _row_of_3_taps(acc, row, w[oc, ci, i], i * dh * wp, dw, length)
                            continue
                        for j in range(kw):
                            wv, off = w[oc, ci, i, j], i * dh * wp + j * dw
                            seg = row[off:off + length]     # a slice, not row[off + p]: a
                            for p in range(length):         # signed index's wraparound test
                                acc[p] += wv * seg[p]       # would stop the vectorizer
                for oh in range(oh_n):
                    out[b, oc, oh, :] = acc[oh * wp:oh * wp + ow_n]


@njit(inline="always")
def _wide(gp, b, oc, g, wp):
    """g[b, oc] (OH, OW) into the zeroed wide plane gp (OH, wp)."""
    ow_n = g.shape[3]
    gp[:, :ow_n] = g[b, oc]


@njit(cache=True)
def direct_conv2d_grad_weight_into(x, g, out, pt, pb, pl, pr, dh, dw, groups):
    """out (O, C // groups, kh, kw) = dL/dw of a stride-1 conv2d: per image and output channel,
    one dot product per tap of the wide g with the input plane shifted by the tap."""
    n = x.shape[0]
    o, cg, kh, kw = out.shape
    oh_n, ow_n = g.shape[2], g.shape[3]
    og = o // groups
    hp, wp, length = _sizes(x.shape[2:], (kh, kw), (oh_n, ow_n), (pt, pb, pl, pr), (dh, dw))
    gp = np.zeros((oh_n, wp), g.dtype)          # columns >= OW stay 0: the junk taps add nothing
    gf = gp.reshape(oh_n * wp)
    out[:] = 0
    for b in range(n):
        for gi in range(groups):
            xf = _padded_planes(x, b, gi * cg, cg, pt, pl, hp, wp)
            for oc in range(gi * og, (gi + 1) * og):
                _wide(gp, b, oc, g, wp)
                for ci in range(cg):
                    row = xf[ci]
                    for i in range(kh):
                        for j in range(kw):
                            if kw == 3:
                                _dots_of_3_taps(out[oc, ci, i], gf[:length], row, i * dh * wp, dw, length)
                                break
                            off = i * dh * wp + j * dw
                            out[oc, ci, i, j] += _dot(gf[:length], row[off:off + length])


@njit(cache=True)
def direct_conv2d_grad_input_into(g, w, out, pt, pb, pl, pr, dh, dw, groups):
    """out (N, C, H, W) = dL/dx of a stride-1 conv2d: each tap's weight times the wide g added
    into the padded input plane at the tap's offset, then the padding cropped off."""
    n, o, oh_n, ow_n = g.shape
    _, cg, kh, kw = w.shape
    h, wd = out.shape[2], out.shape[3]
    og = o // groups
    hp, wp, length = _sizes((h, wd), (kh, kw), (oh_n, ow_n), (pt, pb, pl, pr), (dh, dw))
    gp = np.zeros((oh_n, wp), g.dtype)
    gf = gp.reshape(oh_n * wp)
    xp = np.empty((cg, hp * wp), out.dtype)
    for b in range(n):
        for gi in range(groups):
            xp[:] = 0
            for oc in range(gi * og, (gi + 1) * og):
                _wide(gp, b, oc, g, wp)
                for ci in range(cg):
                    row = xp[ci]
                    for i in range(kh):
                        for j in range(kw):
                            wv, off = w[oc, ci, i, j], i * dh * wp + j * dw
                            seg = row[off:off + length]
                            for p in range(length):
                                seg[p] += wv * gf[p]
            planes = xp.reshape((cg, hp, wp))
            out[b, gi * cg:(gi + 1) * cg] = planes[:, pt:pt + h, pl:pl + wd]


@njit(cache=True, fastmath={"reassoc"})
def all_finite(a):
    """No inf or nan in a: the wide walks multiply the junk columns by 0, and Winograd's
    transforms subtract inputs (conv_winograd.py), which an inf or nan would turn into nan
    where the reference has none, so the callers take im2col + GEMM for such inputs."""
    flat = np.ascontiguousarray(a).reshape(a.size)
    acc = a.dtype.type(0)
    for p in range(flat.size):
        acc += flat[p] * 0
    return acc == 0
