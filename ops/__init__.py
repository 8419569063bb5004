"""graphc.ops: one class per op, all in REGISTRY (name -> op instance).

Importable without Numba: backends add their lowerings elsewhere.
"""
from graphc.graph import register_internal_dir

from . import elementwise, fused, linalg, nn, random, reductions, shape, sources  # noqa: F401  (registers the ops)
from .base import REGISTRY, Op, get, register

register_internal_dir(__file__)

__all__ = ["REGISTRY", "Op", "get", "register"]
