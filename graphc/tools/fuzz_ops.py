"""The kinds of step the fuzzer's generator draws (graphc/tools/fuzz_gen.py), one function each.

Each takes the generator `g`, picks operands (g.pick from the pool, g.fresh for a new source of
the shape it needs) and emits one or a few steps; the shape ops (slicing, reshapes, joins) are in
fuzz_ops_shape.py, conv2d, the pools, their gradient ops and scan in fuzz_ops_nn.py. KINDS weighs them; every op of the registry a
user can build is reached by one of them (fused/output/random_* through the passes, split and
gc.random). With g.wild set, a kind picks its operands without checking that they fit.
"""
import numpy as np

from . import fuzz_ops_nn as _nn
from . import fuzz_ops_shape as _shape
from .fuzz_ir import V
from .fuzz_ops_shape import _any

UNARY = ["negative", "abs", "sign", "square", "exp", "log", "sqrt", "reciprocal", "tanh", "sigmoid",
         "relu", "leaky_relu", "elu", "softplus", "logical_not", "erf", "floor", "ceil", "round", "isnan", "isinf"]
ARITH = ["add", "subtract", "multiply", "divide", "power", "maximum", "minimum", "mod", "fmod"]
COMPARE = ["equal", "not_equal", "less", "less_equal", "greater", "greater_equal"]
LOGIC = ["logical_and", "logical_or"]
SYMBOL = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/", "power": "**", "less": "<",
          "less_equal": "<=", "greater": ">", "greater_equal": ">=", "logical_and": "&", "logical_or": "|"}
REDUCE = ["sum", "mean", "max", "min", "prod"]
FLOAT = (np.dtype(np.float32), np.dtype(np.float64))


def _float(g):
    x = g.pick(lambda n: n.dtype in FLOAT)
    if x is None:
        x = g.emit("cast", V(_any(g)), g.r.choice(FLOAT))
    return x


def _binary_call(g, op, a, b):
    """op(a, b) as gc.op(a, b) or with its operator (a + b, 2 - x, x ** 2)."""
    if op in SYMBOL and g.r.random() < 0.5 and (isinstance(a, V) or isinstance(b, V)):
        if not isinstance(a, V) and op in ("less", "less_equal", "greater", "greater_equal"):
            a, b = b, a        # 2 < x is x > 2 to Python: keep the tensor on the left
            op = {"less": "greater", "greater": "less", "less_equal": "greater_equal",
                  "greater_equal": "less_equal"}[op]
        if not isinstance(a, V) and op in ("logical_and", "logical_or"):
            a, b = b, a
        return g.emit("binop", SYMBOL[op], a, b)
    return g.emit(op, a, b)


def unary(g):
    x = _any(g)
    dt = g.node(x).dtype
    ops = [op for op in UNARY if g.wild or g.accepts(op, dt)]
    if not ops:
        return
    op = g.r.choice(ops)
    if op in ("leaky_relu", "elu") and g.r.random() < 0.7:
        g.emit(op, V(x), alpha=g.r.choice([0.01, 0.2, 1.0, 2.0, -0.5]))
    elif op == "negative" and g.r.random() < 0.5:
        g.emit("neg", V(x))
    elif op == "logical_not" and g.r.random() < 0.5:
        g.emit("invert", V(x))
    else:
        g.emit(op, V(x))


def _power_ok(g, a_dt, b_dt, exponent=None):
    if a_dt.kind in "iu" and b_dt.kind == "f" and "grad_int_pow_float" in g.avoid:
        return False
    if a_dt.kind in "iu" and b_dt.kind in "iu" and "int_pow_neg" in g.avoid:
        return exponent is not None and exponent >= 0
    return True


def binary(g):
    op = g.r.choice(ARITH + ARITH + COMPARE + LOGIC)
    x = _any(g)
    xt = g.node(x)
    if g.wild:
        y = g.pick()
    else:
        y = g.operand_like(g.sym(x), xt.dtype)
        yt = g.node(y)
        if not g.accepts(op, xt.dtype, yt.dtype) or (op == "power" and not _power_ok(g, xt.dtype, yt.dtype)):
            return
    a, b = (V(x), V(y)) if g.r.random() < 0.5 else (V(y), V(x))
    if op == "power" and "neg_literal_pow" in g.avoid and not g.from_inputs(a.name):
        return                                  # a constant base becomes a literal
    _binary_call(g, op, a, b)


def scalar_binary(g):
    """x op Python scalar, either side: the simplification rules' food (x + 0.0, x * 1, x ** 2)."""
    op = g.r.choice(ARITH + ARITH + COMPARE)
    x = _any(g)
    dt = g.node(x).dtype
    s = g.scalar(dt)
    if op == "power":
        s = g.r.choice([2, 3, 0, 1, -1, 0.5, -2.0, 2.0])
        if not _power_ok(g, dt, np.result_type(dt, s) if isinstance(s, float) else dt, s):
            return
    a, b = (V(x), s) if g.r.random() < 0.7 else (s, V(x))
    if op == "power" and not isinstance(a, V) and a < 0 and "neg_literal_pow" in g.avoid:
        return
    if not g.wild and not g.accepts(op, dt, dt):
        return
    _binary_call(g, op, a, b)


def where(g):
    c = g.pick(lambda n: n.dtype == np.bool_)
    if c is None:
        x = _any(g)
        c = g.emit("binop", ">", V(x), g.scalar(g.node(x).dtype)) if g.node(x).dtype != np.bool_ else x
    a = g.operand_like(g.sym(c), g.dtype(), same_dtype=1.0)
    at = g.node(a)
    b = g.operand_like(g.sym(c), at.dtype) if g.r.random() < 0.7 else g.scalar(at.dtype)
    if isinstance(b, str) and not g.fits(g.sym(a), g.sym(b)) and not g.wild:
        return
    b = V(b) if isinstance(b, str) else b
    args = (V(a), b) if g.r.random() < 0.5 else (b, V(a))
    g.emit("where", V(c), *args)


def cast(g):
    x = _any(g)
    g.emit("cast", V(x), g.dtype())


def _axes(g, ndim, several=True):
    """None, an int (maybe negative) or a tuple of distinct axes (some negative)."""
    r = g.r
    if g.wild:
        return r.choice([None, r.randint(-4, 4), (0, 0), (r.randint(-4, 4),)])
    if ndim == 0 or r.random() < 0.25:
        return None
    if not several or r.random() < 0.4:
        a = r.randrange(ndim)
        return a - ndim if r.random() < 0.4 else a
    axes = r.sample(range(ndim), r.randint(1, ndim))
    return tuple(a - ndim if r.random() < 0.4 else a for a in axes)


def reduce(g):
    x = _any(g)
    xt = g.node(x)
    op = g.r.choice(REDUCE)
    if op == "prod" and xt.dtype.kind in "iu" and "int_wrap" in g.avoid:
        op = "sum"
    g.emit(op, V(x), axis=_axes(g, xt.ndim), keepdims=g.r.random() < 0.4)


def argreduce(g):
    x = _any(g)
    xt = g.node(x)
    axis = _axes(g, xt.ndim, several=False)
    if "argreduce_size1" in g.avoid and xt.dtype == np.int64 and all(
            d == 1 for k, d in enumerate(xt.shape) if axis is None or k == axis % xt.ndim):
        return
    g.emit(g.r.choice(["argmax", "argmin"]), V(x), axis=axis, keepdims=g.r.random() < 0.3)


def matmul(g):
    r = g.r
    x = g.pick(lambda n: n.ndim >= 1 and n.dtype != np.bool_)
    if x is None:
        x = g.fresh(g.shape(r.randint(1, 3)), r.choice(FLOAT))
    xt = g.node(x)
    left = r.random() < 0.6                     # x @ y (else y @ x)
    k = g.sym(x)[-1] if left or xt.ndim == 1 else g.sym(x)[-2]
    m = r.choice([1, 2, 3])
    shapes = [(k,), (k, m) if left else (m, k)]
    if xt.ndim >= 2:                            # a batch axis that broadcasts with x's (N only with N or 1)
        batch = g.sym(x)[-3] if xt.ndim >= 3 else 2
        shapes.append((r.choice([1, 2 if batch == 1 else batch]),) + shapes[1])
    shape = r.choice(shapes)
    if g.wild:
        y = g.pick()
    else:
        y = g.pick_name(lambda n: g.sym(n) == shape and g.node(n).dtype != np.bool_, recent=0) \
            if r.random() < 0.4 or isinstance(k, tuple) else None
        if y is None and (isinstance(k, tuple) or isinstance(shape[0], tuple)):
            return                              # a call-time size no fresh source has
        y = y or g.fresh(shape, xt.dtype if r.random() < 0.85 else r.choice(FLOAT + (np.dtype(np.int64),)))
    a, b = (V(x), V(y)) if left else (V(y), V(x))
    if r.random() < 0.5:
        g.emit("binop", "@", a, b)
    else:
        g.emit("matmul", a, b)


def softmax(g):
    x = _float(g)
    shape = g.node(x).shape
    if not shape:
        return
    axis = g.r.randrange(len(shape))
    if "softmax_size0" in g.avoid and g.low(x, axis) == 0:
        return
    g.emit(g.r.choice(["softmax", "log_softmax"]), V(x), axis=axis - len(shape) * g.r.randint(0, 1))


def one_hot(g):
    x = g.pick(lambda n: n.dtype.kind in "iu")
    if x is None:
        x = g.fresh(g.shape(g.r.randint(0, 2)), np.int64)
    g.emit("one_hot", V(x), g.r.randint(1, 4), **({"dtype": g.dtype()} if g.r.random() < 0.5 else {}))


def size(g):
    """gc.size is a constant unless an axis is None: prefer a tensor with one."""
    x = g.pick(lambda n: None in n.shape) if g.r.random() < 0.7 else None
    x = x or _any(g)
    nd = g.node(x).ndim
    g.emit("size", V(x), axis=None if not nd or g.r.random() < 0.4 else g.r.randrange(nd),
           dtype=g.r.choice(["int64", "int32"]))


def random(g):
    x = _any(g)
    dt = g.r.choice(["float32", "float64"])
    if g.r.random() < 0.5:
        g.emit("random.uniform", V(x), -1.0, 2.0, seed=g.r.randint(0, 9), dtype=dt)
    else:
        g.emit("random.normal", V(x), 0.5, 2.0, seed=g.r.randint(0, 9), dtype=dt)


# kind -> (function, weight)
KINDS = {"unary": (unary, 12), "binary": (binary, 14), "scalar_binary": (scalar_binary, 7), "where": (where, 4),
         "cast": (cast, 5), "reduce": (reduce, 9), "argreduce": (argreduce, 3), "matmul": (matmul, 5),
         "getitem": (_shape.getitem, 6), "reshape": (_shape.reshape, 4), "transpose": (_shape.transpose, 3),
         "expand_squeeze": (_shape.expand_squeeze, 3), "broadcast": (_shape.broadcast, 3),
         "concatenate": (_shape.concatenate, 3), "split": (_shape.split, 2), "pad": (_shape.pad, 3),
         "softmax": (softmax, 4), "one_hot": (one_hot, 2), "size": (size, 2), "random": (random, 1),
         "reshape_like": (_shape.reshape_like, 2), "unslice": (_shape.unslice, 1),
         "conv2d": (_nn.conv2d, 2), "pool": (_nn.pool, 3), "scan": (_nn.scan, 2)}
