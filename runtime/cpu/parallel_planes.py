"""The forward pools and depthwise convolutions on Numba's threads, runs of (image, channel)
planes per task, for the steps that run no BLAS (lower_conv.py picks these there; DESIGN.md
section 7 says why not beside BLAS). Each plane is the serial kernel (pool_kernels.py,
conv_depthwise.py) on that plane's view, so the two give the same values. Measured (ms,
SqueezeNet at batch 1, its three 3x3 stride-2 max pools): 0.35, 0.24 and 0.18 serial, 0.15,
0.10 and ~0.08 here, where onnxruntime took 0.11 for all three. A plane per task, the average
pools made their 1 / counts per plane: runs of planes (_chunk) took Inception's 3x3 average
on (1, 576, 14, 14) from 0.150 to 0.064 ms, (1, 256, 28, 28) 0.184 to 0.074 (median of 50)."""
import numpy as np
from numba import njit, prange

from .conv_depthwise import depthwise_conv2d_bias_into, shuffled_depthwise_into
from .pool_kernels import avg_pool2d_into, max_pool2d_into

JOBS = 16


@njit(cache=True)
def _planes(x, out):
    """x and out as (N * C, 1, H, W) stacks of planes (C-contiguous: a slice of one stays so)."""
    xc = np.ascontiguousarray(x)
    return (xc.reshape((x.shape[0] * x.shape[1], 1, x.shape[2], x.shape[3])),
            out.reshape((out.shape[0] * out.shape[1], 1, out.shape[2], out.shape[3])))


@njit(cache=True)
def _chunk(n):
    """Planes per task: JOBS tasks (a few per thread), each a run of planes, so that the serial
    kernel's scratch (its row buffer, avg's 1 / counts) is made once per run, not per plane."""
    return (n + JOBS - 1) // JOBS


@njit(cache=True, parallel=True)
def max_pool2d_parallel_into(x, out, kh, kw, sh, sw, pt, pl):
    planes, o = _planes(x, out)
    n, per = planes.shape[0], _chunk(planes.shape[0])
    for k in prange((n + per - 1) // per):
        a, b = k * per, min(n, (k + 1) * per)
        max_pool2d_into(planes[a:b], o[a:b], kh, kw, sh, sw, pt, pl)


@njit(cache=True, parallel=True)
def avg_pool2d_parallel_into(x, out, kh, kw, sh, sw, pt, pb, pl, pr, include_pad):
    planes, o = _planes(x, out)
    n, per = planes.shape[0], _chunk(planes.shape[0])
    for k in prange((n + per - 1) // per):
        a, b = k * per, min(n, (k + 1) * per)
        avg_pool2d_into(planes[a:b], o[a:b], kh, kw, sh, sw, pt, pb, pl, pr, include_pad)


@njit(cache=True, parallel=True)
def conv2d_by_depthwise_parallel(x, w, out, sh, sw, pt, pb, pl, pr, dh, dw, groups):
    """conv_kernels.conv2d_by_depthwise (groups = C), a run of an image's input channels and
    their m outputs each per task (its padded scratch plane made once per run)."""
    conv2d_by_depthwise_bias_parallel(x, w, np.zeros(0, out.dtype), 0, out, sh, sw, pt, pb, pl, pr, dh, dw, groups)


@njit(cache=True, parallel=True)
def conv2d_by_depthwise_bias_parallel(x, w, bias, relu, out, sh, sw, pt, pb, pl, pr, dh, dw, groups):
    """conv_kernels.conv2d_by_depthwise_bias on the threads, as conv2d_by_depthwise_parallel."""
    n, c, h, wd = x.shape
    o = w.shape[0]
    m = o // c
    xf, wc, of = np.ascontiguousarray(x).reshape(x.size), np.ascontiguousarray(w), out.reshape(out.size)
    hw, ohw = h * wd, out.shape[2] * out.shape[3]
    per = _chunk(n * c)
    runs = (c + per - 1) // per                  # runs per image (a run stays in one image)
    for k in prange(n * runs):
        b, a = k // runs, (k % runs) * per
        e = min(c, a + per)
        xs = xf[(b * c + a) * hw:(b * c + e) * hw].reshape((1, e - a, h, wd))
        os = of[(b * o + a * m) * ohw:(b * o + e * m) * ohw].reshape((1, (e - a) * m, out.shape[2], out.shape[3]))
        depthwise_conv2d_bias_into(xs, wc[a * m:e * m], bias[a * m:e * m] if bias.size == o else bias, relu, os,
                                   sh, sw, pt, pb, pl, pr, dh, dw)


@njit(cache=True, parallel=True)
def conv2d_by_shuffled_depthwise_parallel(x, planes, w, bias, relu, out, sh, sw, pt, pb, pl, pr, dh, dw, groups):
    """conv_kernels.conv2d_by_shuffled_depthwise on the threads, as conv2d_by_depthwise_parallel:
    a run reads its channels out of the whole image through its slice of planes."""
    n, c, o = x.shape[0], planes.size, w.shape[0]
    m = o // c
    xc, wc, of = np.ascontiguousarray(x), np.ascontiguousarray(w), out.reshape(out.size)
    ohw = out.shape[2] * out.shape[3]
    per = _chunk(n * c)
    runs = (c + per - 1) // per
    for k in prange(n * runs):
        b, a = k // runs, (k % runs) * per
        e = min(c, a + per)
        os = of[(b * o + a * m) * ohw:(b * o + e * m) * ohw].reshape((1, (e - a) * m, out.shape[2], out.shape[3]))
        shuffled_depthwise_into(xc[b:b + 1], planes[a:e], wc[a * m:e * m], bias[a * m:e * m] if bias.size == o else bias,
                                relu, os, sh, sw, pt, pb, pl, pr, dh, dw)
