"""Rounding and remainders against numpy: floor, ceil, round (half to even), mod, fmod, isnan,
isinf on the interpreter and the CPU backend, in every dtype, on the values where a formula
goes wrong: halves, signed zeros, 0.49999999999999994, values past 2**23 and 2**52, nan and
the infinities, zero divisors, infinite divisors, INT_MIN % -1. (The CUDA backend runs the
gradient rows of these ops, tests/test_cuda.py.)"""
import numpy as np
import pytest

import graphc as gc
from graphc.core.errors import DTypeError

try:
    from .test_ops import check, run, sample
except ImportError:
    from test_ops import check, run, sample

UNARY = ("floor", "ceil", "round", "isnan", "isinf")
REMAINDERS = ("mod", "fmod")
OPS_TESTED = set(UNARY) | set(REMAINDERS)

FLOAT_VALUES = [0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 3.5, -3.5, 0.49999999999999994, -0.49999999999999994,
                0.7, -0.7, 3.7, -3.7, 1e-310, -1e-310, 123456.5, -123457.5, 8388607.5, 8388608.5, 16777217.0,
                2.0 ** 52 - 0.5, 2.0 ** 52 + 2, -(2.0 ** 52) - 2, 2.0 ** 53 + 2, 1e300, -1e300, np.nan, np.inf, -np.inf]
DIVISOR_VALUES = [0.0, -0.0, 5.0, -5.0, 3.5, -3.5, 2.0, -2.0, 7.25, 1e-30, 1e20, np.inf, -np.inf, np.nan]
DTYPES = [np.float32, np.float64, np.int32, np.int64]
BACKENDS = ["interp", "cpu"]


def float_values(dtype):
    with np.errstate(over="ignore"):            # 1e300 is inf in float32
        return np.array(FLOAT_VALUES).astype(dtype)


def int_values(dtype):
    info = np.iinfo(dtype)
    return np.array([0, 1, -1, 2, -2, 3, -3, 7, -7, info.min, info.min + 1, info.max], dtype)


def values(dtype):
    return float_values(dtype) if np.dtype(dtype).kind == "f" else int_values(dtype)


def same(got, want):
    """Equal values, dtypes and signs of zero (nan == nan)."""
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    if want.dtype.kind == "f":
        np.testing.assert_array_equal(got, want)
        known = ~np.isnan(want)
        bad = np.signbit(got[known]) != np.signbit(want[known])
        assert not bad.any(), f"signs of zero differ at {np.flatnonzero(known)[bad]}"
    else:
        np.testing.assert_array_equal(got, want)


@pytest.fixture(scope="module")
def unary_functions():
    """One compiled function per (backend, dtype) computing all five unary ops."""
    cache = {}

    def get(backend, dtype):
        if (backend, dtype) not in cache:
            with gc.Graph():
                x = gc.placeholder((None,), dtype)
                cache[backend, dtype] = gc.function([x], [getattr(gc, op)(x) for op in UNARY], backend=backend)
        return cache[backend, dtype]
    return get


@pytest.fixture(scope="module")
def remainder_functions():
    """One compiled function per (backend, dtype pair) computing mod and fmod."""
    cache = {}

    def get(backend, da, db):
        if (backend, da, db) not in cache:
            with gc.Graph():
                a, b = gc.placeholder((None,), da), gc.placeholder((None,), db)
                cache[backend, da, db] = gc.function([a, b], [gc.mod(a, b), gc.fmod(a, b)], backend=backend)
        return cache[backend, da, db]
    return get


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("backend", BACKENDS)
def test_unary_ops_match_numpy_on_special_values(unary_functions, backend, dtype):
    xs = values(dtype)
    for op, got in zip(UNARY, unary_functions(backend, dtype)(xs)):
        same(got, getattr(np, op)(xs))


def test_round_is_half_to_even():
    xs = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999999999999994, 2.0 ** 52 - 0.5])
    _, got = run(gc.round, xs)
    same(got, np.array([0.0, 2.0, 2.0, -0.0, -2.0, -2.0, 0.0, 2.0 ** 52]))


def pairs(da, db):
    """Every dividend against every divisor of the special values (as two flat arrays)."""
    a, b = (values(d) if np.dtype(d).kind == "i" else np.array(DIVISOR_VALUES + [-7.0, 1e-30]).astype(d)
            for d in (da, db))
    A, B = np.meshgrid(a, b)
    return A.ravel(), B.ravel()


@pytest.mark.parametrize("da, db", [(np.float32, np.float32), (np.float64, np.float64), (np.int32, np.int32),
                                    (np.int64, np.int64), (np.int32, np.float32), (np.float32, np.int64)],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("backend", BACKENDS)
def test_remainders_match_numpy_on_special_values(remainder_functions, backend, da, db):
    A, B = pairs(da, db)
    got_mod, got_fmod = remainder_functions(backend, da, db)(A, B)
    with np.errstate(all="ignore"):               # numpy warns for the zero divisors
        same(got_mod, np.mod(A, B))
        same(got_fmod, np.fmod(A, B))


def test_remainder_signs():
    """mod takes the divisor's sign (Python's %), fmod the dividend's (C's %)."""
    a, b = np.array([7, -7, 7, -7]), np.array([3, 3, -3, -3])
    out, got = run(gc.mod, a, b)
    check(out, got, [1, 2, -2, -1], op="mod")
    out, got = run(gc.fmod, a, b)
    check(out, got, [1, -1, 1, -1], op="fmod")


def test_remainders_broadcast_and_infer_numpy_dtypes():
    a, b = sample(np.float32, (2, 3), seed=1), sample(np.int32, (3,), low=1, high=4, seed=2)
    for op in REMAINDERS:
        out, got = run(getattr(gc, op), a, b, shapes=[(None, 3), (3,)])
        check(out, got, getattr(np, op)(a, b), op=op)          # float32 with int32 is float64


def test_integer_rounding_keeps_the_tensor_and_its_dtype():
    x = sample(np.int32, (4,), low=-50, high=50)
    for op in ("floor", "ceil", "round"):
        out, got = run(getattr(gc, op), x)
        check(out, got, x, op=op)
    out, got = run(gc.isnan, x)
    check(out, got, np.zeros(4, bool), op="isnan")


def test_bool_remainder_is_a_dtype_error():
    with gc.Graph():
        x = gc.placeholder((3,), gc.bool_)
        with pytest.raises(DTypeError, match="mod on \\(bool, bool\\) would give int8"):
            gc.mod(x, x)


def test_gradients_of_the_rounding_ops_are_zero_and_of_mod_follow_the_quotient():
    a = np.array([2.3, -2.3, 5.5, -0.2])
    b = np.array([1.5, 1.5, -2.0, 0.7])
    with gc.Graph():
        x, y = gc.placeholder((4,), gc.float64), gc.placeholder((4,), gc.float64)
        grads = [gc.grad(gc.sum(getattr(gc, op)(x)), [x])[0] for op in ("floor", "ceil", "round")]
        grads += gc.grad(gc.sum(gc.mod(x, y)), [x, y]) + gc.grad(gc.sum(gc.fmod(x, y)), [x, y])
        got = gc.function([x, y], grads, backend="interp")(a, b)
    for g in got[:3]:
        np.testing.assert_array_equal(g, np.zeros(4))
    np.testing.assert_array_equal(got[3], np.ones(4))
    np.testing.assert_array_equal(got[4], -np.floor(a / b))
    np.testing.assert_array_equal(got[5], np.ones(4))
    np.testing.assert_array_equal(got[6], -np.trunc(a / b))
