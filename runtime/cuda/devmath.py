"""The math the generated CUDA kernels call (CudaTarget.MATH names these), as device functions.

On a GPU `math.exp` of a float32 is CUDA's expf: IEEE results (inf on
overflow, nan for log of a negative). Under the simulator the same kernel is
Python, where math.exp(1000.0) raises OverflowError and math.log(0.0) and
math.sqrt(-1.0) raise ValueError. So each function takes the IEEE answer's
branch itself before calling `math`; on a GPU that costs a compare, and both
places give numpy's answers. Each result is converted to the dtype asked for:
under the simulator `math` returns Python floats (float64), which would
otherwise turn a float32 kernel's arithmetic into float64 and make 1.0 / 0.0
raise ZeroDivisionError instead of giving inf.

The float formulas are the CPU backend's (runtime/cpu/fastmath.py): sigmoid and
softplus from exp(-|x|), which never overflows.
"""
import math

import numpy as np
from numba import cuda

from graphc.runtime.scalar_math import ipow_u64 as _ipow

F32, F64 = np.float32, np.float64
EXP_MAX32, EXP_MAX64 = 88.72283905206835, 709.782712893384     # log of the largest finite value
INF32, INF64, NAN32, NAN64 = F32(np.inf), F64(np.inf), F32(np.nan), F64(np.nan)

device = cuda.jit(device=True)


@device
def exp32(x):
    return INF32 if x > EXP_MAX32 else F32(math.exp(x))


@device
def exp64(x):
    return INF64 if x > EXP_MAX64 else F64(math.exp(x))


@device
def expm1_32(x):
    return INF32 if x > EXP_MAX32 else F32(math.expm1(x))


@device
def expm1_64(x):
    return INF64 if x > EXP_MAX64 else F64(math.expm1(x))


@device
def log32(x):
    if x == 0:
        return -INF32
    return NAN32 if x < 0 else F32(math.log(x))


@device
def log64(x):
    if x == 0:
        return -INF64
    return NAN64 if x < 0 else F64(math.log(x))


@device
def sqrt32(x):
    return NAN32 if x < 0 else F32(math.sqrt(x))


@device
def sqrt64(x):
    return NAN64 if x < 0 else F64(math.sqrt(x))


@device
def tanh32(x):
    return F32(math.tanh(x))


@device
def tanh64(x):
    return F64(math.tanh(x))


@device
def sigmoid32(x):
    e = exp32(-abs(x))
    s = F32(1) / (F32(1) + e)
    return s if x >= 0 else e * s


@device
def sigmoid64(x):
    e = exp64(-abs(x))
    s = 1.0 / (1.0 + e)
    return s if x >= 0 else e * s


@device
def softplus32(x):
    return max(x, F32(0)) + F32(math.log1p(exp32(-abs(x))))


@device
def softplus64(x):
    return max(x, 0.0) + F64(math.log1p(exp64(-abs(x))))


@device
def erf32(x):
    return F32(math.erf(x))


@device
def erf64(x):
    return F64(math.erf(x))


# every integer power is computed in uint64 (runtime/cpu/loops.py); the same function as the CPU's
ipow_u64 = device(_ipow)
