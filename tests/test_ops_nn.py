"""matmul (2-D, batched with broadcast batch dims, 1-D operands), softmax and
log_softmax (several axes, stability at +-1000) and one_hot (out-of-range index
-> a row of zeros) against numpy."""
import numpy as np
import pytest

import graphc as gc

try:
    from .test_ops import BOOL, F32, F64, FLOATS, I32, I64, check, ids, op_names, run, sample
except ImportError:
    from test_ops import BOOL, F32, F64, FLOATS, I32, I64, check, ids, op_names, run, sample

# ---------------------------------------------------------------- matmul

#   op, shape of a, shape of b, dtypes, placeholder shapes (None: the arrays' own)
MATMUL = [
    pytest.param("matmul", (2, 3), (3, 4), (F32, F32), None, id="2d"),
    pytest.param("matmul", (1, 1), (1, 1), (F32, F32), None, id="1x1"),
    pytest.param("matmul", (5, 2, 3), (3, 4), (F32, F32), None, id="batched-a"),
    pytest.param("matmul", (2, 3), (5, 3, 4), (F32, F32), None, id="batched-b"),
    pytest.param("matmul", (2, 1, 2, 3), (3, 3, 4), (F32, F32), None, id="broadcast-batch"),
    pytest.param("matmul", (1, 2, 3), (4, 3, 2), (F64, F64), None, id="batch-1-vs-4"),
    pytest.param("matmul", (3,), (3, 4), (F32, F32), None, id="vec@mat"),
    pytest.param("matmul", (2, 3), (3,), (F32, F32), None, id="mat@vec"),
    pytest.param("matmul", (3,), (3,), (F32, F32), None, id="vec@vec"),
    pytest.param("matmul", (3,), (2, 3, 4), (F32, F32), None, id="vec@batch"),
    pytest.param("matmul", (2, 3, 4), (4,), (F32, F32), None, id="batch@vec"),
    pytest.param("matmul", (2, 0), (0, 3), (F32, F32), None, id="empty-inner"),
    pytest.param("matmul", (0, 3), (3, 2), (F32, F32), None, id="empty-rows"),
    pytest.param("matmul", (2, 3), (3, 4), (I32, I32), None, id="i32"),
    pytest.param("matmul", (2, 3), (3, 4), (I64, I32), None, id="i64-i32"),
    pytest.param("matmul", (2, 3), (3, 4), (I32, F32), None, id="i32-f32->f64"),
    pytest.param("matmul", (2, 3), (3, 4), (F32, F64), None, id="f32-f64"),
    pytest.param("matmul", (5, 3), (3, 4), (F32, F32), [(None, 3), (3, 4)], id="unknown-batch"),
    pytest.param("matmul", (4, 2, 3), (3, 5), (F32, F32), [(None, 2, 3), (3, None)], id="unknown-many"),
    pytest.param("matmul", (5, 3), (3,), (F32, F32), [(None, None), (None,)], id="unknown-all"),
]


@pytest.mark.parametrize("op, shape_a, shape_b, dtypes, placeholders", MATMUL)
def test_matmul(op, shape_a, shape_b, dtypes, placeholders):
    a, b = sample(dtypes[0], shape_a, seed=1), sample(dtypes[1], shape_b, seed=2)
    out, got = run(gc.matmul, a, b, shapes=placeholders)
    check(out, got, a @ b, op=op, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape_a, shape_b, error", [
    ((2, 3), (4, 5), gc.ShapeError), ((3,), (4,), gc.ShapeError), ((2, 2, 3), (3, 3, 4), gc.ShapeError),
    ((), (3,), gc.ShapeError), ((3, 3), (), gc.ShapeError),
])
def test_matmul_shape_errors_at_build(shape_a, shape_b, error):
    with gc.Graph():
        with pytest.raises(error):
            gc.matmul(gc.placeholder(shape_a), gc.placeholder(shape_b))


def test_matmul_refuses_bool():
    with gc.Graph():
        with pytest.raises(gc.DTypeError):
            gc.matmul(gc.placeholder((2, 2), gc.bool_), gc.placeholder((2, 2), gc.bool_))


def test_matmul_inner_dims_checked_at_call_when_unknown():
    with gc.Graph():
        x, y = gc.placeholder((2, None)), gc.placeholder((None, 4))
        fn = gc.function([x, y], x @ y, backend="interp")
    np.testing.assert_allclose(fn(np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)), np.full((2, 4), 3.0))
    with pytest.raises(gc.ShapeError):
        fn(np.ones((2, 3), np.float32), np.ones((5, 4), np.float32))

# ---------------------------------------------------------------- softmax, log_softmax


def softmax64(a, axis):
    """The textbook formula in float64 (fine for moderate inputs), cast back to a's dtype."""
    e = np.exp(a.astype(np.float64))
    return (e / e.sum(axis=axis, keepdims=True)).astype(a.dtype)


def log_softmax64(a, axis):
    x = a.astype(np.float64)
    return (x - np.log(np.exp(x).sum(axis=axis, keepdims=True))).astype(a.dtype)


SOFTMAX = [
    pytest.param("softmax", gc.softmax, softmax64),
    pytest.param("log_softmax", gc.log_softmax, log_softmax64),
]


@pytest.mark.parametrize("op, f_gc, f_np", SOFTMAX, ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [None, -1, 0, 1, 2, -2], ids=repr)   # None: the default, -1
@pytest.mark.parametrize("dtype", FLOATS, ids=ids)
def test_softmax(op, f_gc, f_np, axis, dtype):
    a = sample(dtype, (2, 3, 4), -4.0, 4.0, seed=3)
    out, got = run(lambda x: f_gc(x) if axis is None else f_gc(x, axis=axis), a)
    check(out, got, f_np(a, -1 if axis is None else axis), op=op, rtol=1e-5, atol=1e-6)
    if op == "softmax":
        np.testing.assert_allclose(got.sum(axis=-1 if axis is None else axis), 1.0, rtol=1e-5)


@pytest.mark.parametrize("op, f_gc, f_np", SOFTMAX, ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("shape, axis", [((5,), 0), ((1, 4), 1), ((3, 1), 1), ((3, 1), 0)], ids=repr)
def test_softmax_small_shapes_and_unknown_dims(op, f_gc, f_np, shape, axis):
    a = sample(F32, shape, seed=4)
    out, got = run(lambda x: f_gc(x, axis=axis), a, shapes=[(None,) * len(shape)])
    check(out, got, f_np(a, axis), op=op, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", FLOATS, ids=ids)
def test_softmax_is_stable_for_large_inputs(dtype):
    """exp(1000) overflows; softmax and log_softmax must not (they shift by the max)."""
    a = np.array([[1000.0, 1000.0, 0.0], [-1000.0, 0.0, 1000.0], [-1000.0, -1000.0, -1000.0]], dtype)
    log2 = np.log(2.0)
    out, got = run(gc.softmax, a)
    check(out, got, np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0], [1 / 3, 1 / 3, 1 / 3]], dtype),
          op="softmax", rtol=1e-6, atol=1e-30)
    out, got = run(gc.log_softmax, a)
    assert np.all(np.isfinite(got))
    check(out, got, np.array([[-log2, -log2, -1000 - log2], [-2000, -1000, 0], [-np.log(3.0)] * 3], dtype),
          op="log_softmax", rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_needs_a_float_tensor_and_a_valid_axis(op):
    with gc.Graph():
        with pytest.raises(gc.DTypeError):
            getattr(gc, op)(gc.placeholder((2, 3), gc.int32))
        with pytest.raises(gc.AxisError):
            getattr(gc, op)(gc.placeholder((2, 3)), axis=2)

# ---------------------------------------------------------------- one_hot


def one_hot64(indices, depth, dtype):
    """Rows of the identity; an index outside [0, depth) gets a row of zeros."""
    valid = (indices >= 0) & (indices < depth)
    rows = np.eye(depth)[np.where(valid, indices, 0)]
    return np.where(valid[..., None], rows, 0).astype(dtype)


IDX = np.array([0, 2, 3, 1, 4, -1, 100, -100])
#   op, indices, depth, dtype (None: the default, float32), placeholder shape
ONE_HOT = [
    pytest.param("one_hot", IDX.astype(np.int32), 4, None, None, id="i32-default-f32"),
    pytest.param("one_hot", IDX.astype(np.int64), 4, F64, None, id="i64-f64"),
    pytest.param("one_hot", IDX.astype(np.int64), 4, I32, None, id="i32-out"),
    pytest.param("one_hot", IDX.astype(np.int32), 4, I64, None, id="i64-out"),
    pytest.param("one_hot", IDX.astype(np.int32), 4, BOOL, None, id="bool-out"),
    pytest.param("one_hot", IDX.astype(np.int32), 1, F32, None, id="depth-1"),
    pytest.param("one_hot", IDX.reshape(2, 4).astype(np.int64), 5, F32, None, id="2d"),
    pytest.param("one_hot", np.array(2, np.int32), 3, F32, None, id="scalar-index"),
    pytest.param("one_hot", np.zeros(0, np.int32), 3, F32, None, id="empty"),
    pytest.param("one_hot", IDX.astype(np.int32), 4, F32, [(None,)], id="unknown"),
]


@pytest.mark.parametrize("op, indices, depth, dtype, placeholders", ONE_HOT)
def test_one_hot(op, indices, depth, dtype, placeholders):
    build = (lambda i: gc.one_hot(i, depth)) if dtype is None else (lambda i: gc.one_hot(i, depth, dtype=dtype))
    out, got = run(build, indices, shapes=placeholders)
    check(out, got, one_hot64(indices, depth, dtype or F32), op=op)


@pytest.mark.parametrize("dtype, depth, error", [(F32, 3, gc.DTypeError), (BOOL, 3, gc.DTypeError),
                                                 (I32, 0, gc.ShapeError), (I32, True, gc.ShapeError),
                                                 (I32, 2.0, gc.ShapeError)], ids=repr)
def test_one_hot_errors(dtype, depth, error):
    with gc.Graph():
        with pytest.raises(error):
            gc.one_hot(gc.placeholder((3,), dtype), depth)


OPS_TESTED = op_names(MATMUL, SOFTMAX, ONE_HOT)
