"""Reductions over one axis, several axes or all: sum, mean, max, min, prod, argmax, argmin;
each with its user function.

`axis` is normalized to a sorted tuple of non-negative axes before the node is
built, so sum(x, -1) and sum(x, 1) on a matrix are the same node.

What a backend needs to write a reduction loop is a fact of the op: its
`identity` (the accumulator's start) and `combine` (one step, as an expression
template for a code-generation Target, like an elementwise op's `scalar`).
Ops with a `combine` are the ones the fusion pass may fuse an elementwise
prologue into; `row` names the vectorized row helper a target may use instead.
"""
import numpy as np

from graphc.core.errors import AxisError, ShapeError
from graphc.core.types import TensorType, int64, normalize_axes

from .base import Op, apply, is_float, register
from .binary import add, equal
from .broadcast import broadcast_like
from .shape import expand_dims, size, squeeze
from .unary import cast


def reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def spread(node, g):
    """g, the gradient of a reduction's output, laid back over the input's shape."""
    if not node.attrs["keepdims"]:
        g = expand_dims(g, node.attrs["axis"])
    return broadcast_like(g, node.inputs[0])


def extreme_grad(node, g):
    """max/min: the gradient goes to the elements equal to the result, split evenly among ties."""
    x = node.inputs[0]
    hit = cast(equal(x, spread(node, node)), x.dtype)
    ties = sum(hit, axis=node.attrs["axis"], keepdims=True)
    return spread(node, g) * hit / ties


class Reduce(Op):
    kind = "reduction"
    np_fn = None
    needs_elements = False   # max/min/argmax/argmin of an empty axis is undefined
    row = None               # "sum" | "max" | "min": a target's vectorized helper over one row

    def identity(self, dtype):
        """The accumulator's first value; None: not a combine-style reduction (argmax)."""
        return None

    def combine(self, t, acc, v, dtype):
        """Expression: the accumulator after taking in v."""
        raise NotImplementedError

    def simplify(self, n, x):
        axes = n.attrs["axis"]
        # a reduction over size-1 axes reduces nothing (but sum/mean of ints or bools change the dtype)
        if x.dtype == n.dtype and all(x.shape[a] == 1 for a in axes):
            y = x if n.attrs["keepdims"] else squeeze(x, axes)
            # it still starts from its identity: sum and mean are +0.0 + x, which turns x = -0.0
            # into +0.0, so for floats they become that add (Add drops it where x cannot be -0.0)
            return add(y, 0.0) if is_float(n) and self.identity(n.dtype) == 0 else y

    def canonical(self, types, axis=None, keepdims=False):
        return {"axis": normalize_axes(axis, types[0].ndim, self.name), "keepdims": bool(keepdims)}

    def infer(self, types, axis, keepdims=False):
        (t,) = types
        if self.needs_elements and any(t.shape[a] == 0 for a in axis):
            raise ShapeError(f"{self.name} over an axis of size 0 has no identity")
        # numpy's own dtype rule (sum(int32) -> int64, mean(int) -> float64), read off a probe.
        dtype = self.ref(np.ones((1,) * t.ndim, t.dtype), axis=axis).dtype
        return TensorType(reduced_shape(t.shape, axis, keepdims), dtype)

    def ref(self, x, axis, keepdims=False):
        return np.asarray(type(self).np_fn(x, axis=axis, keepdims=keepdims))


@register
class Sum(Reduce):
    name = "sum"
    np_fn = np.sum
    row = "sum"

    def identity(self, dtype):
        return 0

    def combine(self, t, acc, v, dtype):
        return f"{acc} + {v}"

    def grad(self, node, g):
        return [spread(node, g)]


@register
class Mean(Reduce):
    """The sum, divided by the count once at the end."""
    name = "mean"
    np_fn = np.mean
    row = "sum"

    def identity(self, dtype):
        return 0

    def combine(self, t, acc, v, dtype):
        return f"{acc} + {v}"

    def grad(self, node, g):
        x = node.inputs[0]
        return [spread(node, g) / size(x, node.attrs["axis"], dtype=g.dtype)]


@register
class Prod(Reduce):
    name = "prod"
    np_fn = np.prod

    def identity(self, dtype):
        return 1

    def combine(self, t, acc, v, dtype):
        return f"{acc} * {v}"

    def grad(self, node, g):
        # prod / x: exact where no element is 0 (at a 0 this gives nan or inf)
        return [spread(node, g) * spread(node, node) / node.inputs[0]]


@register
class Max(Reduce):
    name = "max"
    np_fn = np.max
    needs_elements = True
    row = "max"

    def identity(self, dtype):
        return extreme_identity(dtype, low=True)

    def combine(self, t, acc, v, dtype):
        return extreme_combine(acc, v, dtype, ">")

    def grad(self, node, g):
        return [extreme_grad(node, g)]


@register
class Min(Reduce):
    name = "min"
    np_fn = np.min
    needs_elements = True
    row = "min"

    def identity(self, dtype):
        return extreme_identity(dtype, low=False)

    def combine(self, t, acc, v, dtype):
        return extreme_combine(acc, v, dtype, "<")

    def grad(self, node, g):
        return [extreme_grad(node, g)]


def extreme_identity(dtype, low):
    """max starts from the lowest value of the dtype, min from the highest."""
    if dtype == np.bool_:
        return not low
    if dtype.kind == "f":
        return -np.inf if low else np.inf
    info = np.iinfo(dtype)
    return info.min if low else info.max


def extreme_combine(acc, v, dtype, cmp):
    if dtype == np.bool_:
        return f"{acc} | {v}" if cmp == ">" else f"{acc} & {v}"
    if dtype.kind == "f":                                  # nan wins, as in numpy
        return f"{v} if ({v} {cmp} {acc} or {v} != {v}) else {acc}"
    return f"max({acc}, {v})" if cmp == ">" else f"min({acc}, {v})"


class ArgReduce(Reduce):
    """argmax/argmin: one axis, or all axes (the index into the flattened tensor)."""
    needs_elements = True
    no_grad = True

    def simplify(self, n, x):
        return None     # over size-1 axes the answer is 0, not x (Reduce's rule is for values)

    def infer(self, types, axis, keepdims=False):
        (t,) = types
        if len(axis) > 1 and len(axis) != t.ndim:
            raise AxisError(f"{self.name} takes one axis or all of them, got {axis}")
        if self.needs_elements and any(t.shape[a] == 0 for a in axis):
            raise ShapeError(f"{self.name} over an axis of size 0 has no answer")
        return TensorType(reduced_shape(t.shape, axis, keepdims), int64)

    def ref(self, x, axis, keepdims=False):
        if len(axis) == 1:
            return np.asarray(type(self).np_fn(x, axis=axis[0], keepdims=keepdims)).astype(np.int64)
        out = type(self).np_fn(x.reshape(-1)) if x.ndim else 0
        return np.asarray(out, np.int64).reshape((1,) * x.ndim if keepdims else ())


@register
class Argmax(ArgReduce):
    name = "argmax"
    np_fn = np.argmax


@register
class Argmin(ArgReduce):
    name = "argmin"
    np_fn = np.argmin

# ---------------------------------------------------------------- user functions


def _reduction(op_name):
    def f(x, axis=None, keepdims=False, name=None):
        return apply(op_name, [x], name=name, axis=axis, keepdims=keepdims)
    f.__name__ = f.__qualname__ = op_name
    f.__doc__ = f"{op_name} over `axis` (an int, a tuple of ints, or None for all), as numpy's."
    return f


sum = _reduction("sum")
mean = _reduction("mean")
max = _reduction("max")
min = _reduction("min")
prod = _reduction("prod")
argmax = _reduction("argmax")
argmin = _reduction("argmin")
