"""Every op against numpy: values, shapes and dtypes (graphc's inferred ones and numpy's).

The oracle is always a numpy expression written in the test, never the op's own
`ref`, so these tests check the references and the type inference together.

This file holds the helpers the other test_ops_*.py files share, the check that
every registered op is exercised by some table, and the operator tables
(`x + y`, `np_array @ x`, `1.5 - x`, ...) with numpy's NEP 50 scalar typing.
The op tables live in:
    test_ops_elementwise.py   unary, binary, where, cast (+ hypothesis)
    test_ops_reduce.py        sum, mean, max, min, prod, argmax, argmin (+ hypothesis)
    test_ops_shape.py         reshape, transpose, ..., getitem, pad (+ hypothesis)
    test_ops_nn.py            matmul, softmax, log_softmax, one_hot
"""
import importlib

import numpy as np
import pytest

import graphc as gc
from graphc.core.graph import ancestors
from graphc.ops import REGISTRY

F32, F64 = np.dtype("float32"), np.dtype("float64")
I32, I64 = np.dtype("int32"), np.dtype("int64")
BOOL = np.dtype("bool")
FLOATS = (F32, F64)
INTS = (I32, I64)
NUMERIC = FLOATS + INTS
ALL_DTYPES = NUMERIC + (BOOL,)

SOURCE_OPS = {"placeholder", "constant", "variable"}
# built only by the fusion passes, never by users; tests/test_passes*.py run them against the interpreter
PASS_OPS = {"fused", "output"}
# random numbers: checked against an independent splitmix64 and across backends in tests/test_nn.py
RANDOM_OPS = {"random_uniform", "random_normal"}
SIBLINGS = ("test_ops_elementwise", "test_ops_reduce", "test_ops_shape", "test_ops_nn", "test_ops_conv",
            "test_ops_scan", "test_ops_special", "test_ops_rounding")

# ---------------------------------------------------------------- shared helpers


def sample(dtype, shape, low=-3.0, high=3.0, seed=0, step=None):
    """Deterministic test data: uniform floats (optionally rounded to `step`, so that
    comparisons meet ties), ints in [low, high], or random bools."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype == BOOL:
        return np.asarray(rng.random(shape) < 0.5)
    if dtype.kind == "i":
        return np.asarray(rng.integers(int(low), int(high) + 1, size=shape), dtype)
    x = rng.uniform(low, high, size=shape)
    if step:
        x = np.round(x / step) * step
    return np.asarray(x, dtype)


def run(build, *arrays, shapes=None):
    """One placeholder per array (shape `shapes[i]`, default the array's own), out = build(*placeholders),
    run through gc.function(..., backend="interp"). Returns (out node, output array)."""
    arrays = [np.asarray(a) for a in arrays]
    shapes = shapes or [a.shape for a in arrays]
    with gc.Graph():
        xs = [gc.placeholder(s, a.dtype, name=f"x{i}") for i, (a, s) in enumerate(zip(arrays, shapes))]
        out = build(*xs)
        fn = gc.function(xs, out, backend="interp")
    return out, fn(*arrays)


def check(out, got, expected, op=None, rtol=1e-6, atol=0.0):
    """got (from graphc) against expected (from numpy): dtype equals numpy's and the node's inferred
    dtype; shape equals numpy's and fits the node's inferred shape (equal when no placeholder
    upstream has a None dimension); values equal (ints, bools) or close (floats, nan == nan)."""
    expected = np.asarray(expected)
    if op is not None:
        built = out.inputs[0].op.name if out.op.name == "output" else out.op.name   # one output of several
        assert built == op, f"the table says {op}, the graph built {built}"
    assert isinstance(got, np.ndarray), type(got)
    assert got.dtype == expected.dtype, f"graphc gives {got.dtype}, numpy {expected.dtype}"
    assert out.dtype == expected.dtype, f"inferred dtype {out.dtype}, numpy {expected.dtype}"
    assert got.shape == expected.shape, f"graphc gives shape {got.shape}, numpy {expected.shape}"
    assert len(out.shape) == got.ndim and all(d is None or d == s for d, s in zip(out.shape, got.shape)), \
        f"inferred shape {out.shape} does not fit the result's {got.shape}"
    if all(None not in n.shape for n in ancestors([out]) if n.op.name == "placeholder"):
        assert out.shape == got.shape, f"inferred {out.shape} from concrete inputs, result is {got.shape}"
    assert got.flags.writeable, "outputs belong to the caller"
    if expected.dtype.kind == "f":
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)
    else:
        np.testing.assert_array_equal(got, expected)


def numpy_result(f, *args):
    """f(*args) on numpy values, or None when numpy refuses or gives a dtype graphc does not have."""
    try:
        with np.errstate(all="ignore"):
            r = np.asarray(f(*args))
    except (TypeError, ValueError):
        return None
    return r if r.dtype in gc.DTYPES else None


def ids(value):
    """Readable parametrize ids for dtypes, shapes and keys."""
    if isinstance(value, np.dtype):
        return str(value)
    if isinstance(value, tuple) and all(isinstance(d, (int, type(None))) for d in value):
        return "(" + ",".join("?" if d is None else str(d) for d in value) + ")"
    return None


def op_names(*tables):
    """The op names in tables of pytest.param rows whose first value is the op name."""
    return {p.values[0] for table in tables for p in table}

# ---------------------------------------------------------------- operators

#             operator expression, applied as is to graph nodes and to numpy arrays
BINARY_OPERATORS = [
    pytest.param("add", lambda a, b: a + b, id="+"),
    pytest.param("subtract", lambda a, b: a - b, id="-"),
    pytest.param("multiply", lambda a, b: a * b, id="*"),
    pytest.param("divide", lambda a, b: a / b, id="/"),
    pytest.param("power", lambda a, b: a ** b, id="**"),
    pytest.param("matmul", lambda a, b: a @ b, id="@"),
    pytest.param("less", lambda a, b: a < b, id="<"),
    pytest.param("less_equal", lambda a, b: a <= b, id="<="),
    pytest.param("greater", lambda a, b: a > b, id=">"),
    pytest.param("greater_equal", lambda a, b: a >= b, id=">="),
]
# a reflected comparison runs the mirrored operator: 2 < x is x > 2
MIRROR = {"less": "greater", "greater": "less", "less_equal": "greater_equal", "greater_equal": "less_equal"}

A = sample(F32, (2, 3, 3), 0.5, 2.0, seed=1, step=0.25)
B = sample(F32, (3, 3), 0.5, 2.0, seed=2, step=0.25)
B64 = sample(F64, (3, 3), 0.5, 2.0, seed=3, step=0.25)
AI = sample(I32, (2, 3, 3), 1, 3, seed=4)
BI = sample(I32, (3, 3), 1, 3, seed=5)


OPERANDS = [   # a, b, and whether each is a placeholder ("node"), a numpy array or a Python scalar
    pytest.param(A, B, "node", "node", id="f32-node-node"),
    pytest.param(AI, BI, "node", "node", id="i32-node-node"),
    pytest.param(AI, B, "node", "node", id="i32-f32-node-node"),
    pytest.param(A, B64, "node", "array", id="node-f64array"),
    pytest.param(A, B64, "array", "node", id="f64array-node"),
    pytest.param(AI, B, "array", "node", id="i32array-node"),
    pytest.param(A, 2, "node", "scalar", id="node-int"),
    pytest.param(A, 1.5, "node", "scalar", id="node-float"),
    pytest.param(AI, 2, "node", "scalar", id="i32node-int"),
    pytest.param(AI, 1.5, "node", "scalar", id="i32node-float"),
    pytest.param(2, B, "scalar", "node", id="int-node"),
    pytest.param(1.5, B, "scalar", "node", id="float-node"),
    pytest.param(1.5, BI, "scalar", "node", id="float-i32node"),
]


@pytest.mark.parametrize("op, f, a, b, left, right", [
    pytest.param(*o.values, *v.values, id=f"{o.id}:{v.id}") for o in BINARY_OPERATORS for v in OPERANDS
    if not (o.values[0] == "matmul" and "scalar" in v.values[2:])])   # @ takes no scalars
def test_binary_operator(op, f, a, b, left, right):
    """x + y, x + array, array + x (numpy defers to the node), x + 2, 2 + x: numpy's values and dtypes."""
    expected = f(a, b)
    fed = [v for v, kind in ((a, left), (b, right)) if kind == "node"]

    def build(*xs):
        it = iter(xs)
        return f(next(it) if left == "node" else a, next(it) if right == "node" else b)

    out, got = run(build, *fed)
    check(out, got, expected, op=MIRROR.get(op, op) if left != "node" else op)


UNARY_OPERATORS = [
    pytest.param("negative", lambda x: -x, F32, id="-x-f32"),
    pytest.param("negative", lambda x: -x, I64, id="-x-i64"),
    pytest.param("abs", abs, F32, id="abs-f32"),
    pytest.param("abs", abs, I32, id="abs-i32"),
    pytest.param("logical_not", lambda x: ~x, BOOL, id="~b"),
    pytest.param("transpose", lambda x: x.T, F32, id=".T"),
]


@pytest.mark.parametrize("op, f, dtype", UNARY_OPERATORS)
def test_unary_operator(op, f, dtype):
    a = sample(dtype, (2, 3), seed=6)
    out, got = run(f, a)
    check(out, got, f(a), op=op)


def test_unary_plus_is_identity():
    with gc.Graph():
        x = gc.placeholder((2,))
        assert +x is x


BOOL_A = sample(BOOL, (2, 3), seed=7)
BOOL_B = sample(BOOL, (3,), seed=8)
LOGICAL_OPERATORS = [
    pytest.param("logical_and", lambda a, b: a & b, id="&"),
    pytest.param("logical_or", lambda a, b: a | b, id="|"),
]


@pytest.mark.parametrize("op, f", LOGICAL_OPERATORS)
@pytest.mark.parametrize("left, right", [("node", "node"), ("node", "array"), ("array", "node"),
                                         ("node", "scalar"), ("scalar", "node")])
def test_logical_operator(op, f, left, right):
    """& | on bool tensors are numpy's & | (on bools, logical and bitwise agree)."""
    values = {"left": {"node": BOOL_A, "array": BOOL_A, "scalar": True},
              "right": {"node": BOOL_B, "array": BOOL_B, "scalar": False}}
    a, b = values["left"][left], values["right"][right]
    fed = [v for v, kind in ((a, left), (b, right)) if kind == "node"]

    def build(*xs):
        it = iter(xs)
        return f(next(it) if left == "node" else a, next(it) if right == "node" else b)

    out, got = run(build, *fed)
    check(out, got, f(a, b), op=op)


def test_operator_chain():
    """An expression with many operators gives numpy's answer for the same expression."""
    def f(x, w, b, m):
        return abs(-(x @ w + b) * 2.0 - 1 / (1 + x @ w ** 2)) + ((x @ w < b) & m) * 3

    x, w = sample(F32, (4, 3), seed=9), sample(F32, (3, 5), seed=10)
    b, m = sample(F32, (5,), seed=11), sample(BOOL, (4, 5), seed=12)
    out, got = run(f, x, w, b, m)
    check(out, got, f(x, w, b, m), op="add", rtol=1e-5, atol=1e-6)

# ---------------------------------------------------------------- Python scalars: NEP 50 weak typing


def same(f):
    return f, f


#   dtype of x, (graphc expression, numpy expression). numpy 2 (NEP 50) decides the dtype.
SCALAR_TYPING = [
    pytest.param(F32, *same(lambda x: x * 1.5), id="f32*1.5->f32"),
    pytest.param(F64, *same(lambda x: x * 1.5), id="f64*1.5->f64"),
    pytest.param(I32, *same(lambda x: x * 1.5), id="i32*1.5->f64"),
    pytest.param(I64, *same(lambda x: 1.5 * x), id="1.5*i64->f64"),
    pytest.param(I32, *same(lambda x: x + 1), id="i32+1->i32"),
    pytest.param(I32, *same(lambda x: 3 - x), id="3-i32->i32"),
    pytest.param(F32, *same(lambda x: x + 1), id="f32+1->f32"),
    pytest.param(BOOL, *same(lambda x: x + 1), id="bool+1->i64"),
    pytest.param(BOOL, *same(lambda x: x * 1.5), id="bool*1.5->f64"),
    pytest.param(BOOL, *same(lambda x: x & True), id="bool&True->bool"),
    pytest.param(I32, *same(lambda x: x / 2), id="i32/2->f64"),
    pytest.param(F32, *same(lambda x: 1 / x), id="1/f32->f32"),
    pytest.param(I32, *same(lambda x: 1 / x), id="1/i32->f64"),
    pytest.param(F32, *same(lambda x: x ** 2), id="f32**2->f32"),
    pytest.param(I32, *same(lambda x: x ** 2), id="i32**2->i32"),
    pytest.param(I32, *same(lambda x: x ** 0.5), id="i32**0.5->f64"),
    pytest.param(F32, *same(lambda x: 2 ** x), id="2**f32->f32"),
    pytest.param(I32, *same(lambda x: 2 ** x), id="2**i32->i32"),
    pytest.param(I32, *same(lambda x: x < 1.5), id="i32<1.5->bool"),
    pytest.param(F32, *same(lambda x: x @ np.ones((3, 2), np.float64)), id="f32@f64array->f64"),
    pytest.param(F32, *same(lambda x: x * np.float64(1.5)), id="f32*np.float64->f64"),
    pytest.param(F32, *same(lambda x: x * np.float32(1.5)), id="f32*np.float32->f32"),
    pytest.param(I32, *same(lambda x: x + np.int64(1)), id="i32+np.int64->i64"),
    pytest.param(I32, lambda x: gc.maximum(x, 0.5), lambda x: np.maximum(x, 0.5), id="maximum(i32,0.5)->f64"),
    pytest.param(F32, lambda x: gc.minimum(0, x), lambda x: np.minimum(0, x), id="minimum(0,f32)->f32"),
    pytest.param(F32, lambda x: gc.where(x > 0, x, 0), lambda x: np.where(x > 0, x, 0), id="where(c,f32,0)->f32"),
    pytest.param(F32, lambda x: gc.where(x > 0, 1.0, x), lambda x: np.where(x > 0, 1.0, x),
                 id="where(c,1.0,f32)->f32"),
    pytest.param(I32, lambda x: gc.where(x > 0, x, 0.5), lambda x: np.where(x > 0, x, 0.5),
                 id="where(c,i32,0.5)->f64"),
]


@pytest.mark.parametrize("dtype, f_gc, f_np", SCALAR_TYPING)
def test_python_scalar_takes_numpy_weak_type(dtype, f_gc, f_np):
    """A Python scalar adapts to the tensor it meets (numpy 2, NEP 50); numpy scalars and arrays do not."""
    a = sample(dtype, (2, 3), 1, 3, seed=13)
    out, got = run(f_gc, a)
    check(out, got, f_np(a))


def test_python_int_that_does_not_fit_raises():
    """numpy 2 refuses int32_array + 2**40; so does graphc, at build time."""
    with pytest.raises(OverflowError):
        np.ones(2, np.int32) + 2 ** 40
    with gc.Graph():
        x = gc.placeholder((2,), gc.int32)
        with pytest.raises(gc.DTypeError):
            x + 2 ** 40

# ---------------------------------------------------------------- every op has a test


def _sibling(name):
    """The sibling test module `name`, whether tests/ is a package or on sys.path."""
    return importlib.import_module(f"{__package__}.{name}" if __package__ else name)


OPS_TESTED = op_names(BINARY_OPERATORS, UNARY_OPERATORS, LOGICAL_OPERATORS)


def _tested_ops():
    names = set(OPS_TESTED)
    for mod in SIBLINGS:
        names |= _sibling(mod).OPS_TESTED
    return names


def test_every_registered_op_has_a_numpy_test():
    """An op added to the registry without a row in one of the test_ops tables fails here."""
    assert {n for n, op in REGISTRY.items() if op.kind == "source"} == SOURCE_OPS
    missing = set(REGISTRY) - SOURCE_OPS - PASS_OPS - RANDOM_OPS - _tested_ops()
    assert not missing, f"ops with no numpy test in tests/test_ops*.py: {sorted(missing)}"


def test_tables_name_only_registered_ops():
    unknown = _tested_ops() - set(REGISTRY)
    assert not unknown, f"test tables name ops that are not registered: {sorted(unknown)}"


def test_every_op_function_is_exported():
    """Each non-source op has a gc.<name> function (numpy's name) that builds it."""
    assert all(hasattr(gc, name) for name in set(REGISTRY) - SOURCE_OPS - PASS_OPS - RANDOM_OPS)
