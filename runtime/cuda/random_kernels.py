"""CUDA random_uniform / random_normal: the formula of ops/random.py, compiled for one element.

The numpy reference and the CPU backend (runtime/cpu/fastmath.py: njit of the
same functions) compute element i as

    from_bits(splitmix64(uint64(i) + counter * COUNTER_STEP + stream_key(seed, stream)))

in wrapping uint64 arithmetic. Here the very same Python functions
(splitmix64, uniform_from_bits, normal_from_bits) become device functions, so
there is one formula to keep right. The op's key (seed and stream are
attributes) is computed on the host once; the counter stays a device array,
read by the kernel, so a call never copies it back to the host. Each element
is independent: a grid-stride loop over the flat output.

The float64 result is stored into the output, whose dtype (float32 or float64)
converts it with round-to-nearest, as the reference's astype does. Uniform
numbers are exact integer arithmetic, the same bits on any device; normal
numbers go through log1p, sqrt and cos, the device's own implementations on a
GPU (CUDA's libdevice, which may differ from the host's libm in the last bit of
a float64; float32 results round that away almost always).

Numba's CUDA target has no np.log1p (its ufunc table lacks it: typing fails
with KeyError), so the formula's code is compiled with `np` bound to a module
that gives numpy's names and math's log1p, sqrt and cos (`_for_device`): the
same code object, the functions CUDA has. math's log1p is libm's, as the cpu
backend's; numpy's (the reference's) is its own SIMD code where the CPU has
AVX-512 (numpy 2.4.6 here: 14 657 of 200 000 float64 log1p 1 ulp apart from
math's; cos and sqrt agreed on all), so float64 normals match the reference to
a few ulps, and everything else bit for bit.
"""
import contextlib
import math
import types
import warnings

import numpy as np
from numba import cuda

from graphc.ops import random as formula

from .launch import SIMULATOR, THREADS, blocks

device = cuda.jit(device=True)

DEVICE_NP = types.ModuleType("device_numpy", "numpy's names in the formula, with math's functions")
DEVICE_NP.uint64, DEVICE_NP.float64 = np.uint64, np.float64
DEVICE_NP.log1p, DEVICE_NP.sqrt, DEVICE_NP.cos = math.log1p, math.sqrt, math.cos


def _for_device(fn):
    """fn's own code as a device function, its `np` being DEVICE_NP."""
    scope = dict(fn.__globals__, np=DEVICE_NP)
    return device(types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__, fn.__closure__))


rng_bits = _for_device(formula.splitmix64)
rng_uniform = _for_device(formula.uniform_from_bits)
rng_normal = _for_device(formula.normal_from_bits)
STEP = np.uint64(formula.COUNTER_STEP)


@contextlib.contextmanager
def wrapping_quietly():
    """Around a launch of a kernel whose uint64 arithmetic wraps on purpose (the hash, integer
    matmul): under the simulator that arithmetic is numpy scalars', which warn at every wrap."""
    if not SIMULATOR:
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
        yield


def _random_kernel(draw):
    @cuda.jit
    def random_flat(counter, out, key):
        """out[i] = draw(rng_bits(i + counter * STEP + key)) for the flat output."""
        offset = np.uint64(counter[0]) * STEP + key
        start, stride = cuda.grid(1), cuda.gridsize(1)
        for i in range(start, out.size, stride):
            out[i] = draw(rng_bits(np.uint64(i) + offset))
    return random_flat


random_uniform_flat = _random_kernel(rng_uniform)
random_normal_flat = _random_kernel(rng_normal)


def _launch(kernel, counter, out, seed, stream):
    if out.size == 0:
        return
    key = np.uint64(formula.stream_key(seed, stream))
    with wrapping_quietly():
        kernel[blocks(out.size), THREADS](counter.reshape(1), out.reshape(out.size), key)


def launch_random_uniform(like, counter, out, seed, stream, **attrs):
    """out = uniform numbers in [0, 1) for this call's counter (like: only its shape matters)."""
    _launch(random_uniform_flat, counter, out, seed, stream)


def launch_random_normal(like, counter, out, seed, stream, **attrs):
    """out = standard normal numbers for this call's counter."""
    _launch(random_normal_flat, counter, out, seed, stream)


LAUNCH = {"random_uniform": launch_random_uniform, "random_normal": launch_random_normal}
