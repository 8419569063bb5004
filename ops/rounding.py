"""Rounding and remainders as elementwise ops: floor, ceil, round (half to even, numpy's
np.round and ONNX's Round), mod (numpy's np.mod: the sign of the divisor), fmod (C's fmod:
the sign of the dividend), and the float tests isnan and isinf (bool results).

The `scalar` templates are compiled by Numba's njit (CPU) and by numba.cuda, whose simulator
runs them as plain Python on numpy scalars; so they use only `math` functions both accept
(np.floor is not in CUDA kernels, math.fmod is not in njit) and avoid what plain Python
raises on: math.floor of inf or nan, a remainder by zero. math.floor returns an integer, which
loses the sign of a zero result (np.floor(-0.0) and np.ceil(-0.5) are -0.0): math.copysign
with the input puts it back, and the result is converted to the output's dtype.
"""
import math

import numpy as np

from .base import apply, is_float, register
from .binary import Binary, where
from .unary import Unary

# 2**52: every float64 of at least this magnitude is an integer (float32 ones already from
# 2**23), so it is its own floor, ceil and round; nan fails the comparison and passes through
# too, as do the infinities. Below it math.floor's integer is exact.
INTEGRAL_FROM = "4503599627370496.0"


class Rounding(Unary):
    """floor, ceil, round: an integer tensor is returned as it is (numpy 2 keeps its dtype);
    the gradient is zero (the output is piecewise constant), so `grad` sends none back."""

    def grad(self, node, g):
        return [None]

    def integer(self, x):
        """The expression of the integer math.floor / math.ceil / round-half-even of x."""
        raise NotImplementedError

    def scalar(self, t, args, ins, out, consts, **attrs):
        x = args[0]
        if out.kind != "f":
            return x
        if ins[0].kind != "f":
            return t.cast(x, ins[0], out)
        r = f"np.{out.name}(math.copysign(np.float64({self.integer(x)}), {x}))"
        return f"({r} if abs({x}) < {INTEGRAL_FROM} else {x})"


@register
class Floor(Rounding):
    name = "floor"
    ref = staticmethod(np.floor)

    def integer(self, x):
        return f"math.floor({x})"


@register
class Ceil(Rounding):
    name = "ceil"
    ref = staticmethod(np.ceil)

    def integer(self, x):
        return f"math.ceil({x})"


@register
class Round(Rounding):
    name = "round"
    ref = staticmethod(np.round)

    def integer(self, x):
        # floor(x), plus one above the half and at the half when floor(x) is odd (ties to even).
        # x - floor(x) is exact below 2**52, unlike floor(x + 0.5): 0.49999999999999994 + 0.5
        # rounds to 1.0
        f = f"math.floor({x})"
        return f"({f} + (1 if ({x} - {f} > 0.5 or ({x} - {f} == 0.5 and {f} % 2 != 0)) else 0))"


class Remainder(Binary):
    """mod and fmod. Integers: numpy gives 0 for a zero divisor (with a warning), which the
    templates return without dividing; a divisor of -1 also gives 0 without dividing (INT_MIN % -1
    traps in machine code). Floats: nan for a zero divisor, an infinite dividend or a nan."""

    def scalar(self, t, args, ins, out, consts, **attrs):
        a, b = (t.cast(x, d, out) for x, d in zip(args, ins))
        if out.kind in "iu":
            r = f"({a} % {b})"                            # Python's: the sign of the divisor
            return f"({t.lit(0, out)} if ({b} == 0 or {b} == -1) else np.{out.name}({self.from_mod(r, a, b)}))"
        nan, inf = t.lit(np.nan, out), t.lit(np.inf, out)
        # C's fmod(a, b), which is exact: numba's njit has no math.fmod, so from Python's % of the
        # magnitudes (no adjustment between operands of one sign), given the sign of a
        fmod = f"np.{out.name}(math.copysign(abs({a}) % abs({b}), {a}))"
        return f"({nan} if ({b} == 0 or {a} != {a} or {b} != {b} or abs({a}) == {inf}) else {self.from_fmod(fmod, b, out)})"

    def grad(self, node, g):
        a, b = node.inputs
        quotient = self.whole_quotient(a / b) if is_float(b) else None
        return [g if is_float(a) else None, -g * quotient if is_float(b) else None]


@register
class Mod(Remainder):
    name = "mod"
    ref = staticmethod(np.mod)

    def from_mod(self, r, a, b):
        return r

    def from_fmod(self, m, b, out):
        # numpy's npy_divmod: fmod moved to the divisor's side; a zero takes the divisor's sign
        return f"({m} + {b} if ({m} != 0 and ({m} < 0) != ({b} < 0)) else ({m} if {m} != 0 else " \
               f"np.{out.name}(math.copysign(0.0, {b}))))"

    def whole_quotient(self, q):
        return floor(q)                                   # a = floor(a / b) * b + mod(a, b)


@register
class Fmod(Remainder):
    name = "fmod"
    ref = staticmethod(np.fmod)

    def from_mod(self, r, a, b):
        # the floor remainder moved to the dividend's side: C's truncating remainder
        return f"({r} - {b} if ({r} != 0 and ({r} < 0) != ({a} < 0)) else {r})"

    def from_fmod(self, m, b, out):
        return m

    def whole_quotient(self, q):
        return where(q < 0, ceil(q), floor(q))           # trunc(a / b)


class FloatTest(Unary):
    """isnan, isinf: bool results; an integer or bool tensor is never nan nor infinite."""
    no_grad = True

    def scalar(self, t, args, ins, out, consts, **attrs):
        return self.test(t, args[0], ins[0]) if ins[0].kind == "f" else "False"


@register
class IsNan(FloatTest):
    name = "isnan"
    ref = staticmethod(np.isnan)

    def test(self, t, x, dtype):
        return f"({x} != {x})"


@register
class IsInf(FloatTest):
    name = "isinf"
    ref = staticmethod(np.isinf)

    def test(self, t, x, dtype):
        return f"(abs({x}) == {t.lit(np.inf, dtype)})"


# ---------------------------------------------------------------- user functions


def floor(x, name=None):
    """The largest integer <= x, elementwise (an integer tensor is returned unchanged)."""
    return apply("floor", [x], name=name)


def ceil(x, name=None):
    """The smallest integer >= x, elementwise."""
    return apply("ceil", [x], name=name)


def round(x, name=None):
    """The nearest integer, halves to the even one (np.round: round(2.5) = 2, round(-0.5) = -0)."""
    return apply("round", [x], name=name)


def mod(a, b, name=None):
    """a - floor(a / b) * b: the remainder with the sign of b (np.mod, Python's %); 0 for an
    integer b == 0, nan for a float one."""
    return apply("mod", [a, b], name=name)


def fmod(a, b, name=None):
    """a - trunc(a / b) * b: the remainder with the sign of a (np.fmod, C's fmod)."""
    return apply("fmod", [a, b], name=name)


def isnan(x, name=None):
    """x is nan, elementwise (bool)."""
    return apply("isnan", [x], name=name)


def isinf(x, name=None):
    """x is +inf or -inf, elementwise (bool)."""
    return apply("isinf", [x], name=name)
