"""Fixed Numba helpers for pooling, called by the generated steps (lower_conv.py) like
conv2d_into: the sizes come from the arrays, the attrs are arguments. Direct loops, no prange
(a step calling BLAS runs without Numba's threads, DESIGN.md section 7). Ties of max pooling go
to the first maximum in row-major window order, as in the reference (ops/pool.py).

The forward pools (max's value, averages) are separable: per output row, its windows' rows
reduced into a padded row buffer, then each window's columns of that buffer; every loop over a
row only writes its result, so LLVM vectorizes it (at batch 1, Inception's 3x3 average on
(1, 256, 28, 28): 4.6 -> 0.27 ms; ResNet's 3x3 stride-2 max on (1, 64, 112, 112): 2.2 -> 0.23 ms).
Which maximum wins matters for the gradient and select only; they keep the per-window loops.
"""
import numpy as np
from numba import njit

# max_pool2d_grad and max_pool2d_select share one loop (_max_pool, `mode`; MAX: unused now): each
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
    if best == -np.inf and (i0 > 0 or j0 > 0):
        return best, -1, -1      # all -inf: the first maximum is a padding cell (-inf too)
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
        _max_pool_separable(x, out, kh, kw, sh, sw, pt, pl)


@njit(cache=True)
def _max_pool_separable(x, out, kh, kw, sh, sw, pt, pl):
    """The pooled maxima as a max over the window's in-image rows (whole rows, contiguous, into
    a row buffer padded with -inf), then over its kw columns: the same value as the max of the
    window (a nan wins either way; -inf for an empty window)."""
    n, c, oh_n, ow_n = out.shape
    h, w = x.shape[2], x.shape[3]
    V = np.full(max(pl + w, (ow_n - 1) * sw + kw), -np.inf, x.dtype)
    Vi = V[pl:pl + w]
    for b in range(n):
        for ch in range(c):
            xp, op = x[b, ch], out[b, ch]
            for oh in range(oh_n):
                ys = oh * sh - pt
                _rows_reduced(xp, 0, Vi, max(ys, 0), min(ys + kh, h), True)
                _columns_reduced(V, op[oh], V, ow_n, kw, sw, True)


@njit(inline="always")
def _flat_2x2(x, pooled, kh, kw, sh, sw, pt, pl):
    """The common 2x2 stride-2 pool with every window inside the image (no padding)."""
    return (kh == kw == sh == sw == 2 and pt == 0 and pl == 0 and 2 * pooled.shape[2] <= x.shape[2]
            and 2 * pooled.shape[3] <= x.shape[3])


@njit(inline="always")
def _nan_max(best, v):
    take = (v > best) | ((v != v) & (best == best))      # a nan wins; a tie keeps best
    return v if take else best


@njit(inline="always")
def _max_value(best, v):
    """_nan_max's value with fewer tests (a nan v is taken even over a nan best: still a nan),
    for the forward pool, where which maximum does not matter."""
    return v if (v > best) | (v != v) else best


@njit(inline="always")
def _first_max_2x2(a, b, c_, d):
    """Where the first maximum of the window (a b / c_ d) is, as three 0/1 flags found by
    arithmetic on the comparisons (no branches): ra = 1 if it is not a, rb = 1 if it is in
    the second row (neither a nor b), rc = 1 if it is not a, b or c_ (so it is d)."""
    best = _nan_max(_nan_max(_nan_max(a, b), c_), d)
    ra = 1 - np.int64((a == best) | (a != a))
    rb = ra * (1 - np.int64((b == best) | (b != b)))
    rc = rb * (1 - np.int64((c_ == best) | (c_ != c_)))
    return ra, rb, rc


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
                ra, rb, rc = _first_max_2x2(a, b, c_, d)
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
                ra, rb, rc = _first_max_2x2(a, b, c_, d)
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
def _inverse_counts(oh_n, ow_n, kh, kw, sh, sw, h, w, pt, pb, pl, pr, include_pad):
    """(OH, OW) float64: 1 / the count each average divides by (_window's rule)."""
    inv = np.empty((oh_n, ow_n))
    for oh in range(oh_n):
        cy = _window(oh * sh - pt, kh, h, pt, pb, include_pad)[2]
        for ow in range(ow_n):
            inv[oh, ow] = 1.0 / (cy * _window(ow * sw - pl, kw, w, pl, pr, include_pad)[2])
    return inv


@njit(cache=True)
def avg_pool2d_into(x, out, kh, kw, sh, sw, pt, pb, pl, pr, include_pad):
    """Separable: per output row, the in-image rows of its windows summed (float64, over the
    whole row, contiguous) into a row buffer padded with zeros, then each window's kw columns
    of that buffer summed and scaled by 1 / count."""
    n, c, oh_n, ow_n = out.shape
    h, w = x.shape[2], x.shape[3]
    inv = _inverse_counts(oh_n, ow_n, kh, kw, sh, sw, h, w, pt, pb, pl, pr, include_pad)
    V = np.zeros(max(pl + w, (ow_n - 1) * sw + kw))
    Vi = V[pl:pl + w]
    for b in range(n):
        for ch in range(c):
            xp, op = x[b, ch], out[b, ch]
            for oh in range(oh_n):
                y0, y1, _ = _window(oh * sh - pt, kh, h, pt, pb, include_pad)
                _rows_reduced(xp, 0, Vi, y0, y1, False)
                _columns_reduced(V, op[oh], inv[oh], ow_n, kw, sw, False)


@njit(inline="always")
def _rows_reduced(xp, lo, Vi, y0, y1, is_max):
    """Vi = the sum (or nan-winning max) of rows y0..y1 of the plane xp, from its column lo;
    0 / -inf if none.
    Up to three rows in one pass that only writes Vi: a loop that read and wrote Vi back
    (one row at a time) stayed scalar (W: (1, 64, 112, 112) 3x3 rows 0.75 ms; so 0.12 ms)."""
    w, rows = Vi.shape[0], y1 - y0
    if rows <= 0:
        Vi[:] = -np.inf if is_max else 0.0
        return
    r0 = xp[y0][lo:lo + w]
    if rows == 1:
        for k in range(w):
            Vi[k] = r0[k]
        return
    r1 = xp[y0 + 1][lo:lo + w]
    if rows == 2:
        for k in range(w):
            Vi[k] = _max_value(r0[k], r1[k]) if is_max else np.float64(r0[k]) + r1[k]
        return
    r2 = xp[y0 + 2][lo:lo + w]
    for k in range(w):
        Vi[k] = (_max_value(_max_value(r0[k], r1[k]), r2[k]) if is_max
                 else np.float64(r0[k]) + r1[k] + r2[k])
    for y in range(y0 + 3, y1):
        r = xp[y][lo:lo + w]
        for k in range(w):
            Vi[k] = _max_value(Vi[k], r[k]) if is_max else Vi[k] + r[k]


@njit(inline="always")
def _columns_reduced(V, o, scale, ow_n, kw, sw, is_max):
    """o[ow] = the sum (times scale[ow]) or max of V[ow * sw:ow * sw + kw]. The common window
    widths and strides as constants, so LLVM unrolls the window and vectorizes over ow."""
    if sw == 1 and kw == 3:
        _columns_sized(V, o, scale, ow_n, 3, 1, is_max)
    elif sw == 1 and kw == 2:
        _columns_sized(V, o, scale, ow_n, 2, 1, is_max)
    elif sw == 1:
        _columns_sized(V, o, scale, ow_n, kw, 1, is_max)
    elif sw == 2 and kw == 3:
        _columns_sized(V, o, scale, ow_n, 3, 2, is_max)
    elif sw == 2 and kw == 2:
        _columns_sized(V, o, scale, ow_n, 2, 2, is_max)
    else:
        _columns_sized(V, o, scale, ow_n, kw, sw, is_max)


@njit(inline="always")
def _columns_sized(V, o, scale, ow_n, kw, sw, is_max):
    for ow in range(ow_n):
        s = ow * sw
        acc = V[s]
        for j in range(1, kw):
            acc = _max_value(acc, V[s + j]) if is_max else acc + V[s + j]
        o[ow] = acc if is_max else acc * scale[ow]


@njit(cache=True)
def avg_pool2d_grad_into(g, out, kh, kw, sh, sw, pt, pb, pl, pr, include_pad):
    """out (N, C, H, W): g of each window divided by its count, added over the window; the
    transpose of avg_pool2d_into's separable sums, as gathers that only write their result:
    per output row oh, its shares spread over the padded columns (T[oh], float64: the shares
    placed every sw columns, then kw-wide sums), then each input row the sum of the T rows of
    the windows covering it (W: 3x3 (1, 192, 28, 28): 3.7 ms per-window scatter; so ~0.3 ms)."""
    n, c, oh_n, ow_n = g.shape
    h, w = out.shape[2], out.shape[3]
    inv = _inverse_counts(oh_n, ow_n, kh, kw, sh, sw, h, w, pt, pb, pl, pr, include_pad)
    wp = max(pl + w, (ow_n - 1) * sw + kw)
    T, U, ones = np.empty((oh_n, wp)), np.zeros(wp + kw - 1), np.ones(wp)
    for b in range(n):
        for ch in range(c):
            gp, op = g[b, ch], out[b, ch]
            for oh in range(oh_n):
                gr, iv = gp[oh], inv[oh]
                for ow in range(ow_n):
                    U[kw - 1 + ow * sw] = gr[ow] * iv[ow]    # the other cells stay 0
                _columns_reduced(U, T[oh], ones, wp, kw, 1, False)
            for y in range(h):
                first = max(0, -((kh - 1 - y - pt) // sh))    # ceil((y + pt - kh + 1) / sh)
                _rows_reduced(T, pl, op[y], first, min(oh_n, (y + pt) // sh + 1), False)
