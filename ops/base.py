"""The Op base class, the registry of every op, and how op functions build nodes.

An op is a stateless singleton. Everything graphc knows about it sits on its
class, next to the user function that builds it:
- `infer` (types in, type out; raises ShapeError/DTypeError on bad input),
- `ref` (the numpy reference: the interpreter, constant folding and the test
  oracle all use it), `grad` (gradient rule, building graph nodes),
- `scalar(t, ...)` for elementwise ops: an expression template that asks a
  code-generation Target (runtime/target.py) for math functions and literals,
  so every backend shares one definition,
- facts the passes and backends read: `kind` (what fusion may do),
  `commutative` (CSE), `view` (the memory plan), `simplify` (algebraic rules),
  `label` (DOT), and for reductions `identity`/`combine` (ops/reductions.py).
"""
import math

import numpy as np

from graphc.core.errors import DTypeError
from graphc.core.errors import where as at
from graphc.core.graph import OPERATORS, Node, get_default_graph, user_location
from graphc.core.types import DTYPES, FLOATS, as_dtype

REGISTRY = {}


def register(cls):
    """Class decorator: put one instance of the op in the registry under cls.name."""
    assert cls.name and cls.name not in REGISTRY, cls.name
    REGISTRY[cls.name] = cls()
    return cls


def get(name):
    return REGISTRY[name]


def operator(fn):
    """Decorator: Node operators (+, -, x[k], x.T, ...) that build this op call fn."""
    OPERATORS[fn.__name__] = fn
    return fn


class Op:
    name = None
    kind = "opaque"      # "source" | "elementwise" | "reduction" | "shape" | "fused" | "opaque"
    no_grad = False      # True: the output does not vary smoothly with the inputs (argmax, x > y, ...)
    commutative = False  # op(a, b) == op(b, a): CSE orders the inputs
    view = None          # "strided": may alias its input with other strides; "reshape": aliases a
                         # C-contiguous input with a new shape (runtime/memory.py decides)

    def infer(self, types, **attrs):
        raise NotImplementedError

    def ref(self, *arrays, **attrs):
        raise NotImplementedError

    def grad(self, node, g):
        """Gradient nodes [dL/d input_i] given g = dL/d node (None: no gradient to that input).

        A rule may return a gradient of the output's (broadcast) shape or of
        a wider dtype: gc.grad sums it back to the input's shape and casts it.
        A node with several outputs gets g as a list, one gradient (or None) per output.
        """
        raise NotImplementedError(f"op {self.name} has no gradient rule")

    def commutes(self, node):
        """May CSE swap node's two inputs? Only if op(a, b) and op(b, a) agree bit for bit."""
        return self.commutative

    def simplify(self, node, *inputs):
        """An equal node of node's exact type that is cheaper, or None (passes/simplify.py)."""
        return None

    def canonical(self, types, **attrs):
        """Attrs in one canonical form (e.g. axis -1 -> ndim-1), so equal nodes hash-cons."""
        return attrs

    def key(self, attrs):
        """Hashable summary of attrs for hash-consing (values must be hashable)."""
        return tuple(sorted(attrs.items()))

    def label(self, node):
        """The attrs a DOT picture shows under the op's name, as (key, text) pairs."""
        return [(k, v) for k, v in node.attrs.items() if k not in ("value", "shape", "dtype", "index")]

    def __repr__(self):
        return f"<op {self.name}>"


_probe_cache = {}


def probe_dtype(op, dtypes, **attrs):
    """The dtype numpy gives for `op.ref` on these input dtypes, checked to be supported.

    Running the reference on one-element arrays is how the inferred dtype stays
    exactly numpy's (e.g. int32 / int32 -> float64, sum(int32) -> int64).
    """
    key = (op.name, tuple(dtypes), tuple(sorted(attrs.items())))
    if key not in _probe_cache:
        names = ", ".join(str(d) for d in dtypes)
        try:
            with np.errstate(all="ignore"):
                out = op.ref(*[np.ones(1, d) for d in dtypes], **attrs)
            dt = np.asarray(out).dtype
        except (TypeError, np.exceptions.DTypePromotionError, ValueError):
            raise DTypeError(f"{op.name} is not defined for dtypes ({names})") from None
        if dt not in DTYPES:
            raise DTypeError(f"{op.name} on ({names}) would give {dt}, which graphc does not support; "
                             "cast the inputs first (gc.cast)")
        _probe_cache[key] = dt
    return _probe_cache[key]


def is_float(node_or_type):
    return node_or_type.dtype in FLOATS

# ---------------------------------------------------------------- building nodes


def as_array(value, dtype, what):
    """value as a C-ordered array of a supported dtype, or a DTypeError naming the user's line."""
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


def constant_node(value, dtype=None, name=None, graph=None):
    """A constant node of value (a copy, read-only). Equal constants are one node."""
    arr = as_array(value, dtype, "constant")
    arr.flags.writeable = False
    return (graph or get_default_graph()).add(REGISTRY["constant"], (), {"value": arr}, name=name or "const")


def graph_of(args):
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
        return constant_node(value, graph=graph)
    return constant_node(x, graph=graph)


def apply(op_name, inputs, name=None, **attrs):
    """Build op_name(inputs, **attrs) in the inputs' graph (Python scalars become constants)."""
    graph = graph_of(inputs)
    nodes = [x for x in inputs if isinstance(x, Node)]
    # a scalar takes its dtype from the first non-bool tensor (so where(c, 1.0, x) stays x's dtype)
    like = next((n for n in nodes if n.dtype != np.bool_), nodes[0] if nodes else None)
    nodes = [as_node(x, like=like, graph=graph) for x in inputs]
    return graph.add(REGISTRY[op_name], nodes, attrs, name=name)


def fill_value(x):
    """The one value every element of x has, if x is a constant fill (possibly broadcast,
    reshaped or expanded); else None. The simplification rules and constant folding use it.

    Equal means the same bits up to nan: -0.0 == 0.0 in numpy, but a constant holding both
    is not a fill (1 / x would give -inf and inf), and a nan fill is never reported."""
    while x.op.name in ("broadcast_to", "broadcast_like", "expand_dims", "reshape", "reshape_like"):
        x = x.inputs[0]
    if x.op.name == "constant":
        v = x.attrs["value"]
        if v.size and np.all(v == v.flat[0]) and not np.isnan(v.flat[0]):
            if v.dtype.kind != "f" or np.all(np.signbit(v) == np.signbit(v.flat[0])):
                return v.flat[0].item()
    return None


def is_negative_zero(value):
    """value is the float -0.0 (an int or bool zero has no sign: it converts to +0.0)."""
    return isinstance(value, float) and value == 0 and math.copysign(1.0, value) < 0


# ops whose output elements are elements of their first input, moved or repeated
_MOVES_ELEMENTS = ("reshape", "reshape_like", "squeeze", "expand_dims", "transpose", "broadcast_to",
                   "broadcast_like", "getitem")


def cannot_be_negative_zero(x):
    """True if no element of x can be -0.0, so that the sign of a zero cannot change a result:
    not a float, or an op whose floats are never -0.0 (|x|, exp(x) >= +0.0, x*x), possibly
    reshaped, transposed, broadcast or sliced."""
    while x.op.name in _MOVES_ELEMENTS:
        x = x.inputs[0]
    return not is_float(x) or x.op.name in ("abs", "exp", "square")


def same_type(x, n):
    return x.type == n.type
