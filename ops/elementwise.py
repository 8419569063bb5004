"""Elementwise ops: unary math, binary arithmetic and comparisons, where, cast.

Shapes broadcast as in numpy; dtypes are numpy's (found by `probe_dtype`),
except that the transcendental ops ask for a float input rather than
silently promoting an integer tensor to float64.
"""
import numpy as np

from graphc.errors import DTypeError
from graphc.types import FLOATS, TensorType, as_dtype, bool_, broadcast_shapes

import graphc.api as F

from .base import Op, is_float, probe_dtype, register
from .lowering import cast, lit, math_fn


class Unary(Op):
    kind = "elementwise"
    float_only = False

    def infer(self, types, **attrs):
        (t,) = types
        if self.float_only and t.dtype not in FLOATS:
            raise DTypeError(f"{self.name} needs a float tensor, got {t.dtype}; "
                             "cast it first, e.g. gc.cast(x, gc.float32)")
        return TensorType(t.shape, probe_dtype(self, [t.dtype], **attrs))


@register
class Negative(Unary):
    name = "negative"
    ref = staticmethod(np.negative)

    def grad(self, node, g):
        return [-g]

    def scalar(self, args, ins, out, consts, **attrs):
        return f"(-{args[0]})"


@register
class Abs(Unary):
    name = "abs"
    ref = staticmethod(np.abs)

    def grad(self, node, g):
        return [g * F.sign(node.inputs[0])]

    def scalar(self, args, ins, out, consts, **attrs):
        return f"abs({args[0]})"


@register
class Sign(Unary):
    name = "sign"
    ref = staticmethod(np.sign)
    no_grad = True

    def scalar(self, args, ins, out, consts, **attrs):
        a, one = args[0], lit(1, out)
        return f"({one} if {a} > 0 else (-{one} if {a} < 0 else {a}))"   # nan stays nan


@register
class Square(Unary):
    name = "square"
    ref = staticmethod(np.square)

    def grad(self, node, g):
        return [g * node.inputs[0] * 2]

    def scalar(self, args, ins, out, consts, **attrs):
        return f"({args[0]} * {args[0]})"


@register
class Relu(Unary):
    name = "relu"

    def ref(self, x):
        return np.maximum(x, x.dtype.type(0))

    def grad(self, node, g):
        return [F.where(node.inputs[0] > 0, g, 0)]   # 0 at x == 0

    def scalar(self, args, ins, out, consts, **attrs):
        a, zero = args[0], lit(0, out)
        return f"({zero} if {a} < {zero} else {a})"               # nan stays nan


@register
class LogicalNot(Unary):
    name = "logical_not"
    ref = staticmethod(np.logical_not)
    no_grad = True

    def scalar(self, args, ins, out, consts, **attrs):
        return f"(not {args[0]})" if ins[0] == bool_ else f"({args[0]} == 0)"


@register
class Exp(Unary):
    name = "exp"
    float_only = True
    ref = staticmethod(np.exp)

    def grad(self, node, g):
        return [g * node]                            # via the output: exp(x) is already there

    def scalar(self, args, ins, out, consts, **attrs):
        return f"{math_fn('exp', out)}({args[0]})"


@register
class Log(Unary):
    name = "log"
    float_only = True
    ref = staticmethod(np.log)

    def grad(self, node, g):
        return [g / node.inputs[0]]

    def scalar(self, args, ins, out, consts, **attrs):
        return f"{math_fn('log', out)}({args[0]})"


@register
class Sqrt(Unary):
    name = "sqrt"
    float_only = True
    ref = staticmethod(np.sqrt)

    def grad(self, node, g):
        return [g * 0.5 / node]

    def scalar(self, args, ins, out, consts, **attrs):
        return f"np.sqrt({args[0]})"


@register
class Reciprocal(Unary):
    name = "reciprocal"
    float_only = True
    ref = staticmethod(np.reciprocal)

    def grad(self, node, g):
        return [-g * node * node]

    def scalar(self, args, ins, out, consts, **attrs):
        return f"({lit(1, out)} / {args[0]})"


@register
class Tanh(Unary):
    name = "tanh"
    float_only = True
    ref = staticmethod(np.tanh)

    def grad(self, node, g):
        return [g * (1 - node * node)]

    def scalar(self, args, ins, out, consts, **attrs):
        return f"{math_fn('tanh', out)}({args[0]})"


@register
class Sigmoid(Unary):
    name = "sigmoid"
    float_only = True

    def ref(self, x):
        # exp of -|x| never overflows; pick the form that is accurate on each side.
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)

    def grad(self, node, g):
        return [g * node * (1 - node)]

    def scalar(self, args, ins, out, consts, **attrs):
        return f"{math_fn('sigmoid', out)}({args[0]})"


@register
class Softplus(Unary):
    name = "softplus"
    float_only = True

    def ref(self, x):
        return np.logaddexp(x.dtype.type(0), x)  # log(1 + e^x) without overflow

    def grad(self, node, g):
        return [g * F.sigmoid(node.inputs[0])]

    def scalar(self, args, ins, out, consts, **attrs):
        return f"{math_fn('softplus', out)}({args[0]})"


@register
class LeakyRelu(Unary):
    name = "leaky_relu"
    float_only = True

    def canonical(self, types, alpha=0.01):
        if not isinstance(alpha, (int, float, np.integer, np.floating)) or isinstance(alpha, bool):
            raise DTypeError(f"alpha must be a number, got {alpha!r}")
        return {"alpha": float(alpha)}

    def ref(self, x, alpha=0.01):
        return np.where(x > 0, x, x * x.dtype.type(alpha))

    def grad(self, node, g):
        return [F.where(node.inputs[0] > 0, g, g * node.attrs["alpha"])]

    def scalar(self, args, ins, out, consts, **attrs):
        a = args[0]
        return f"({a} if {a} > 0 else {a} * {lit(attrs['alpha'], out)})"


@register
class Elu(Unary):
    name = "elu"
    float_only = True

    def canonical(self, types, alpha=1.0):
        if not isinstance(alpha, (int, float, np.integer, np.floating)) or isinstance(alpha, bool):
            raise DTypeError(f"alpha must be a number, got {alpha!r}")
        return {"alpha": float(alpha)}

    def ref(self, x, alpha=1.0):
        # expm1 of min(x, 0): the branch not taken never overflows.
        return np.where(x > 0, x, x.dtype.type(alpha) * np.expm1(np.minimum(x, 0)))

    def grad(self, node, g):
        # for x <= 0, d/dx alpha*(e^x - 1) = alpha*e^x = elu(x) + alpha
        return [F.where(node.inputs[0] > 0, g, g * (node + node.attrs["alpha"]))]

    def scalar(self, args, ins, out, consts, **attrs):
        a = args[0]
        return f"({a} if {a} > 0 else {lit(attrs['alpha'], out)} * {math_fn('expm1', out)}({a}))"


@register
class Cast(Unary):
    name = "cast"

    def canonical(self, types, dtype):
        return {"dtype": as_dtype(dtype)}

    def infer(self, types, dtype):
        return TensorType(types[0].shape, as_dtype(dtype))

    def ref(self, x, dtype):
        return x.astype(dtype)

    def grad(self, node, g):
        x = node.inputs[0]
        return [F.cast(g, x.dtype) if is_float(x) and is_float(node) else None]

    def scalar(self, args, ins, out, consts, **attrs):
        return cast(args[0], ins[0], out)


class Binary(Op):
    kind = "elementwise"

    def infer(self, types, **attrs):
        a, b = types
        shape = broadcast_shapes(a.shape, b.shape)
        return TensorType(shape, probe_dtype(self, [a.dtype, b.dtype], **attrs))

    symbol = None        # the Python operator, when the op is one
    compares = False     # comparisons compute in the inputs' common dtype, not the (bool) output's

    def scalar(self, args, ins, out, consts, **attrs):
        common = np.result_type(*ins) if self.compares else out
        a, b = (cast(x, t, common) for x, t in zip(args, ins))
        return f"({a} {self.symbol} {b})"


@register
class Add(Binary):
    name = "add"
    ref = staticmethod(np.add)

    def grad(self, node, g):
        return [g, g]                                # the driver sums broadcast axes away

    symbol = "+"

    def scalar(self, args, ins, out, consts, **attrs):
        if out == bool_:                     # numpy: True + True is True
            return f"({args[0]} | {args[1]})"
        return Binary.scalar(self, args, ins, out, consts)


@register
class Subtract(Binary):
    name = "subtract"
    ref = staticmethod(np.subtract)

    def grad(self, node, g):
        return [g, -g]

    symbol = "-"


@register
class Multiply(Binary):
    name = "multiply"
    ref = staticmethod(np.multiply)

    def grad(self, node, g):
        a, b = node.inputs
        return [g * b, g * a]

    symbol = "*"

    def scalar(self, args, ins, out, consts, **attrs):
        if out == bool_:
            return f"({args[0]} & {args[1]})"
        return Binary.scalar(self, args, ins, out, consts)


@register
class Divide(Binary):
    name = "divide"
    ref = staticmethod(np.true_divide)

    def grad(self, node, g):
        a, b = node.inputs
        return [g / b, -(g * node) / b]           # a/b^2 as (a/b)/b: no overflow of b*b

    symbol = "/"


@register
class Power(Binary):
    name = "power"
    ref = staticmethod(np.power)

    def grad(self, node, g):
        a, b = node.inputs
        # at a == b == 0, b * a^(b-1) is 0 * inf = nan, but a^0 is the constant 1: read a as 1 there
        # (not a where() around the product: its untaken branch would give nan in the next derivative)
        nonzero_power = b.op.name == "constant" and bool(np.all(b.attrs["value"] != 0))   # x**2 etc.
        safe_a = a if nonzero_power else F.where(F.equal(a, 0) & F.equal(b, 0), 1, a)
        ga = g * b * safe_a ** (b - 1) if is_float(a) else None
        # d/db a^b = a^b log a; at a == 0 the value a^b is 0 (b > 0), so use 0 rather than 0 * -inf
        gb = g * node * F.where(F.equal(a, 0), 0, F.log(a)) if is_float(b) else None
        return [ga, gb]

    def scalar(self, args, ins, out, consts, **attrs):
        a, b = (cast(x, t, out) for x, t in zip(args, ins))
        p = consts[1]
        if p is not None and p == int(p) and 1 <= abs(p) <= 4:   # small integer powers: multiplications
            prod = " * ".join([a] * int(abs(p)))
            return f"({prod})" if p > 0 else f"({lit(1, out)} / ({prod}))"
        if p == 0.5 and out.kind == "f":
            return f"np.sqrt({a})"
        return f"({a} ** {b})"


@register
class Maximum(Binary):
    name = "maximum"
    ref = staticmethod(np.maximum)

    def grad(self, node, g):
        a, b = node.inputs
        first = a >= b                                # ties: the gradient goes to the first argument
        return [F.where(first, g, 0), F.where(first, 0, g)]

    def scalar(self, args, ins, out, consts, **attrs):
        a, b = (cast(x, t, out) for x, t in zip(args, ins))
        if out.kind == "f":                     # nan wins, as in numpy
            return f"({a} if ({a} >= {b} or {a} != {a}) else {b})"
        return f"max({a}, {b})"


@register
class Minimum(Binary):
    name = "minimum"
    ref = staticmethod(np.minimum)

    def grad(self, node, g):
        a, b = node.inputs
        first = a <= b                                # ties: the gradient goes to the first argument
        return [F.where(first, g, 0), F.where(first, 0, g)]

    def scalar(self, args, ins, out, consts, **attrs):
        a, b = (cast(x, t, out) for x, t in zip(args, ins))
        if out.kind == "f":
            return f"({a} if ({a} <= {b} or {a} != {a}) else {b})"
        return f"min({a}, {b})"


@register
class Equal(Binary):
    name = "equal"
    ref = staticmethod(np.equal)
    no_grad = True

    symbol = "=="
    compares = True


@register
class NotEqual(Binary):
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
    name = "logical_and"
    ref = staticmethod(np.logical_and)
    no_grad = True

    symbol = "&"


@register
class LogicalOr(Binary):
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

    def grad(self, node, g):
        c = node.inputs[0]
        return [None, F.where(c, g, 0), F.where(c, 0, g)]

    def scalar(self, args, ins, out, consts, **attrs):
        c, a, b = args[0], cast(args[1], ins[1], out), cast(args[2], ins[2], out)
        return f"({a} if {c} else {b})"
