"""The Target protocol: what code generation asks of a backend.

An elementwise op's `scalar(t, args, ins, out, consts, **attrs)` template
(ops/) and a reduction's `combine(t, ...)` write one expression in Python
syntax, asking the target `t` for everything that differs between backends:
the function computing a transcendental for a dtype, how a literal of a
dtype is written, how a value changes dtype. So the CPU backend (Numba) and
a CUDA backend (numba.cuda) share one definition per op.

This base class writes numpy-style literals and casts, which both Numba
targets accept; a target supplies `MATH` and the kernel module's header.
"""
import numpy as np


class Target:
    name = None
    MATH = {}          # (function, dtype name) -> the name the kernels call

    def math(self, fn, dtype):
        """The function computing `fn` ("exp", "log", "tanh", "sigmoid", ...) in `dtype`."""
        return self.MATH[(fn, np.dtype(dtype).name)]

    def lit(self, value, dtype):
        """A literal of dtype, in its shortest exact form: 0.5, np.float32(0.01), np.int32(3)."""
        dtype = np.dtype(dtype)
        if dtype == np.bool_:
            return "True" if value else "False"
        if dtype.kind == "f":
            v = dtype.type(value)
            if not np.isfinite(v):
                text = "np.nan" if np.isnan(v) else ("np.inf" if v > 0 else "-np.inf")
                return text if dtype == np.float64 else f"np.float32({text})"
            # repr of a numpy scalar is its shortest round-trip form for its own precision
            text = np.format_float_positional(v, unique=True, trim="0") if 1e-4 <= abs(v) < 1e16 or v == 0 \
                else np.format_float_scientific(v, unique=True, trim="0")
            return text if dtype == np.float64 else f"np.float32({text})"
        return str(int(value)) if dtype == np.int64 else f"np.int32({int(value)})"

    def cast(self, expr, from_dtype, to_dtype):
        """expr converted to to_dtype (unchanged if it has that dtype already)."""
        if np.dtype(from_dtype) == np.dtype(to_dtype):
            return expr
        if np.dtype(to_dtype) == np.bool_:
            return f"({expr} != 0)"
        return f"np.{np.dtype(to_dtype).name}({expr})"

    def header(self):
        """The first lines of a generated kernel module (imports)."""
        raise NotImplementedError
