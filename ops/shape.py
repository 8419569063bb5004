"""Shape ops: reshape, transpose, expand_dims, squeeze, broadcast_to, concatenate,
basic slicing (getitem) and pad. Their numpy references return views where
numpy does; executors copy what they must."""
import math

import numpy as np

from graphc.errors import AxisError, DTypeError, GraphError, ShapeError
from graphc.types import TensorType, as_dtype, broadcast_shapes, fmt_shape, normalize_axes, normalize_axis

import graphc.api as F

from .base import Op, register


@register
class Reshape(Op):
    """reshape(x, shape): one entry of shape may be -1 (inferred)."""
    name = "reshape"
    kind = "shape"

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
        return [F.reshape_like(g, node.inputs[0])]


@register
class Transpose(Op):
    """transpose(x, axes): output axis i is input axis axes[i]."""
    name = "transpose"
    kind = "shape"

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
        return [F.transpose(g, tuple(sorted(range(len(axes)), key=axes.__getitem__)))]   # the inverse permutation


@register
class ExpandDims(Op):
    """expand_dims(x, axis): new size-1 axes at the given (output) positions."""
    name = "expand_dims"
    kind = "shape"

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
        return [F.squeeze(g, node.attrs["axis"])]


@register
class Squeeze(Op):
    """squeeze(x, axis): drop the given size-1 axes."""
    name = "squeeze"
    kind = "shape"

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
        return [F.reshape_like(g, node.inputs[0])]


@register
class BroadcastTo(Op):
    name = "broadcast_to"
    kind = "elementwise"       # an identity with broadcasting: it fuses into the loop that reads it

    def canonical(self, types, shape):
        try:
            shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        except TypeError:
            raise ShapeError(f"target shape must be an int or a tuple of ints, got {shape!r}") from None
        if not all(isinstance(d, (int, np.integer)) for d in shape):
            raise ShapeError(f"target shape must hold ints, got {shape}")
        return {"shape": tuple(int(d) for d in shape)}

    def infer(self, types, shape):
        (t,) = types
        ok = len(shape) >= t.ndim and all(
            d in (1, s, None) for d, s in zip(t.shape, shape[len(shape) - t.ndim:]))
        if not ok or any(s is None or s < 0 for s in shape):
            raise ShapeError(f"cannot broadcast {fmt_shape(t.shape)} to {fmt_shape(shape)}")
        return TensorType(shape, t.dtype)

    def ref(self, x, shape):
        return np.broadcast_to(x, shape)

    def scalar(self, args, ins, out, consts, **attrs):
        return args[0]

    def grad(self, node, g):
        return [g]                # gc.grad sums the broadcast axes back


@register
class Concatenate(Op):
    """concatenate(xs, axis): join tensors of equal rank along an existing axis."""
    name = "concatenate"
    kind = "shape"

    def canonical(self, types, axis=0):
        if not types:
            raise ShapeError("needs at least one tensor")
        return {"axis": normalize_axis(axis, types[0].ndim, self.name)}

    def infer(self, types, axis):
        if not types:
            raise ShapeError("needs at least one tensor")
        nd = types[0].ndim
        if any(t.ndim != nd for t in types):
            raise ShapeError("all tensors need the same rank, got " + ", ".join(fmt_shape(t.shape) for t in types))
        out = []
        for i in range(nd):
            dims = [t.shape[i] for t in types]
            if i == axis:
                out.append(None if None in dims else sum(dims))
            else:
                known = {d for d in dims if d is not None}
                if len(known) > 1:
                    raise ShapeError("sizes differ off the joined axis: "
                                     + ", ".join(fmt_shape(t.shape) for t in types))
                out.append(known.pop() if known else None)
        return TensorType(tuple(out), np.result_type(*[t.dtype for t in types]))

    def ref(self, *xs, axis):
        return np.concatenate(xs, axis=axis)

    def grad(self, node, g):
        axis, start, grads = node.attrs["axis"], 0, []
        for x in node.inputs:
            size = x.shape[axis]
            if size is None:
                raise ShapeError(f"the gradient of concatenate needs the size of axis {axis} of "
                                 f"{x.name} {fmt_shape(x.shape)} when the graph is built")
            key = (slice(None),) * axis + (slice(start, start + size),)
            grads.append(F.getitem(g, key))
            start += size
        return grads


def normalize_index(key, shape):
    """A basic-indexing key -> tuple of ('int', i) | ('slice', start, stop, step) | ('new',).

    Ellipsis is expanded so every input axis is covered by exactly one entry.
    """
    if not isinstance(key, tuple):
        key = (key,)
    n_used = sum(1 for k in key if k is not None and k is not Ellipsis)
    if sum(k is Ellipsis for k in key) > 1:
        raise ShapeError("an index can only have a single ellipsis ('...')")
    if n_used > len(shape):
        raise ShapeError(f"too many indices ({n_used}) for a tensor of shape {fmt_shape(shape)}")
    out, axis = [], 0
    for k in key:
        if k is Ellipsis:
            for _ in range(len(shape) - n_used):
                out.append(("slice", None, None, None))
                axis += 1
        elif k is None:
            out.append(("new",))
        elif isinstance(k, slice):
            parts = (k.start, k.stop, k.step)
            if any(p is not None and not isinstance(p, (int, np.integer)) for p in parts):
                raise ShapeError(f"slice bounds must be ints, got {k}")
            if k.step == 0:
                raise ShapeError("slice step cannot be zero")
            out.append(("slice",) + tuple(None if p is None else int(p) for p in parts))
            axis += 1
        elif isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_)):
            d = shape[axis]
            if d is not None and not -d <= k < d:
                raise ShapeError(f"index {k} is out of range for axis {axis} of size {d}")
            out.append(("int", int(k)))
            axis += 1
        else:
            raise GraphError(f"only basic indexing (ints, slices, None, ...) is supported, got {k!r}")
    out.extend(("slice", None, None, None) for _ in range(len(shape) - axis))
    return tuple(out)


def index_key(index):
    """The numpy key for a normalized index."""
    return tuple(k[1] if k[0] == "int" else None if k[0] == "new" else slice(*k[1:]) for k in index)


@register
class GetItem(Op):
    name = "getitem"
    kind = "shape"

    def canonical(self, types, index):
        if isinstance(index, tuple) and index and all(
                isinstance(k, tuple) and k and isinstance(k[0], str) for k in index):
            return {"index": index}          # already normalized (a user's x[(0, 1), 2] is not)
        return {"index": normalize_index(index, types[0].shape)}

    def infer(self, types, index):
        (t,) = types
        shape, axis = [], 0
        for k in index:
            if k[0] == "new":
                shape.append(1)
                continue
            d = t.shape[axis]
            axis += 1
            if k[0] == "int":
                if d is not None and not -d <= k[1] < d:
                    raise ShapeError(f"index {k[1]} is out of range for axis {axis - 1} of size {d}")
            else:
                shape.append(None if d is None else len(range(*slice(*k[1:]).indices(d))))
        return TensorType(tuple(shape), t.dtype)

    def ref(self, x, index):
        return np.asarray(x[index_key(index)])

    def grad(self, node, g):
        return [F.unslice(g, node.inputs[0], node.attrs["index"])]


@register
class Pad(Op):
    """pad(x, pad_width, value): constant padding; pad_width is ((before, after), ...) per axis."""
    name = "pad"
    kind = "shape"

    def canonical(self, types, pad_width, value=0):
        nd = types[0].ndim
        try:
            pw = np.broadcast_to(np.asarray(pad_width, dtype=object), (nd, 2))
            pw = tuple((int(a), int(b)) for a, b in pw)
        except (ValueError, TypeError):
            raise ShapeError(f"pad_width {pad_width!r} is not an int, a (before, after) pair, "
                             f"or one pair per axis of a rank-{nd} tensor") from None
        if not isinstance(value, (int, float, bool, np.number, np.bool_)):
            raise ShapeError(f"pad value must be a number, got {value!r}")
        return {"pad_width": pw, "value": value.item() if hasattr(value, "item") else value}

    def infer(self, types, pad_width, value=0):
        (t,) = types
        if len(pad_width) != t.ndim or any(len(p) != 2 or min(p) < 0 for p in pad_width):
            raise ShapeError(f"pad_width {pad_width} needs one (before, after) pair of "
                             f"non-negative ints per axis of {fmt_shape(t.shape)}")
        if t.dtype.kind in "iub" and not float(value).is_integer() or (   # nan, inf, 1.5
                t.dtype.kind in "iu" and not np.iinfo(t.dtype).min <= value <= np.iinfo(t.dtype).max):
            raise DTypeError(f"pad value {value} does not fit {t.dtype}")
        return TensorType(tuple(None if d is None else d + a + b for d, (a, b) in zip(t.shape, pad_width)),
                          t.dtype)

    def ref(self, x, pad_width, value=0):
        return np.pad(x, pad_width, constant_values=x.dtype.type(value))

    def grad(self, node, g):
        # the inner block; slice(a, -b) needs no sizes, so None dimensions work too
        key = tuple(slice(a, -b if b else None) for a, b in node.attrs["pad_width"])
        return [F.getitem(g, key)]


# ------------------------------------------------------------------ ops that take a shape from a tensor
# Gradients must undo broadcasting, reshaping and slicing onto an input whose
# shape may hold None. These ops read the target shape from a second input,
# `like`, at call time; gc.broadcast_like / gc.reshape_like use the plain
# broadcast_to / reshape whenever the shape is known when the graph is built.

@register
class BroadcastLike(Op):
    """broadcast_like(x, like): x broadcast to like's shape (like's values are not read)."""
    name = "broadcast_like"
    kind = "shape"

    def infer(self, types):
        x, like = types
        ok = x.ndim <= like.ndim and all(
            d in (1, s) or None in (d, s) for d, s in zip(x.shape, like.shape[like.ndim - x.ndim:]))
        if not ok:
            raise ShapeError(f"cannot broadcast {fmt_shape(x.shape)} to {fmt_shape(like.shape)}")
        return TensorType(like.shape, x.dtype)

    def ref(self, x, like):
        return np.broadcast_to(x, like.shape)

    def grad(self, node, g):
        return [g, None]          # gc.grad sums the broadcast axes back


@register
class ReshapeLike(Op):
    """reshape_like(x, like): x with like's shape (same number of elements)."""
    name = "reshape_like"
    kind = "shape"

    def infer(self, types):
        x, like = types
        if x.is_concrete and like.is_concrete and x.size != like.size:
            raise ShapeError(f"cannot reshape {fmt_shape(x.shape)} into {fmt_shape(like.shape)}")
        return TensorType(like.shape, x.dtype)

    def ref(self, x, like):
        return x.reshape(like.shape)

    def grad(self, node, g):
        return [F.reshape_like(g, node.inputs[0]), None]


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


@register
class Unslice(Op):
    """unslice(g, like, index): zeros shaped like `like`, with g written at like[index].

    The gradient of x[index]: every element of x that the slice read gets its
    gradient back, the others get 0."""
    name = "unslice"
    kind = "shape"

    def canonical(self, types, index):
        return GetItem().canonical(types[1:], index)

    def infer(self, types, index):
        g, like = types
        sliced = GetItem().infer((like,), index)
        if broadcast_shapes(g.shape, sliced.shape) != sliced.shape and g.is_concrete and sliced.is_concrete:
            raise ShapeError(f"{fmt_shape(g.shape)} does not fit the slice {fmt_shape(sliced.shape)}")
        return TensorType(like.shape, g.dtype)

    def ref(self, g, like, index):
        out = np.zeros(like.shape, g.dtype)
        out[index_key(index)] = g
        return out

    def grad(self, node, g):
        return [F.getitem(g, node.attrs["index"]), None]
