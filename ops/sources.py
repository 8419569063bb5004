"""Source ops: the leaves of a graph -- placeholders, constants, variables -- and their
user functions. They have no inputs and no numpy reference; the executors give them their
values (feeds, the constant, the variable's current value in the graph's store)."""
import hashlib
import itertools

import numpy as np

from graphc.core.errors import DTypeError, GraphError, ShapeError
from graphc.core.errors import where as at
from graphc.core.graph import Node, get_default_graph, user_location
from graphc.core.store import new_slot
from graphc.core.types import DTYPES, TensorType, as_dtype, float32

from .base import REGISTRY, Op, as_array, constant_node, register

_unique = itertools.count()
DIGEST_OVER = 256     # bytes: a bigger constant is hash-consed by a digest of its bytes, not a copy


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
    """State kept across calls; its value lives in the graph's store under attrs["slot"]."""
    name = "variable"

    def key(self, attrs):
        return ("slot", attrs["slot"])   # a scratch copy of the variable is the same variable

    def label(self, node):
        return []


@register
class Constant(Source):
    """A fixed array, stored in attrs["value"]. Equal constants are one node."""
    name = "constant"

    def infer(self, types, **attrs):
        v = attrs["value"]
        return TensorType(v.shape, v.dtype)

    def key(self, attrs):
        v = attrs["value"]
        data = v.tobytes()
        if len(data) > DIGEST_OVER:   # an imported model's weights are not held twice
            data = hashlib.sha256(data).digest()
        return (v.dtype.str, v.shape, data)


def placeholder(shape, dtype=float32, name=None):
    """An input fed when the function is called. A None in `shape` is a size given at call time."""
    try:
        shape = (shape,) if isinstance(shape, (int, np.integer)) or shape is None else tuple(shape)
    except TypeError:
        shape = (shape,)     # not a sequence: the check below reports it
    if not all(d is None or (isinstance(d, (int, np.integer)) and d >= 0) for d in shape):
        raise ShapeError(f"placeholder shape must hold non-negative ints or None, got {shape}"
                         f"{at(user_location())}")
    return get_default_graph().add(REGISTRY["placeholder"], (), {"shape": shape, "dtype": as_dtype(dtype)},
                                   name=name or "placeholder")


def constant(value, dtype=None, name=None, graph=None):
    """A fixed tensor. Equal constants (same dtype, shape and bytes) are one node."""
    return constant_node(value, dtype, name, graph)


def variable(value, dtype=None, name=None):
    """State that persists across calls of every function built on this graph."""
    arr = as_array(value, dtype, "variable")
    g = get_default_graph()
    node = g.add(REGISTRY["variable"], (), {"shape": arr.shape, "dtype": arr.dtype, "slot": new_slot()},
                 name=name or "variable")
    g.store[node] = arr
    return node


def get_value(var):
    """The current value of a variable (a copy, on the host)."""
    _check_variable(var)
    return var.graph.store[var].copy()


def set_value(var, value):
    """Replace a variable's value; the shape and dtype must stay the same."""
    _check_variable(var)
    if isinstance(value, Node):
        raise GraphError(f"set_value({var.name}): got graph node {value.name}; pass a numpy array"
                         f"{at(user_location())}")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as e:   # e.g. a ragged list
        raise DTypeError(f"set_value({var.name}): cannot make an array of {value!r}: {e}"
                         f"{at(user_location())}") from None
    if not isinstance(value, np.ndarray) and np.can_cast(arr.dtype, var.dtype, "same_kind"):
        arr = arr.astype(var.dtype)     # a Python number or list takes the variable's dtype, as a feed does
    if arr.shape != var.shape or arr.dtype != var.dtype:
        error = ShapeError if arr.shape != var.shape else DTypeError
        raise error(f"set_value({var.name}): the variable is {var.type}{at(var.loc)}, "
                    f"the value is {TensorType(arr.shape, arr.dtype) if arr.dtype in DTYPES else arr.dtype}"
                    f"{at(user_location())}")
    var.graph.store[var] = np.array(arr, order="C")


def _check_variable(var):
    if not (isinstance(var, Node) and var.op.name == "variable"):
        raise GraphError(f"{var!r} is not a variable")
