"""A direct depthwise convolution (groups == C, one input channel per filter): conv2d_into
(conv_kernels.py) sends it here instead of im2col + one tiny GEMM per group, and the ONNX
importer no longer writes it as a sum of padded strided views (ShuffleNet, MobileNet).

Per input channel the image is copied into a zero-bordered scratch plane (allocated and zeroed
once per call, so only its inside is copied; it stays in cache, unlike a padded tensor): every
tap then reads inside it and no loop has a bounds test. The padding's zeros are multiplied like
the reference's (ops/conv.py pads with zeros), so an inf or nan weight next to the padding gives
the same nan. Three taps of a kernel row are summed in one pass over the output (a third of its
loads and stores). At stride 1 the output plane is kept "wide", at the padded plane's pitch, so
each kernel row is one contiguous loop over all output rows (conv_direct.py's trick; the junk
columns are never copied out); other strides run one loop per output row, reading every sw-th
input. The inner loops vectorize (LLVM).

Why flat arrays and uint64 indices everywhere: Numba slices an array with a reference-count
update and a signed index with a wraparound test; at ShuffleNet's sizes (136 channels of 28x28,
544 of 7x7) per-row views and slice copies cost more than the arithmetic (a 2-D view version
took ~0.25 ms on (1, 544, 7, 7)), and an index that may be negative stops the vectorizer.
Every integer below is uint64 (an int64 mixed in would make Numba compute in float64), hence
the U0/U1/U3 constants. No prange (DESIGN.md section 7).
"""
import numpy as np
from numba import njit

U = np.uint64
U0, U1, U3 = U(0), U(1), U(3)


@njit(cache=True, fastmath={"contract"})
def _copy_inside(xp, xf, src, h, wd, wp, pt, pl):
    """The padded plane xp's inside = the (h, wd) plane of xf starting at src."""
    for r in range(h):
        d, s = (pt + r) * wp + pl, src + r * wd
        for q in range(wd):
            xp[d + q] = xf[s + q]


@njit(cache=True, fastmath={"contract"})
def _wide_taps(acc, x, base, wf, wo, kh, kw, wp, dh, dw):
    """acc (wide output, pitch wp) = the stride-1 correlation of the plane x[base:] with the
    kernel wf[wo:wo + kh * kw]."""
    length = U(acc.shape[0])
    for p in range(length):
        acc[p] = 0
    for i in range(kh):
        row, wr = base + i * dh * wp, wo + i * kw
        j = U0
        while j + U3 <= kw:
            w0, w1, w2 = wf[wr + j], wf[wr + j + U1], wf[wr + j + U1 + U1]
            o0 = row + j * dw
            o1 = o0 + dw
            o2 = o1 + dw
            for p in range(length):
                acc[p] += w0 * x[o0 + p] + w1 * x[o1 + p] + w2 * x[o2 + p]
            j += U3
        while j < kw:
            wv, o0 = wf[wr + j], row + j * dw
            for p in range(length):
                acc[p] += wv * x[o0 + p]
            j += U1


@njit(cache=True, fastmath={"contract"})
def _strided_3x3(of, ob, oh_n, ow_n, x, base, wf, wo, wp, sh, sw, dh, dw):
    """_strided_taps for a 3x3 kernel: all nine taps per output in one loop per output row, the
    weights in registers (small strided planes: one pass per kernel row cost more in loop
    overhead than in arithmetic; (1, 544, 7, 7) stride 2: 0.26 -> 0.1 ms)."""
    w00, w01, w02 = wf[wo], wf[wo + U1], wf[wo + U1 + U1]
    w10, w11, w12 = wf[wo + U3], wf[wo + U3 + U1], wf[wo + U3 + U1 + U1]
    w20, w21, w22 = wf[wo + U3 + U3], wf[wo + U3 + U3 + U1], wf[wo + U3 + U3 + U1 + U1]
    for oh in range(oh_n):
        r0 = base + oh * sh * wp
        r1 = r0 + dh * wp
        r2 = r1 + dh * wp
        y = ob + oh * ow_n
        for q in range(ow_n):
            c0 = q * sw
            c1 = c0 + dw
            c2 = c1 + dw
            of[y + q] = (w00 * x[r0 + c0] + w01 * x[r0 + c1] + w02 * x[r0 + c2]
                         + w10 * x[r1 + c0] + w11 * x[r1 + c1] + w12 * x[r1 + c2]
                         + w20 * x[r2 + c0] + w21 * x[r2 + c1] + w22 * x[r2 + c2])


@njit(cache=True, fastmath={"contract"})
def _strided_taps(of, ob, oh_n, ow_n, x, base, wf, wo, kh, kw, wp, sh, sw, dh, dw):
    """of[ob:ob + oh_n * ow_n] = the correlation of the plane x[base:] with the kernel at wo,
    one loop per output row and kernel row."""
    if kh == U3 and kw == U3:
        _strided_3x3(of, ob, oh_n, ow_n, x, base, wf, wo, wp, sh, sw, dh, dw)
        return
    for p in range(oh_n * ow_n):
        of[ob + p] = 0
    for i in range(kh):
        wr = wo + i * kw
        for oh in range(oh_n):
            row, y = base + (oh * sh + i * dh) * wp, ob + oh * ow_n
            j = U0
            while j + U3 <= kw:
                w0, w1, w2 = wf[wr + j], wf[wr + j + U1], wf[wr + j + U1 + U1]
                o0 = row + j * dw
                o1 = o0 + dw
                o2 = o1 + dw
                for q in range(ow_n):
                    of[y + q] += w0 * x[o0 + q * sw] + w1 * x[o1 + q * sw] + w2 * x[o2 + q * sw]
                j += U3
            while j < kw:
                wv, o0 = wf[wr + j], row + j * dw
                for q in range(ow_n):
                    of[y + q] += wv * x[o0 + q * sw]
                j += U1


@njit(cache=True, fastmath={"contract"})
def depthwise_conv2d_into(x, w, out, sh_, sw_, pt_, pb_, pl_, pr_, dh_, dw_):
    """out (N, C*m, OH, OW) = conv2d(x (N, C, H, W), w (C*m, 1, kh, kw), groups=C): output
    channel oc filters input channel oc // m, with stride (sh, sw), padding (pt, pb, pl, pr)
    and dilation (dh, dw) (the int arguments get uint64 twins, sh_ -> sh: a name that changed
    type would be unified to float64). out must be C-contiguous, as conv2d_into's are."""
    depthwise_conv2d_bias_into(x, w, np.zeros(0, out.dtype), 0, out, sh_, sw_, pt_, pb_, pl_, pr_, dh_, dw_)


@njit(cache=True, fastmath={"contract"})
def depthwise_conv2d_bias_into(x, w, bias, relu, out, sh_, sw_, pt_, pb_, pl_, pr_, dh_, dw_):
    """depthwise_conv2d_into, then + bias[oc] (if bias has the o values) and max(., 0) if relu
    (a nan stays a nan), each output plane while it is in cache: a per-channel affine epilogue
    folded at compile time (lower_conv_affine.py; its scale is in w)."""
    shuffled_depthwise_into(x, np.zeros(0, np.int64), w, bias, relu, out, sh_, sw_, pt_, pb_, pl_, pr_, dh_, dw_)


@njit(cache=True, fastmath={"contract"})
def shuffled_depthwise_into(x, planes, w, bias, relu, out, sh_, sw_, pt_, pb_, pl_, pr_, dh_, dw_):
    """depthwise_conv2d_bias_into of the channels x[:, planes] (all of x's if planes is empty),
    read where they lie: a channel shuffle before a depthwise conv (ShuffleNet's reshape,
    transpose, reshape; channel_gather.py) costs no copy."""
    xc, wc = np.ascontiguousarray(x), np.ascontiguousarray(w)
    xf, wf, of = xc.reshape(xc.size), wc.reshape(wc.size), out.reshape(out.size)
    n, cx, h, wd = U(xc.shape[0]), U(xc.shape[1]), U(xc.shape[2]), U(xc.shape[3])
    c = U(planes.size) if planes.size else cx
    o, kh, kw = U(wc.shape[0]), U(wc.shape[2]), U(wc.shape[3])
    oh_n, ow_n = U(out.shape[2]), U(out.shape[3])
    sh, sw, pt, pl, dh, dw = U(sh_), U(sw_), U(pt_), U(pl_), U(dh_), U(dw_)
    m = o // c
    hp, wp = h + pt + U(pb_), wd + pl + U(pr_)
    padded = hp != h or wp != wd
    wide = sh == U1 and sw == U1
    xp = np.zeros(np.int64(hp * wp if padded else U0), xc.dtype)      # its border stays zero
    acc = np.empty(np.int64((oh_n - U1) * wp + ow_n if wide else U0), out.dtype)
    for b in range(n):
        for ci in range(c):
            src = (b * cx + (U(planes[ci]) if planes.size else ci)) * h * wd
            plane, base = xf, src
            if padded:
                _copy_inside(xp, xf, src, h, wd, wp, pt, pl)
                plane, base = xp, U0
            for oc in range(ci * m, (ci + U1) * m):
                ob = (b * o + oc) * oh_n * ow_n
                if wide:
                    _wide_taps(acc, plane, base, wf, oc * kh * kw, kh, kw, wp, dh, dw)
                    for oh in range(oh_n):
                        for q in range(ow_n):
                            of[ob + oh * ow_n + q] = acc[oh * wp + q]
                else:
                    _strided_taps(of, ob, oh_n, ow_n, plane, base, wf, oc * kh * kw, kh, kw, wp, sh, sw, dh, dw)
                if bias.size == o or relu:
                    _epilogue(of, ob, oh_n * ow_n, bias[oc] if bias.size == o else 0, relu)


@njit(cache=True, fastmath={"contract"})
def _epilogue(of, ob, size, b, relu):
    """of[ob:ob + size] + b, then clipped at 0 if relu (a nan stays a nan, as ops/unary.py's relu)."""
    for p in range(size):
        v = of[ob + p] + b
        of[ob + p] = 0.0 if relu and v < 0 else v


@njit(cache=True)
def gather_planes(x, planes):
    """x[:, planes] as a new C-contiguous array: a channel shuffle for a reader that cannot
    take the plane map itself."""
    xc = np.ascontiguousarray(x)
    out = np.empty((xc.shape[0], planes.size, xc.shape[2], xc.shape[3]), xc.dtype)
    for b in range(xc.shape[0]):
        for c in range(planes.size):
            out[b, c] = xc[b, planes[c]]
    return out
