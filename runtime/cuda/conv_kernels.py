"""CUDA kernels of conv2d and its two gradient ops (NCHW activations, OIHW weights), with
their host-side launchers (the contract: runtime/cuda notes; LAUNCH at the bottom).

Direct kernels, one thread per element of the array being written, in a grid-stride loop,
so any size runs on the grid launch.blocks() chooses and no thread writes another's element:

    conv2d              a thread per output y[n, o, oh, ow]: its window of x times w's taps
    conv2d_grad_input   a thread per input dx[n, c, h, w]: it GATHERS from the outputs whose
                        windows read (h, w), so no atomics (and a deterministic sum order)
    conv2d_grad_weight  a thread per weight dw[o, c, i, j]: the sum over the batch and every
                        output position of x's tap times g

Padding is never materialized: a tap outside the image reads as zero (it is skipped).
Accumulation stays in the arrays' dtype (float32 sums in float32, as the CPU's sgemm does;
float64 in float64): each kernel is built per dtype by a factory closing over the numpy
scalar type, whose zero starts the sum (a literal 0.0 would promote float32 to float64).
"""
from functools import lru_cache

import numpy as np
from numba import cuda

from .launch import THREADS, blocks


@cuda.jit(device=True)
def unravel4(idx, d1, d2, d3):
    """(i0, i1, i2, i3): flat C-order index idx of a 4-D array of shape (_, d1, d2, d3), as
    every kernel here walks its output (or input, or weight) elements."""
    i3 = idx % d3
    rest = idx // d3
    i2 = rest % d2
    rest = rest // d2
    return rest // d1, rest % d1, i2, i3


def scalar_type(arr):
    """The numpy scalar type (np.float32 / np.float64) of a device or host array."""
    return np.dtype(arr.dtype).type


# ---------------------------------------------------------------- kernels


@lru_cache(maxsize=None)
def conv2d_kernel(cast):
    """The conv2d kernel accumulating in `cast` (np.float32 or np.float64)."""

    @cuda.jit
    def conv2d_direct(x, w, out, sh, sw, pt, pl, dh, dw, groups):
        n_, o_, oh_n, ow_n = out.shape
        h, wd = x.shape[2], x.shape[3]
        cg, kh, kw = w.shape[1], w.shape[2], w.shape[3]
        og = o_ // groups
        total = n_ * o_ * oh_n * ow_n
        idx = cuda.grid(1)
        step = cuda.gridsize(1)
        while idx < total:
            n, o, oh, ow = unravel4(idx, o_, oh_n, ow_n)
            c0 = (o // og) * cg                 # the first input channel of o's group
            acc = cast(0)
            for c in range(cg):
                for i in range(kh):
                    y = oh * sh + i * dh - pt
                    if 0 <= y < h:
                        for j in range(kw):
                            xx = ow * sw + j * dw - pl
                            if 0 <= xx < wd:
                                acc += x[n, c0 + c, y, xx] * w[o, c, i, j]
            out[n, o, oh, ow] = acc
            idx += step

    return conv2d_direct


@lru_cache(maxsize=None)
def grad_input_kernel(cast):
    """The conv2d_grad_input kernel accumulating in `cast`."""

    @cuda.jit
    def conv2d_grad_input_direct(g, w, out, sh, sw, pt, pl, dh, dw, groups):
        n_, c_, h, wd = out.shape
        o_, oh_n, ow_n = g.shape[1], g.shape[2], g.shape[3]
        cg, kh, kw = w.shape[1], w.shape[2], w.shape[3]
        og = o_ // groups
        total = n_ * c_ * h * wd
        idx = cuda.grid(1)
        step = cuda.gridsize(1)
        while idx < total:
            n, ci, y, xx = unravel4(idx, c_, h, wd)
            grp = ci // cg
            c = ci - grp * cg                    # the channel within its group (w's axis 1)
            acc = cast(0)
            for i in range(kh):
                ty = y + pt - i * dh             # = oh * sh for the output that reads (y, xx) with tap i
                if ty >= 0 and ty % sh == 0 and ty // sh < oh_n:
                    oh = ty // sh
                    for j in range(kw):
                        tx = xx + pl - j * dw
                        if tx >= 0 and tx % sw == 0 and tx // sw < ow_n:
                            ow = tx // sw
                            for oo in range(og):
                                o = grp * og + oo
                                acc += g[n, o, oh, ow] * w[o, c, i, j]
            out[n, ci, y, xx] = acc
            idx += step

    return conv2d_grad_input_direct


@lru_cache(maxsize=None)
def grad_weight_kernel(cast):
    """The conv2d_grad_weight kernel accumulating in `cast`."""

    @cuda.jit
    def conv2d_grad_weight_direct(x, g, out, sh, sw, pt, pl, dh, dw, groups):
        o_, cg, kh, kw = out.shape
        n_, h, wd = x.shape[0], x.shape[2], x.shape[3]
        oh_n, ow_n = g.shape[2], g.shape[3]
        og = o_ // groups
        total = o_ * cg * kh * kw
        idx = cuda.grid(1)
        step = cuda.gridsize(1)
        while idx < total:
            o, c, i, j = unravel4(idx, cg, kh, kw)
            ci = (o // og) * cg + c              # the input channel this weight reads
            acc = cast(0)
            for n in range(n_):
                for oh in range(oh_n):
                    y = oh * sh + i * dh - pt
                    if 0 <= y < h:
                        for ow in range(ow_n):
                            xx = ow * sw + j * dw - pl
                            if 0 <= xx < wd:
                                acc += x[n, ci, y, xx] * g[n, o, oh, ow]
            out[o, c, i, j] = acc
            idx += step

    return conv2d_grad_weight_direct


# ---------------------------------------------------------------- launchers


def _conv_args(stride, padding, dilation, groups):
    """The kernels' scalar arguments from the canonical attrs (the far pads only set sizes)."""
    (pt, _), (pl, _) = padding
    return (int(stride[0]), int(stride[1]), int(pt), int(pl), int(dilation[0]), int(dilation[1]),
            int(groups))


def launch_grid(kernel, n, *args):
    """Launch a grid-stride kernel over n elements (nothing to do for an empty array)."""
    if n == 0:
        return
    kernel[blocks(n), THREADS](*args)


def launch_conv2d(x, w, out, stride, padding, dilation, groups, **attrs):
    """out (N, O, OH, OW) = conv2d(x (N, C, H, W), w (O, C // groups, kh, kw))."""
    launch_grid(conv2d_kernel(scalar_type(out)), out.size, x, w, out,
            *_conv_args(stride, padding, dilation, groups))


def launch_conv2d_grad_input(g, w, out, stride, padding, dilation, groups, **attrs):
    """out (N, C, H, W) = dL/dx of conv2d given g = dL/dy (N, O, OH, OW); input_size is out's."""
    launch_grid(grad_input_kernel(scalar_type(out)), out.size, g, w, out,
            *_conv_args(stride, padding, dilation, groups))


def launch_conv2d_grad_weight(x, g, out, stride, padding, dilation, groups, **attrs):
    """out (O, C // groups, kh, kw) = dL/dw of conv2d given g = dL/dy; kernel_size is out's."""
    launch_grid(grad_weight_kernel(scalar_type(out)), out.size, x, g, out,
            *_conv_args(stride, padding, dilation, groups))


LAUNCH = {"conv2d": launch_conv2d, "conv2d_grad_input": launch_conv2d_grad_input,
          "conv2d_grad_weight": launch_conv2d_grad_weight}
