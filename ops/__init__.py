"""graphc.ops: one class per op, each beside the user function that builds it, all in
REGISTRY (name -> op instance). Everything about an op sits on its class (ops/base.py).

May import: graphc.core and numpy, and each other in this order (each file only from the
ones before it): base, sources, binary, unary, slicing, shape, broadcast, reductions,
linalg, nn, random, fused, conv, pool. Never Numba, passes/ or runtime/: backends add their
lowerings in their own packages.
"""
from . import (base, binary, broadcast, fused, linalg, nn, random, reductions, shape,  # noqa: F401
               slicing, sources, unary)
from . import conv, pool  # noqa: F401  (after nn: conv2d, pooling and their gradient ops)
from . import scan  # noqa: F401  (after fused: a loop over a region, read through output nodes)
from . import special  # noqa: F401  (after unary: erf)
from . import rounding  # noqa: F401  (after unary: floor, ceil, round, mod, fmod, isnan, isinf)
from .base import REGISTRY, Op, get, register

__all__ = ["REGISTRY", "Op", "get", "register"]
