"""Elementwise ops of one tensor: unary math, activations, cast; each with its user function.

dtypes are numpy's (found by `probe_dtype`), except that the transcendental
ops ask for a float input rather than silently promoting an integer tensor
to float64.
"""
import numpy as np

from graphc.core.errors import DTypeError
from graphc.core.types import FLOATS, TensorType, as_dtype, bool_

from .base import Op, apply, is_float, operator, probe_dtype, register
from .binary import where

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

    def simplify(self, n, x):
        if x.op.name == "negative":                           # --x -> x
            return x.inputs[0]

    def scalar(self, t, args, ins, out, consts, **attrs):
        return f"(-{args[0]})"


@register
class Abs(Unary):
    name = "abs"
    ref = staticmethod(np.abs)

    def grad(self, node, g):
        return [g * sign(node.inputs[0])]

    def scalar(self, t, args, ins, out, consts, **attrs):
        return f"abs({args[0]})"


@register
class Sign(Unary):
    name = "sign"
    ref = staticmethod(np.sign)
    no_grad = True

    def scalar(self, t, args, ins, out, consts, **attrs):
        a, one, zero = args[0], t.lit(1, out), t.lit(0, out)
        # numpy: sign(-0.0) is +0.0, and nan stays nan (only nan fails all three tests)
        return f"({one} if {a} > 0 else (-{one} if {a} < 0 else ({zero} if {a} == 0 else {a})))"


@register
class Square(Unary):
    name = "square"
    ref = staticmethod(np.square)

    def grad(self, node, g):
        return [g * node.inputs[0] * 2]

    def scalar(self, t, args, ins, out, consts, **attrs):
        return f"({args[0]} * {args[0]})"


@register
class Relu(Unary):
    name = "relu"

    def ref(self, x):
        return np.maximum(x, x.dtype.type(0))

    def grad(self, node, g):
        return [where(node.inputs[0] > 0, g, 0)]   # 0 at x == 0

    def scalar(self, t, args, ins, out, consts, **attrs):
        a, zero = args[0], t.lit(0, out)
        return f"({zero} if {a} < {zero} else {a})"               # nan stays nan


@register
class LogicalNot(Unary):
    name = "logical_not"
    ref = staticmethod(np.logical_not)
    no_grad = True

    def scalar(self, t, args, ins, out, consts, **attrs):
        return f"(not {args[0]})" if ins[0] == bool_ else f"({args[0]} == 0)"


@register
class Exp(Unary):
    name = "exp"
    float_only = True
    ref = staticmethod(np.exp)

    def grad(self, node, g):
        return [g * node]                            # via the output: exp(x) is already there

    def scalar(self, t, args, ins, out, consts, **attrs):
        return f"{t.math('exp', out)}({args[0]})"


@register
class Log(Unary):
    name = "log"
    float_only = True
    ref = staticmethod(np.log)

    def grad(self, node, g):
        return [g / node.inputs[0]]

    def scalar(self, t, args, ins, out, consts, **attrs):
        return f"{t.math('log', out)}({args[0]})"


@register
class Sqrt(Unary):
    name = "sqrt"
    float_only = True
    ref = staticmethod(np.sqrt)

    def grad(self, node, g):
        return [g * 0.5 / node]

    def scalar(self, t, args, ins, out, consts, **attrs):
        return f"{t.math('sqrt', out)}({args[0]})"


@register
class Reciprocal(Unary):
    name = "reciprocal"
    float_only = True
    ref = staticmethod(np.reciprocal)

    def grad(self, node, g):
        return [-g * node * node]

    def scalar(self, t, args, ins, out, consts, **attrs):
        return f"({t.lit(1, out)} / {args[0]})"


@register
class Tanh(Unary):
    name = "tanh"
    float_only = True
    ref = staticmethod(np.tanh)

    def grad(self, node, g):
        return [g * (1 - node * node)]

    def scalar(self, t, args, ins, out, consts, **attrs):
        return f"{t.math('tanh', out)}({args[0]})"


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

    def scalar(self, t, args, ins, out, consts, **attrs):
        return f"{t.math('sigmoid', out)}({args[0]})"


@register
class Softplus(Unary):
    name = "softplus"
    float_only = True

    def ref(self, x):
        return np.logaddexp(x.dtype.type(0), x)  # log(1 + e^x) without overflow

    def grad(self, node, g):
        return [g * sigmoid(node.inputs[0])]

    def scalar(self, t, args, ins, out, consts, **attrs):
        return f"{t.math('softplus', out)}({args[0]})"


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
        return [where(node.inputs[0] > 0, g, g * node.attrs["alpha"])]

    def scalar(self, t, args, ins, out, consts, **attrs):
        a = args[0]
        return f"({a} if {a} > 0 else {a} * {t.lit(attrs['alpha'], out)})"


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
        return [where(node.inputs[0] > 0, g, g * (node + node.attrs["alpha"]))]

    def scalar(self, t, args, ins, out, consts, **attrs):
        a = args[0]
        return f"({a} if {a} > 0 else {t.lit(attrs['alpha'], out)} * {t.math('expm1', out)}({a}))"


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
        return [cast(g, x.dtype) if is_float(x) and is_float(node) else None]

    def simplify(self, n, x):
        if x.dtype == n.dtype:
            return x

    def label(self, node):
        return [("dtype", str(node.attrs["dtype"]))]

    def scalar(self, t, args, ins, out, consts, **attrs):
        return t.cast(args[0], ins[0], out)


# ---------------------------------------------------------------- user functions


def _unary(op_name, doc):
    def f(x, name=None):
        return apply(op_name, [x], name=name)
    f.__name__ = f.__qualname__ = op_name
    f.__doc__ = doc
    return f


negative = operator(_unary("negative", "-x"))
abs = operator(_unary("abs", "|x|"))
sign = _unary("sign", "-1, 0 or 1 (0 for 0, nan for nan)")
square = _unary("square", "x * x")
exp = _unary("exp", "e ** x")
log = _unary("log", "natural log")
sqrt = _unary("sqrt", "square root")
reciprocal = _unary("reciprocal", "1 / x")
tanh = _unary("tanh", "hyperbolic tangent")
sigmoid = _unary("sigmoid", "1 / (1 + exp(-x)), computed without overflow")
relu = _unary("relu", "max(x, 0)")
softplus = _unary("softplus", "log(1 + exp(x)), computed without overflow")
logical_not = operator(_unary("logical_not", "not x, elementwise (bool result)"))


def leaky_relu(x, alpha=0.01, name=None):
    """x where x > 0, else alpha * x."""
    return apply("leaky_relu", [x], name=name, alpha=alpha)


def elu(x, alpha=1.0, name=None):
    """x where x > 0, else alpha * (exp(x) - 1)."""
    return apply("elu", [x], name=name, alpha=alpha)


def cast(x, dtype, name=None):
    """x converted to dtype (float -> int truncates toward zero, as numpy's astype)."""
    return apply("cast", [x], name=name, dtype=dtype)
