"""Fixed Numba helpers for convolution, called by the generated steps
(lower_conv.py), like matmul_into: the sizes come from the arrays, the attrs are arguments,
so one compiled helper serves every shape. Which path a convolution takes depends on its
channels, kernel and plane, not on the batch size; the generated code names the path's
helper (conv2d_by_im2col, ...) where the shapes are known, else conv2d_into, which picks.

A 1x1 convolution with stride 1 and no padding needs no im2col: it is a plain GEMM over the
channels (even where the direct loops would take it: SqueezeNet's 1x1 16 -> 64 at 55x55
took 153 us as a GEMM, 460 us as direct loops; 8 -> 16 at 28x28 12 vs 24 us). Depthwise
convolutions run conv_depthwise.py's loops, stride-1 ones with few channels direct
vectorized loops (conv_direct.py, DIRECT_MAX_MACS), large 3x3 stride-1 ones Winograd's
F(2x2, 3x3) (conv_winograd.py, WINOGRAD_MIN_MACS), stride-1 ones with few output channels
per group one GEMM per tap with no im2col (conv_wide.py, WIDE_*); the others are im2col, a
band of output rows at a time, + one GEMM per group and band (conv_im2col.py). Its gradients
are the same GEMMs transposed: grad_input is GEMM + col2im, grad_weight im2col + GEMM
accumulated over the batch (beta = 1). The scratch is allocated per call
(np.empty); no prange anywhere, since BLAS calls must not run inside Numba's threads
(DESIGN.md section 7). Pooling is in pool_kernels.py.
"""
import numpy as np
from numba import njit

from .conv_blocked import blocked_conv2d_bias_into, blocked_conv2d_into
# gather_planes is re-exported for the generated steps (fastmath imports it from here)
from .conv_depthwise import (depthwise_conv2d_bias_into, depthwise_conv2d_into, gather_planes,  # noqa: F401
                             shuffled_depthwise_into)
from .conv_interleaved import interleaved_conv2d_into
from .conv_direct import (all_finite, direct_conv2d_grad_input_into, direct_conv2d_grad_weight_into,
                          direct_conv2d_into)
from .conv_im2col import TILE_FLOATS, fill_cols, im2col_conv2d_into
from .conv_wide import wide_conv2d_into
from .conv_winograd import TILE_FLOATS as WINOGRAD_TILE, winograd_conv2d_into
from .gemm import matmul_into

# Direct loops (conv_direct.py) win below this many multiply-adds per output position and
# group (C/groups * kh * kw * O/groups), at stride 1; measured (us, GEMM vs direct, forward):
# W5's 1->8 3x3: 358 vs 192; 8->16 3x3 on 14x14: 885 vs 511; 16->32 3x3: 1372 vs 2514.
DIRECT_MAX_MACS = 1536
# One GEMM per kernel tap without im2col (conv_wide.py) wins at stride 1 when a group has few
# output channels for its positions; measured (ms, 2 BLAS threads, 3x3 pad 1, im2col vs wide,
# two runs): DenseNet's 128 -> 32 at 56x56 11.7 vs 5.6 and 11.1 vs 6.7, at 14x14 1.14 vs 0.54;
# ResNet's 64 -> 64 at 56x56 5.4 vs 3.6; SqueezeNet's 32 -> 64 at 55x55 2.6 vs 1.9 (16 -> 64 even);
# 64 -> 128 at 56x56 6.6 vs 5.5; 96 -> 128 at 28x28 2.5 vs 2.2; 128 -> 128 at 28x28 even (3.0 vs 3.4,
# 3.7 vs 3.3); but 256 -> 256 at 14x14 3.3 vs 4.0 and 512 -> 512 at 7x7 3.8 vs 9.6.
# Winograd's F(2x2, 3x3) (conv_winograd.py) does 16 GEMMs of (O, C) @ (C, blocks) instead of
# 9 taps' worth; its transforms, the kernel's redone each call, pay from this many
# multiply-adds per GEMM on. Measured (ms, the other paths vs Winograd, 3x3 pad 1, min of 7):
# VGG's 64 -> 64 at 224x224 59.5 vs 37.8, 128 at 112x112 35.9 vs 28.5, 256 at 56x56 34.7 vs 24.0,
# 512 at 28x28 30.8 vs 27.4 (each 51M per GEMM); but 512 at 14x14 (13M) 9.4 vs 12.3, ResNet's
# 64 at 56x56 and 128 at 28x28 (3.2M) 3.1 vs 3.9 and 2.6 vs 4.1, 512 at 7x7 3.7 vs 12.1.
WINOGRAD_MIN_MACS = 1 << 24
WIDE_MIN_IN = 16                                 # at fewer, a GEMM per tap has too little to add
WIDE_LIMITS = ((64, 196), (128, 784))            # (output channels per group, positions) at most/least


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
def _wide(cg, kh, kw, og, sh, sw, positions):
    if sh != 1 or sw != 1 or kh * kw == 1 or cg < WIDE_MIN_IN:
        return False
    for most, least in WIDE_LIMITS:
        if og <= most and positions >= least:
            return True
    return False


@njit(cache=True)
def _winograd(cg, kh, kw, og, sh, sw, dh, dw, groups, oh_n, ow_n):
    if kh != 3 or kw != 3 or sh != 1 or sw != 1 or dh != 1 or dw != 1 or groups != 1:
        return False
    return og * cg * ((oh_n + 1) // 2) * ((ow_n + 1) // 2) >= WINOGRAD_MIN_MACS


@njit(cache=True)
def _direct(cg, kh, kw, og, sh, sw):
    return sh == 1 and sw == 1 and cg * kh * kw * og <= DIRECT_MAX_MACS


# The forward paths, in the order conv2d_path tries them. Each has a helper of conv2d_into's
# own signature, which the generated kernels call by name when the shapes are known as they
# are lowered (lower_conv.py): a Numba function links the code of every function it calls
# into its own and compiles it again, and conv2d_into reaches all six paths (a kernel calling
# it compiled in 5.4 s, one calling conv2d_by_im2col in 0.5 s, the helpers already cached).
DEPTHWISE, POINTWISE, DIRECT, BLOCKED, WINOGRAD, WIDE, IM2COL = range(7)
PATH_HELPERS = ("conv2d_by_depthwise", "conv2d_by_gemm", "conv2d_by_direct", "conv2d_by_blocked",
                "conv2d_by_winograd", "conv2d_by_wide", "conv2d_by_im2col")
# The register-blocked kernel (conv_blocked.py) takes every float32 convolution but the
# depthwise ones, when its weight is a constant: the lowering packs it once (packing
# 512 x 512 x 3 x 3 took 2-4 ms, more than the convolution). Measured (ms, 2 threads, the
# other paths vs blocked, min of 20): 64 -> 64 3x3 at 56x56 1.73 vs 0.91, 128 at 28x28 1.28
# vs 0.69, 256 at 14x14 0.92 vs 0.68, 512 at 7x7 1.13 vs 0.78, DenseNet's 128 -> 32 at 56x56
# 1.32 vs 0.86, VGG's 64 -> 64 at 224x224 21.6 vs 13.1, ResNet's stem 3 -> 64 7x7 stride 2
# 1.29 vs 0.74, 1x1 ones 0.31-0.37 vs 0.29-0.38; small ones too (us, GEMM / direct loops vs
# blocked): SqueezeNet's 1x1 96 -> 16 at 54x54 82 / 267 vs 70, 16 -> 64 41 / 261 vs 26, 3x3
# 8 -> 16 at 28x28 42 / 44 vs 19; only 64 -> 16 at 13x13 lost, 3 / 19 vs 5. It also keeps
# BLAS, and so BLAS's threads, out of CNN steps (DESIGN.md section 7). Of the path's
# convolutions, those larger than 1x1 whose channels fill blocks of 16 inputs and 32 outputs
# take conv_interleaved.py's kernel instead (the lowering decides, lower_conv._layout): 1.2-1.4x
# faster on ResNet's 3x3 layers, 1.4x on DenseNet's 128 -> 32.


@njit(cache=True)
def conv2d_path(c, o, cg, kh, kw, sh, sw, pt, pb, pl, pr, dh, dw, groups, oh_n, ow_n, winograd, blocked=False):
    """Which path computes this convolution: input channels c, output o, cg per group, kernel
    (kh, kw), stride, pads, dilation, groups, output (oh_n, ow_n); Winograd only if `winograd`
    (conv2d_by_winograd asks again without it for inputs that are not all finite); the
    blocked kernel only if `blocked` (a float32 constant weight, which the lowering packs)."""
    og = o // groups
    if cg == 1 and groups == c:                 # depthwise (channel multiplier og): conv_depthwise.py
        return DEPTHWISE
    if blocked:
        return BLOCKED
    if _pointwise(kh, kw, sh, sw, pt, pb, pl, pr):   # before _direct: a GEMM beats direct 1x1 loops
        return POINTWISE
    if _direct(cg, kh, kw, og, sh, sw):
        return DIRECT
    if winograd and _winograd(cg, kh, kw, og, sh, sw, dh, dw, groups, oh_n, ow_n):
        return WINOGRAD
    if _wide(cg, kh, kw, og, sh, sw, oh_n * ow_n):
        return WIDE
    return IM2COL


@njit(cache=True)
def conv2d_into(x, w, out, sh, sw, pt, pb, pl, pr, dh, dw, groups):
    """out (N, O, OH, OW) = conv2d(x (N, C, H, W), w (O, C // groups, kh, kw)) with stride
    (sh, sw), padding (pt, pb, pl, pr), dilation (dh, dw); by the path conv2d_path picks."""
    o, cg, kh, kw = w.shape
    path = conv2d_path(x.shape[1], o, cg, kh, kw, sh, sw, pt, pb, pl, pr, dh, dw, groups,
                       out.shape[2], out.shape[3], True)
    if path == DEPTHWISE:
        conv2d_by_depthwise(x, w, out, sh, sw, pt, pb, pl, pr, dh, dw, groups)
    elif path == POINTWISE:
        conv2d_by_gemm(x, w, out, sh, sw, pt, pb, pl, pr, dh, dw, groups)
    elif path == DIRECT:
        conv2d_by_direct(x, w, out, sh, sw, pt, pb, pl, pr, dh, dw, groups)
    elif path == WINOGRAD:
        conv2d_by_winograd(x, w, out, sh, sw, pt, pb, pl, pr, dh, dw, groups)
    elif path == WIDE:
        conv2d_by_wide(x, w, out, sh, sw, pt, pb, pl, pr, dh, dw, groups)
    else:
        conv2d_by_im2col(x, w, out, sh, sw, pt, pb, pl, pr, dh, dw, groups)


@njit(cache=True)
def conv2d_by_depthwise(x, w, out, sh, sw, pt, pb, pl, pr, dh, dw, groups):
    depthwise_conv2d_into(np.ascontiguousarray(x), np.ascontiguousarray(w), out, sh, sw, pt, pb, pl, pr, dh, dw)


@njit(cache=True)
def conv2d_by_depthwise_bias(x, w, bias, relu, out, sh, sw, pt, pb, pl, pr, dh, dw, groups):
    """conv2d_by_depthwise + a bias per output channel, then maybe a relu: a depthwise conv's
    per-channel affine epilogue, its scale folded into w (lower_conv_affine.py)."""
    depthwise_conv2d_bias_into(np.ascontiguousarray(x), np.ascontiguousarray(w), bias, relu, out,
                               sh, sw, pt, pb, pl, pr, dh, dw)


@njit(cache=True)
def conv2d_by_shuffled_depthwise(x, planes, w, bias, relu, out, sh, sw, pt, pb, pl, pr, dh, dw, groups):
    """conv2d_by_depthwise_bias of x[:, planes], reading x's planes where they lie (a channel
    shuffle folded into the reads: channel_gather.py)."""
    shuffled_depthwise_into(np.ascontiguousarray(x), planes, np.ascontiguousarray(w), bias, relu, out,
                            sh, sw, pt, pb, pl, pr, dh, dw)


@njit(cache=True)
def conv2d_by_gemm(x, w, out, sh, sw, pt, pb, pl, pr, dh, dw, groups):
    """A 1x1 kernel, stride 1, no padding: per image and group one GEMM over the channels."""
    xc, wc = np.ascontiguousarray(x), np.ascontiguousarray(w)
    n, o, cg = xc.shape[0], wc.shape[0], wc.shape[1]
    og, m = o // groups, out.shape[2] * out.shape[3]
    w3 = wc.reshape((groups, og, cg))
    x4, out4 = xc.reshape((n, groups, cg, m)), out.reshape((n, groups, og, m))
    for b in range(n):
        for g in range(groups):
            matmul_into(w3[g], x4[b, g], out4[b, g])


@njit(cache=True)
def conv2d_by_direct(x, w, out, sh, sw, pt, pb, pl, pr, dh, dw, groups):
    direct_conv2d_into(np.ascontiguousarray(x), np.ascontiguousarray(w), out, pt, pb, pl, pr, dh, dw, groups)


@njit(cache=True)
def conv2d_by_blocked(x, wpk, out, sh, sw, pt, pb, pl, pr, dh, dw, groups):
    """The register-blocked kernel (conv_blocked.py); wpk: the weight as pack_weights packs it."""
    blocked_conv2d_into(np.ascontiguousarray(x), wpk, out, sh, sw, pt, pb, pl, pr, dh, dw)


@njit(cache=True)
def conv2d_by_blocked_bias(x, wpk, bias, relu, out, sh, sw, pt, pb, pl, pr, dh, dw, groups):
    """conv2d_by_blocked plus a bias per output channel (conv_blocked.pack_bias), then a relu if
    relu: a conv's per-channel affine epilogue, folded into wpk and bias (lower_conv_affine.py)."""
    blocked_conv2d_bias_into(np.ascontiguousarray(x), wpk, bias, relu, out, 0, out, sh, sw, pt, pb, pl, pr, dh, dw)


@njit(cache=True)
def conv2d_by_blocked_residual(x, wpk, bias, relu, res, out, sh, sw, pt, pb, pl, pr, dh, dw, groups):
    """conv2d_by_blocked_bias with res (out's shape; it may be out itself) added before the relu,
    for a 1x1 kernel without padding (written in place): a residual block's last convolution."""
    if res.shape != out.shape:
        raise ValueError("conv2d_by_blocked_residual: the residual's shape is not the output's")
    blocked_conv2d_bias_into(np.ascontiguousarray(x), wpk, bias, relu, np.ascontiguousarray(res), 1, out,
                             sh, sw, pt, pb, pl, pr, dh, dw)


@njit(cache=True)
def conv2d_by_interleaved(x, wpk, out, sh, sw, pt, pb, pl, pr, dh, dw, groups):
    """The channel-interleaved kernel (conv_interleaved.py; wpk packed by its pack_weights), the
    blocked kernel's choice for convolutions larger than 1x1 whose channels fill its blocks."""
    bias = np.zeros(wpk.shape[0] * wpk.shape[1] * wpk.shape[6], np.float32)
    interleaved_conv2d_into(np.ascontiguousarray(x), wpk, bias, 0, out, 0, out, sh, sw, pt, pb, pl, pr, dh, dw)


@njit(cache=True)
def conv2d_by_interleaved_bias(x, wpk, bias, relu, out, sh, sw, pt, pb, pl, pr, dh, dw, groups):
    """conv2d_by_interleaved + a bias per channel (conv_interleaved.pack_bias), then maybe a relu."""
    interleaved_conv2d_into(np.ascontiguousarray(x), wpk, bias, relu, out, 0, out, sh, sw, pt, pb, pl, pr, dh, dw)


@njit(cache=True)
def conv2d_by_interleaved_residual(x, wpk, bias, relu, res, out, sh, sw, pt, pb, pl, pr, dh, dw, groups):
    """conv2d_by_interleaved_bias with res (out's shape; it may be out itself) added before the
    relu: a residual block's conv + batch norm + add + relu in one pass."""
    if res.shape != out.shape:
        raise ValueError("conv2d_by_interleaved_residual: the residual's shape is not the output's")
    interleaved_conv2d_into(np.ascontiguousarray(x), wpk, bias, relu, np.ascontiguousarray(res), 1, out,
                            sh, sw, pt, pb, pl, pr, dh, dw)


@njit(cache=True)
def conv2d_by_winograd(x, w, out, sh, sw, pt, pb, pl, pr, dh, dw, groups):
    """Winograd's transforms add and subtract inputs: an inf would give inf - inf = nan where
    the reference's sum has inf, so inputs that are not all finite take the path after it."""
    xc, wc = np.ascontiguousarray(x), np.ascontiguousarray(w)
    if all_finite(wc) and all_finite(xc):
        winograd_conv2d_into(xc, wc, out, pt, pl, WINOGRAD_TILE)
    elif conv2d_path(xc.shape[1], wc.shape[0], wc.shape[1], 3, 3, sh, sw, pt, pb, pl, pr, dh, dw, groups,
                     out.shape[2], out.shape[3], False) == WIDE:
        wide_conv2d_into(xc, wc, out, pt, pb, pl, pr, dh, dw, groups)
    else:
        im2col_conv2d_into(xc, wc, out, sh, sw, pt, pl, dh, dw, groups, TILE_FLOATS)


@njit(cache=True)
def conv2d_by_wide(x, w, out, sh, sw, pt, pb, pl, pr, dh, dw, groups):
    wide_conv2d_into(np.ascontiguousarray(x), np.ascontiguousarray(w), out, pt, pb, pl, pr, dh, dw, groups)


@njit(cache=True)
def conv2d_by_im2col(x, w, out, sh, sw, pt, pb, pl, pr, dh, dw, groups):
    im2col_conv2d_into(np.ascontiguousarray(x), np.ascontiguousarray(w), out, sh, sw, pt, pl, dh, dw,
                       groups, TILE_FLOATS)


def conv2d_helper(x_shape, w_shape, out_shape, stride, padding, dilation, groups, blocked=False):
    """The name of the helper a generated kernel calls for this convolution: its path's when
    the shapes are all known, else conv2d_into (which picks at run time, never the blocked
    kernel). blocked: the weight is a float32 constant the caller can pack."""
    if any(d is None for d in tuple(x_shape[1:]) + tuple(w_shape) + tuple(out_shape[2:])):
        return "conv2d_into"
    (pt, pb), (pl, pr) = padding
    o, cg, kh, kw = (int(d) for d in w_shape)
    path = conv2d_path(int(x_shape[1]), o, cg, kh, kw, *(int(v) for v in stride), int(pt), int(pb), int(pl),
                       int(pr), *(int(v) for v in dilation), int(groups), int(out_shape[2]), int(out_shape[3]), True,
                       blocked)
    return PATH_HELPERS[path]


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
        fill_cols(xc[b], cols.reshape((groups * k, oh_n * ow_n)), 0, oh_n, ow_n, kh, kw, sh, sw, pt, pl, dh, dw)
        for gi in range(groups):
            matmul_into(g4[b, gi], cols[gi].T, out3[gi], 1.0, 1.0)
