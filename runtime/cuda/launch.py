"""Launch configuration, chosen from the sizes at call time, and whether this is the simulator.

A kernel over n elements runs `blocks(n)` blocks of THREADS threads, each thread
striding through the elements (a grid-stride loop), so any n works with any
grid. The grid is capped (MAX_BLOCKS): past a few blocks per multiprocessor more
blocks only add scheduling, and a capped grid keeps the simulator, which runs
every thread as a Python thread, at a size it can finish.

Under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1) the same kernels run in
Python, block by block; a block's threads are real threads there, so blocks are
kept small (SIM_THREADS). The kernels' results do not depend on these numbers:
each reduction's shared-memory tree is written for the block size it is launched
with (the generated text says which).
"""
import os
import sys
import threading

import numpy as np
from numba import cuda

# Numba reads NUMBA_ENABLE_CUDASIM when numba.cuda is first imported, as we do here
SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"

THREADS = 32 if SIMULATOR else 256          # threads per block of an elementwise kernel
REDUCE_THREADS = 32 if SIMULATOR else 256   # threads per block of a reduction (a power of two)
TILE = 4 if SIMULATOR else 16               # matmul's shared-memory tile side


def _shared_arrays_made_once_per_block():
    """Under the simulator, make cuda.shared.array safe for a block's threads to call at once.

    The simulator (numba-cuda 0.30, simulator/kernelapi.py FakeCUDAShared.array) looks up a
    block's shared array by the calling line and creates it if missing, without a lock: two
    threads switching between the lookup and the store get two different arrays, and a
    shared-memory tree then adds up garbage. (It shows as rare wrong answers; running with
    short thread switches, as function.py does, makes it common.) This is that method with
    the lookup and the store under one lock; a GPU has no such step."""
    from numba.core import types
    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support
    original, lock = kernelapi.FakeCUDAShared.array, threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if alignment is not None or shape == 0:
            return original(self, shape, dtype, alignment)
        if isinstance(dtype, types.Type):
            dtype = numpy_support.as_dtype(dtype)
        frame = sys._getframe(1)                     # the kernel's line: the array's identity
        caller = (frame.f_code.co_filename, frame.f_lineno)
        with lock:
            res = self._allocations.get(caller)
            if res is None:
                res = self._allocations[caller] = np.empty(shape, dtype)
        return res
    kernelapi.FakeCUDAShared.array = array


if SIMULATOR:
    _shared_arrays_made_once_per_block()


def max_blocks():
    """The grid cap: 4 blocks per multiprocessor on a GPU, 4 in the simulator."""
    if SIMULATOR:
        return 4
    try:
        return 4 * cuda.get_current_device().MULTIPROCESSOR_COUNT
    except Exception:                # no context yet: a safe, generous default
        return 1024


_MAX = []


def blocks(n, threads=THREADS):
    """How many blocks a grid-stride kernel over n elements is launched with (>= 1)."""
    if not _MAX:
        _MAX.append(max_blocks())
    return max(1, min((int(n) + threads - 1) // threads, _MAX[0]))


def available():
    """None if kernels can run here (a GPU, or the simulator), else why not, for the error."""
    if SIMULATOR:
        return None
    try:
        if cuda.is_available():
            return None
        reason = "no CUDA GPU was found (numba.cuda.is_available() is False)"
    except Exception as e:          # a driver that fails to load
        reason = f"CUDA could not start: {e}"
    return (f"{reason}. To run backend='cuda' without a GPU, set NUMBA_ENABLE_CUDASIM=1 before "
            f"importing graphc (Numba's CUDA simulator: correct, but slow, for testing); "
            f"on a GPU machine install the cuda extra: pip install 'graphc[cuda]'")


def reduce_grid(shape, axes):
    """The grid of a reduction of an array of `shape` over `axes`: (blocks over the outputs,
    blocks splitting each output's elements).

    One block per output element while there are enough outputs to fill the GPU; fewer outputs
    than that (a sum over everything: one) split their elements over several blocks, whose
    partial results a second, small kernel combines (lower_loops.py)."""
    if not _MAX:
        _MAX.append(max_blocks())
    cap = _MAX[0]
    n_out = n_reduced = 1
    for k, d in enumerate(shape):
        if k in axes:
            n_reduced *= d
        else:
            n_out *= d
    n_out, n_reduced = max(1, int(n_out)), max(1, int(n_reduced))
    across = min(n_out, cap)
    split = 1
    if n_out < cap:
        enough_work = -(-n_reduced // (REDUCE_THREADS * 4))     # >= 4 elements per thread
        split = max(1, min(-(-cap // n_out), enough_work, 64))
    return across, split
