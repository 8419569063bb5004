"""CUDA matmul: a tiled shared-memory kernel with numpy's matmul semantics.

What the op (ops/linalg.py) allows, and so what the launcher takes: 2-D
operands, 1-D operands (a vector `a` is one row, a vector `b` one column, the
axis dropped from the result), and batched operands whose leading axes
broadcast against each other. There are no transpose attributes: a transpose
is a node of its own, and the kernel gets C-contiguous arrays.

Each block computes one TILE x TILE tile of one matrix product, walking the
inner dimension one tile at a time: a and b tiles are staged in shared memory
so that each element read from global memory is used TILE times. Edges (sizes
that are not multiples of TILE) load zeros and skip the store. Blocks stride
over tiles and batch entries, so any size runs with a capped grid.

Dtypes follow the CPU backend (runtime/cpu/lower_linalg.py): the operands are
cast to the result's dtype as they are loaded, float32 accumulates in float32,
float64 in float64, and integers accumulate in uint64, whose wrap-around is
numpy's, then are narrowed to the result's dtype. The shared array's dtype must
be a compile-time constant, so there is one kernel per accumulator dtype
(`_kernel`).
"""
import numpy as np
from numba import cuda, types
from numba.np.numpy_support import from_dtype

from .launch import TILE
from .random_kernels import wrapping_quietly

GRID_DIM_MAX = 65535                 # CUDA's limit on gridDim.y and gridDim.z (x is capped the same)


def _accumulator(out_dtype):
    """(numba type of the shared tiles and the sum, cast to it) for a result dtype."""
    dt = np.dtype(out_dtype)
    if dt.kind == "f":
        return from_dtype(dt), dt.type
    return types.uint64, np.uint64       # ints: a wrapping sum, as numpy's


_KERNELS = {}


def _kernel(out_dtype):
    """The tiled kernel for one result dtype (compiled lazily per operand dtypes by Numba)."""
    key = np.dtype(out_dtype)
    if key in _KERNELS:
        return _KERNELS[key]
    tile_type, acc = _accumulator(key)
    narrow = key.type

    @cuda.jit
    def matmul_tiled(a, b, out, a_off, b_off, m, k, n):
        """out[t] = a[a_off[t]] @ b[b_off[t]] for every batch entry t; all arrays flat."""
        sa = cuda.shared.array((TILE, TILE), tile_type)
        sb = cuda.shared.array((TILE, TILE), tile_type)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        tiles_m = (m + TILE - 1) // TILE
        tiles_n = (n + TILE - 1) // TILE
        zero = acc(0)
        # every thread of a block runs the same iterations, so the syncthreads below are uniform
        for t in range(cuda.blockIdx.z, a_off.size, cuda.gridDim.z):
            ao, bo, oo = a_off[t], b_off[t], t * m * n
            for ti in range(cuda.blockIdx.y, tiles_m, cuda.gridDim.y):
                for tj in range(cuda.blockIdx.x, tiles_n, cuda.gridDim.x):
                    i = ti * TILE + ty
                    j = tj * TILE + tx
                    s = zero
                    for p0 in range(0, k, TILE):
                        pa = p0 + tx
                        pb = p0 + ty
                        sa[ty, tx] = acc(a[ao + i * k + pa]) if (i < m and pa < k) else zero
                        sb[ty, tx] = acc(b[bo + pb * n + j]) if (pb < k and j < n) else zero
                        cuda.syncthreads()
                        for q in range(TILE):
                            s += sa[ty, q] * sb[q, tx]
                        cuda.syncthreads()          # before the next tiles overwrite these
                    if i < m and j < n:
                        out[oo + i * n + j] = narrow(s)

    _KERNELS[key] = matmul_tiled
    return matmul_tiled


def _count(shape):
    c = 1
    for d in shape:
        c *= int(d)
    return c


_OFFSETS = {}


def _offsets(a_shape, b_shape):
    """(m, k, n, a_off, b_off): the product's sizes and, for every batch entry of the result
    (row-major over the broadcast batch axes), where its a and b matrices start in the flat
    operands. Device arrays, cached by the shapes: a repeated launch copies nothing."""
    key = a_shape, b_shape = tuple(map(int, a_shape)), tuple(map(int, b_shape))
    if key not in _OFFSETS:
        if len(a_shape) == 1:
            batch_a, (m, k) = (), (1, a_shape[0])
        else:
            batch_a, (m, k) = tuple(a_shape[:-2]), a_shape[-2:]
        if len(b_shape) == 1:
            batch_b, n = (), 1
        else:
            batch_b, n = tuple(b_shape[:-2]), b_shape[-1]
        batch = np.broadcast_shapes(batch_a, batch_b)

        def starts(own, size):
            """The first element of each batch entry's matrix; a broadcast axis repeats entry 0."""
            entries = np.arange(_count(own), dtype=np.int64).reshape(own)
            return np.ascontiguousarray(np.broadcast_to(entries, batch).reshape(-1) * size)

        a_off, b_off = starts(batch_a, m * k), starts(batch_b, k * n)
        _OFFSETS[key] = (int(m), int(k), int(n), cuda.to_device(a_off), cuda.to_device(b_off))
    return _OFFSETS[key]


def launch_matmul(a, b, out, **attrs):
    """out = a @ b (numpy's matmul: 1-D, 2-D and broadcast batched operands), out preallocated."""
    m, k, n, a_off, b_off = _offsets(a.shape, b.shape)
    nb = a_off.size
    if out.size == 0 or nb == 0:
        return
    tiles_m, tiles_n = -(-m // TILE), -(-n // TILE)
    grid = (min(tiles_n, GRID_DIM_MAX), min(tiles_m, GRID_DIM_MAX), min(nb, GRID_DIM_MAX))
    with wrapping_quietly():
        _kernel(out.dtype)[grid, (TILE, TILE)](a.reshape(a.size), b.reshape(b.size), out.reshape(out.size),
                                               a_off, b_off, m, k, n)


LAUNCH = {"matmul": launch_matmul}
