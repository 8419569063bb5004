"""Stride-1 convolutions as one GEMM per kernel tap, with no im2col.

im2col + GEMM writes a (C * kh * kw, OH * OW) matrix and reads it back: for DenseNet's 3x3
convolutions from 128 channels at 56x56 that is 14 MB each way, more than the GEMM's own
work costs. At stride 1 there is a way around it: copy the image once into a zero-padded
scratch (C, Hp, Wp), flat; keep the output "wide", at the padded pitch Wp (columns ow >= OW
are junk, never copied out). Then output position p = oh * Wp + ow reads input position
p + i * dh * Wp + j * dw for tap (i, j): for each tap the inputs of all output positions
form a (C, OH * Wp) matrix whose rows are the channel planes shifted by that offset -- a
strided view of the padded scratch that BLAS reads in place (gemm_flat). So

    wide (O, OH * Wp) = sum over taps t of  w[:, :, i, j] (O, C)  @  shifted_t (C, OH * Wp)

nine GEMMs with k = C for a 3x3 kernel (BLAS, on its threads), accumulating (beta = 1) into
a wide output that stays in cache. The padding's zeros are multiplied like the reference's
(ops/conv.py pads with zeros), so an inf or nan weight next to the padding gives the same nan;
a tap reading past a plane's end reads the next plane (or the zeroed slack after the last),
only ever into junk columns. conv_kernels.py picks this path per shape class (WIDE_MIN_COLS).
"""
import numpy as np
from numba import njit

from .gemm import gemm_flat


@njit(cache=True)
def wide_conv2d_into(x, w, out, pt, pb, pl, pr, dh, dw, groups):
    """out (N, O, OH, OW) = conv2d(x (N, C, H, W), w (O, C // groups, kh, kw)), stride 1."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh_n, ow_n = out.shape[2], out.shape[3]
    og = o // groups
    hp, wp = h + pt + pb, wd + pl + pr
    plane, cols = hp * wp, oh_n * wp
    xp = np.zeros(c * plane + (kh - 1) * dh * wp + (kw - 1) * dw + wp, x.dtype)   # + slack
    taps = np.empty((groups, kh * kw, og, cg), w.dtype)     # each group's and tap's (O, C) matrix
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                for q in range(og):
                    for r in range(cg):
                        taps[g, i * kw + j, q, r] = w[g * og + q, r, i, j]
    wide = np.empty((og, cols), x.dtype)
    wide_flat = wide.reshape(wide.size)
    # the copies in and out index flat arrays with unsigned ints: a signed computed index
    # carries Numba's negative-index test, which keeps LLVM from vectorizing the loop
    # (conv_im2col.py); ResNet's 64 -> 64 at 56x56 took 3.7 ms with signed, 2.5 with unsigned
    u8 = np.uint64
    src, dst = x.reshape(x.size), out.reshape(out.size)
    for b in range(n):
        for ch in range(c):                          # the inside of the padded planes
            for y in range(h):
                at, s0 = u8(ch * plane + (y + pt) * wp + pl), u8(((b * c + ch) * h + y) * wd)
                for xx in range(u8(wd)):
                    xp[at + xx] = src[s0 + xx]
        for g in range(groups):
            for i in range(kh):
                for j in range(kw):
                    t = i * kw + j
                    gemm_flat(taps[g, t], xp, g * cg * plane + i * dh * wp + j * dw, plane,
                              wide_flat, 0, cols, cols, 0.0 if t == 0 else 1.0)
            for q in range(og):
                for oh in range(oh_n):
                    at, s0 = u8(((b * o + g * og + q) * oh_n + oh) * ow_n), u8(q * cols + oh * wp)
                    for ow in range(u8(ow_n)):
                        dst[at + ow] = wide_flat[s0 + ow]
