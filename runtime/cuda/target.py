"""The CUDA Target: the same scalar templates as the CPU (ops/), written for numba.cuda kernels.

Only the names differ: a transcendental is a device function of devmath.py (IEEE
results on a GPU and under the simulator alike); literals and casts are the base
Target's numpy spellings, which numba.cuda accepts as they are.
"""
import numpy as np

from graphc.runtime.target import Target

DEVMATH = ["exp32", "exp64", "expm1_32", "expm1_64", "log32", "log64", "sqrt32", "sqrt64", "tanh32",
           "tanh64", "sigmoid32", "sigmoid64", "softplus32", "softplus64", "ipow_u64"]


class CudaTarget(Target):
    name = "cuda"
    MATH = {(fn, dt): f"{fn}{'_' if fn == 'expm1' else ''}{dt[-2:]}"
            for fn in ("exp", "log", "tanh", "sigmoid", "softplus", "expm1", "sqrt") for dt in ("float32", "float64")}
    MATH[("ipow", "uint64")] = "ipow_u64"
    ROW = {}                     # reductions are block-level trees here (lower_loops.py), not row helpers
    decorator = "@cuda.jit"
    launchers = ()               # the fixed kernels' launchers a module calls (set by codegen.py)
    step_note = ("# plain Python on the host: it launches the kernels above (kernel[blocks, threads](...)) "
                 "on device arrays")

    def lit(self, value, dtype):
        """As the base Target's, but an int64 literal keeps its type (np.int64(-1), not -1):
        under the simulator the kernels are Python, where np.uint64(-1), the start of integer
        arithmetic that wraps (runtime/cpu/loops.py), raises on a plain negative int."""
        text = super().lit(value, dtype)
        return f"np.int64({text})" if text.lstrip("-").isdigit() and np.dtype(dtype) == np.int64 else text

    def header(self):
        return ["import math", "", "import numpy as np", "from numba import cuda", "",
                f"from graphc.runtime.cuda.devmath import ({', '.join(DEVMATH[:8])},",
                f"                                      {', '.join(DEVMATH[8:])})",
                "from graphc.runtime.cuda.launch import REDUCE_THREADS, THREADS, blocks, reduce_grid",
                "from graphc.runtime.cuda.stepkit import copy, copy_into, error_flag, partials, raise_if, scratch"] + \
            ([f"from graphc.runtime.cuda.kernels import {', '.join(self.launchers)}"] if self.launchers else [])


CUDA = CudaTarget()
