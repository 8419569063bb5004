"""Basic slicing: getitem (x[key] with ints, slices, None, ...) and unslice, its gradient."""
import numpy as np

from graphc.core.errors import GraphError, ShapeError
from graphc.core.types import TensorType, broadcast_shapes, fmt_shape

from .base import Op, apply, operator, register


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
    view = "strided"

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
        return [unslice(g, node.inputs[0], node.attrs["index"])]

    def label(self, node):
        return [(None, "[" + ", ".join(fmt_key(k) for k in index_key(node.attrs["index"])) + "]")]


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
        return [getitem(g, node.attrs["index"]), None]

    def label(self, node):
        return [(None, "[" + ", ".join(fmt_key(k) for k in index_key(node.attrs["index"])) + "]")]


def fmt_key(k):
    """One entry of a numpy key as it is written in source: 1:3, ::2, None, 0."""
    if isinstance(k, slice):
        parts = ["" if p is None else str(p) for p in (k.start, k.stop, k.step)]
        return ":".join(parts[:2]) + (f":{parts[2]}" if k.step is not None else "")
    return "None" if k is None else str(k)


@operator
def getitem(x, key, name=None):
    """x[key] for basic indexing: ints, slices, None and Ellipsis."""
    return apply("getitem", [x], name=name, index=key)


def unslice(g, like, index, name=None):
    """Zeros shaped like `like` with g written at like[index]: the gradient of slicing."""
    return apply("unslice", [g, like], name=name, index=index)
