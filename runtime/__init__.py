"""graphc.runtime: the executors.

  interp.py      the numpy interpreter, the oracle every backend is tested against
  specialize.py  concrete types at call time (every backend)
  memory.py      the backend-neutral memory plan: liveness, buffer sharing, in-place updates
  target.py      the Target protocol: what a code generator asks of a backend (math, literals)
  cpu/           backend="cpu": Numba code generation, lowerings, fast math, kernel cache

May import: graphc.core, graphc.ops, graphc.passes, graphc.function (the Function base).
Only cpu/ (and a later cuda/) imports Numba; importing graphc.runtime configures nothing.
"""
