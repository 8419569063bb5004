"""Ops that belong to neural networks rather than to numpy: softmax, log_softmax, one_hot."""
import numpy as np

from graphc.core.errors import DTypeError, ShapeError
from graphc.core.types import FLOATS, INTS, TensorType, as_dtype, float32, normalize_axis

from .base import Op, apply, register
from .reductions import sum
from .unary import exp


class Softmaxlike(Op):
    kind = "opaque"

    def canonical(self, types, axis=-1):
        return {"axis": normalize_axis(axis, types[0].ndim, self.name)}

    def infer(self, types, axis):
        (t,) = types
        if t.dtype not in FLOATS:
            raise DTypeError(f"{self.name} needs a float tensor, got {t.dtype}")
        return t


@register
class Softmax(Softmaxlike):
    """exp(x) / sum(exp(x)) along `axis`, computed after subtracting the max (no overflow)."""
    name = "softmax"

    def ref(self, x, axis):
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        return e / np.sum(e, axis=axis, keepdims=True)

    def grad(self, node, g):
        # s * (g - <g, s>): the Jacobian of softmax applied without building it
        s, axis = node, node.attrs["axis"]
        return [s * (g - sum(g * s, axis=axis, keepdims=True))]


@register
class LogSoftmax(Softmaxlike):
    """x - logsumexp(x) along `axis`: finite even where softmax underflows to 0."""
    name = "log_softmax"

    def ref(self, x, axis):
        z = x - np.max(x, axis=axis, keepdims=True)
        return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))

    def grad(self, node, g):
        # g - softmax * sum(g), with softmax = exp(log_softmax): finite for any input
        axis = node.attrs["axis"]
        return [g - exp(node) * sum(g, axis=axis, keepdims=True)]


@register
class OneHot(Op):
    """one_hot(indices, depth): a new last axis of size depth, 1 at the index.
    An index outside [0, depth) gives a row of zeros (as in TensorFlow)."""
    name = "one_hot"
    kind = "opaque"

    def canonical(self, types, depth, dtype="float32"):
        if not isinstance(depth, (int, np.integer)) or isinstance(depth, bool) or depth < 1:
            raise ShapeError(f"depth must be a positive int, got {depth!r}")
        return {"depth": int(depth), "dtype": as_dtype(dtype)}

    def infer(self, types, depth, dtype):
        (t,) = types
        if t.dtype not in INTS:
            raise DTypeError(f"indices must be int32 or int64, got {t.dtype}")
        return TensorType(t.shape + (depth,), as_dtype(dtype))

    def ref(self, x, depth, dtype):
        return (x[..., None] == np.arange(depth)).astype(dtype)
    no_grad = True


def softmax(x, axis=-1, name=None):
    return apply("softmax", [x], name=name, axis=axis)


def log_softmax(x, axis=-1, name=None):
    return apply("log_softmax", [x], name=name, axis=axis)


def one_hot(indices, depth, dtype=float32, name=None):
    return apply("one_hot", [indices], name=name, depth=depth, dtype=dtype)
