"""3x3 stride-1 convolutions by Winograd's minimal filtering F(2x2, 3x3).

A 2x2 block of outputs needs a 4x4 block of inputs d. With the fixed matrices below,

    Y = A^T [ (G g G^T) * (B^T d B) ] A          (* elementwise, over a 4x4 grid)

16 multiplications per block and input channel instead of 36: each of the 16 grid points
(xi, nu) is one GEMM over the channels, M[xi, nu] (O, T) = U[xi, nu] (O, C) @ V[xi, nu] (C, T),
where U is the transformed kernel (G g G^T for each (o, c)), V the transformed input blocks
(B^T d B for each (c, block)) and T the number of 2x2 output blocks. So BLAS does 2.25x fewer
multiply-adds than im2col + GEMM, and V (16 C T entries) is smaller than im2col's columns
(9 C OH OW). The price is the transforms, plain vectorized loops: the input's and output's
are linear in the image, the kernel's (redone each call: the helper keeps no state) in O * C,
which is why conv_kernels.py takes this path only for large enough planes (WINOGRAD_MIN_POSITIONS).
The blocks are taken in bands of block rows (TILE_FLOATS entries of V) so that V and M stay
in cache. Rounding: the transforms add and subtract a few inputs, so the result differs from
the direct sum by a few ulps of the inputs' magnitude (tests/test_cpu_winograd.py).

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]
"""
import numpy as np
from numba import njit

from .gemm import gemm_flat

TILE_FLOATS = 1 << 21      # entries of V per band of block rows (8 MB of float32)


@njit(cache=True)
def kernel_transform(w, u):
    """u (16, O, C) = G g G^T of each 3x3 kernel g = w[o, c] (O, C, 3, 3), grid point xi * 4 + nu.
    As whole rows over all O * C kernels: the taps first gathered into 9 rows (one strided
    read of w), then G along the kernel rows, then G^T along its columns (a loop per kernel
    took 43 ns a kernel, 11 ms for 512 x 512)."""
    oc = w.shape[0] * w.shape[1]
    half = w.dtype.type(0.5)
    w9 = w.reshape((oc, 9))
    taps = np.empty((9, oc), w.dtype)
    for p in range(oc):
        for k in range(9):
            taps[k, p] = w9[p, k]
    gg = np.empty((12, oc), w.dtype)        # G g: row i of G times the kernel, tap column j
    for j in range(3):
        g0, g1, g2 = taps[j], taps[3 + j], taps[6 + j]
        r0, r1, r2, r3 = gg[j], gg[3 + j], gg[6 + j], gg[9 + j]
        for p in range(oc):
            r0[p] = g0[p]
            r1[p] = half * (g0[p] + g1[p] + g2[p])
            r2[p] = half * (g0[p] - g1[p] + g2[p])
            r3[p] = g2[p]
    uf = u.reshape((16, oc))
    for i in range(4):                      # (G g) G^T
        t0, t1, t2 = gg[3 * i], gg[3 * i + 1], gg[3 * i + 2]
        u0, u1, u2, u3 = uf[4 * i], uf[4 * i + 1], uf[4 * i + 2], uf[4 * i + 3]
        for p in range(oc):
            u0[p] = t0[p]
            u1[p] = half * (t0[p] + t1[p] + t2[p])
            u2[p] = half * (t0[p] - t1[p] + t2[p])
            u3[p] = t2[p]


@njit(cache=True)
def _input_transform(xp, v, by0, by1, bw, rows):
    """v[:, c, (by - by0) * bw + bx] = B^T d B of the 4x4 block of the padded image xp (C, Hp, Wp)
    at (2 by, 2 bx), for block rows [by0, by1). `rows` (4, Wp) is scratch: B^T d first, along
    whole rows (vectorized), then B along the columns of each block."""
    c_n = xp.shape[0]
    for c in range(c_n):
        for by in range(by0, by1):
            a0, a1, a2, a3 = xp[c, 2 * by], xp[c, 2 * by + 1], xp[c, 2 * by + 2], xp[c, 2 * by + 3]
            r0, r1, r2, r3 = rows[0], rows[1], rows[2], rows[3]
            for q in range(a0.shape[0]):
                r0[q] = a0[q] - a2[q]
                r1[q] = a1[q] + a2[q]
                r2[q] = a2[q] - a1[q]
                r3[q] = a1[q] - a3[q]
            at = (by - by0) * bw
            for i in range(4):
                r = rows[i]
                d0, d1 = v[i * 4 + 0, c, at:at + bw], v[i * 4 + 1, c, at:at + bw]
                d2, d3 = v[i * 4 + 2, c, at:at + bw], v[i * 4 + 3, c, at:at + bw]
                for bx in range(bw):
                    d0[bx] = r[2 * bx] - r[2 * bx + 2]
                    d1[bx] = r[2 * bx + 1] + r[2 * bx + 2]
                    d2[bx] = r[2 * bx + 2] - r[2 * bx + 1]
                    d3[bx] = r[2 * bx + 1] - r[2 * bx + 3]


@njit(cache=True)
def _output_transform(m, out, by0, by1, bw):
    """out (O, OH, OW) rows 2 by0 .. 2 by1 = A^T M A of each block; m (16, O, blocks of the band).
    Blocks past the output's last row or column (odd OH, OW) are cut."""
    o_n, oh_n, ow_n = out.shape
    full = ow_n // 2
    s0 = np.empty((4, bw), m.dtype)
    s1 = np.empty((4, bw), m.dtype)
    for o in range(o_n):
        for by in range(by0, by1):
            at = (by - by0) * bw
            for i in range(4):      # M A along each block's columns
                e0, e1 = m[i * 4 + 0, o, at:at + bw], m[i * 4 + 1, o, at:at + bw]
                e2, e3 = m[i * 4 + 2, o, at:at + bw], m[i * 4 + 3, o, at:at + bw]
                t0, t1 = s0[i], s1[i]
                for bx in range(bw):
                    t0[bx] = e0[bx] + e1[bx] + e2[bx]
                    t1[bx] = e1[bx] - e2[bx] - e3[bx]
            # A^T along the rows: output row 2 by is S0 + S1 + S2, row 2 by + 1 is S1 - S2 - S3
            if 2 * by < oh_n:
                row = out[o, 2 * by]
                for bx in range(full):
                    row[2 * bx] = s0[0, bx] + s0[1, bx] + s0[2, bx]
                    row[2 * bx + 1] = s1[0, bx] + s1[1, bx] + s1[2, bx]
                if full < bw:
                    row[2 * full] = s0[0, full] + s0[1, full] + s0[2, full]
            if 2 * by + 1 < oh_n:
                row = out[o, 2 * by + 1]
                for bx in range(full):
                    row[2 * bx] = s0[1, bx] - s0[2, bx] - s0[3, bx]
                    row[2 * bx + 1] = s1[1, bx] - s1[2, bx] - s1[3, bx]
                if full < bw:
                    row[2 * full] = s0[1, full] - s0[2, full] - s0[3, full]


@njit(cache=True)
def winograd_conv2d_into(x, w, out, pt, pl, tile):
    """out (N, O, OH, OW) = conv2d(x (N, C, H, W), w (O, C, 3, 3)), stride 1, dilation 1, one
    group, padding (pt, pl) at the top and left (the bottom and right follow from OH, OW)."""
    n, c_n, h, wd = x.shape
    o_n = w.shape[0]
    oh_n, ow_n = out.shape[2], out.shape[3]
    bh, bw = (oh_n + 1) // 2, (ow_n + 1) // 2         # 2x2 output blocks
    hp, wp = 2 * bh + 2, 2 * bw + 2                   # the padded input every block reads
    u = np.empty((16, o_n, c_n), x.dtype)
    kernel_transform(w, u)
    band = max(1, min(bh, tile // max(1, 16 * c_n * bw)))
    width = band * bw
    v = np.empty((16, c_n, width), x.dtype)
    m = np.empty((16, o_n, width), x.dtype)
    vf, mf = v.reshape(v.size), m.reshape(m.size)
    rows = np.empty((4, wp), x.dtype)
    xp = np.zeros((c_n, hp, wp), x.dtype)
    ylo, yhi = max(0, -pt), min(h, hp - pt)           # input rows and columns inside the padded frame
    xlo, xhi = max(0, -pl), min(wd, wp - pl)
    for b in range(n):
        for c in range(c_n):                          # the image into the zeroed frame, row by row
            for y in range(ylo, yhi):
                src, dst = x[b, c, y, xlo:xhi], xp[c, y + pt, xlo + pl:xhi + pl]
                for q in range(xhi - xlo):
                    dst[q] = src[q]
        for by0 in range(0, bh, band):
            by1 = min(bh, by0 + band)
            t = (by1 - by0) * bw
            _input_transform(xp, v, by0, by1, bw, rows)
            for k in range(16):     # M[k] (O, t) = U[k] (O, C) @ V[k] (C, t), leading dimension width
                gemm_flat(u[k], vf, k * c_n * width, width, mf, k * o_n * width, width, t, 0.0)
            _output_transform(m, out[b], by0, by1, bw)
