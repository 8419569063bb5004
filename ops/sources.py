"""Source ops: the leaves of a graph. They have no inputs and no numpy reference;
the executors give them their values (feeds, the constant, the variable's state)."""
import itertools

from graphc.types import TensorType

from .base import Op, register

_unique = itertools.count()


class Source(Op):
    kind = "source"

    def infer(self, types, **attrs):
        return TensorType(attrs["shape"], attrs["dtype"])


@register
class Placeholder(Source):
    """An input fed at call time. Shape entries may be None."""
    name = "placeholder"

    def key(self, attrs):
        return next(_unique)  # never shared: two placeholders are two inputs


@register
class Variable(Source):
    """State kept across calls; its value lives in graph.values."""
    name = "variable"

    def key(self, attrs):
        return next(_unique)


@register
class Constant(Source):
    """A fixed array, stored in attrs["value"]. Equal constants are one node."""
    name = "constant"

    def infer(self, types, **attrs):
        v = attrs["value"]
        return TensorType(v.shape, v.dtype)

    def key(self, attrs):
        v = attrs["value"]
        return (v.dtype.str, v.shape, v.tobytes())
