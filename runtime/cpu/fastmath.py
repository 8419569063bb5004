"""Vectorizable float32 math for the generated kernels.

Numba compiles math.exp, math.log and math.tanh to scalar libm calls, which
LLVM cannot vectorize: a fused loop calling them ran 7x slower than numpy
(DESIGN.md section 7). These versions are straight-line code -- range
reduction, a polynomial, and 2^k built from its bits -- with every special
case handled by a select instead of a branch, so that LLVM turns a loop over
them into SIMD code. They are inlined into the kernels by Numba itself
(inline="always"), so vectorization never depends on LLVM's inlining
heuristics; the kernels that call them allow FMA contraction and nothing
else, because range reduction depends on the exact order of operations.
Sums that should vectorize go through `row_sum`, the one place that lets
LLVM reorder additions.

Accuracy (float32 results against float64 references, measured by
tests/test_fastmath.py over the whole float32 range, subnormals, 0, +-inf, nan):
  exp32      max relative error ~1e-7; results below the normal float32 range
             (x < -87.34) flush to 0: absolute error < 1.2e-38 (exp_nonpos32: the same,
             for x <= 0 only)
  log32      ~2e-7 relative for positive inputs (subnormals included)
  tanh32     ~4e-7 relative (a rational function, no exp)
  sigmoid32, softplus32, expm1_32: ~4e-7 relative
MAX_REL_ERROR below is the bound the tests hold them to.
"""
import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from graphc.ops import random as random_formula
from graphc.runtime import scalar_math

from .gemm import matmul_into  # noqa: F401  (the kernels import it from here, with the math)
from .conv_kernels import (conv2d_by_blocked, conv2d_by_blocked_bias, conv2d_by_blocked_residual,
                           conv2d_by_depthwise, conv2d_by_depthwise_bias, conv2d_by_shuffled_depthwise,  # noqa: F401
                           conv2d_by_direct, conv2d_by_gemm, conv2d_by_im2col, conv2d_by_interleaved,
                           conv2d_by_interleaved_bias, conv2d_by_interleaved_residual, conv2d_by_wide, gather_planes,
                           conv2d_by_winograd, conv2d_grad_input_into, conv2d_grad_weight_into, conv2d_into)
from .pool_kernels import (avg_pool2d_grad_into, avg_pool2d_into, max_pool2d_grad_into,  # noqa: F401
                           max_pool2d_into, max_pool2d_select_into)
from .parallel_planes import (avg_pool2d_parallel_into, conv2d_by_depthwise_bias_parallel,  # noqa: F401
                              conv2d_by_depthwise_parallel, conv2d_by_shuffled_depthwise_parallel,
                              max_pool2d_parallel_into)

MAX_REL_ERROR = 1e-6

F = np.float32


@intrinsic
def _bits_to_f32(typingctx, x):
    """Reinterpret the bits of an int32 as a float32 (no conversion: a free bitcast)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@intrinsic
def _f32_to_bits(typingctx, x):
    """Reinterpret the bits of a float32 as an int32."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.int32(types.float32), codegen


@njit(inline="always")
def _exp_reduced(xc):
    """(k, e^r) with xc = k ln 2 + r, |r| <= ln(2)/2, for xc in exp32's finite range: the range
    reduction and the polynomial exp32 and exp_nonpos32 share (then scaled by 2^k)."""
    k = (xc * F(1.44269504) + F(12582912.0)) - F(12582912.0)
    r = xc - k * F(0.693359375) - k * F(-2.12194440e-4)
    p = F(1.9875691500e-4)
    p = p * r + F(1.3981999507e-3)
    p = p * r + F(8.3334519073e-3)
    p = p * r + F(4.1665795894e-2)
    p = p * r + F(1.6666665459e-1)
    p = p * r + F(5.0000001201e-1)
    y = p * r * r + r + F(1.0)
    return k, y


@njit(inline="always")
def exp32(x):
    # e^x = 2^k * e^r with k = round(x / ln 2) and |r| <= ln(2)/2. Adding and subtracting
    # 1.5 * 2^23 rounds to an integer without a call; 2^k is built from its exponent bits.
    # Results below the normal range (x < -87.34) flush to 0, as SIMD math libraries do.
    xc = min(max(x, F(-87.33654)), F(88.72283))
    k, y = _exp_reduced(xc)
    top = k > F(127.0)                       # 2^128 has no float32: use 2^127 * 2
    y = y * _bits_to_f32((np.int32(k - F(1.0) if top else k) + np.int32(127)) << np.int32(23))
    y = y + y if top else y
    y = F(np.inf) if x > F(88.72283) else y
    y = F(0.0) if x < F(-87.33654) else y
    return x if x != x else y


@njit(inline="always")
def exp_nonpos32(x):
    """exp32 for x <= 0 (and -inf, nan), as softmax's exp(x - max) is: without exp32's
    overflow cases (2^128, inf), which makes it ~30% cheaper per element. Wrong for x > 0."""
    xc = max(x, F(-87.33654))
    k, y = _exp_reduced(xc)
    y = y * _bits_to_f32((np.int32(k) + np.int32(127)) << np.int32(23))
    y = F(0.0) if x < F(-87.33654) else y
    return x if x != x else y


@njit(inline="always")
def log32(x):
    # x = m * 2^e with m in [sqrt(1/2), sqrt(2)); log x = e ln 2 + log m, log m by a polynomial.
    tiny = x < F(1.17549435e-38)                  # subnormal: scale into the normal range first
    xs = x * F(8388608.0) if tiny else x          # 2^23
    bits = _f32_to_bits(xs)
    e = ((bits >> np.int32(23)) & np.int32(255)) - np.int32(126)
    m = _bits_to_f32((bits & np.int32(0x007FFFFF)) | np.int32(0x3F000000))   # in [0.5, 1)
    small = m < F(0.707106781186547524)
    e = e - np.int32(1) if small else e
    m = m + m - F(1.0) if small else m - F(1.0)
    fe = F(e) - (F(23.0) if tiny else F(0.0))
    z = m * m
    p = F(7.0376836292e-2)
    p = p * m + F(-1.1514610310e-1)
    p = p * m + F(1.1676998740e-1)
    p = p * m + F(-1.2420140846e-1)
    p = p * m + F(1.4249322787e-1)
    p = p * m + F(-1.6668057665e-1)
    p = p * m + F(2.0000714765e-1)
    p = p * m + F(-2.4999993993e-1)
    p = p * m + F(3.3333331174e-1)
    y = m * z * p + fe * F(-2.12194440e-4) - F(0.5) * z + m + fe * F(0.693359375)
    y = F(-np.inf) if x == F(0.0) else y
    y = F(np.nan) if x < F(0.0) else y
    y = x if x == F(np.inf) else y
    return x if x != x else y


@njit(inline="always")
def tanh32(x):
    # A rational approximation x * P(x^2) / Q(x^2) on [-7.9, 7.9] (where float32 tanh
    # reaches +-1): no exp, one division. The coefficients are those of the 13/6 rational
    # approximation published with the Eigen library; max relative error 4e-7.
    xc = min(max(x, F(-7.90531110763549805)), F(7.90531110763549805))
    z = xc * xc
    p = F(-2.76076847742355e-16)
    p = p * z + F(2.00018790482477e-13)
    p = p * z + F(-8.60467152213735e-11)
    p = p * z + F(5.12229709037114e-08)
    p = p * z + F(1.48572235717979e-05)
    p = p * z + F(6.37261928875436e-04)
    p = p * z + F(4.89352455891786e-03)
    q = F(1.19825839466702e-06)
    q = q * z + F(1.18534705686654e-04)
    q = q * z + F(2.26843463243900e-03)
    q = q * z + F(4.89352518554385e-03)
    y = xc * p / q
    y = x if abs(x) < F(0.0004) else y          # tanh x = x to float32 precision (keeps -0.0)
    return x if x != x else y


@njit(inline="always")
def sigmoid32(x):
    e = exp32(-abs(x))                 # never overflows
    s = F(1.0) / (F(1.0) + e)
    return s if x >= F(0.0) else e * s


@njit(inline="always")
def log1p32(t):
    """log(1 + t), accurate for tiny t (Goldberg's trick: the rounding of 1 + t cancels)."""
    u = F(1.0) + t
    d = u - F(1.0)
    r = log32(u) * (t / d)
    r = t if d == F(0.0) else r
    return t if u == F(np.inf) else r


@njit(inline="always")
def softplus32(x):
    # log(1 + e^x) = max(x, 0) + log(1 + e^-|x|)
    return max(x, F(0.0)) + log1p32(exp32(-abs(x)))


@njit(inline="always")
def expm1_32(x):
    """e^x - 1, accurate near 0 (Kahan: (u - 1) * x / log u with u = e^x)."""
    u = exp32(x)
    d = u - F(1.0)
    r = d * (x / log32(u))
    r = x if d == F(0.0) else r
    r = F(-1.0) if d == F(-1.0) else r
    return u if u == F(np.inf) else r


# float64: exact libm calls (scalar, not vectorized); the same stable formulas as float32.

@njit(inline="always")
def sigmoid64(x):
    e = math.exp(-abs(x))
    s = 1.0 / (1.0 + e)
    return s if x >= 0.0 else e * s


@njit(inline="always")
def softplus64(x):
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _float_pair(name):
    """An LLVM float intrinsic of two operands (llvm.maximum, llvm.minimum) as a function."""
    @intrinsic
    def binary(typingctx, a, b):
        if not (isinstance(a, types.Float) and isinstance(b, types.Float)):
            return None
        t = a if a.bitwidth >= b.bitwidth else b

        def codegen(context, builder, signature, args):
            x, y = (context.cast(builder, v, ty, t) for v, ty in zip(args, signature.args))
            fn = builder.module.declare_intrinsic(name, [x.type], ir.FunctionType(x.type, [x.type, x.type]))
            return builder.call(fn, [x, y])
        return t(a, b), codegen
    return binary


# np.maximum / np.minimum of two floats: a nan wins. Unlike a compare-and-select, which LLVM
# will not vectorize as a reduction without giving up nan, these reductions become SIMD code.
maximum = _float_pair("llvm.maximum")
minimum = _float_pair("llvm.minimum")


@njit(cache=True)
def row_max(a, init):
    """Max of a 1-D float array, nan winning as in numpy; vectorized (see `maximum`)."""
    m = init
    for k in range(a.size):
        m = maximum(m, a[k])
    return m


@njit(cache=True)
def row_min(a, init):
    """Min of a 1-D float array, nan winning as in numpy; vectorized (see `maximum`)."""
    m = init
    for k in range(a.size):
        m = minimum(m, a[k])
    return m


@njit(cache=True, fastmath={"reassoc", "contract"})
def row_sum(a, zero):
    """Sum of a 1-D array. Reordering the additions lets LLVM keep many partial sums
    in SIMD lanes (a vectorized, roughly pairwise sum); no transcendental is in here."""
    acc = zero
    for k in range(a.size):
        acc += a[k]
    return acc


# gc.random's formula (ops/random.py), the same functions the numpy reference runs, compiled
# for one element: one definition for every backend.
rng_bits = njit(inline="always")(random_formula.splitmix64)
rng_uniform = njit(inline="always")(random_formula.uniform_from_bits)
rng_normal = njit(inline="always")(random_formula.normal_from_bits)


# every integer power is computed in uint64 (loops.py); the function is shared with CUDA
ipow_u64 = njit(inline="always")(scalar_math.ipow_u64)
