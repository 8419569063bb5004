"""Special functions as elementwise ops: erf (the error function; ONNX's Erf and the exact
Gelu, 0.5 x (1 + erf(x / sqrt 2)), are built on it).

The reference is Python's math.erf element by element (numpy has no erf and ops/ does not
import scipy): exact to double precision, slow on big arrays, which only the interpreter sees.
The compiled backends call math.erf in the generated loop (Numba lowers it to libm's erf).
"""
import math

import numpy as np

from .base import apply, register
from .unary import Unary, exp

_erf = np.vectorize(math.erf, otypes=[np.float64])


@register
class Erf(Unary):
    name = "erf"
    float_only = True

    def ref(self, x):
        return _erf(x).astype(x.dtype) if x.size else np.zeros_like(x)

    def grad(self, node, g):
        x = node.inputs[0]
        return [g * (2 / math.sqrt(math.pi)) * exp(-(x * x))]     # d/dx erf = 2/sqrt(pi) e^(-x^2)

    def scalar(self, t, args, ins, out, consts, **attrs):
        return t.cast(f"math.erf({args[0]})", np.float64, out)


def erf(x, name=None):
    """The error function, elementwise: 2/sqrt(pi) * integral of e^(-t^2) from 0 to x."""
    return apply("erf", [x], name=name)
