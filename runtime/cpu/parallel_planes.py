"""The forward pools and depthwise convolutions on Numba's threads, one (image, channel)
plane per task, for the steps that run no BLAS (lower_conv.py picks these there; DESIGN.md
section 7 says why not beside BLAS). Each plane is the serial kernel (pool_kernels.py,
conv_depthwise.py) on that plane's view, so the two give the same values. Measured (ms,
SqueezeNet at batch 1, its three 3x3 stride-2 max pools): 0.35, 0.24 and 0.18 serial, 0.15,
0.10 and ~0.08 here, where onnxruntime took 0.11 for all three."""
import numpy as np
from numba import njit, prange

from .conv_depthwise import depthwise_conv2d_into
from .pool_kernels import avg_pool2d_into, max_pool2d_into


@njit(cache=True)
def _planes(x, out):
    """x and out as (N * C, 1, H, W) stacks of planes (C-contiguous: a slice of one stays so)."""
    xc = np.ascontiguousarray(x)
    return (xc.reshape((x.shape[0] * x.shape[1], 1, x.shape[2], x.shape[3])),
            out.reshape((out.shape[0] * out.shape[1], 1, out.shape[2], out.shape[3])))


@njit(cache=True, parallel=True)
def max_pool2d_parallel_into(x, out, kh, kw, sh, sw, pt, pl):
    planes, o = _planes(x, out)
    for k in prange(planes.shape[0]):
        max_pool2d_into(planes[k:k + 1], o[k:k + 1], kh, kw, sh, sw, pt, pl)


@njit(cache=True, parallel=True)
def avg_pool2d_parallel_into(x, out, kh, kw, sh, sw, pt, pb, pl, pr, include_pad):
    planes, o = _planes(x, out)
    for k in prange(planes.shape[0]):
        avg_pool2d_into(planes[k:k + 1], o[k:k + 1], kh, kw, sh, sw, pt, pb, pl, pr, include_pad)


@njit(cache=True, parallel=True)
def conv2d_by_depthwise_parallel(x, w, out, sh, sw, pt, pb, pl, pr, dh, dw, groups):
    """conv_kernels.conv2d_by_depthwise (groups = C), an input channel and its m outputs per task."""
    n, c, h, wd = x.shape
    o, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    m = o // c
    xs = np.ascontiguousarray(x).reshape((n * c, 1, h, wd))
    ws = np.ascontiguousarray(w).reshape((c, m, 1, kh, kw))
    outs = out.reshape((n * c, m, out.shape[2], out.shape[3]))
    for k in prange(n * c):
        depthwise_conv2d_into(xs[k:k + 1], ws[k % c], outs[k:k + 1], sh, sw, pt, pb, pl, pr, dh, dw)
