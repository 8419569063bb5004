"""backend="cuda": the optimized graph as numba.cuda kernels from the same per-op templates.

  function.py    CudaFunction: feeds to the device, the step, outputs back; variables stay there
  codegen.py     the module: kernels and the host step launching them (rendered like the CPU's)
  lower_loops.py elementwise groups and reductions, from the ops' scalar templates
  lower_ops.py   everything else: reshape views, the fixed kernels' launchers, host fallback
  kernels.py     the table of fixed kernels: matmul, rows (softmax, argmax), random numbers,
                 shape copies, convolution and pooling (nn_kernels.py, random_kernels.py, ...)
  target.py      the CUDA Target: device math names, the module header
  devmath.py     the device functions the templates call (IEEE results on GPU and simulator)
  launch.py      grids chosen from the sizes; whether this is Numba's CUDA simulator
  stepkit.py     host-side helpers of the step (copies, reduction scratch, error flags)

Without a GPU it runs under Numba's CUDA simulator: set NUMBA_ENABLE_CUDASIM=1 before
numba is imported (tests/conftest.py does). May import what runtime/cpu may, and runtime/cpu
itself (the shared loop bodies, the renderer, the module cache).
"""
from .function import CudaFunction  # noqa: F401
