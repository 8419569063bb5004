"""The CPU Target: Numba njit kernels, float32 transcendentals from fastmath.py (vectorizable),
float64 ones from `math` (exact libm)."""
from graphc.runtime.target import Target

FAST = ["exp32", "expm1_32", "log32", "matmul_into", "row_max", "row_min", "row_sum", "sigmoid32",
        "sigmoid64", "softplus32", "softplus64", "tanh32", "rng_bits", "rng_uniform", "rng_normal", "ipow_u64",
        "conv2d_into", "conv2d_by_depthwise", "conv2d_by_gemm", "conv2d_by_direct", "conv2d_by_blocked", "conv2d_by_blocked_bias", "conv2d_by_blocked_residual",
        "conv2d_by_interleaved", "conv2d_by_interleaved_bias", "conv2d_by_interleaved_residual", "conv2d_by_winograd",
        "conv2d_by_wide", "conv2d_by_im2col", "conv2d_grad_input_into", "conv2d_grad_weight_into", "max_pool2d_into",
        "max_pool2d_grad_into", "max_pool2d_select_into", "avg_pool2d_into", "avg_pool2d_grad_into",
        "max_pool2d_parallel_into", "avg_pool2d_parallel_into", "conv2d_by_depthwise_parallel",
        "conv2d_by_depthwise_bias", "conv2d_by_depthwise_bias_parallel", "conv2d_by_shuffled_depthwise",
        "conv2d_by_shuffled_depthwise_parallel", "gather_planes"]


class CpuTarget(Target):
    name = "cpu"
    MATH = {
        ("exp", "float32"): "exp32", ("log", "float32"): "log32", ("tanh", "float32"): "tanh32",
        ("sigmoid", "float32"): "sigmoid32", ("softplus", "float32"): "softplus32",
        ("expm1", "float32"): "expm1_32", ("sqrt", "float32"): "np.sqrt",
        ("exp", "float64"): "math.exp", ("log", "float64"): "math.log", ("tanh", "float64"): "math.tanh",
        ("sigmoid", "float64"): "sigmoid64", ("softplus", "float64"): "softplus64",
        ("expm1", "float64"): "math.expm1", ("sqrt", "float64"): "np.sqrt",
        ("ipow", "uint64"): "ipow_u64",        # every integer power is computed in uint64 (loops.py)
    }
    # the row helpers a reduction's `row` fact names (ops/reductions.py)
    ROW = {"sum": "row_sum", "max": "row_max", "min": "row_min"}
    step_note = "# plain Python: it only calls the compiled kernels above (see runtime/cpu/codegen.py)"

    def header(self):
        opening = "from graphc.runtime.cpu.fastmath import ("
        lines, line = [], opening
        for name in FAST:
            if len(line) + len(name) + 2 > 100:
                lines.append(line.rstrip())
                line = " " * len(opening)
            line += name + ", "
        lines.append(line.rstrip(", ") + ")")
        return ["import math", "", "import numpy as np", "from numba import njit, prange", ""] + lines


CPU = CpuTarget()
