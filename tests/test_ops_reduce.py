"""Reductions against numpy: sum, mean, max, min, prod over axis=None / int / negative /
tuple, keepdims, every dtype (sum(int32) -> int64, mean(int) -> float64, max(bool) -> bool),
argmax/argmin over one axis or all, None dimensions; plus a hypothesis test."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import graphc as gc

try:
    from .test_ops import ALL_DTYPES, BOOL, F32, F64, I32, check, ids, op_names, run, sample
except ImportError:
    from test_ops import ALL_DTYPES, BOOL, F32, F64, I32, check, ids, op_names, run, sample

#   op, graphc function, numpy expression (the ndarray method)
REDUCTIONS = [
    pytest.param("sum", gc.sum, lambda a, axis, keepdims: a.sum(axis=axis, keepdims=keepdims)),
    pytest.param("mean", gc.mean, lambda a, axis, keepdims: a.mean(axis=axis, keepdims=keepdims)),
    pytest.param("max", gc.max, lambda a, axis, keepdims: a.max(axis=axis, keepdims=keepdims)),
    pytest.param("min", gc.min, lambda a, axis, keepdims: a.min(axis=axis, keepdims=keepdims)),
    pytest.param("prod", gc.prod, lambda a, axis, keepdims: a.prod(axis=axis, keepdims=keepdims)),
]
REDUCTION_IDS = [p.values[0] for p in REDUCTIONS]
AXES = [None, 0, 1, 2, -1, -3, (0, 2), (-1, 0), (2, 1, 0), ()]


@pytest.mark.parametrize("op, f_gc, f_np", REDUCTIONS, ids=REDUCTION_IDS)
@pytest.mark.parametrize("axis", AXES, ids=repr)
@pytest.mark.parametrize("keepdims", [False, True], ids=["", "keepdims"])
def test_reduction_axes(op, f_gc, f_np, axis, keepdims):
    a = sample(F32, (2, 3, 4), -2.0, 2.0, seed=1)
    out, got = run(lambda x: f_gc(x, axis=axis, keepdims=keepdims), a)
    check(out, got, f_np(a, axis, keepdims), op=op, rtol=1e-5)


@pytest.mark.parametrize("op, f_gc, f_np", REDUCTIONS, ids=REDUCTION_IDS)
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ids)
@pytest.mark.parametrize("axis", [None, 1])
def test_reduction_dtypes(op, f_gc, f_np, dtype, axis):
    """numpy's result dtype: sum/prod(int32|bool) -> int64, mean(int|bool) -> float64, max(bool) -> bool."""
    a = sample(dtype, (3, 4), -3, 3, seed=2)
    out, got = run(lambda x: f_gc(x, axis=axis), a)
    check(out, got, f_np(a, axis, False), op=op, rtol=1e-5)


@pytest.mark.parametrize("op, f_gc, f_np", REDUCTIONS, ids=REDUCTION_IDS)
@pytest.mark.parametrize("shape, axis", [((), None), ((), ()), ((5,), None), ((5,), 0), ((5,), -1),
                                         ((1, 1), None), ((4, 1), 1)], ids=repr)
def test_reduction_small_ranks(op, f_gc, f_np, shape, axis):
    a = sample(F64, shape, seed=3)
    for keepdims in (False, True):
        out, got = run(lambda x: f_gc(x, axis=axis, keepdims=keepdims), a)
        check(out, got, f_np(a, axis, keepdims), op=op)


@pytest.mark.parametrize("op, f_gc, f_np", REDUCTIONS, ids=REDUCTION_IDS)
@pytest.mark.parametrize("placeholder, axis, inferred", [
    ((None, 3), 0, (3,)), ((None, 3), 1, (None,)), ((None, None), None, ()), ((2, None, 4), (0, 2), (None,)),
])
def test_reduction_with_unknown_dims(op, f_gc, f_np, placeholder, axis, inferred):
    a = sample(F32, tuple(5 if d is None else d for d in placeholder), seed=4)
    out, got = run(lambda x: f_gc(x, axis=axis), a, shapes=[placeholder])
    assert out.shape == inferred
    check(out, got, f_np(a, axis, False), op=op, rtol=1e-5)


@pytest.mark.filterwarnings("ignore:Mean of empty slice")
@pytest.mark.parametrize("op", ["sum", "prod", "mean"])
def test_reduction_over_an_empty_axis_gives_the_identity(op):
    """sum -> 0, prod -> 1, mean -> nan, as numpy."""
    a = np.zeros((0, 3), np.float32)
    out, got = run(lambda x: getattr(gc, op)(x, axis=0), a)
    with np.errstate(all="ignore"):
        check(out, got, getattr(a, op)(axis=0), op=op)


@pytest.mark.parametrize("op", ["max", "min", "argmax", "argmin"])
def test_max_min_of_an_empty_axis_fail_at_build(op):
    """numpy raises at run time; graphc knows the size and refuses when the node is built."""
    with gc.Graph():
        x = gc.placeholder((0, 3))
        with pytest.raises(gc.ShapeError):
            getattr(gc, op)(x, axis=0)


@pytest.mark.parametrize("axis, error", [(3, gc.AxisError), (-4, gc.AxisError), ((0, 0), gc.AxisError),
                                         ((1, -2), gc.AxisError)], ids=repr)
@pytest.mark.parametrize("op", ["sum", "mean", "max"])
def test_reduction_bad_axis(op, axis, error):
    with gc.Graph():
        x = gc.placeholder((2, 3, 4))
        with pytest.raises(error):
            getattr(gc, op)(x, axis=axis)


def test_reduction_nan_propagates():
    a = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, 6.0]], np.float32)
    for op in ("sum", "mean", "max", "min", "prod"):
        out, got = run(lambda x: getattr(gc, op)(x, axis=1), a)
        check(out, got, getattr(a, op)(axis=1), op=op)

# ---------------------------------------------------------------- argmax, argmin

ARG_REDUCTIONS = [
    pytest.param("argmax", gc.argmax, np.argmax),
    pytest.param("argmin", gc.argmin, np.argmin),
]


@pytest.mark.parametrize("op, f_gc, f_np", ARG_REDUCTIONS, ids=["argmax", "argmin"])
@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1, -2], ids=repr)
@pytest.mark.parametrize("keepdims", [False, True], ids=["", "keepdims"])
@pytest.mark.parametrize("dtype", [F32, I32, BOOL], ids=ids)
def test_arg_reduction(op, f_gc, f_np, axis, keepdims, dtype):
    """int64 indices; ties go to the first occurrence (small ints make many ties)."""
    a = sample(dtype, (2, 3, 4), 0, 3, seed=5, step=1.0)
    out, got = run(lambda x: f_gc(x, axis=axis, keepdims=keepdims), a)
    check(out, got, f_np(a, axis=axis, keepdims=keepdims), op=op)


@pytest.mark.parametrize("op, f_gc, f_np", ARG_REDUCTIONS, ids=["argmax", "argmin"])
@pytest.mark.parametrize("keepdims", [False, True], ids=["", "keepdims"])
def test_arg_reduction_over_all_axes_as_a_tuple(op, f_gc, f_np, keepdims):
    """axis=(0, 1, 2) on a rank-3 tensor is axis=None: the index into the flattened tensor."""
    a = sample(F32, (2, 3, 4), seed=6)
    out, got = run(lambda x: f_gc(x, axis=(2, 0, 1), keepdims=keepdims), a)
    check(out, got, f_np(a, axis=None, keepdims=keepdims), op=op)


@pytest.mark.parametrize("op, f_gc, f_np", ARG_REDUCTIONS, ids=["argmax", "argmin"])
@pytest.mark.parametrize("shape, axis", [((), None), ((5,), None), ((5,), 0), ((1, 1), None), ((4, 1), 0)],
                         ids=repr)
def test_arg_reduction_small_ranks(op, f_gc, f_np, shape, axis):
    a = sample(F64, shape, seed=7)
    out, got = run(lambda x: f_gc(x, axis=axis), a)
    check(out, got, f_np(a, axis=axis), op=op)


@pytest.mark.parametrize("op, f_gc, f_np", ARG_REDUCTIONS, ids=["argmax", "argmin"])
def test_arg_reduction_nan_and_unknown_dims(op, f_gc, f_np):
    """numpy returns the first nan; a None axis is fine."""
    a = np.array([[1.0, np.nan, 3.0, np.nan], [4.0, 5.0, -6.0, 0.0], [2.0, 2.0, 2.0, 2.0]], np.float32)
    for axis in (None, 0, 1):
        out, got = run(lambda x: f_gc(x, axis=axis), a, shapes=[(None, 4)])
        check(out, got, f_np(a, axis=axis), op=op)


@pytest.mark.parametrize("op", ["argmax", "argmin"])
def test_arg_reduction_refuses_a_partial_tuple_of_axes(op):
    with gc.Graph():
        x = gc.placeholder((2, 3, 4))
        with pytest.raises(gc.AxisError):
            getattr(gc, op)(x, axis=(0, 1))

# ---------------------------------------------------------------- hypothesis

REDUCE_ELEMENTS = {F32: st.floats(-10, 10, width=32), F64: st.floats(-10, 10), I32: st.integers(-5, 5),
                   BOOL: st.booleans()}


@st.composite
def reduction_cases(draw):
    op = draw(st.sampled_from(REDUCTIONS + ARG_REDUCTIONS))
    dtype = draw(st.sampled_from(list(REDUCE_ELEMENTS)))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4))
    a = draw(hnp.arrays(dtype, shape, elements=REDUCE_ELEMENTS[dtype]))
    nd = a.ndim
    axes = [st.none()] + ([st.integers(-nd, nd - 1)] if nd else [])
    if not op.values[0].startswith("arg"):   # sum & co also take a tuple of axes (argmax: one or all)
        axes.append(st.lists(st.integers(-nd, nd - 1), unique_by=lambda i: i % nd, max_size=nd).map(tuple)
                    if nd else st.just(()))
    axis = draw(st.one_of(axes))
    keepdims = draw(st.booleans())
    placeholder = tuple(None if draw(st.booleans()) else d for d in shape)
    return op.values, a, axis, keepdims, placeholder


@settings(max_examples=150, deadline=None)
@given(reduction_cases())
def test_reductions_match_numpy_on_random_shapes(case):
    (name, f_gc, f_np), a, axis, keepdims, placeholder = case
    out, got = run(lambda x: f_gc(x, axis=axis, keepdims=keepdims), a, shapes=[placeholder])
    if name.startswith("arg"):
        expected = f_np(a, axis=axis, keepdims=keepdims)
    else:
        expected = f_np(a, axis, keepdims)
    check(out, got, expected, op=name, rtol=1e-5, atol=1e-5)


OPS_TESTED = op_names(REDUCTIONS, ARG_REDUCTIONS)
