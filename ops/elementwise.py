"""Elementwise ops: unary math, binary arithmetic and comparisons, where, cast.

Shapes broadcast as in numpy; dtypes are numpy's (found by `probe_dtype`),
except that the transcendental ops ask for a float input rather than
silently promoting an integer tensor to float64.
"""
import numpy as np

from graphc.errors import DTypeError
from graphc.types import FLOATS, TensorType, as_dtype, bool_, broadcast_shapes

from .base import Op, probe_dtype, register


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


@register
class Abs(Unary):
    name = "abs"
    ref = staticmethod(np.abs)


@register
class Sign(Unary):
    name = "sign"
    ref = staticmethod(np.sign)


@register
class Square(Unary):
    name = "square"
    ref = staticmethod(np.square)


@register
class Relu(Unary):
    name = "relu"

    def ref(self, x):
        return np.maximum(x, x.dtype.type(0))


@register
class LogicalNot(Unary):
    name = "logical_not"
    ref = staticmethod(np.logical_not)


@register
class Exp(Unary):
    name = "exp"
    float_only = True
    ref = staticmethod(np.exp)


@register
class Log(Unary):
    name = "log"
    float_only = True
    ref = staticmethod(np.log)


@register
class Sqrt(Unary):
    name = "sqrt"
    float_only = True
    ref = staticmethod(np.sqrt)


@register
class Reciprocal(Unary):
    name = "reciprocal"
    float_only = True
    ref = staticmethod(np.reciprocal)


@register
class Tanh(Unary):
    name = "tanh"
    float_only = True
    ref = staticmethod(np.tanh)


@register
class Sigmoid(Unary):
    name = "sigmoid"
    float_only = True

    def ref(self, x):
        # exp of -|x| never overflows; pick the form that is accurate on each side.
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


@register
class Softplus(Unary):
    name = "softplus"
    float_only = True

    def ref(self, x):
        return np.logaddexp(x.dtype.type(0), x)  # log(1 + e^x) without overflow


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


@register
class Cast(Unary):
    name = "cast"

    def canonical(self, types, dtype):
        return {"dtype": as_dtype(dtype)}

    def infer(self, types, dtype):
        return TensorType(types[0].shape, as_dtype(dtype))

    def ref(self, x, dtype):
        return x.astype(dtype)


class Binary(Op):
    kind = "elementwise"

    def infer(self, types, **attrs):
        a, b = types
        shape = broadcast_shapes(a.shape, b.shape)
        return TensorType(shape, probe_dtype(self, [a.dtype, b.dtype], **attrs))


@register
class Add(Binary):
    name = "add"
    ref = staticmethod(np.add)


@register
class Subtract(Binary):
    name = "subtract"
    ref = staticmethod(np.subtract)


@register
class Multiply(Binary):
    name = "multiply"
    ref = staticmethod(np.multiply)


@register
class Divide(Binary):
    name = "divide"
    ref = staticmethod(np.true_divide)


@register
class Power(Binary):
    name = "power"
    ref = staticmethod(np.power)


@register
class Maximum(Binary):
    name = "maximum"
    ref = staticmethod(np.maximum)


@register
class Minimum(Binary):
    name = "minimum"
    ref = staticmethod(np.minimum)


@register
class Equal(Binary):
    name = "equal"
    ref = staticmethod(np.equal)


@register
class NotEqual(Binary):
    name = "not_equal"
    ref = staticmethod(np.not_equal)


@register
class Less(Binary):
    name = "less"
    ref = staticmethod(np.less)


@register
class LessEqual(Binary):
    name = "less_equal"
    ref = staticmethod(np.less_equal)


@register
class Greater(Binary):
    name = "greater"
    ref = staticmethod(np.greater)


@register
class GreaterEqual(Binary):
    name = "greater_equal"
    ref = staticmethod(np.greater_equal)


@register
class LogicalAnd(Binary):
    name = "logical_and"
    ref = staticmethod(np.logical_and)


@register
class LogicalOr(Binary):
    name = "logical_or"
    ref = staticmethod(np.logical_or)


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
