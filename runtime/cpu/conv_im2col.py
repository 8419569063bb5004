"""im2col + GEMM, a band of output rows at a time.

conv_kernels.py sends here the convolutions no other path takes (strided ones, many
channels). Each image's (C * kh * kw, OH * OW) column matrix is filled, then multiplied by
the weights in one GEMM per group (BLAS), which writes the output in place (gemm_flat, with
the output's leading dimension OH * OW). When the column matrix would pass TILE_FLOATS
entries (VGG's 3x3 convolution from 64 channels at 224x224: 29M entries, 116 MB), the
output rows are cut into bands that are filled and multiplied one after the other, so the
columns are written and read in cache. Measured (ms, min of 6, 3x3 pad 1): 64 channels at
224x224 in bands of 4M entries 63, of 1M 67, in one piece 132; 128 at 112x112 47 / 56 / 82.

fill_cols copies each kernel tap's row segment in one loop, with the padding's zeros written
apart; the old fill tested the bounds per entry. Measured here (ms, old vs new fill, min of
15): 64 ch at 224x224 3x3 29.2 vs 19.1; 256 at 56x56 7.1 vs 4.7; 3x3 stride 2 from 128 at
56x56 0.89 vs 0.39; 5x5 from 64 at 27x27 1.70 vs 0.66; 512 at 7x7 0.41 vs 0.41.
"""
import numpy as np
from numba import njit

from .gemm import gemm_flat

TILE_FLOATS = 1 << 22      # column entries per band (16 MB of float32, half this L3; measured above)


@njit(cache=True)
def _span(off, step, n_in, n_out):
    """[lo, hi): the output indices o < n_out whose input index o * step + off is in [0, n_in)."""
    lo = 0 if off >= 0 else (-off + step - 1) // step
    last = n_in - 1 - off
    hi = last // step + 1 if last >= 0 else 0
    hi = min(hi, n_out)
    lo = min(lo, hi)
    return lo, hi


@njit(cache=True)
def fill_cols(x, cols, r0, r1, ow_n, kh, kw, sh, sw, pt, pl, dh, dw):
    """im2col of output rows [r0, r1) of one image x (C, H, W) into the first (r1 - r0) * OW
    columns of cols (C * kh * kw, >= that): entry (tap row r, position p) is the input the
    tap reads for p, or 0 in the padding. x and cols C-contiguous.

    The flat indices are unsigned (u8): Numba wraps a negative signed index around, and that
    test in a loop keeps LLVM from vectorizing it (the copy of a row segment ran ~15x slower,
    1.4 against 0.08 ns per entry, with signed indices; 1-D views per row avoid it too, but
    cost ~30 ns a row, too much for 7-wide rows)."""
    c_in, h, w = x.shape
    ld = cols.shape[1]
    src, dst = x.reshape(x.size), cols.reshape(cols.size)
    u8, step = np.uint64, np.uint64(sw)
    for c in range(c_in):
        for i in range(kh):
            for j in range(kw):
                r = (c * kh + i) * kw + j
                off = j * dw - pl
                lo, hi = _span(off, sw, w, ow_n)
                for a in range(r1 - r0):
                    y = (r0 + a) * sh + i * dh - pt
                    d = u8(r * ld + a * ow_n)
                    if y < 0 or y >= h:
                        for q in range(u8(ow_n)):
                            dst[d + q] = 0
                        continue
                    for q in range(u8(lo)):
                        dst[d + q] = 0
                    at, s0 = d + u8(lo), u8(max(0, (c * h + y) * w + lo * sw + off))
                    if sw == 1:
                        for q in range(u8(hi - lo)):
                            dst[at + q] = src[s0 + q]
                    else:
                        for q in range(u8(hi - lo)):
                            dst[at + q] = src[s0 + q * step]
                    at = d + u8(hi)
                    for q in range(u8(ow_n - hi)):
                        dst[at + q] = 0


@njit(cache=True)
def im2col_conv2d_into(x, w, out, sh, sw, pt, pl, dh, dw, groups, tile):
    """out (N, O, OH, OW) = conv2d(x (N, C, H, W), w (O, C // groups, kh, kw)) in bands of
    about `tile` column entries (TILE_FLOATS; at least one output row); x, w and out
    C-contiguous."""
    n = x.shape[0]
    o, cg, kh, kw = w.shape
    oh_n, ow_n = out.shape[2], out.shape[3]
    og, k = o // groups, cg * kh * kw
    w3 = w.reshape((groups, og, k))
    positions = oh_n * ow_n
    band = max(1, min(oh_n, tile // max(1, groups * k * ow_n)))
    width = band * ow_n
    cols = np.empty((groups * k, width), x.dtype)
    cols_flat = cols.reshape(cols.size)
    flat = out.reshape(out.size)
    for b in range(n):
        for r0 in range(0, oh_n, band):
            r1 = min(oh_n, r0 + band)
            fill_cols(x[b], cols, r0, r1, ow_n, kh, kw, sh, sw, pt, pl, dh, dw)
            for g in range(groups):
                gemm_flat(w3[g], cols_flat, g * k * width, width, flat,
                          (b * o + g * og) * positions + r0 * ow_n, positions, (r1 - r0) * ow_n, 0.0)
