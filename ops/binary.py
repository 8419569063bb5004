"""Elementwise ops of two or three tensors: arithmetic, comparisons, logic, where;
each with its user function (the arithmetic ones are also Node operators).

Shapes broadcast as in numpy; dtypes are numpy's (found by `probe_dtype`).
"""
import numpy as np

from graphc.core.errors import DTypeError
from graphc.core.types import TensorType, bool_, broadcast_shapes

from .base import (Op, apply, cannot_be_negative_zero, constant_node, fill_value, graph_of, is_float, is_negative_zero,
                   operator, probe_dtype, register, same_type)


class Binary(Op):
    kind = "elementwise"

    def infer(self, types, **attrs):
        a, b = types
        shape = broadcast_shapes(a.shape, b.shape)
        return TensorType(shape, probe_dtype(self, [a.dtype, b.dtype], **attrs))

    symbol = None        # the Python operator, when the op is one
    compares = False     # comparisons compute in the inputs' common dtype, not the (bool) output's

    def scalar(self, t, args, ins, out, consts, **attrs):
        common = np.result_type(*ins) if self.compares else out
        a, b = (t.cast(x, d, common) for x, d in zip(args, ins))
        return f"({a} {self.symbol} {b})"


@register
class Add(Binary):
    commutative = True
    name = "add"
    ref = staticmethod(np.add)

    def grad(self, node, g):
        return [g, g]                                # the driver sums broadcast axes away

    symbol = "+"

    def scalar(self, t, args, ins, out, consts, **attrs):
        if out == bool_:                     # numpy: True + True is True
            return f"({args[0]} | {args[1]})"
        return Binary.scalar(self, t, args, ins, out, consts)

    def simplify(self, n, a, b):
        # x + 0 -> x, only where it is exact: x + (-0.0) is x for every x, but x + (+0.0) turns
        # x = -0.0 into +0.0 (1 / (x + 0.0) is inf, 1 / x is -inf), so a +0.0 (or an int or bool
        # zero next to a float x, which converts to +0.0) goes only if x cannot be -0.0
        for x, zero in ((a, b), (b, a)):
            z = fill_value(zero)
            if z == 0 and same_type(x, n) and (is_negative_zero(z) or cannot_be_negative_zero(x)):
                return x


@register
class Subtract(Binary):
    name = "subtract"
    ref = staticmethod(np.subtract)

    def grad(self, node, g):
        return [g, -g]

    symbol = "-"

    def simplify(self, n, a, b):
        # x - (+0.0) -> x is exact for every x (an int or bool zero counts as +0.0); x - (-0.0) is
        # x + 0.0, which turns -0.0 into +0.0: only where x cannot be -0.0
        z = fill_value(b)
        if z == 0 and same_type(a, n) and (not is_negative_zero(z) or cannot_be_negative_zero(a)):
            return a


@register
class Multiply(Binary):
    commutative = True
    name = "multiply"
    ref = staticmethod(np.multiply)

    def grad(self, node, g):
        a, b = node.inputs
        return [g * b, g * a]

    symbol = "*"

    def scalar(self, t, args, ins, out, consts, **attrs):
        if out == bool_:
            return f"({args[0]} & {args[1]})"
        return Binary.scalar(self, t, args, ins, out, consts)

    def simplify(self, n, a, b):
        if fill_value(b) == 1 and same_type(a, n):           # x * 1 -> x
            return a
        if fill_value(a) == 1 and same_type(b, n):
            return b


@register
class Divide(Binary):
    name = "divide"
    ref = staticmethod(np.true_divide)

    def grad(self, node, g):
        a, b = node.inputs
        return [g / b, -(g * node) / b]           # a/b^2 as (a/b)/b: no overflow of b*b

    symbol = "/"

    def simplify(self, n, a, b):
        if fill_value(b) == 1 and same_type(a, n):           # x / 1 -> x
            return a


# the exponents numpy's power shortcuts, with the answers it gives for them
POWER_SHORTCUTS = ((2, np.square), (0.5, np.sqrt), (-1, np.reciprocal))


@register
class Power(Binary):
    name = "power"

    def ref(self, a, b):
        # numpy squares (takes sqrt, 1/x) for an exponent of 2 (0.5, -1) only when its loop sees
        # the exponent as one broadcast value, and even that depends on the sizes; an array of 2s
        # goes through pow(), which can differ in the last bit. Giving those answers wherever the
        # exponent has those values makes power a function of its values: x ** 2 -> x * x and
        # constant folding stay exact however the 2 is laid out, and a backend can match it.
        out = np.power(a, b)
        if out.dtype.kind != "f":
            return out                           # integer powers are exact
        b, a = np.asarray(b), np.asarray(a, out.dtype)
        for p, shortcut in POWER_SHORTCUTS:
            hit = b == p
            if hit.any():
                with np.errstate(all="ignore"):  # np.power above has warned for these elements
                    out = np.where(hit, shortcut(a), out)
        return out

    def grad(self, node, g):
        a, b = node.inputs
        # (log through apply: ops/unary.py builds on this module, not the other way round)
        # at a == b == 0, b * a^(b-1) is 0 * inf = nan, but a^0 is the constant 1: read a as 1 there
        # (not a where() around the product: its untaken branch would give nan in the next derivative)
        ga = gb = None                      # an int input has no gradient: build nothing for it
        if is_float(a):
            nonzero_power = b.op.name == "constant" and bool(np.all(b.attrs["value"] != 0))   # x**2 etc.
            safe_a = a if nonzero_power else where(equal(a, 0) & equal(b, 0), 1, a)
            ga = g * b * safe_a ** (b - 1)
        # d/db a^b = a^b log a; at a == 0 the value a^b is 0 (b > 0), so use 0 rather than 0 * -inf.
        # log is taken in the output's dtype: an int a (int32 ** float64) has no log of its own, and a
        # float32 a next to a float64 b would lose the float64 precision of the result
        if is_float(b):
            log_a = apply("log", [a if a.dtype == node.dtype else apply("cast", [a], dtype=node.dtype)])
            gb = g * node * where(equal(a, 0), 0, log_a)
        return [ga, gb]

    def scalar(self, t, args, ins, out, consts, **attrs):
        a, b = (t.cast(x, d, out) for x, d in zip(args, ins))
        p = consts[1]
        # small integer powers: multiplications (1 / x**k for floats only: an integer to a
        # negative power is an error, which the loop checks for)
        if p is not None and np.isfinite(p) and p == int(p) and (1 <= p <= 4 or out.kind == "f" and 1 <= -p <= 4):
            prod = " * ".join([a] * int(abs(p)))
            return f"({prod})" if p > 0 else f"({t.lit(1, out)} / ({prod}))"
        if p == 0.5 and out.kind == "f":
            return f"{t.math('sqrt', out)}({a})"
        if out.kind in "iu":                       # wrapping as numpy's integer power does
            return f"{t.math('ipow', out)}({a}, {b})"
        if a.startswith("-"):                      # a literal -2.0: Python reads -2.0 ** x as -(2.0 ** x)
            a = f"({a})"
        return f"({a} ** {b})"

    def simplify(self, n, a, b):
        p = fill_value(b)
        if p == 1 and same_type(a, n):                        # x ** 1 -> x
            return a
        if p == 2 and same_type(a, n):                        # x ** 2 -> x * x, as `ref` computes it
            return multiply(a, a)


def commutes_unless_signed_zeros(node):
    """numpy's maximum/minimum of -0.0 and +0.0 is its second input (they compare equal), so
    swapping float inputs can change the sign of a zero result; ints have no signed zeros."""
    return not is_float(node)


@register
class Maximum(Binary):
    commutative = True
    name = "maximum"
    ref = staticmethod(np.maximum)

    def commutes(self, node):
        return commutes_unless_signed_zeros(node)

    def grad(self, node, g):
        a, b = node.inputs
        first = a >= b                                # ties: the gradient goes to the first argument
        return [where(first, g, 0), where(first, 0, g)]

    def scalar(self, t, args, ins, out, consts, **attrs):
        a, b = (t.cast(x, d, out) for x, d in zip(args, ins))
        if out.kind == "f":                     # nan wins, as in numpy
            return f"({a} if ({a} > {b} or {a} != {a}) else {b})"   # a tie (-0.0, 0.0) gives b, as numpy
        return f"max({a}, {b})"


@register
class Minimum(Binary):
    commutative = True
    name = "minimum"
    ref = staticmethod(np.minimum)

    def commutes(self, node):
        return commutes_unless_signed_zeros(node)

    def grad(self, node, g):
        a, b = node.inputs
        first = a <= b                                # ties: the gradient goes to the first argument
        return [where(first, g, 0), where(first, 0, g)]

    def scalar(self, t, args, ins, out, consts, **attrs):
        a, b = (t.cast(x, d, out) for x, d in zip(args, ins))
        if out.kind == "f":
            return f"({a} if ({a} < {b} or {a} != {a}) else {b})"   # a tie gives b, as numpy
        return f"min({a}, {b})"


@register
class Equal(Binary):
    commutative = True
    name = "equal"
    ref = staticmethod(np.equal)
    no_grad = True

    symbol = "=="
    compares = True


@register
class NotEqual(Binary):
    commutative = True
    name = "not_equal"
    ref = staticmethod(np.not_equal)
    no_grad = True

    symbol = "!="
    compares = True


@register
class Less(Binary):
    name = "less"
    ref = staticmethod(np.less)
    no_grad = True

    symbol = "<"
    compares = True


@register
class LessEqual(Binary):
    name = "less_equal"
    ref = staticmethod(np.less_equal)
    no_grad = True

    symbol = "<="
    compares = True


@register
class Greater(Binary):
    name = "greater"
    ref = staticmethod(np.greater)
    no_grad = True

    symbol = ">"
    compares = True


@register
class GreaterEqual(Binary):
    name = "greater_equal"
    ref = staticmethod(np.greater_equal)
    no_grad = True

    symbol = ">="
    compares = True


@register
class LogicalAnd(Binary):
    commutative = True
    name = "logical_and"
    ref = staticmethod(np.logical_and)
    no_grad = True

    symbol = "&"


@register
class LogicalOr(Binary):
    commutative = True
    name = "logical_or"
    ref = staticmethod(np.logical_or)
    no_grad = True

    symbol = "|"


@register
class Where(Op):
    """where(cond, a, b): a where cond is true, else b. cond must be bool."""
    name = "where"
    kind = "elementwise"

    def infer(self, types):
        c, a, b = types
        if c.dtype != bool_:
            raise DTypeError(f"the condition must be bool, got {c.dtype}; compare it first, e.g. x > 0")
        shape = broadcast_shapes(c.shape, a.shape, b.shape)
        return TensorType(shape, np.result_type(a.dtype, b.dtype))

    ref = staticmethod(np.where)

    def simplify(self, n, c, a, b):
        v = fill_value(c)                                     # a condition known when the graph is built
        if v is True and same_type(a, n):
            return a
        if v is False and same_type(b, n):
            return b

    def grad(self, node, g):
        c = node.inputs[0]
        return [None, where(c, g, 0), where(c, 0, g)]

    def scalar(self, t, args, ins, out, consts, **attrs):
        c, a, b = args[0], t.cast(args[1], ins[1], out), t.cast(args[2], ins[2], out)
        return f"({a} if {c} else {b})"


# ---------------------------------------------------------------- user functions


def _binary(op_name, doc):
    def f(a, b, name=None):
        return apply(op_name, [a, b], name=name)
    f.__name__ = f.__qualname__ = op_name
    f.__doc__ = doc
    return f


add = operator(_binary("add", "a + b"))
subtract = operator(_binary("subtract", "a - b"))
multiply = operator(_binary("multiply", "a * b"))
divide = operator(_binary("divide", "a / b (true division: ints give float64, as in numpy)"))
power = operator(_binary("power", "a ** b"))
maximum = _binary("maximum", "elementwise max (nan wins)")
minimum = _binary("minimum", "elementwise min (nan wins)")
equal = _binary("equal", "a == b, elementwise")
not_equal = _binary("not_equal", "a != b, elementwise")
less = operator(_binary("less", "a < b"))
less_equal = operator(_binary("less_equal", "a <= b"))
greater = operator(_binary("greater", "a > b"))
greater_equal = operator(_binary("greater_equal", "a >= b"))
logical_and = operator(_binary("logical_and", "a and b, elementwise"))
logical_or = operator(_binary("logical_or", "a or b, elementwise"))


def where(cond, a, b, name=None):
    """a where cond is true, else b (cond must be bool)."""
    if isinstance(cond, (bool, np.bool_)):   # a Python bool stays bool (np.where(True, a, b)), not a's dtype
        cond = constant_node(bool(cond), graph=graph_of([a, b]))
    return apply("where", [cond, a, b], name=name)
