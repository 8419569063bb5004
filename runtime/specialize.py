"""Concrete types at call time: re-run every op's type inference on the fed shapes.

At build time a None dimension is unknown; at call time it is known, so the
same `infer` that checked the graph when it was built checks it again on the
real shapes. A mismatch (two None batch sizes fed differently, a reshape that
no longer fits) becomes an error naming the op and the user's line, before
any kernel runs. Backends cache the result per shape signature.
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
            continue
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
        types[n] = t
    return types
