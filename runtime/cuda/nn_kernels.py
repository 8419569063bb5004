"""CUDA row kernels: softmax, log_softmax, argmax, argmin; and one_hot.

A "row" is the values along the reduced axis for one position of the other
axes: viewing the input as (outer, length, inner), row r = (o, i) holds
x[o, :, i], element j at o * length * inner + j * inner + i. One block of
REDUCE_THREADS threads handles a row (blocks stride over rows, so the grid is
capped): each thread folds the elements j = tid, tid + T, ... and a
shared-memory tree combines the threads' partial results. The tree is written
for the block size it is launched with (REDUCE_THREADS, a power of two).

softmax / log_softmax use the stable formula of the op's reference (ops/nn.py):
the row max first (nan wins, as np.max), then exp(x - max) and its sum, then
e / sum, or (x - max) - log(sum) for log_softmax. exp and log are devmath's,
which give IEEE answers also under the simulator.

argmax / argmin follow numpy: the first index of the best value, and the first
nan if there is one. Each thread sees its elements in increasing order, but the
tree combines results of interleaved indices, so `_takes` compares indices
explicitly. Over all axes (or a vector) the whole input is one row.
"""
import numpy as np
from numba import cuda, types
from numba.np.numpy_support import from_dtype

from . import devmath
from .launch import REDUCE_THREADS, THREADS, blocks

T = REDUCE_THREADS
device = cuda.jit(device=True)


def _row_grid(rows):
    """Blocks for `rows` rows: one per row, capped (the kernels stride over rows)."""
    return blocks(rows, threads=1)


def _rows_of(shape, axis):
    """(outer, length, inner): the input seen as rows along `axis`."""
    shape = tuple(int(d) for d in shape)
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    return outer, shape[axis], inner


# ---------------------------------------------------------------- softmax, log_softmax

_SOFTMAX = {}


def _softmax_kernel(dtype, log):
    key = (np.dtype(dtype), log)
    if key in _SOFTMAX:
        return _SOFTMAX[key]
    f32 = key[0] == np.float32
    ftype = from_dtype(key[0])
    exp = devmath.exp32 if f32 else devmath.exp64
    logf = devmath.log32 if f32 else devmath.log64
    neg_inf, zero = key[0].type(-np.inf), key[0].type(0)

    @cuda.jit
    def softmax_rows(x, out, length, inner):
        red = cuda.shared.array(T, ftype)
        tid = cuda.threadIdx.x
        rows = x.size // length
        for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
            base = (r // inner) * length * inner + r % inner
            # the row max (nan wins): each thread's part, then the tree
            m = neg_inf
            for j in range(tid, length, T):
                v = x[base + j * inner]
                if v > m or v != v:
                    m = v
            red[tid] = m
            cuda.syncthreads()
            s = T // 2
            while s > 0:
                if tid < s:
                    w = red[tid + s]
                    if w > red[tid] or w != w:
                        red[tid] = w
                cuda.syncthreads()
                s //= 2
            m = red[0]
            cuda.syncthreads()                 # everyone has read the max before red is reused
            # exp(x - max) (stored for softmax) and its sum
            acc = zero
            for j in range(tid, length, T):
                e = exp(x[base + j * inner] - m)
                acc += e
                if not log:
                    out[base + j * inner] = e
            red[tid] = acc
            cuda.syncthreads()
            s = T // 2
            while s > 0:
                if tid < s:
                    red[tid] += red[tid + s]
                cuda.syncthreads()
                s //= 2
            total = red[0]
            cuda.syncthreads()                 # ... and the sum, before the next row's max
            if log:
                ls = logf(total)
                for j in range(tid, length, T):
                    out[base + j * inner] = (x[base + j * inner] - m) - ls    # x - m first: exact near m
            else:
                for j in range(tid, length, T):      # this thread wrote these e's itself
                    out[base + j * inner] = out[base + j * inner] / total

    _SOFTMAX[key] = softmax_rows
    return softmax_rows


def _launch_softmax_like(x, out, axis, log):
    if x.size == 0:
        return
    outer, length, inner = _rows_of(x.shape, axis)
    _softmax_kernel(x.dtype, log)[_row_grid(outer * inner), T](
        x.reshape(x.size), out.reshape(out.size), length, inner)


def launch_softmax(x, out, axis, **attrs):
    """out = softmax(x) along `axis` (an int, normalized by the op)."""
    _launch_softmax_like(x, out, axis, False)


def launch_log_softmax(x, out, axis, **attrs):
    """out = log_softmax(x) along `axis`."""
    _launch_softmax_like(x, out, axis, True)


# ---------------------------------------------------------------- argmax, argmin


@device
def _takes(v, iv, w, iw, is_max):
    """Whether candidate (v at index iv) replaces the current best (w at iw), numpy's rule:
    the first nan wins, else the better value, and of equal values the first index.
    An index below 0 marks an empty slot (a thread that had no elements)."""
    if iv < 0:
        return False
    if iw < 0:
        return True
    v_nan = v != v
    w_nan = w != w
    if v_nan or w_nan:
        return v_nan and (not w_nan or iv < iw)
    if v == w:
        return iv < iw
    return v > w if is_max else v < w


_ARG = {}


def _arg_kernel(dtype, is_max):
    key = (np.dtype(dtype), is_max)
    if key in _ARG:
        return _ARG[key]
    store = np.dtype(np.uint8) if key[0] == np.bool_ else key[0]     # bools compare as 0 / 1
    vtype, cast = from_dtype(store), store.type

    @cuda.jit
    def arg_rows(x, out, length, inner):
        vals = cuda.shared.array(T, vtype)
        idxs = cuda.shared.array(T, types.int64)
        tid = cuda.threadIdx.x
        rows = x.size // length
        for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
            base = (r // inner) * length * inner + r % inner
            best = cast(0)
            at = -1
            for j in range(tid, length, T):
                v = cast(x[base + j * inner])
                if _takes(v, j, best, at, is_max):
                    best = v
                    at = j
            vals[tid] = best
            idxs[tid] = at
            cuda.syncthreads()
            s = T // 2
            while s > 0:
                if tid < s and _takes(vals[tid + s], idxs[tid + s], vals[tid], idxs[tid], is_max):
                    vals[tid] = vals[tid + s]
                    idxs[tid] = idxs[tid + s]
                cuda.syncthreads()
                s //= 2
            if tid == 0:
                out[r] = idxs[0]
            cuda.syncthreads()                 # thread 0 has read the answer before the next row

    _ARG[key] = arg_rows
    return arg_rows


def _launch_arg(x, out, axis, is_max):
    if len(axis) == 1 and len(x.shape) > 1:
        outer, length, inner = _rows_of(x.shape, axis[0])
    else:                                      # all axes: the index into the flattened input
        outer, length, inner = 1, int(x.size), 1
    if outer * inner == 0:
        return
    _arg_kernel(x.dtype, is_max)[_row_grid(outer * inner), T](
        x.reshape(x.size), out.reshape(out.size), length, inner)


def launch_argmax(x, out, axis, **attrs):
    """out (int64) = argmax of x along the one axis in `axis`, or over all of them."""
    _launch_arg(x, out, axis, True)


def launch_argmin(x, out, axis, **attrs):
    """out (int64) = argmin of x, as argmax."""
    _launch_arg(x, out, axis, False)


# ---------------------------------------------------------------- one_hot


@cuda.jit
def one_hot_flat(idx, out, depth):
    """out[p, k] = 1 where idx[p] == k, else 0 (an index outside [0, depth) gives a zero row);
    a grid-stride loop over the flat output, so every element is written."""
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, out.size, stride):
        out[e] = 1 if idx[e // depth] == e % depth else 0


def launch_one_hot(idx, out, depth, **attrs):
    """out (shape idx.shape + (depth,), the op's dtype) = one_hot(idx, depth)."""
    if out.size == 0:
        return
    one_hot_flat[blocks(out.size), THREADS](idx.reshape(idx.size), out.reshape(out.size), depth)


LAUNCH = {"softmax": launch_softmax, "log_softmax": launch_log_softmax,
          "argmax": launch_argmax, "argmin": launch_argmin, "one_hot": launch_one_hot}
