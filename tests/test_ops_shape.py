"""Shape ops against numpy: reshape (with -1), transpose, expand_dims, squeeze,
broadcast_to, concatenate, basic slicing x[...] and pad; None dimensions; the
shape errors raised at build time; a hypothesis test of random basic indices."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import graphc as gc

try:
    from .test_ops import BOOL, F32, F64, I32, I64, check, op_names, run, sample
except ImportError:
    from test_ops import BOOL, F32, F64, I32, I64, check, op_names, run, sample


def case(op, f_gc, f_np, *shapes, placeholders=None, dtypes=None, id=None):
    """A table row: op, graphc build, numpy expression, input shapes, placeholder shapes, dtypes."""
    dtypes = dtypes or [F32] * len(shapes)
    return pytest.param(op, f_gc, f_np, list(shapes), placeholders, dtypes, id=id)


X = (2, 3, 4)
SHAPE_OPS = [
    case("reshape", lambda x: gc.reshape(x, (6, 4)), lambda a: a.reshape(6, 4), X, id="reshape-(6,4)"),
    case("reshape", lambda x: gc.reshape(x, -1), lambda a: a.reshape(-1), X, id="reshape-flat"),
    case("reshape", lambda x: gc.reshape(x, (4, -1)), lambda a: a.reshape(4, -1), X, id="reshape-(4,-1)"),
    case("reshape", lambda x: gc.reshape(x, (2, -1, 2)), lambda a: a.reshape(2, -1, 2), X, id="reshape-(2,-1,2)"),
    case("reshape", lambda x: gc.reshape(x, (1, 24, 1)), lambda a: a.reshape(1, 24, 1), X, id="reshape-ones"),
    case("reshape", lambda x: gc.reshape(x, (1, 1)), lambda a: a.reshape(1, 1), (), id="reshape-scalar-up"),
    case("reshape", lambda x: gc.reshape(x, ()), lambda a: a.reshape(()), (1,), id="reshape-to-scalar"),
    case("reshape", lambda x: gc.reshape(x, -1), lambda a: a.reshape(-1), (0, 3), id="reshape-empty"),
    case("reshape", lambda x: gc.reshape(x, (3, 0)), lambda a: a.reshape(3, 0), (0, 3), id="reshape-empty-2"),
    case("reshape", lambda x: gc.reshape(x, (-1, 4)), lambda a: a.reshape(-1, 4), X,
         placeholders=[(None, 3, 4)], id="reshape-unknown-(-1,4)"),
    case("reshape", lambda x: gc.reshape(x, (-1,)), lambda a: a.reshape(-1), X, dtypes=[I64],
         placeholders=[(None, None, 4)], id="reshape-unknown-flat"),
    case("transpose", gc.transpose, np.transpose, X, id="transpose-default"),
    case("transpose", lambda x: gc.transpose(x, (1, 0, 2)), lambda a: a.transpose(1, 0, 2), X, id="transpose-102"),
    case("transpose", lambda x: gc.transpose(x, (-1, 0, 1)), lambda a: a.transpose(-1, 0, 1), X,
         id="transpose-negative"),
    case("transpose", lambda x: gc.transpose(x, (0, 1, 2)), lambda a: a.transpose(0, 1, 2), X, id="transpose-id"),
    case("transpose", lambda x: x.T, lambda a: a.T, (2, 3), id=".T"),
    case("transpose", lambda x: x.T, lambda a: a.T, (3,), id=".T-vector"),
    case("transpose", lambda x: x.T, lambda a: a.T, (), id=".T-scalar"),
    case("transpose", lambda x: gc.transpose(x, (2, 0, 1)), lambda a: a.transpose(2, 0, 1), X, dtypes=[BOOL],
         placeholders=[(None, 3, None)], id="transpose-unknown"),
    case("expand_dims", lambda x: gc.expand_dims(x, 0), lambda a: np.expand_dims(a, 0), X, id="expand_dims-0"),
    case("expand_dims", lambda x: gc.expand_dims(x, -1), lambda a: np.expand_dims(a, -1), X, id="expand_dims--1"),
    case("expand_dims", lambda x: gc.expand_dims(x, 2), lambda a: np.expand_dims(a, 2), X, id="expand_dims-2"),
    case("expand_dims", lambda x: gc.expand_dims(x, (0, 2)), lambda a: np.expand_dims(a, (0, 2)), X,
         id="expand_dims-(0,2)"),
    case("expand_dims", lambda x: gc.expand_dims(x, (0, -1)), lambda a: np.expand_dims(a, (0, -1)), X,
         id="expand_dims-(0,-1)"),
    case("expand_dims", lambda x: gc.expand_dims(x, 0), lambda a: np.expand_dims(a, 0), (), id="expand_dims-scalar"),
    case("expand_dims", lambda x: gc.expand_dims(x, 1), lambda a: np.expand_dims(a, 1), (5,), dtypes=[I32],
         placeholders=[(None,)], id="expand_dims-unknown"),
    case("squeeze", gc.squeeze, np.squeeze, (1, 3, 1), id="squeeze-all"),
    case("squeeze", lambda x: gc.squeeze(x, 0), lambda a: np.squeeze(a, 0), (1, 3, 1), id="squeeze-0"),
    case("squeeze", lambda x: gc.squeeze(x, -1), lambda a: np.squeeze(a, -1), (1, 3, 1), id="squeeze--1"),
    case("squeeze", lambda x: gc.squeeze(x, (0, 2)), lambda a: np.squeeze(a, (0, 2)), (1, 3, 1), id="squeeze-(0,2)"),
    case("squeeze", gc.squeeze, np.squeeze, (1,), id="squeeze-to-scalar"),
    case("squeeze", gc.squeeze, np.squeeze, (2, 3), id="squeeze-nothing"),
    case("squeeze", lambda x: gc.squeeze(x, 1), lambda a: np.squeeze(a, 1), (4, 1), placeholders=[(None, 1)],
         id="squeeze-unknown"),
    case("broadcast_to", lambda x: gc.broadcast_to(x, (2, 3)), lambda a: np.broadcast_to(a, (2, 3)), (3,),
         id="broadcast_to-row"),
    case("broadcast_to", lambda x: gc.broadcast_to(x, (2, 4)), lambda a: np.broadcast_to(a, (2, 4)), (2, 1),
         id="broadcast_to-col"),
    case("broadcast_to", lambda x: gc.broadcast_to(x, (3, 2)), lambda a: np.broadcast_to(a, (3, 2)), (),
         id="broadcast_to-scalar"),
    case("broadcast_to", lambda x: gc.broadcast_to(x, (4, 2, 3)), lambda a: np.broadcast_to(a, (4, 2, 3)), (1, 3),
         id="broadcast_to-rank-up"),
    case("broadcast_to", lambda x: gc.broadcast_to(x, 5), lambda a: np.broadcast_to(a, 5), (1,), dtypes=[BOOL],
         id="broadcast_to-int-shape"),
    case("broadcast_to", lambda x: gc.broadcast_to(x, (2, 3)), lambda a: np.broadcast_to(a, (2, 3)), (2, 3),
         id="broadcast_to-same"),
    case("broadcast_to", lambda x: gc.broadcast_to(x, (2, 3)), lambda a: np.broadcast_to(a, (2, 3)), (1,),
         placeholders=[(None,)], id="broadcast_to-unknown"),
    case("concatenate", lambda x, y: gc.concatenate([x, y]), lambda a, b: np.concatenate([a, b]), (2, 3), (4, 3),
         id="concatenate-0"),
    case("concatenate", lambda x, y: gc.concatenate([x, y], axis=1), lambda a, b: np.concatenate([a, b], 1),
         (2, 3), (2, 1), id="concatenate-1"),
    case("concatenate", lambda x, y, z: gc.concatenate((x, y, z), axis=-1),
         lambda a, b, c: np.concatenate((a, b, c), -1), (2, 1, 2), (2, 1, 3), (2, 1, 0), id="concatenate-three"),
    case("concatenate", lambda x, y: gc.concatenate([x, y]), lambda a, b: np.concatenate([a, b]), (2,), (3,),
         dtypes=[F32, I32], id="concatenate-f32-i32->f64"),
    case("concatenate", lambda x, y: gc.concatenate([x, y]), lambda a, b: np.concatenate([a, b]), (2,), (3,),
         dtypes=[BOOL, I64], id="concatenate-bool-i64"),
    case("concatenate", lambda x: gc.concatenate([x]), lambda a: np.concatenate([a]), (2, 3), id="concatenate-one"),
    case("concatenate", lambda x, y: gc.concatenate([x, y]), lambda a, b: np.concatenate([a, b]), (2, 3), (4, 3),
         placeholders=[(None, 3), (4, None)], id="concatenate-unknown"),
    case("concatenate", lambda x: gc.concatenate([x, x], axis=1), lambda a: np.concatenate([a, a], 1), (2, 3),
         id="concatenate-same-twice"),
    case("split", lambda x: gc.split(x, 2)[1], lambda a: np.split(a, 2)[1], (4, 3), id="split-sections"),
    case("split", lambda x: gc.split(x, [1, 3], axis=-1)[1], lambda a: np.split(a, [1, 3], axis=-1)[1], (2, 4),
         id="split-indices"),
    case("split", lambda x: gc.split(x, [2], axis=1)[0], lambda a: np.split(a, [2], axis=1)[0], (3, 5),
         placeholders=[(None, 5)], id="split-unknown-batch"),
    case("pad", lambda x: gc.pad(x, 1), lambda a: np.pad(a, 1), (2, 3), id="pad-int"),
    case("pad", lambda x: gc.pad(x, (1, 2)), lambda a: np.pad(a, (1, 2)), (2, 3), id="pad-pair"),
    case("pad", lambda x: gc.pad(x, ((1, 0), (0, 2))), lambda a: np.pad(a, ((1, 0), (0, 2))), (2, 3),
         id="pad-per-axis"),
    case("pad", lambda x: gc.pad(x, ((1,), (2,))), lambda a: np.pad(a, ((1,), (2,))), (2, 3), id="pad-per-axis-1"),
    case("pad", lambda x: gc.pad(x, 0), lambda a: np.pad(a, 0), (2, 3), id="pad-zero"),
    case("pad", lambda x: gc.pad(x, (2, 1), constant_values=1.5), lambda a: np.pad(a, (2, 1), constant_values=1.5),
         (3,), id="pad-value"),
    case("pad", lambda x: gc.pad(x, ((0, 1), (1, 0), (0, 0)), constant_values=-1),
         lambda a: np.pad(a, ((0, 1), (1, 0), (0, 0)), constant_values=-1), X, dtypes=[I32], id="pad-int32"),
    case("pad", lambda x: gc.pad(x, 1, constant_values=True), lambda a: np.pad(a, 1, constant_values=True), (2,),
         dtypes=[BOOL], id="pad-bool"),
    case("pad", lambda x: gc.pad(x, 1, constant_values=2 ** 31 - 1),
         lambda a: np.pad(a, 1, constant_values=2 ** 31 - 1), (2,), dtypes=[I32], id="pad-int32-max"),
    case("pad", lambda x: gc.pad(x, 1, constant_values=-np.inf), lambda a: np.pad(a, 1, constant_values=-np.inf),
         (2,), id="pad-float-inf"),
    case("pad", lambda x: gc.pad(x, (1, 1)), lambda a: np.pad(a, (1, 1)), (2, 3), dtypes=[F64],
         placeholders=[(None, 3)], id="pad-unknown"),
    # shapes taken from a second tensor at call time (what gradient rules use when a dim is None)
    case("broadcast_like", gc.broadcast_like, lambda a, b: np.broadcast_to(a, b.shape), (1, 3), (4, 3),
         placeholders=[(1, 3), (None, 3)], id="broadcast_like"),
    case("broadcast_like", gc.broadcast_like, lambda a, b: np.broadcast_to(a, b.shape), (), (2, 5),
         placeholders=[(), (None, None)], dtypes=[I32, F32], id="broadcast_like-scalar"),
    case("reshape_like", gc.reshape_like, lambda a, b: a.reshape(b.shape), (2, 6), (3, 4),
         placeholders=[(2, 6), (None, None)], id="reshape_like"),
    case("size", lambda x: gc.size(x, (0, 2)), lambda a: np.asarray(a.shape[0] * a.shape[2]), X,
         placeholders=[(None, 3, None)], id="size-axes"),
    case("size", lambda x: gc.size(x, dtype=gc.float32), lambda a: np.asarray(a.size, np.float32), X,
         placeholders=[(None, 3, 4)], id="size-all-float"),
    case("unslice", lambda g, x: gc.unslice(g, x, (slice(None), 1, slice(None, None, -2))),
         lambda g, a: _unslice(g, a, (slice(None), 1, slice(None, None, -2))), (2, 2), X,
         placeholders=[(None, 2), (None, 3, 4)], id="unslice"),
]


def _unslice(g, like, key):
    out = np.zeros(like.shape, g.dtype)
    out[key] = g
    return out


@pytest.mark.parametrize("op, f_gc, f_np, shapes, placeholders, dtypes", SHAPE_OPS)
def test_shape_op(op, f_gc, f_np, shapes, placeholders, dtypes):
    arrays = [sample(dt, s, seed=i) for i, (dt, s) in enumerate(zip(dtypes, shapes))]
    out, got = run(f_gc, *arrays, shapes=placeholders)
    check(out, got, f_np(*arrays), op=op)


def test_shape_op_outputs_do_not_alias_the_inputs():
    """reshape, transpose and slices are numpy views; what the caller gets must be its own array."""
    a = sample(F32, X, seed=1)
    for f in (lambda x: gc.reshape(x, -1), lambda x: x.T, lambda x: x[0], lambda x: gc.broadcast_to(x, (2,) + X)):
        _, got = run(f, a)
        got[...] = 7
        assert not np.any(a == 7)


#   op, graphc build on x of shape (2, 3, 4) that must raise ShapeError when built
SHAPE_ERRORS = [
    pytest.param("reshape", lambda x: gc.reshape(x, (5, 5)), id="reshape-size"),
    pytest.param("reshape", lambda x: gc.reshape(x, (5, -1)), id="reshape-no-fit"),
    pytest.param("reshape", lambda x: gc.reshape(x, (-1, -1)), id="reshape-two-minus-one"),
    pytest.param("transpose", lambda x: gc.transpose(x, (0, 1)), id="transpose-rank"),
    pytest.param("transpose", lambda x: gc.transpose(x, (0, 1, 1)), id="transpose-not-permutation"),
    pytest.param("squeeze", lambda x: gc.squeeze(x, 1), id="squeeze-not-1"),
    pytest.param("broadcast_to", lambda x: gc.broadcast_to(x, (3, 4)), id="broadcast_to-rank-down"),
    pytest.param("broadcast_to", lambda x: gc.broadcast_to(x, (2, 5, 4)), id="broadcast_to-mismatch"),
    pytest.param("concatenate", lambda x: gc.concatenate([x, gc.reshape(x, (6, 4))]), id="concatenate-rank"),
    pytest.param("concatenate", lambda x: gc.concatenate([x, x[:, :1]], axis=2), id="concatenate-off-axis"),
    pytest.param("getitem", lambda x: x[2], id="getitem-out-of-range"),
    pytest.param("getitem", lambda x: x[:, -4], id="getitem-negative-out-of-range"),
    pytest.param("getitem", lambda x: x[0, 0, 0, 0], id="getitem-too-many"),
    pytest.param("getitem", lambda x: x[..., 0, ...], id="getitem-two-ellipses"),
    pytest.param("getitem", lambda x: x[::0], id="getitem-step-0"),
    pytest.param("getitem", lambda x: x[0.5:], id="getitem-float-bound"),
    pytest.param("pad", lambda x: gc.pad(x, -1), id="pad-negative"),
    pytest.param("pad", lambda x: gc.pad(x, ((1, 1), (1, 1))), id="pad-too-few-pairs"),
]


@pytest.mark.parametrize("op, f_gc", SHAPE_ERRORS)
def test_shape_errors_at_build(op, f_gc):
    with gc.Graph():
        x = gc.placeholder(X)
        with pytest.raises(gc.ShapeError):
            f_gc(x)


@pytest.mark.parametrize("key", [[0, 1], np.array([0, 1]), True, 1.0, "a", (0, [1, 2]), ((0, 1),), ((0, 1), 2)],
                         ids=repr)
def test_getitem_refuses_advanced_indexing(key):
    """Only basic indexing: a list, array, bool, float or nested tuple is a GraphError, never a wrong node."""
    with gc.Graph():
        x = gc.placeholder((3, 4))
        with pytest.raises(gc.GraphError):
            x[key]


@pytest.mark.parametrize("value", [1.5, float("inf"), float("nan"), 2 ** 31, -2 ** 31 - 1], ids=repr)
def test_pad_value_must_fit_an_int_tensor(value):
    """Refused when the node is built (not a raw OverflowError, nor a failure at call time)."""
    with gc.Graph():
        with pytest.raises(gc.DTypeError):
            gc.pad(gc.placeholder((3,), gc.int32), 1, constant_values=value)


def test_squeeze_without_axis_needs_known_dims():
    with gc.Graph():
        with pytest.raises(gc.ShapeError):
            gc.squeeze(gc.placeholder((None, 1)))


@pytest.mark.parametrize("build, fed", [
    (lambda x: gc.reshape(x, (5, -1)), (4, 3)),
    (lambda x: gc.squeeze(x, 0), (2, 3)),
    (lambda x: x[3], (2, 3)),
    (lambda x: gc.broadcast_to(x, (2, 3)), (3, 3)),
])
def test_shape_errors_at_call_for_unknown_dims(build, fed):
    """A None dimension that turns out not to fit is a ShapeError at call time, before running."""
    with gc.Graph():
        x = gc.placeholder((None, 3))
        fn = gc.function([x], build(x), backend="interp")
    with pytest.raises(gc.ShapeError):
        fn(np.ones(fed, np.float32))

# ---------------------------------------------------------------- basic slicing x[...]


GETITEM_KEYS = [
    1, -1, 0, slice(1, None), slice(None, None, -1), slice(None, None, 2), slice(-1, 0, -2), slice(5, 10),
    slice(-100, 100), slice(2, 0), (0, slice(None), -1), (Ellipsis, 0), (None, Ellipsis), Ellipsis, (),
    (slice(1, 3), None, 0), (0, 0, 0), (-1, -1, -1), (None, None), (1, Ellipsis, None), (Ellipsis, None, 1),
    (slice(None), slice(None, None, -2), slice(3, None, -1)), (None, 0, None, slice(None, 1), None),
    (np.int64(1), slice(np.int32(0), None)),
]
GETITEM = [pytest.param("getitem", key, id=repr(key)) for key in GETITEM_KEYS]


@pytest.mark.parametrize("op, key", GETITEM)
@pytest.mark.parametrize("placeholder", [(4, 3, 5), (None, 3, None)], ids=["known", "unknown"])
def test_getitem(op, key, placeholder):
    """x[key] is numpy's a[key] for ints, negative ints, slices (any step), None and Ellipsis."""
    a = sample(I32, (4, 3, 5), -100, 100, seed=9)
    out, got = run(lambda x: x[key], a, shapes=[placeholder])
    check(out, got, a[key], op=op)


def test_getitem_is_gc_getitem():
    a = sample(F32, (4, 3), seed=10)
    out, got = run(lambda x: gc.getitem(x, (slice(None, None, -1), 1)), a)
    check(out, got, a[::-1, 1], op="getitem")


def test_getitem_rebuilt_from_its_canonical_attrs_is_the_same_node():
    """Passes rebuild nodes from (op, inputs, attrs): a normalized index is taken as is."""
    with gc.Graph() as g:
        x = gc.placeholder((4, 3, 5))
        y = x[1:, None, ..., ::-2]
        assert g.add(y.op, y.inputs, y.attrs) is y


@st.composite
def indexing_cases(draw):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
    key = draw(hnp.basic_indices(shape, min_dims=0, allow_newaxis=True, allow_ellipsis=True))
    placeholder = tuple(None if draw(st.booleans()) else d for d in shape)
    return shape, key, placeholder


@settings(max_examples=150, deadline=None)
@given(indexing_cases())
def test_getitem_matches_numpy_on_random_basic_indices(case):
    shape, key, placeholder = case
    a = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    out, got = run(lambda x: x[key], a, shapes=[placeholder])
    check(out, got, a[key], op="getitem")


OPS_TESTED = op_names(SHAPE_OPS, GETITEM)
