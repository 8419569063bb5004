"""Scalar functions written once as plain Python on numpy scalars, which each backend compiles
for one element: the CPU backend with numba.njit (runtime/cpu/fastmath.py), the CUDA backend
as device functions (runtime/cuda/devmath.py). (gc.random's formula lives with its op, in
ops/random.py, for the same reason.)"""
import numpy as np


def ipow_u64(base, exp):
    """base ** exp in uint64 by repeated squaring, wrapping modulo 2**64 as numpy's integer power
    does (Numba's own ** goes through floats for large exponents: 3 ** (2**63 - 1) came out as
    -2**63). The kernels compute every integer power in uint64 (runtime/cpu/loops.py)."""
    result = np.uint64(1)
    while exp:
        if exp & np.uint64(1):
            result *= base
        base *= base
        exp >>= np.uint64(1)
    return result
