"""Concrete types at call time: re-run every op's type inference on the fed shapes.

At build time a None dimension is unknown; at call time it is known, so the
same `infer` that checked the graph when it was built checks it again on the
real shapes. A mismatch (two None batch sizes fed differently, a reshape that
no longer fits) becomes an error naming the op and the user's line, before
any kernel runs. Backends cache the result per shape signature.

Some ops are undefined for some concrete shapes that their type rule lets
through (softmax over an axis of size 0: numpy's max of nothing raises); those
are checked here too, so every backend raises the same ShapeError.
"""
from graphc.core.errors import GraphError, ShapeError, where
from graphc.core.types import TensorType, TupleType, fmt_shape


def concrete_types(nodes, fed_shapes):
    """{node: TensorType with every dimension known} for nodes in topological order."""
    types = {}
    for n in nodes:
        if n.op.name == "placeholder":
            types[n] = TensorType(fed_shapes[n], n.dtype)
            continue
        if not n.inputs or n.type.is_concrete and all(types[i] == i.type for i in n.inputs):
            types[n] = n.type          # nothing unknown upstream: the build-time type holds
        else:
            types[n] = _infer(n, types)
        if n.op.name in CALL_CHECKS:
            CALL_CHECKS[n.op.name](n, types)
    return types


def _infer(n, types):
    in_types = tuple(types[i] for i in n.inputs)
    try:
        t = n.op.infer(in_types, **n.attrs)
    except GraphError as e:
        shapes = ", ".join(str(t) for t in in_types)
        raise type(e)(f"{n.op.name}({shapes}) at call time: {e}{where(n.loc)}") from None
    if not isinstance(t, TupleType) and any(s is not None and s != c for s, c in zip(n.shape, t.shape)):
        raise ShapeError(f"{n.op.name} at call time gives shape {fmt_shape(t.shape)} but was built "
                         f"as {fmt_shape(n.shape)} for inputs "
                         + ", ".join(str(x) for x in in_types) + where(n.loc))
    return t


def _nonempty_axis(n, types):
    """softmax and log_softmax divide by the sum over their axis after subtracting its max."""
    shape = types[n.inputs[0]].shape
    if shape[n.attrs["axis"]] == 0:
        raise ShapeError(f"{n.op.name} over axis {n.attrs['axis']} of size 0 (input shape {fmt_shape(shape)}): "
                         f"the max of no values is undefined (numpy raises ValueError: zero-size "
                         f"array to reduction operation maximum){where(n.loc)}")


CALL_CHECKS = {"softmax": _nonempty_axis, "log_softmax": _nonempty_axis}   # op name -> check(n, types)
