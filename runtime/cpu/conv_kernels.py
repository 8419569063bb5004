"""Fixed Numba helpers for convolution and pooling, called by the generated steps
(lower_conv.py), like matmul_into: the sizes come from the arrays, the attrs are arguments,
so one compiled helper serves every shape and the step's text does not depend on sizes.

Stride-1 convolutions with few channels run direct vectorized loops (conv_direct.py,
DIRECT_MAX_MACS); the others are im2col + one GEMM per group (matmul_into, BLAS); a 1x1 convolution with stride 1
and no padding needs no im2col: it is a plain GEMM over the channels. Its gradients are the
same GEMMs transposed: grad_input is GEMM + col2im, grad_weight im2col + GEMM accumulated over
the batch (beta = 1). Pools are direct loops. The im2col scratch is allocated per call
(np.empty); no prange anywhere, since BLAS calls must not run inside Numba's threads
(DESIGN.md section 7). Ties of max pooling go to the first maximum in row-major window order,
as in the reference (ops/pool.py).
"""
import numpy as np
from numba import njit

from .conv_direct import (all_finite, direct_conv2d_grad_input_into, direct_conv2d_grad_weight_into,
                          direct_conv2d_into)
from .gemm import matmul_into

# Direct loops (conv_direct.py) win below this many multiply-adds per output position and
# group (C/groups * kh * kw * O/groups), at stride 1; measured (us, GEMM vs direct, forward):
# W5's 1->8 3x3: 358 vs 192; 8->16 3x3 on 14x14: 885 vs 511; 16->32 3x3: 1372 vs 2514.
DIRECT_MAX_MACS = 1536


@njit(cache=True)
def _fill_cols(x, cols, oh_n, ow_n, kh, kw, sh, sw, pt, pl, dh, dw):
    """im2col of one image x (C, H, W) into cols (C * kh * kw, OH * OW)."""
    c_in, h, w = x.shape
    for c in range(c_in):
        for i in range(kh):
            for j in range(kw):
                r = (c * kh + i) * kw + j
                for oh in range(oh_n):
                    y = oh * sh + i * dh - pt
                    inside = 0 <= y < h
                    for ow in range(ow_n):
                        xx = ow * sw + j * dw - pl
                        if inside and 0 <= xx < w:
                            cols[r, oh * ow_n + ow] = x[c, y, xx]
                        else:
                            cols[r, oh * ow_n + ow] = 0


@njit(cache=True)
def _add_cols(cols, x, oh_n, ow_n, kh, kw, sh, sw, pt, pl, dh, dw):
    """col2im: x (C, H, W) += each column entry at the input position it was read from."""
    c_in, h, w = x.shape
    for c in range(c_in):
        for i in range(kh):
            for j in range(kw):
                r = (c * kh + i) * kw + j
                for oh in range(oh_n):
                    y = oh * sh + i * dh - pt
                    if 0 <= y < h:
                        for ow in range(ow_n):
                            xx = ow * sw + j * dw - pl
                            if 0 <= xx < w:
                                x[c, y, xx] += cols[r, oh * ow_n + ow]


@njit(cache=True)
def _pointwise(kh, kw, sh, sw, pt, pb, pl, pr):
    """A 1x1 kernel, stride 1, no padding: output position = input position (dilation is moot)."""
    return kh == 1 and kw == 1 and sh == 1 and sw == 1 and pt == 0 and pb == 0 and pl == 0 and pr == 0


@njit(cache=True)
def _direct(cg, kh, kw, og, sh, sw):
    return sh == 1 and sw == 1 and cg * kh * kw * og <= DIRECT_MAX_MACS


@njit(cache=True)
def conv2d_into(x, w, out, sh, sw, pt, pb, pl, pr, dh, dw, groups):
    """out (N, O, OH, OW) = conv2d(x (N, C, H, W), w (O, C // groups, kh, kw)) with stride
    (sh, sw), padding (pt, pb, pl, pr), dilation (dh, dw)."""
    xc, wc = np.ascontiguousarray(x), np.ascontiguousarray(w)
    n, c = xc.shape[0], xc.shape[1]
    o, cg, kh, kw = wc.shape
    oh_n, ow_n = out.shape[2], out.shape[3]
    og, k = o // groups, cg * kh * kw
    w3 = wc.reshape((groups, og, k))
    out4 = out.reshape((n, groups, og, oh_n * ow_n))
    if _direct(cg, kh, kw, og, sh, sw):
        direct_conv2d_into(xc, wc, out, pt, pb, pl, pr, dh, dw, groups)
        return
    if _pointwise(kh, kw, sh, sw, pt, pb, pl, pr):
        x4 = xc.reshape((n, groups, cg, oh_n * ow_n))
        for b in range(n):
            for g in range(groups):
                matmul_into(w3[g], x4[b, g], out4[b, g])
        return
    cols = np.empty((groups, k, oh_n * ow_n), xc.dtype)
    for b in range(n):
        _fill_cols(xc[b], cols.reshape((groups * k, oh_n * ow_n)), oh_n, ow_n, kh, kw, sh, sw, pt, pl, dh, dw)
        for g in range(groups):
            matmul_into(w3[g], cols[g], out4[b, g])


@njit(cache=True)
def conv2d_grad_input_into(g, w, out, sh, sw, pt, pb, pl, pr, dh, dw, groups):
    """out (N, C, H, W) = dL/dx of conv2d given g = dL/dy (N, O, OH, OW): per group
    cols = w_g.T @ g_g, then col2im."""
    gc_, wc = np.ascontiguousarray(g), np.ascontiguousarray(w)
    n, o, oh_n, ow_n = gc_.shape
    _, cg, kh, kw = wc.shape
    og, k = o // groups, cg * kh * kw
    w3 = wc.reshape((groups, og, k))
    g4 = gc_.reshape((n, groups, og, oh_n * ow_n))
    h, wd = out.shape[2], out.shape[3]
    if _direct(cg, kh, kw, og, sh, sw) and all_finite(wc):
        direct_conv2d_grad_input_into(gc_, wc, out, pt, pb, pl, pr, dh, dw, groups)
        return
    if _pointwise(kh, kw, sh, sw, pt, pb, pl, pr):
        out4 = out.reshape((n, groups, cg, h * wd))
        for b in range(n):
            for gi in range(groups):
                matmul_into(w3[gi].T, g4[b, gi], out4[b, gi])
        return
    cols = np.empty((groups, k, oh_n * ow_n), gc_.dtype)
    out[:] = 0
    for b in range(n):
        for gi in range(groups):
            matmul_into(w3[gi].T, g4[b, gi], cols[gi])
        _add_cols(cols.reshape((groups * k, oh_n * ow_n)), out[b], oh_n, ow_n, kh, kw, sh, sw, pt, pl, dh, dw)


@njit(cache=True)
def conv2d_grad_weight_into(x, g, out, sh, sw, pt, pb, pl, pr, dh, dw, groups):
    """out (O, C // groups, kh, kw) = dL/dw of conv2d given g = dL/dy: per group the sum over
    the batch of g_g @ cols_g.T (BLAS accumulating into out, beta = 1)."""
    xc, gc_ = np.ascontiguousarray(x), np.ascontiguousarray(g)
    n, c = xc.shape[0], xc.shape[1]
    o, cg, kh, kw = out.shape
    oh_n, ow_n = gc_.shape[2], gc_.shape[3]
    og, k = o // groups, cg * kh * kw
    out3 = out.reshape((groups, og, k))
    g4 = gc_.reshape((n, groups, og, oh_n * ow_n))
    if _direct(cg, kh, kw, og, sh, sw) and all_finite(xc):
        direct_conv2d_grad_weight_into(xc, gc_, out, pt, pb, pl, pr, dh, dw, groups)
        return
    out[:] = 0
    if _pointwise(kh, kw, sh, sw, pt, pb, pl, pr):
        x4 = xc.reshape((n, groups, cg, oh_n * ow_n))
        for b in range(n):
            for gi in range(groups):
                matmul_into(g4[b, gi], x4[b, gi].T, out3[gi], 1.0, 1.0)
        return
    cols = np.empty((groups, k, oh_n * ow_n), xc.dtype)
    for b in range(n):
        _fill_cols(xc[b], cols.reshape((groups * k, oh_n * ow_n)), oh_n, ow_n, kh, kw, sh, sw, pt, pl, dh, dw)
        for gi in range(groups):
            matmul_into(g4[b, gi], cols[gi].T, out3[gi], 1.0, 1.0)

# ---------------------------------------------------------------- pooling


# Max pooling, its gradient and max_pool2d_select share one loop (_max_pool, `mode`): each
# window's first maximum (row-major order; a nan wins, as np.max and np.argmax would have it)
# and where it is. Measured on (32, 8, 26, 26), 2x2: a call per window returning a tuple took
# 1.4 ms; branch-free selects, windows inside the image without bounds tests, and the loops of
# 2x2 and 3x3 windows unrolled (constant sizes) take ~0.11 ms.
MAX, GRAD, SELECT = 0, 1, 2


@njit(inline="always")
def _argmax_inside(x, b, ch, ys, xs, kh, kw):
    """(value, y, column) of the first maximum of a window lying inside the image."""
    best, by, bx = x[b, ch, ys, xs], ys, xs
    for i in range(kh):
        for j in range(kw):
            v = x[b, ch, ys + i, xs + j]
            take = (v > best) | ((v != v) & (best == best))      # selects, not branches
            best = v if take else best
            by = ys + i if take else by
            bx = xs + j if take else bx
    return best, by, bx


@njit(inline="always")
def _argmax_clipped(x, b, ch, ys, xs, kh, kw):
    """The same for a window crossing the padding: clipped to the image; y = -1 if empty."""
    i0, i1 = max(0, -ys), min(kh, x.shape[2] - ys)
    j0, j1 = max(0, -xs), min(kw, x.shape[3] - xs)
    if i0 >= i1 or j0 >= j1:
        return x[b, ch, 0, 0], -1, -1
    best, by, bx = x[b, ch, ys + i0, xs + j0], ys + i0, xs + j0
    for i in range(i0, i1):
        for j in range(j0, j1):
            v = x[b, ch, ys + i, xs + j]
            take = (v > best) | ((v != v) & (best == best))
            best = v if take else best
            by = ys + i if take else by
            bx = xs + j if take else bx
    return best, by, bx


@njit(inline="always")
def _first_max_at(x, b, ch, ys, xs, kh, kw):
    """The row-major index of the first maximum of a window inside the image, by arithmetic on
    the comparisons: LLVM turned _argmax_inside's selects of (y, x) into branches, which
    mispredict on data (W5's pool gradient: 0.73 ms; this way ~0.2 ms)."""
    best = x[b, ch, ys, xs]
    for i in range(kh):
        for j in range(kw):
            v = x[b, ch, ys + i, xs + j]
            take = (v > best) | ((v != v) & (best == best))
            best = v if take else best          # a max: this select stays a select
    run, k = 1, 0                               # run = 1 while no position so far matched
    for i in range(kh):
        for j in range(kw):
            v = x[b, ch, ys + i, xs + j]
            run = run * (1 - np.int64((v == best) | (v != v)))    # best is nan iff a v is
            k += run
    return k


@njit(inline="always")
def _max_pool(x, G, out, kh, kw, sh, sw, pt, pl, mode):
    """mode MAX: out = the pooled maxima; GRAD: out (x's shape) += G at each arg-max;
    SELECT: out (pooled) = G (x's shape) read at each arg-max."""
    h, w = x.shape[2], x.shape[3]
    n, c, oh_n, ow_n = G.shape if mode == GRAD else out.shape
    for b in range(n):
        for ch in range(c):
            for oh in range(oh_n):
                ys = oh * sh - pt
                for ow in range(ow_n):
                    xs = ow * sw - pl
                    inside = ys >= 0 and xs >= 0 and ys + kh <= h and xs + kw <= w
                    if mode == GRAD and inside:
                        v, y, xx = x[b, ch, 0, 0], 0, 0      # unused: _first_max_at below
                    elif inside:
                        v, y, xx = _argmax_inside(x, b, ch, ys, xs, kh, kw)
                    else:
                        v, y, xx = _argmax_clipped(x, b, ch, ys, xs, kh, kw)
                    if mode == MAX:
                        out[b, ch, oh, ow] = v if y >= 0 else -np.inf
                    elif mode == GRAD and inside:
                        k = _first_max_at(x, b, ch, ys, xs, kh, kw)
                        i = k // kw
                        out[b, ch, ys + i, xs + k - i * kw] += G[b, ch, oh, ow]
                    elif mode == GRAD:
                        if y >= 0:
                            out[b, ch, y, xx] += G[b, ch, oh, ow]
                    else:
                        out[b, ch, oh, ow] = G[b, ch, y, xx] if y >= 0 else 0


@njit(inline="always")
def _max_pool_sized(x, G, out, kh, kw, sh, sw, pt, pl, mode):
    """_max_pool with the common window sizes as constants, so LLVM unrolls their loops."""
    if kh == 2 and kw == 2:
        _max_pool(x, G, out, 2, 2, sh, sw, pt, pl, mode)
    elif kh == 3 and kw == 3:
        _max_pool(x, G, out, 3, 3, sh, sw, pt, pl, mode)
    else:
        _max_pool(x, G, out, kh, kw, sh, sw, pt, pl, mode)


@njit(cache=True)
def max_pool2d_into(x, out, kh, kw, sh, sw, pt, pl):
    if _flat_2x2(x, out, kh, kw, sh, sw, pt, pl):
        _max_pool_2x2(np.ascontiguousarray(x), out, out, MAX)
    else:
        _max_pool_sized(x, out, out, kh, kw, sh, sw, pt, pl, MAX)


@njit(inline="always")
def _flat_2x2(x, pooled, kh, kw, sh, sw, pt, pl):
    """The common 2x2 stride-2 pool with every window inside the image (no padding)."""
    return (kh == kw == sh == sw == 2 and pt == 0 and pl == 0 and 2 * pooled.shape[2] <= x.shape[2]
            and 2 * pooled.shape[3] <= x.shape[3])


@njit(inline="always")
def _nan_max(best, v):
    take = (v > best) | ((v != v) & (best == best))      # a nan wins; a tie keeps best
    return v if take else best


@njit(cache=True)
def _max_pool_2x2(x, G, out, mode):
    """_flat_2x2's pool over (plane, row, column) views, whose indices LLVM sees are >= 0 (flat
    indices kept Numba's negative-index fix-ups in the loop). MAX: the two rows' maxima,
    contiguous and vectorized, then each pair of columns (W5: 0.13 -> ~0.04 ms; which of
    equal maxima, as +-0, is np.max's choice too). SELECT: G (x's shape) at each window's first
    arg-max in row-major order, by arithmetic on the comparisons (W5: 0.68 -> ~0.1 ms)."""
    n, c, oh_n, ow_n = out.shape
    h, w = x.shape[2], x.shape[3]
    x3, o3 = x.reshape(n * c, h, w), out.reshape(n * c, oh_n, ow_n)
    g3 = np.ascontiguousarray(G).reshape(n * c, h, w) if mode == SELECT else x3
    m = np.empty(w, x.dtype)
    for p in range(n * c):
        for oh in range(oh_n):
            r0, r1, o = x3[p, 2 * oh], x3[p, 2 * oh + 1], o3[p, oh]
            if mode == MAX:
                for k in range(2 * ow_n):
                    m[k] = _nan_max(r0[k], r1[k])
                for ow in range(ow_n):
                    o[ow] = _nan_max(m[2 * ow], m[2 * ow + 1])
                continue
            g0, g1 = g3[p, 2 * oh], g3[p, 2 * oh + 1]
            for ow in range(ow_n):
                a, b, c_, d = r0[2 * ow], r0[2 * ow + 1], r1[2 * ow], r1[2 * ow + 1]
                best = _nan_max(_nan_max(_nan_max(a, b), c_), d)
                ra = 1 - np.int64((a == best) | (a != a))       # 1: a is not the first max
                rb = ra * (1 - np.int64((b == best) | (b != b)))
                rc = rb * (1 - np.int64((c_ == best) | (c_ != c_)))
                up, down = g0[2 * ow + ra], g1[2 * ow + rc]      # rb = 1: the max is in row 1
                o[ow] = down if rb else up


@njit(cache=True)
def max_pool2d_grad_into(x, g, out, kh, kw, sh, sw, pt, pl):
    """out (x's shape): g of each window added at the window's first arg-max."""
    if _flat_2x2(x, g, kh, kw, sh, sw, pt, pl):
        _max_pool_grad_2x2(np.ascontiguousarray(x), np.ascontiguousarray(g), out)
    else:
        out[:] = 0
        _max_pool_sized(x, g, out, kh, kw, sh, sw, pt, pl, GRAD)


@njit(cache=True)
def _max_pool_grad_2x2(x, g, out):
    """The common 2x2 stride-2 pool's gradient, windows inside the image: the windows do not
    overlap: each pair of output rows is zeroed while in cache, then g is stored at each window's
    first arg-max (found by arithmetic on the comparisons, as in _first_max_at), over row views
    as in _max_pool_2x2; rows and columns no window covers are zeroed apart."""
    (n, c, oh_n, ow_n), h, w = g.shape, x.shape[2], x.shape[3]
    out[:, :, 2 * oh_n:, :] = 0
    out[:, :, :, 2 * ow_n:] = 0
    x3, o3, g3 = x.reshape(n * c, h, w), out.reshape(n * c, h, w), g.reshape(n * c, oh_n, ow_n)
    for p in range(n * c):
        for oh in range(oh_n):
            r0, r1, gr = x3[p, 2 * oh], x3[p, 2 * oh + 1], g3[p, oh]
            o3[p, 2 * oh:2 * oh + 2, :2 * ow_n] = 0
            for ow in range(ow_n):
                a, b, c_, d = r0[2 * ow], r0[2 * ow + 1], r1[2 * ow], r1[2 * ow + 1]
                best = _nan_max(_nan_max(_nan_max(a, b), c_), d)
                ra = 1 - np.int64((a == best) | (a != a))       # 1: a is not the first max
                rb = ra * (1 - np.int64((b == best) | (b != b)))
                rc = rb * (1 - np.int64((c_ == best) | (c_ != c_)))
                o3[p, 2 * oh + rb, 2 * ow + ra - rb + rc] = gr[ow]     # place 0, 1, (1, 0), (1, 1)


@njit(cache=True)
def max_pool2d_select_into(x, G, out, kh, kw, sh, sw, pt, pl):
    """out (the pooled shape): G read at each window's first arg-max of x."""
    if _flat_2x2(x, out, kh, kw, sh, sw, pt, pl):
        _max_pool_2x2(np.ascontiguousarray(x), G, out, SELECT)
    else:
        _max_pool_sized(x, G, out, kh, kw, sh, sw, pt, pl, SELECT)


@njit(cache=True)
def _window(start, k, size, lo_pad, hi_pad, include_pad):
    """(first, end) input indices of a window and the count it divides by."""
    first, end = max(start, 0), min(start + k, size)
    if include_pad:
        count = min(start + k, size + hi_pad) - max(start, -lo_pad)
    else:
        count = end - first
    return first, end, count


@njit(cache=True)
def avg_pool2d_into(x, out, kh, kw, sh, sw, pt, pb, pl, pr, include_pad):
    n, c, oh_n, ow_n = out.shape
    h, w = x.shape[2], x.shape[3]
    for b in range(n):
        for ch in range(c):
            for oh in range(oh_n):
                y0, y1, cy = _window(oh * sh - pt, kh, h, pt, pb, include_pad)
                for ow in range(ow_n):
                    x0, x1, cx = _window(ow * sw - pl, kw, w, pl, pr, include_pad)
                    acc = 0.0
                    for y in range(y0, y1):
                        for xx in range(x0, x1):
                            acc += x[b, ch, y, xx]
                    out[b, ch, oh, ow] = acc / (cy * cx)


@njit(cache=True)
def avg_pool2d_grad_into(g, out, kh, kw, sh, sw, pt, pb, pl, pr, include_pad):
    """out (N, C, H, W): g of each window divided by its count, added over the window."""
    n, c, oh_n, ow_n = g.shape
    h, w = out.shape[2], out.shape[3]
    out[:] = 0
    for b in range(n):
        for ch in range(c):
            for oh in range(oh_n):
                y0, y1, cy = _window(oh * sh - pt, kh, h, pt, pb, include_pad)
                for ow in range(ow_n):
                    x0, x1, cx = _window(ow * sw - pl, kw, w, pl, pr, include_pad)
                    share = g[b, ch, oh, ow] / (cy * cx)
                    for y in range(y0, y1):
                        for xx in range(x0, x1):
                            out[b, ch, y, xx] += share
