"""Host-side helpers the generated CUDA step calls between its kernel launches.

Device arrays have no numpy methods; these are the few things a step does to
them besides launching kernels: copy one, copy one into another (an update
written at the end of the step), hand a reduction its scratch for partial
results, and turn a kernel's error flag into the error the interpreter raises.
"""
import numpy as np
from numba import cuda

_scratch = {}          # (shape, dtype) -> a device array reused by every reduction of that size


def copy(src):
    """A new device array holding src's values (a device-to-device copy)."""
    dst = cuda.device_array(src.shape, src.dtype)
    if src.size:                     # (an empty array's strides may not match: nothing to copy)
        dst.copy_to_device(src)
    return dst


def copy_into(src, dst):
    """dst[...] = src, on the device (src may be of another shape with as many elements)."""
    if dst.size == 0:
        return
    dst.copy_to_device(src if src.shape == dst.shape else src.reshape(dst.shape))


def partials(grid, dtype):
    """Scratch for a reduction split over grid[1] blocks per output: (outputs, splits) values.
    One array per size, shared: calls of compiled CUDA functions run one at a time
    (runtime/cuda/function.py), and a step's kernels run in order on one stream."""
    shape = (grid[0], grid[1]) if grid[1] > 1 else (1, 1)
    key = (shape, np.dtype(dtype))
    arr = _scratch.get(key)
    if arr is None:
        arr = _scratch[key] = cuda.device_array(shape, dtype)
    return arr


def scratch(shape, dtype):
    """A device array for a value no buffer holds, used at once by the next kernel (a fused
    convolution's output before its epilogue); shared per shape like `partials`."""
    key = ("scratch", tuple(shape), np.dtype(dtype))
    arr = _scratch.get(key)
    if arr is None:
        arr = _scratch[key] = cuda.device_array(shape, dtype)
    return arr


def error_flag():
    """A zeroed one-element int32 device array a kernel sets when its check fails."""
    return cuda.to_device(np.zeros(1, np.int32))


def raise_if(flag, message):
    """After a kernel with a check: raise what the CPU kernel raises ("graphc check k: ...")."""
    if flag.copy_to_host()[0]:
        raise ValueError(message)
