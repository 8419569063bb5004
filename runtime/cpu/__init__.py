"""backend="cpu": the optimized graph as one generated Numba module per shape signature.

  function.py  CpuFunction: call, compile per shape signature, run the step
  codegen.py   the module: kernels and the step that calls them (render.py lays out its text)
  emit.py      the lowering context and the table of lowerings; loops.py, lower_*.py fill it
  layout.py    Numba array layouts, and which views Numba can make (for the memory plan)
  target.py    the CPU Target: math function names, the module header
  fastmath.py  vectorizable float32 math, row helpers, gc.random's formula compiled
  cache.py     generated modules as files, imported from disk (Numba caches their machine code)
  config.py    Numba's threading layer and vector width, set when the first function is built

May import: graphc.core, graphc.ops, graphc.function, graphc.runtime (memory, target,
specialize), numba, llvmlite. Nothing outside this folder imports it except gc.function's
backend table.
"""
from .function import CpuFunction  # noqa: F401
