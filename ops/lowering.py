"""Helpers for the ops' scalar lowerings: the expression text an elementwise op
contributes to a generated loop body. Shared by the CPU code generator (and the
CUDA one to come); no Numba import here.

An op's `scalar(args, in_dtypes, out_dtype, **attrs)` gets its operands as
expression strings already of their dtypes and returns an expression of
dtype `out_dtype`. float32 transcendental functions use the vectorizable
versions in graphc.runtime.fastmath; float64 ones use `math` (exact libm).
"""
import numpy as np

FLOAT32_MATH = {"exp": "exp32", "log": "log32", "tanh": "tanh32", "sigmoid": "sigmoid32",
                "softplus": "softplus32", "expm1": "expm1_32"}
FLOAT64_MATH = {"exp": "math.exp", "log": "math.log", "tanh": "math.tanh", "sigmoid": "sigmoid64",
                "softplus": "softplus64", "expm1": "math.expm1"}


def math_fn(name, dtype):
    """The function to call for a transcendental of this dtype."""
    return (FLOAT32_MATH if dtype == np.float32 else FLOAT64_MATH)[name]


def lit(value, dtype):
    """A literal of the given dtype: 0.5 for float64, np.float32(0.5) for float32."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return "True" if value else "False"
    if dtype.kind == "f":
        v = float(value)
        text = repr(v) if np.isfinite(v) else ("np.nan" if np.isnan(v) else ("np.inf" if v > 0 else "-np.inf"))
        return text if dtype == np.float64 else f"np.float32({text})"
    return str(int(value)) if dtype == np.int64 else f"np.int32({int(value)})"


def cast(expr, from_dtype, to_dtype):
    """expr converted to to_dtype (unchanged if it has that dtype already)."""
    if np.dtype(from_dtype) == np.dtype(to_dtype):
        return expr
    if np.dtype(to_dtype) == np.bool_:
        return f"({expr} != 0)"
    return f"np.{np.dtype(to_dtype).name}({expr})"
