"""Ops that rearrange a tensor's elements without computing: reshape, expand_dims, squeeze,
reshape_like, transpose; and size. Each with its user function. Their numpy references
return views where numpy does; executors copy what they must. Slicing is in ops/slicing.py,
broadcasting, concatenation and padding in ops/broadcast.py."""
import math

import numpy as np

from graphc.core.errors import AxisError, ShapeError
from graphc.core.errors import where as at
from graphc.core.graph import user_location
from graphc.core.types import TensorType, as_dtype, fmt_shape, normalize_axes, normalize_axis

from .base import Op, apply, constant_node, operator, register, same_type


@register
class Reshape(Op):
    """reshape(x, shape): one entry of shape may be -1 (inferred)."""
    name = "reshape"
    kind = "shape"
    view = "reshape"

    def canonical(self, types, shape):
        try:
            shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        except TypeError:
            raise ShapeError(f"target shape must be an int or a tuple of ints, got {shape!r}") from None
        if not all(d is None or isinstance(d, (int, np.integer)) for d in shape):
            raise ShapeError(f"target shape must hold ints, got {shape}")
        return {"shape": tuple(-1 if d is None else int(d) for d in shape)}

    def infer(self, types, shape):
        (t,) = types
        if sum(d == -1 for d in shape) > 1 or any(d < -1 for d in shape):
            raise ShapeError(f"bad target shape {shape}: sizes must be >= 0, with at most one -1")
        known = math.prod(d for d in shape if d != -1)
        if not t.is_concrete:
            # t has (product of its known sizes) * (the None ones) elements: a target of known
            # size must be a multiple of that product, or no size fed could fit
            part = math.prod(d for d in t.shape if d is not None)
            if -1 not in shape and (known % part if part else known):
                raise ShapeError(f"cannot reshape {fmt_shape(t.shape)} (a multiple of {part} elements) "
                                 f"into {fmt_shape(shape)} ({known} elements)")
            return TensorType(tuple(None if d == -1 else d for d in shape), t.dtype)
        if -1 in shape:
            if known == 0 or t.size % known:
                raise ShapeError(f"cannot reshape {fmt_shape(t.shape)} ({t.size} elements) into {shape}")
            shape = tuple(t.size // known if d == -1 else d for d in shape)
        elif known != t.size:
            raise ShapeError(f"cannot reshape {fmt_shape(t.shape)} ({t.size} elements) "
                             f"into {fmt_shape(shape)} ({known} elements)")
        return TensorType(shape, t.dtype)

    def ref(self, x, shape):
        return x.reshape(shape)

    def grad(self, node, g):
        return [reshape_like(g, node.inputs[0])]

    def simplify(self, n, x):
        if x.op.name in ("reshape", "reshape_like"):          # reshape(reshape(y)) -> reshape(y)
            x = x.inputs[0]
        if same_type(x, n) and n.type.is_concrete:
            return x
        if x is not n.inputs[0]:
            return reshape(x, n.attrs["shape"])

    def label(self, node):
        return [("shape", node.attrs["shape"])]


@register
class Transpose(Op):
    """transpose(x, axes): output axis i is input axis axes[i]."""
    name = "transpose"
    kind = "shape"
    view = "strided"

    def canonical(self, types, axes=None):
        nd = types[0].ndim
        if axes is None:
            return {"axes": tuple(reversed(range(nd)))}
        if isinstance(axes, (int, np.integer)):
            axes = (axes,)
        if not isinstance(axes, (tuple, list)) or len(axes) != nd:
            raise ShapeError(f"axes {axes!r} do not match a tensor of rank {nd}")
        return {"axes": tuple(normalize_axis(a, nd, self.name) for a in axes)}

    def infer(self, types, axes):
        (t,) = types
        if sorted(axes) != list(range(t.ndim)):
            raise ShapeError(f"axes {axes} are not a permutation of the {t.ndim} axes of {fmt_shape(t.shape)}")
        return TensorType(tuple(t.shape[a] for a in axes), t.dtype)

    def ref(self, x, axes):
        return np.transpose(x, axes)

    def grad(self, node, g):
        axes = node.attrs["axes"]
        return [transpose(g, tuple(sorted(range(len(axes)), key=axes.__getitem__)))]   # the inverse permutation

    def simplify(self, n, x):
        axes = n.attrs["axes"]
        if x.op.name == "transpose":                          # transpose(transpose(y)) -> one transpose
            inner = x.attrs["axes"]
            axes = tuple(inner[a] for a in axes)
            x = x.inputs[0]
        if axes == tuple(range(len(axes))):
            return x
        if x is not n.inputs[0]:
            return transpose(x, axes)


@register
class ExpandDims(Op):
    """expand_dims(x, axis): new size-1 axes at the given (output) positions."""
    name = "expand_dims"
    kind = "shape"
    view = "reshape"

    def canonical(self, types, axis):
        if axis is None:
            raise AxisError("expand_dims needs an axis (an int or a tuple of ints), got None")
        n_new = len(axis) if isinstance(axis, (tuple, list)) else 1
        return {"axis": normalize_axes(axis, types[0].ndim + n_new, self.name)}

    def infer(self, types, axis):
        (t,) = types
        shape = list(t.shape)
        for a in axis:
            shape.insert(a, 1)
        return TensorType(tuple(shape), t.dtype)

    def ref(self, x, axis):
        return np.expand_dims(x, axis)

    def grad(self, node, g):
        return [squeeze(g, node.attrs["axis"])]


@register
class Squeeze(Op):
    """squeeze(x, axis): drop the given size-1 axes."""
    name = "squeeze"
    kind = "shape"
    view = "reshape"

    def canonical(self, types, axis=None):
        shape = types[0].shape
        if axis is None:
            if None in shape:
                raise ShapeError(f"squeeze of {fmt_shape(shape)} needs an explicit axis: "
                                 "a size known only at call time might or might not be 1")
            return {"axis": tuple(i for i, d in enumerate(shape) if d == 1)}
        return {"axis": normalize_axes(axis, len(shape), self.name)}

    def infer(self, types, axis):
        (t,) = types
        for a in axis:
            if t.shape[a] not in (1, None):
                raise ShapeError(f"cannot squeeze axis {a} of size {t.shape[a]} in {fmt_shape(t.shape)}")
        return TensorType(tuple(d for i, d in enumerate(t.shape) if i not in axis), t.dtype)

    def ref(self, x, axis):
        return np.squeeze(x, axis)

    def grad(self, node, g):
        return [reshape_like(g, node.inputs[0])]


# ------------------------------------------------------------------ ops that take a shape from a tensor
# Gradients must undo broadcasting, reshaping and slicing onto an input whose
# shape may hold None. These ops read the target shape from a second input,
# `like`, at call time; gc.broadcast_like / gc.reshape_like use the plain
# broadcast_to / reshape whenever the shape is known when the graph is built.

@register
class ReshapeLike(Op):
    """reshape_like(x, like): x with like's shape (same number of elements)."""
    name = "reshape_like"
    kind = "shape"
    view = "reshape"

    def infer(self, types):
        x, like = types
        if x.is_concrete and like.is_concrete and x.size != like.size:
            raise ShapeError(f"cannot reshape {fmt_shape(x.shape)} into {fmt_shape(like.shape)}")
        return TensorType(like.shape, x.dtype)

    def ref(self, x, like):
        return x.reshape(like.shape)

    def grad(self, node, g):
        return [reshape_like(g, node.inputs[0]), None]

    def simplify(self, n, x, like):
        if same_type(x, n) and n.type.is_concrete:
            return x


@register
class Size(Op):
    """size(x, axis, dtype): the number of elements along the axes, as a scalar of dtype."""
    name = "size"
    kind = "opaque"
    no_grad = True

    def canonical(self, types, axis=None, dtype="int64"):
        return {"axis": normalize_axes(axis, types[0].ndim, self.name), "dtype": as_dtype(dtype)}

    def infer(self, types, axis, dtype):
        return TensorType((), dtype)

    def ref(self, x, axis, dtype):
        return np.asarray(math.prod(x.shape[a] for a in axis), dtype)


def reshape(x, shape, name=None):
    return apply("reshape", [x], name=name, shape=shape)


@operator
def transpose(x, axes=None, name=None):
    return apply("transpose", [x], name=name, axes=axes)


def expand_dims(x, axis, name=None):
    return apply("expand_dims", [x], name=name, axis=axis)


def squeeze(x, axis=None, name=None):
    return apply("squeeze", [x], name=name, axis=axis)


def reshape_like(x, like, name=None):
    """x reshaped to like's shape; a plain reshape when that shape is known now."""
    if x.shape == like.shape and None not in x.shape:
        return x
    if like.shape.count(None) <= 1:
        return reshape(x, [-1 if d is None else d for d in like.shape], name=name)
    return apply("reshape_like", [x, like], name=name)


def size(x, axis=None, dtype="int64", name=None):
    """The number of elements of x along `axis` (all by default), as a scalar tensor."""
    try:
        axes = normalize_axes(axis, x.ndim)
    except AxisError as e:
        raise AxisError(f"size({x.type}): {e}{at(user_location())}") from None
    dims = [x.shape[a] for a in axes]
    if None not in dims:
        return constant_node(math.prod(dims), dtype=dtype, graph=x.graph)
    return apply("size", [x], name=name, axis=axes, dtype=dtype)
