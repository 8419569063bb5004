"""CUDA kernels of 2-D max and average pooling and the ops their gradients are made of
(ops/pool.py), with their host-side launchers (LAUNCH at the bottom).

One thread per element of the array being written, in a grid-stride loop:

    max_pool2d          a thread per output: its window's maximum
    max_pool2d_select   a thread per output: G read at its window's arg-max
    max_pool2d_grad     a thread per input: the sum of g over the windows whose arg-max it is
                        (it gathers from the few windows covering it: no atomics)
    avg_pool2d          a thread per output: the window's sum / its count
    avg_pool2d_grad     a thread per input: the sum of g / count over the windows covering it

The arg-max is the reference's exactly (ops/pool.py argmax_positions): np.argmax over the
whole window in row-major order, the padding and ceil_mode's overhang reading as -inf, so
the FIRST maximum wins a tie, a nan wins over any number (the first nan), and a window whose
maximum sits outside the image (all of it -inf) sends its gradient nowhere. Sums stay in the
arrays' dtype (the kernels are built per dtype, closing over the numpy scalar type).
"""
import math
from functools import lru_cache

import numpy as np
from numba import cuda

from .conv_kernels import launch_grid, scalar_type, unravel4

MAX, SELECT = 0, 1                 # what the max-pool output kernel writes


@cuda.jit(device=True)
def window_argmax(x, n, c, ys, xs, kh, kw, lowest):
    """(value, row, column) of the first maximum of the kh x kw window of x[n, c] at (ys, xs),
    positions outside the image reading as `lowest` (-inf); row/column may be outside."""
    h, wd = x.shape[2], x.shape[3]
    best = lowest
    if 0 <= ys < h and 0 <= xs < wd:
        best = x[n, c, ys, xs]
    by, bx = ys, xs
    for i in range(kh):
        y = ys + i
        for j in range(kw):
            xx = xs + j
            v = lowest
            if 0 <= y < h and 0 <= xx < wd:
                v = x[n, c, y, xx]
            if v > best or (v != v and best == best):
                best, by, bx = v, y, xx
    return best, by, bx



@cuda.jit(device=True)
def covering_windows(pos, pad, k, s, n_out):
    """The range [lo, hi) of output indices along one axis whose window covers input pos."""
    t = pos + pad - k + 1                        # the window starting at oh * s - pad covers pos
    lo = 0 if t <= 0 else (t + s - 1) // s       # iff pos - k < oh * s - pad <= pos
    hi = min((pos + pad) // s + 1, n_out)
    return lo, hi



@cuda.jit(device=True)
def window_count(start, k, size, lo_pad, hi_pad, include_pad):
    """How many elements the average of the window starting at `start` divides by, along one
    axis: within the padded input (not ceil_mode's overhang), or within the input only."""
    if include_pad:
        return min(start + k, size + hi_pad) - max(start, -lo_pad)
    return min(start + k, size) - max(start, 0)



# ---------------------------------------------------------------- kernels


@lru_cache(maxsize=None)
def max_pool_kernel(cast, mode):
    """max_pool2d (mode MAX: out = the maxima) or max_pool2d_select (SELECT: out = G at each
    arg-max, 0 where it lies outside the image), in dtype `cast`."""

    @cuda.jit
    def max_pool_direct(x, G, out, kh, kw, sh, sw, pt, pl):
        n_, c_, oh_n, ow_n = out.shape
        h, wd = x.shape[2], x.shape[3]
        lowest = cast(-math.inf)
        total = n_ * c_ * oh_n * ow_n
        idx = cuda.grid(1)
        step = cuda.gridsize(1)
        while idx < total:
            n, c, oh, ow = unravel4(idx, c_, oh_n, ow_n)
            v, y, xx = window_argmax(x, n, c, oh * sh - pt, ow * sw - pl, kh, kw, lowest)
            if mode == MAX:
                out[n, c, oh, ow] = v
            elif 0 <= y < h and 0 <= xx < wd:
                out[n, c, oh, ow] = G[n, c, y, xx]
            else:
                out[n, c, oh, ow] = cast(0)
            idx += step

    return max_pool_direct


@lru_cache(maxsize=None)
def max_pool_grad_kernel(cast):
    """max_pool2d_grad: out (x's shape) = the sum of g over the windows arg-maxed at each input."""

    @cuda.jit
    def max_pool_grad_direct(x, g, out, kh, kw, sh, sw, pt, pl):
        n_, c_, h, wd = out.shape
        oh_n, ow_n = g.shape[2], g.shape[3]
        lowest = cast(-math.inf)
        total = n_ * c_ * h * wd
        idx = cuda.grid(1)
        step = cuda.gridsize(1)
        while idx < total:
            n, c, y, xx = unravel4(idx, c_, h, wd)
            oh0, oh1 = covering_windows(y, pt, kh, sh, oh_n)
            ow0, ow1 = covering_windows(xx, pl, kw, sw, ow_n)
            acc = cast(0)
            for oh in range(oh0, oh1):           # the same row-major order as the reference's sum
                for ow in range(ow0, ow1):
                    v, by, bx = window_argmax(x, n, c, oh * sh - pt, ow * sw - pl, kh, kw, lowest)
                    if by == y and bx == xx:
                        acc += g[n, c, oh, ow]
            out[n, c, y, xx] = acc
            idx += step

    return max_pool_grad_direct


@lru_cache(maxsize=None)
def avg_pool_kernel(cast):
    """avg_pool2d: out = each window's sum of inputs / its count, in dtype `cast`."""

    @cuda.jit
    def avg_pool_direct(x, out, kh, kw, sh, sw, pt, pb, pl, pr, include_pad):
        n_, c_, oh_n, ow_n = out.shape
        h, wd = x.shape[2], x.shape[3]
        total = n_ * c_ * oh_n * ow_n
        idx = cuda.grid(1)
        step = cuda.gridsize(1)
        while idx < total:
            n, c, oh, ow = unravel4(idx, c_, oh_n, ow_n)
            ys, xs = oh * sh - pt, ow * sw - pl
            acc = cast(0)
            for y in range(max(ys, 0), min(ys + kh, h)):
                for xx in range(max(xs, 0), min(xs + kw, wd)):
                    acc += x[n, c, y, xx]
            count = window_count(ys, kh, h, pt, pb, include_pad) * window_count(xs, kw, wd, pl, pr, include_pad)
            out[n, c, oh, ow] = acc / cast(count)
            idx += step

    return avg_pool_direct


@lru_cache(maxsize=None)
def avg_pool_grad_kernel(cast):
    """avg_pool2d_grad: out (N, C, H, W) = the sum of g / count over the windows covering each input."""

    @cuda.jit
    def avg_pool_grad_direct(g, out, kh, kw, sh, sw, pt, pb, pl, pr, include_pad):
        n_, c_, h, wd = out.shape
        oh_n, ow_n = g.shape[2], g.shape[3]
        total = n_ * c_ * h * wd
        idx = cuda.grid(1)
        step = cuda.gridsize(1)
        while idx < total:
            n, c, y, xx = unravel4(idx, c_, h, wd)
            oh0, oh1 = covering_windows(y, pt, kh, sh, oh_n)
            ow0, ow1 = covering_windows(xx, pl, kw, sw, ow_n)
            acc = cast(0)
            for oh in range(oh0, oh1):
                cy = window_count(oh * sh - pt, kh, h, pt, pb, include_pad)
                for ow in range(ow0, ow1):
                    cx = window_count(ow * sw - pl, kw, wd, pl, pr, include_pad)
                    acc += g[n, c, oh, ow] / cast(cy * cx)
            out[n, c, y, xx] = acc
            idx += step

    return avg_pool_grad_direct


# ---------------------------------------------------------------- launchers


def _max_args(kernel, stride, padding):
    """kh, kw, sh, sw, pad top, pad left (the far pads and ceil_mode only set the output's size)."""
    (pt, _), (pl, _) = padding
    return int(kernel[0]), int(kernel[1]), int(stride[0]), int(stride[1]), int(pt), int(pl)


def _avg_args(kernel, stride, padding, count_include_pad):
    (pt, pb), (pl, pr) = padding
    return (int(kernel[0]), int(kernel[1]), int(stride[0]), int(stride[1]), int(pt), int(pb), int(pl), int(pr),
            bool(count_include_pad))


def launch_max_pool2d(x, out, kernel, stride, padding, **attrs):
    """out (N, C, OH, OW) = the maximum of each window of x."""
    launch_grid(max_pool_kernel(scalar_type(out), MAX), out.size, x, x, out, *_max_args(kernel, stride, padding))


def launch_max_pool2d_select(x, G, out, kernel, stride, padding, **attrs):
    """out (the pooled shape) = G (x's shape) read at each window's first arg-max of x."""
    launch_grid(max_pool_kernel(scalar_type(out), SELECT), out.size, x, G, out,
            *_max_args(kernel, stride, padding))


def launch_max_pool2d_grad(x, g, out, kernel, stride, padding, **attrs):
    """out (x's shape) = g of each window added at the window's first arg-max."""
    launch_grid(max_pool_grad_kernel(scalar_type(out)), out.size, x, g, out, *_max_args(kernel, stride, padding))


def launch_avg_pool2d(x, out, kernel, stride, padding, count_include_pad, **attrs):
    """out (N, C, OH, OW) = the mean of each window of x."""
    launch_grid(avg_pool_kernel(scalar_type(out)), out.size, x, out,
            *_avg_args(kernel, stride, padding, count_include_pad))


def launch_avg_pool2d_grad(g, out, kernel, stride, padding, count_include_pad, **attrs):
    """out (N, C, H, W) = dL/dx of avg_pool2d given g; input_size is out's (H, W)."""
    launch_grid(avg_pool_grad_kernel(scalar_type(out)), out.size, g, out,
            *_avg_args(kernel, stride, padding, count_include_pad))


LAUNCH = {"max_pool2d": launch_max_pool2d, "max_pool2d_grad": launch_max_pool2d_grad,
          "max_pool2d_select": launch_max_pool2d_select, "avg_pool2d": launch_avg_pool2d,
          "avg_pool2d_grad": launch_avg_pool2d_grad}
