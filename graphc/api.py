"""The user-facing op functions: numpy names, numpy semantics, graph nodes out.

Each function turns its arguments into nodes (a Python scalar becomes a
constant of the dtype of the tensor it meets, numpy's NEP 50 rule: x * 1.5
stays float32) and asks the graph for `op(inputs, attrs)`.
"""
import math

import numpy as np

from graphc.ops import REGISTRY

from .errors import AxisError, DTypeError, GraphError, ShapeError
from .errors import where as at
from .graph import Node, get_default_graph, user_location
from .types import DTYPES, TensorType, as_dtype, float32, normalize_axes

# ---------------------------------------------------------------- sources


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


def _as_array(value, dtype, what):
    try:
        arr = np.array(value, dtype=None if dtype is None else as_dtype(dtype), order="C")
    except (ValueError, TypeError, OverflowError) as e:
        raise DTypeError(f"{what}: cannot make an array of {value!r}: {e}{at(user_location())}") from None
    if arr.dtype not in DTYPES:
        if dtype is None and arr.dtype.kind in "fiub":
            raise DTypeError(f"{what}: dtype {arr.dtype} is not supported; pass dtype= one of "
                             f"float32, float64, int32, int64, bool{at(user_location())}")
        raise DTypeError(f"{what}: cannot make a tensor of {value!r}{at(user_location())}")
    return arr


def constant(value, dtype=None, name=None, graph=None):
    """A fixed tensor. Equal constants (same dtype, shape and bytes) are one node."""
    arr = _as_array(value, dtype, "constant")
    arr.flags.writeable = False
    return (graph or get_default_graph()).add(REGISTRY["constant"], (), {"value": arr}, name=name or "const")


def variable(value, dtype=None, name=None):
    """State that persists across calls of every function built on this graph."""
    arr = _as_array(value, dtype, "variable")
    g = get_default_graph()
    node = g.add(REGISTRY["variable"], (), {"shape": arr.shape, "dtype": arr.dtype}, name=name or "variable")
    g.values[node] = arr
    return node


def get_value(var):
    """The current value of a variable (a copy)."""
    _check_variable(var)
    return var.graph.values[var].copy()


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
        raise error(f"set_value({var.name}): the variable is {var.type}, "
                    f"the value is {TensorType(arr.shape, arr.dtype) if arr.dtype in DTYPES else arr.dtype}"
                    f"{at(var.loc)}")
    var.graph.values[var] = arr.copy()


def _check_variable(var):
    if not (isinstance(var, Node) and var.op.name == "variable"):
        raise GraphError(f"{var!r} is not a variable")

# ---------------------------------------------------------------- helpers


def _graph_of(args):
    for a in args:
        if isinstance(a, Node):
            return a.graph
    return get_default_graph()


def as_node(x, like=None, graph=None):
    """x as a node; a Python scalar gets the dtype numpy would give it next to `like`."""
    if isinstance(x, Node):
        return x
    graph = graph or (like.graph if like is not None else get_default_graph())
    if like is not None and isinstance(x, (bool, int, float)):
        try:
            dtype = np.result_type(like.dtype, x)      # NEP 50: weak Python scalar
            value = np.array(x, dtype)
        except (OverflowError, TypeError) as e:
            raise DTypeError(f"the Python scalar {x!r} does not fit next to a {like.dtype} tensor: {e}"
                             f"{at(user_location())}") from None
        if dtype not in DTYPES:
            dtype = as_dtype(np.result_type(like.dtype, np.asarray(x)))
            value = np.array(x, dtype)
        return constant(value, graph=graph)
    return constant(x, graph=graph)


def _apply(op_name, inputs, name=None, **attrs):
    """Build op_name(inputs, **attrs) in the inputs' graph."""
    graph = _graph_of(inputs)
    nodes = [x for x in inputs if isinstance(x, Node)]
    # a scalar takes its dtype from the first non-bool tensor (so where(c, 1.0, x) stays x's dtype)
    like = next((n for n in nodes if n.dtype != np.bool_), nodes[0] if nodes else None)
    nodes = [as_node(x, like=like, graph=graph) for x in inputs]
    return graph.add(REGISTRY[op_name], nodes, attrs, name=name)

# ---------------------------------------------------------------- elementwise


def _unary(op_name, doc):
    def f(x, name=None):
        return _apply(op_name, [x], name=name)
    f.__name__ = f.__qualname__ = op_name
    f.__doc__ = doc
    return f


def _binary(op_name, doc):
    def f(a, b, name=None):
        return _apply(op_name, [a, b], name=name)
    f.__name__ = f.__qualname__ = op_name
    f.__doc__ = doc
    return f


negative = _unary("negative", "-x")
abs = _unary("abs", "|x|")
sign = _unary("sign", "-1, 0 or 1 (0 for 0, nan for nan)")
square = _unary("square", "x * x")
exp = _unary("exp", "e ** x")
log = _unary("log", "natural log")
sqrt = _unary("sqrt", "square root")
reciprocal = _unary("reciprocal", "1 / x")
tanh = _unary("tanh", "hyperbolic tangent")
sigmoid = _unary("sigmoid", "1 / (1 + exp(-x)), computed without overflow")
relu = _unary("relu", "max(x, 0)")
softplus = _unary("softplus", "log(1 + exp(x)), computed without overflow")
logical_not = _unary("logical_not", "not x, elementwise (bool result)")

add = _binary("add", "a + b")
subtract = _binary("subtract", "a - b")
multiply = _binary("multiply", "a * b")
divide = _binary("divide", "a / b (true division: ints give float64, as in numpy)")
power = _binary("power", "a ** b")
maximum = _binary("maximum", "elementwise max (nan wins)")
minimum = _binary("minimum", "elementwise min (nan wins)")
equal = _binary("equal", "a == b, elementwise")
not_equal = _binary("not_equal", "a != b, elementwise")
less = _binary("less", "a < b")
less_equal = _binary("less_equal", "a <= b")
greater = _binary("greater", "a > b")
greater_equal = _binary("greater_equal", "a >= b")
logical_and = _binary("logical_and", "a and b, elementwise")
logical_or = _binary("logical_or", "a or b, elementwise")


def leaky_relu(x, alpha=0.01, name=None):
    """x where x > 0, else alpha * x."""
    return _apply("leaky_relu", [x], name=name, alpha=alpha)


def elu(x, alpha=1.0, name=None):
    """x where x > 0, else alpha * (exp(x) - 1)."""
    return _apply("elu", [x], name=name, alpha=alpha)


def where(cond, a, b, name=None):
    """a where cond is true, else b (cond must be bool)."""
    if isinstance(cond, (bool, np.bool_)):   # a Python bool stays bool (np.where(True, a, b)), not a's dtype
        cond = constant(bool(cond), graph=_graph_of([a, b]))
    return _apply("where", [cond, a, b], name=name)


def cast(x, dtype, name=None):
    """x converted to dtype (float -> int truncates toward zero, as numpy's astype)."""
    return _apply("cast", [x], name=name, dtype=dtype)

# ---------------------------------------------------------------- reductions


def _reduction(op_name):
    def f(x, axis=None, keepdims=False, name=None):
        return _apply(op_name, [x], name=name, axis=axis, keepdims=keepdims)
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

# ---------------------------------------------------------------- the rest


def matmul(a, b, name=None):
    """a @ b with numpy's rules (batched, 1-D operands)."""
    return _apply("matmul", [a, b], name=name)


def reshape(x, shape, name=None):
    return _apply("reshape", [x], name=name, shape=shape)


def transpose(x, axes=None, name=None):
    return _apply("transpose", [x], name=name, axes=axes)


def expand_dims(x, axis, name=None):
    return _apply("expand_dims", [x], name=name, axis=axis)


def squeeze(x, axis=None, name=None):
    return _apply("squeeze", [x], name=name, axis=axis)


def broadcast_to(x, shape, name=None):
    return _apply("broadcast_to", [x], name=name, shape=shape)


def concatenate(xs, axis=0, name=None):
    try:
        xs = list(xs)
    except TypeError:
        raise ShapeError(f"concatenate needs a list of tensors, got {xs!r}{at(user_location())}") from None
    return _apply("concatenate", xs, name=name, axis=axis)


def getitem(x, key, name=None):
    """x[key] for basic indexing: ints, slices, None and Ellipsis."""
    return _apply("getitem", [x], name=name, index=key)


def pad(x, pad_width, constant_values=0, name=None):
    """Constant padding, numpy's pad_width forms: n, (before, after) or one pair per axis."""
    return _apply("pad", [x], name=name, pad_width=pad_width, value=constant_values)


def softmax(x, axis=-1, name=None):
    return _apply("softmax", [x], name=name, axis=axis)


def log_softmax(x, axis=-1, name=None):
    return _apply("log_softmax", [x], name=name, axis=axis)


def one_hot(indices, depth, dtype=float32, name=None):
    return _apply("one_hot", [indices], name=name, depth=depth, dtype=dtype)


# ---------------------------------------------------------------- shapes taken from another tensor
# Mostly for gradient rules: the target shape may hold None (a batch size).


def broadcast_like(x, like, name=None):
    """x broadcast to like's shape; a plain broadcast_to when that shape is known now."""
    x = as_node(x, like=like)
    if x.shape == like.shape:
        return x
    if like.type.is_concrete:
        return broadcast_to(x, like.shape, name=name)
    return _apply("broadcast_like", [x, like], name=name)


def reshape_like(x, like, name=None):
    """x reshaped to like's shape; a plain reshape when that shape is known now."""
    if x.shape == like.shape and None not in x.shape:
        return x
    if like.shape.count(None) <= 1:
        return reshape(x, [-1 if d is None else d for d in like.shape], name=name)
    return _apply("reshape_like", [x, like], name=name)


def size(x, axis=None, dtype="int64", name=None):
    """The number of elements of x along `axis` (all by default), as a scalar tensor."""
    try:
        axes = normalize_axes(axis, x.ndim)
    except AxisError as e:
        raise AxisError(f"size({x.type}): {e}{at(user_location())}") from None
    dims = [x.shape[a] for a in axes]
    if None not in dims:
        return constant(math.prod(dims), dtype=dtype, graph=x.graph)
    return _apply("size", [x], name=name, axis=axes, dtype=dtype)


def unslice(g, like, index, name=None):
    """Zeros shaped like `like` with g written at like[index]: the gradient of slicing."""
    return _apply("unslice", [g, like], name=name, index=index)
