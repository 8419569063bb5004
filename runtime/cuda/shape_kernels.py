"""CUDA kernels and launchers for the shape ops: transpose, reshape, expand_dims, squeeze,
reshape_like, getitem, broadcast_like, concatenate, pad, unslice and split.

On the CUDA backend every value owns a C-contiguous device array (no views), so each of
these ops is a copy. All but pad are one kernel, `_strided_copy`: it walks an iteration
shape and, for the element at multi-index idx, copies
    src_flat[src_base + sum_d idx_d * src_stride_d] -> dst_flat[dst_base + sum_d idx_d * dst_stride_d]
(strides in elements, any sign, 0 for a broadcast axis). A gather (transpose, getitem,
broadcast_like, split's pieces, the reshape family) iterates over the output with its
contiguous strides on the destination side; a scatter (concatenate's pieces, unslice after
a zero fill) iterates over the source with contiguous strides on the source side. Pad has
its own kernel, so that each output element is written once (the value or a source element).

The index map of a launch is an int64 "plan" array, built on the host from the shapes and
attrs, with size-1 axes dropped and adjacent axes merged where both sides are contiguous
across them (a reshape becomes a 1-d copy, a transpose keeps only the axes it moves). Plans
are cached on the device by (op, shapes, attrs), so a repeated launch copies nothing to
the device. Rank is limited only by the plan's length: the kernels loop over its axes.

Shapes: a 0-d value arrives as a 1-element array of shape (1,); the launchers take the
logical rank from the attrs where it matters (getitem and unslice count the index's
entries that use an input axis; pad has one pair per axis; transpose one axis each).
"""
import numpy as np
from numba import cuda


from .launch import THREADS, blocks

# ------------------------------------------------------------------ kernels


@cuda.jit
def _strided_copy(src, dst, n, plan):
    """plan = [nd, src_base, dst_base, shape[nd], src_strides[nd], dst_strides[nd]]."""
    nd = plan[0]
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, n, step):
        rem = i
        so = plan[1]
        do = plan[2]
        for k in range(nd):
            d = nd - 1 - k                 # the last axis varies fastest
            size = plan[3 + d]
            q = rem // size
            j = rem - q * size
            rem = q
            so += j * plan[3 + nd + d]
            do += j * plan[3 + 2 * nd + d]
        dst[do] = src[so]


@cuda.jit
def _pad(src, dst, n, plan, value):
    """plan = [nd, out_shape[nd], before[nd], in_shape[nd], in_strides[nd]]; dst is contiguous."""
    nd = plan[0]
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, n, step):
        rem = i
        so = 0
        inside = True
        for k in range(nd):
            d = nd - 1 - k
            size = plan[1 + d]
            q = rem // size
            j = rem - q * size
            rem = q
            s = j - plan[1 + nd + d]
            if s < 0 or s >= plan[1 + 2 * nd + d]:
                inside = False
            so += s * plan[1 + 3 * nd + d]
        if inside:
            dst[i] = src[so]
        else:
            dst[i] = value


@cuda.jit
def _fill(dst, n, value):
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, n, step):
        dst[i] = value


# ------------------------------------------------------------------ host-side plans

def contiguous_strides(shape):
    """C-order strides of shape, in elements."""
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    return tuple(reversed(strides))


def copy_plan(shape, src_strides, dst_strides, src_base=0, dst_base=0):
    """The int64 plan of `_strided_copy` and its element count, axes simplified.

    Size-1 axes are dropped (their index is always 0); axis d is merged into the next
    one when both strides of d equal the next axis's strides times its size."""
    n = 1
    for d in shape:
        n *= d
    dims = []
    for size, ss, ds in zip(shape, src_strides, dst_strides):
        if size == 1:
            continue
        if dims:
            psize, pss, pds = dims[-1]
            if pss == ss * size and pds == ds * size:
                dims[-1] = (psize * size, ss, ds)
                continue
        dims.append((size, ss, ds))
    plan = [len(dims), src_base, dst_base]
    plan += [d[0] for d in dims] + [d[1] for d in dims] + [d[2] for d in dims]
    return np.asarray(plan, np.int64), n


_PLANS = {}      # (op, shapes, attrs) -> tuple of (device plan, element count)


def _cached(key, build):
    """The device plans for key, built by build() -> [(host plan, n), ...] on first use."""
    got = _PLANS.get(key)
    if got is None:
        got = tuple((cuda.to_device(plan), np.int64(n)) for plan, n in build())
        _PLANS[key] = got
    return got


def _run_copy(src, dst, plan, n):
    if n > 0:
        _strided_copy[blocks(n), THREADS](src.reshape(src.size), dst.reshape(dst.size), n, plan)


def _run_fill(dst, value):
    n = dst.size
    if n > 0:
        _fill[blocks(n), THREADS](dst.reshape(n), np.int64(n), dst.dtype.type(value))


def gather_plan(out_shape, src_strides, src_base=0):
    """Every output element (C order) read from the source at the given strides."""
    return copy_plan(tuple(out_shape), tuple(src_strides), contiguous_strides(out_shape), src_base, 0)


def broadcast_strides(shape, target):
    """Strides reading a C-contiguous array of `shape` broadcast to `target` (0 where broadcast).

    Leading size-1 axes beyond target's rank are dropped first (a 0-d value's (1,) array)."""
    shape = tuple(shape)
    while len(shape) > len(target) and shape[0] == 1:
        shape = shape[1:]
    if len(shape) > len(target):
        raise ValueError(f"cannot broadcast {shape} to {tuple(target)}")
    strides = contiguous_strides(shape)
    pad = len(target) - len(shape)
    out = [0] * pad
    for d, s, t in zip(shape, strides, target[pad:]):
        if d not in (1, t):
            raise ValueError(f"cannot broadcast {shape} to {tuple(target)}")
        out.append(0 if d == 1 and t != 1 else s)
    return tuple(out)


def slice_map(in_shape, index):
    """getitem's index map over a C-contiguous input: (base, sliced shape, strides)."""
    strides = contiguous_strides(in_shape)
    base, shape, steps, axis = 0, [], [], 0
    for k in index:
        if k[0] == "new":
            shape.append(1)
            steps.append(0)
            continue
        d, s = in_shape[axis], strides[axis]
        axis += 1
        if k[0] == "int":
            base += (k[1] + d if k[1] < 0 else k[1]) * s
        else:
            start, stop, step = slice(*k[1:]).indices(d)
            size = len(range(start, stop, step))
            shape.append(size)
            steps.append(step * s)
            if size:
                base += start * s
    return base, tuple(shape), tuple(steps)


def logical_shape(arr, rank):
    """The value's shape: the array's, except a 0-d value's (1,) array is ()."""
    return () if rank == 0 else tuple(arr.shape)


def _index_rank(index):
    return sum(1 for k in index if k[0] != "new")


# ------------------------------------------------------------------ launchers

def launch_flat_copy(x, *rest, **attrs):
    """reshape, expand_dims, squeeze, reshape_like: same elements, same order, new shape."""
    out = rest[-1]
    plans = _cached(("flat", x.size), lambda: [copy_plan((x.size,), (1,), (1,))])
    for plan, n in plans:
        _run_copy(x, out, plan, n)


def launch_transpose(x, out, axes=(), **attrs):
    shape = logical_shape(x, len(axes))
    key = ("transpose", shape, tuple(axes))

    def build():
        strides = contiguous_strides(shape)
        return [gather_plan(tuple(shape[a] for a in axes), tuple(strides[a] for a in axes))]
    for plan, n in _cached(key, build):
        _run_copy(x, out, plan, n)


def launch_getitem(x, out, index=(), **attrs):
    shape = logical_shape(x, _index_rank(index))
    key = ("getitem", shape, tuple(index))

    def build():
        base, sliced, strides = slice_map(shape, index)
        return [gather_plan(sliced, strides, base)]
    for plan, n in _cached(key, build):
        _run_copy(x, out, plan, n)


def launch_broadcast_like(x, like, out, **attrs):
    key = ("broadcast", tuple(x.shape), tuple(out.shape))
    for plan, n in _cached(key, lambda: [gather_plan(out.shape, broadcast_strides(x.shape, out.shape))]):
        _run_copy(x, out, plan, n)


def launch_split(x, *outs, bounds=(), axis=0, **attrs):
    shape = tuple(x.shape)
    key = ("split", shape, tuple(bounds), axis)

    def build():
        strides = contiguous_strides(shape)
        plans = []
        for a, b in bounds:
            piece = shape[:axis] + (b - a,) + shape[axis + 1:]
            plans.append(gather_plan(piece, strides, a * strides[axis]))
        return plans
    for out, (plan, n) in zip(outs, _cached(key, build)):
        if out is not None:                 # None: a piece nothing reads
            _run_copy(x, out, plan, n)


def launch_concatenate(*arrays, axis=0, **attrs):
    xs, out = arrays[:-1], arrays[-1]
    shapes = tuple(tuple(x.shape) for x in xs)
    key = ("concatenate", shapes, axis)

    def build():
        dst = contiguous_strides(out.shape)
        plans, offset = [], 0
        for shape in shapes:
            plans.append(copy_plan(shape, contiguous_strides(shape), dst, 0, offset * dst[axis]))
            offset += shape[axis]
        return plans
    for x, (plan, n) in zip(xs, _cached(key, build)):
        _run_copy(x, out, plan, n)


def launch_unslice(g, like, out, index=(), **attrs):
    """Zeros, then g (broadcast to the slice's shape) scattered into out[index]."""
    shape = logical_shape(out, _index_rank(index))
    key = ("unslice", tuple(g.shape), shape, tuple(index))

    def build():
        base, sliced, strides = slice_map(shape, index)
        return [copy_plan(sliced, broadcast_strides(g.shape, sliced), strides, 0, base)]
    _run_fill(out, 0)
    for plan, n in _cached(key, build):
        _run_copy(g, out, plan, n)


def launch_pad(x, out, pad_width=(), value=0, **attrs):
    nd = len(pad_width)
    shape = logical_shape(x, nd)
    key = ("pad", shape, tuple(pad_width))

    def build():
        out_shape = [d + a + b for d, (a, b) in zip(shape, pad_width)]
        plan = [nd] + out_shape + [a for a, _ in pad_width] + list(shape) + list(contiguous_strides(shape))
        n = 1
        for d in out_shape:
            n *= d
        return [(np.asarray(plan, np.int64), n)]
    ((plan, n),) = _cached(key, build)
    if n > 0:
        if x.size == 0:               # nothing to read: all padding
            _run_fill(out, value)
            return
        _pad[blocks(n), THREADS](x.reshape(x.size), out.reshape(n), n, plan, out.dtype.type(value))


LAUNCH = {
    "reshape": launch_flat_copy,
    "expand_dims": launch_flat_copy,
    "squeeze": launch_flat_copy,
    "reshape_like": launch_flat_copy,
    "transpose": launch_transpose,
    "getitem": launch_getitem,
    "broadcast_like": launch_broadcast_like,
    "split": launch_split,
    "concatenate": launch_concatenate,
    "unslice": launch_unslice,
    "pad": launch_pad,
}
