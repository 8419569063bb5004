"""Ops that make a tensor bigger: broadcast_to, broadcast_like (the shape of another
tensor, for gradients where a size is None), concatenate and pad; and split, concatenate's
inverse, a node with several outputs. Each with its user function."""
import numpy as np

from graphc.core.errors import DTypeError, ShapeError
from graphc.core.errors import where as at
from graphc.core.graph import user_location
from graphc.core.types import TensorType, TupleType, fmt_shape, normalize_axis

from .base import REGISTRY, Op, apply, as_node, register, same_type
from .slicing import getitem


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

    def scalar(self, t, args, ins, out, consts, **attrs):
        return args[0]

    def grad(self, node, g):
        return [g]                # gc.grad sums the broadcast axes back

    def simplify(self, n, x, *like):
        return simplify_broadcast(n, x, *like)

    def label(self, node):
        return [("shape", node.attrs["shape"])]


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
            grads.append(getitem(g, key))
            start += size
        return grads


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
        return [getitem(g, key)]


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

    def simplify(self, n, x, like):
        return simplify_broadcast(n, x, like)


def simplify_broadcast(n, x, *like):
    if same_type(x, n):                                   # broadcast to the shape it has
        return x
    # broadcast_to(expand_dims(scalar)) -> broadcast_to(scalar): broadcasting adds leading axes itself
    if x.op.name in ("expand_dims", "reshape") and x.inputs[0].shape == ():
        scalar = x.inputs[0]
        return broadcast_like(scalar, like[0]) if like else broadcast_to(scalar, n.attrs["shape"])



def broadcast_to(x, shape, name=None):
    return apply("broadcast_to", [x], name=name, shape=shape)


def broadcast_like(x, like, name=None):
    """x broadcast to like's shape; a plain broadcast_to when that shape is known now."""
    x = as_node(x, like=like)
    if x.shape == like.shape:
        return x
    if like.type.is_concrete:
        return broadcast_to(x, like.shape, name=name)
    return apply("broadcast_like", [x, like], name=name)


def concatenate(xs, axis=0, name=None):
    try:
        xs = list(xs)
    except TypeError:
        raise ShapeError(f"concatenate needs a list of tensors, got {xs!r}{at(user_location())}") from None
    return apply("concatenate", xs, name=name, axis=axis)


def pad(x, pad_width, constant_values=0, name=None):
    """Constant padding, numpy's pad_width forms: n, (before, after) or one pair per axis."""
    return apply("pad", [x], name=name, pad_width=pad_width, value=constant_values)


@register
class Split(Op):
    """split(x, bounds, axis): the pieces x[..., start:stop, ...] along axis, one output each.

    Its type is a TupleType; `output(node, k)` nodes read the pieces. Its gradient takes
    one gradient per output (None for a piece nothing used) and joins them back."""
    name = "split"
    kind = "shape"

    def canonical(self, types, bounds, axis=0):
        return {"bounds": tuple((int(a), int(b)) for a, b in bounds),
                "axis": normalize_axis(axis, types[0].ndim, self.name)}

    def infer(self, types, bounds, axis):
        (t,) = types
        size = t.shape[axis]
        if size is not None and (not bounds or bounds[-1][1] != size) or \
                any(b[0] >= b[1] for b in bounds) or any(a[1] != b[0] for a, b in zip(bounds, bounds[1:])):
            raise ShapeError(f"pieces {bounds} do not cover axis {axis} of {fmt_shape(t.shape)} in order")
        piece = [list(t.shape) for _ in bounds]
        for p, (a, b) in zip(piece, bounds):
            p[axis] = b - a
        return TupleType(tuple(TensorType(tuple(p), t.dtype) for p in piece))

    def ref(self, x, bounds, axis):
        key = (slice(None),) * axis
        return tuple(np.ascontiguousarray(x[key + (slice(a, b),)]) for a, b in bounds)

    def grad(self, node, gs):
        x, axis = node.inputs[0], node.attrs["axis"]
        parts = []
        for g, (start, stop) in zip(gs, node.attrs["bounds"]):
            if g is None:         # an unused piece: zeros shaped like it (a size may be None)
                g = broadcast_like(as_node(0, like=x), getitem(x, (slice(None),) * axis + (slice(start, stop),)))
            parts.append(g)
        return [concatenate(parts, axis=axis)]


def split(x, indices_or_sections, axis=0, name=None):
    """numpy's split: `sections` equal pieces, or cut before each of the given indices.
    Returns one node per piece."""
    ax = normalize_axis(axis, x.ndim, "split")
    size = x.shape[ax]
    if size is None:
        raise ShapeError(f"split needs the size of axis {ax} of {fmt_shape(x.shape)} when the graph is built"
                         f"{at(user_location())}")
    if isinstance(indices_or_sections, int):
        k = indices_or_sections
        if k <= 0 or size % k:
            raise ShapeError(f"split: {size} elements along axis {ax} do not divide into {k} equal pieces"
                             f"{at(user_location())}")
        cuts = [size // k * i for i in range(1, k)]
    else:
        cuts = [int(c) for c in indices_or_sections]
    edges = [0] + cuts + [size]
    node = apply("split", [x], name=name, bounds=tuple(zip(edges, edges[1:])), axis=ax)
    return [node.graph.add(REGISTRY["output"], (node,), {"index": k}) for k in range(len(edges) - 1)]
