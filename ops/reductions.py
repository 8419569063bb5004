"""Reductions over one axis, several axes or all: sum, mean, max, min, prod, argmax, argmin.

The API normalizes `axis` to a sorted tuple of non-negative axes before the
node is built, so sum(x, -1) and sum(x, 1) on a matrix are the same node.
"""
import numpy as np

from graphc.errors import AxisError, ShapeError
from graphc.types import TensorType, int64, normalize_axes

import graphc.api as F

from .base import Op, register


def reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def spread(node, g):
    """g, the gradient of a reduction's output, laid back over the input's shape."""
    if not node.attrs["keepdims"]:
        g = F.expand_dims(g, node.attrs["axis"])
    return F.broadcast_like(g, node.inputs[0])


def extreme_grad(node, g):
    """max/min: the gradient goes to the elements equal to the result, split evenly among ties."""
    x = node.inputs[0]
    hit = F.cast(F.equal(x, spread(node, node)), x.dtype)
    ties = F.sum(hit, axis=node.attrs["axis"], keepdims=True)
    return spread(node, g) * hit / ties


class Reduce(Op):
    kind = "reduction"
    np_fn = None
    needs_elements = False   # max/min/argmax/argmin of an empty axis is undefined

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

    def grad(self, node, g):
        return [spread(node, g)]


@register
class Mean(Reduce):
    name = "mean"
    np_fn = np.mean

    def grad(self, node, g):
        x = node.inputs[0]
        return [spread(node, g) / F.size(x, node.attrs["axis"], dtype=g.dtype)]


@register
class Prod(Reduce):
    name = "prod"
    np_fn = np.prod

    def grad(self, node, g):
        # prod / x: exact where no element is 0 (at a 0 this gives nan or inf)
        return [spread(node, g) * spread(node, node) / node.inputs[0]]


@register
class Max(Reduce):
    name = "max"
    np_fn = np.max
    needs_elements = True

    def grad(self, node, g):
        return [extreme_grad(node, g)]


@register
class Min(Reduce):
    name = "min"
    np_fn = np.min
    needs_elements = True

    def grad(self, node, g):
        return [extreme_grad(node, g)]


class ArgReduce(Reduce):
    """argmax/argmin: one axis, or all axes (the index into the flattened tensor)."""
    needs_elements = True
    no_grad = True

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
