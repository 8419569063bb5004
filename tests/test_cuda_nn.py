"""The CUDA kernels of matmul, softmax, log_softmax, argmax, argmin, one_hot, random_uniform and
random_normal against each op's numpy reference (runtime/cuda/matmul_kernels.py, nn_kernels.py,
random_kernels.py).

Each test builds the node's attrs the way the op stores them (`canonical`), its output dtype
the way `infer` makes it, fills the output with garbage (the launchers must write every
element), launches, and compares. Shapes are tiny: under the simulator every CUDA thread is
a Python thread. Run with NUMBA_ENABLE_CUDASIM=1 where there is no GPU.
"""
import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda")

from graphc.core.types import TensorType  # noqa: E402
from graphc.ops.base import REGISTRY  # noqa: E402
from graphc.runtime.cuda import launch  # noqa: E402

if launch.available() is not None:
    pytest.skip(launch.available(), allow_module_level=True)

from graphc.runtime.cuda import matmul_kernels, nn_kernels, random_kernels  # noqa: E402

LAUNCH = {**matmul_kernels.LAUNCH, **nn_kernels.LAUNCH, **random_kernels.LAUNCH}
rng = np.random.default_rng(12)


def run(name, inputs, **user_attrs):
    """(kernel's result, reference's result) for op `name` on numpy inputs."""
    op = REGISTRY[name]
    types = [TensorType(x.shape, x.dtype) for x in inputs]
    attrs = op.canonical(types, **user_attrs)
    t = op.infer(types, **attrs)
    with np.errstate(all="ignore"):
        want = np.asarray(op.ref(*inputs, **attrs))
    assert want.shape == t.shape and want.dtype == t.dtype
    shape = t.shape or (1,)                       # a 0-d value is shape (1,) on the device
    garbage = np.full(shape, 7 if t.dtype.kind in "iub" else np.nan, t.dtype)
    out = cuda.to_device(garbage)
    dev = [cuda.to_device(x.reshape(x.shape or (1,))) for x in inputs]
    LAUNCH[name](*dev, out, **attrs)
    return out.copy_to_host().reshape(t.shape), want


def close(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    if want.dtype.kind != "f":
        np.testing.assert_array_equal(got, want)
    elif want.dtype == np.float64:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def values(shape, dtype):
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if np.dtype(dtype) == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    return rng.integers(-5, 6, shape).astype(dtype)


# ---------------------------------------------------------------- matmul

TILE = launch.TILE


@pytest.mark.parametrize("sa, sb", [
    ((TILE + 1, 2 * TILE - 1), (2 * TILE - 1, TILE + 2)),     # sizes that are not multiples of TILE
    ((TILE, TILE), (TILE, TILE)),
    ((1, 3), (3, 1)),
    ((3,), (3, 2)), ((2, 3), (3,)), ((5,), (5,)),            # vectors: a row, a column, a dot product
    ((2, 1, 3, 4), (3, 4, 2)),                                # batch axes broadcast both ways
    ((3, 4), (2, 4, 3)), ((2, 3, 4), (4, 2)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,)),
    ((2, 0), (0, 3)),                                         # an empty inner dimension: zeros
    ((0, 3), (3, 2)),
])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matmul_layouts(sa, sb, dtype):
    close(*run("matmul", [values(sa, dtype), values(sb, dtype)]))


@pytest.mark.parametrize("da, db", [("int32", "int32"), ("int64", "int64"), ("int32", "int64"),
                                    ("int32", "float32"), ("float32", "float64"), ("int64", "float64")])
def test_matmul_dtypes(da, db):
    close(*run("matmul", [values((2, 3, 5), da), values((5, 3), db)]))


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_matmul_ints_wrap_as_numpy(dtype):
    big = np.iinfo(dtype).max // 3
    a = np.array([[big, -big, 7], [3, big, big]], dtype)
    b = np.array([[big, 2], [5, -big], [big, big]], dtype)
    close(*run("matmul", [a, b]))


# ---------------------------------------------------------------- softmax, log_softmax

@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape, axis", [((3, 5), -1), ((3, 5), 0), ((2, 3, 2), 1), ((7,), 0)])
def test_softmax_axes(name, dtype, shape, axis):
    close(*run(name, [values(shape, dtype) * 4], axis=axis))


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_rows_longer_than_a_block_and_stable(name):
    x = values((2, launch.REDUCE_THREADS + 9), "float64") * 3
    x[0] += 1000.0                                # exp would overflow without subtracting the max
    close(*run(name, [x], axis=1))


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")     # the simulator's inf - inf
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_special_values(name):
    x = np.array([[0.0, -np.inf, 1.0, 2.0], [np.nan, 1.0, 2.0, 3.0], [-np.inf] * 4], np.float32)
    got, want = run(name, [x], axis=1)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))      # a nan row, an all -inf row
    close(np.nan_to_num(got), np.nan_to_num(want))


# ---------------------------------------------------------------- argmax, argmin

@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("axis, keepdims", [(0, False), (1, False), (-1, True), (None, False), (None, True)])
def test_argreduce_ties_and_nan(name, axis, keepdims):
    x = rng.integers(0, 3, (4, 9)).astype(np.float64)     # many ties: the first index wins
    x[1, 6] = x[1, 2] = np.nan                            # the first nan wins
    x[3, 0] = np.nan
    close(*run(name, [x], axis=axis, keepdims=keepdims))


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("dtype", ["float32", "int32", "int64", "bool"])
def test_argreduce_dtypes(name, dtype):
    x = values((2, 1, 5), dtype)
    for axis in (0, 2, None):
        close(*run(name, [x], axis=axis))


@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_argreduce_long_row_vector_and_scalar(name):
    n = launch.REDUCE_THREADS * 2 + 5                     # the tree combines interleaved indices
    x = np.zeros(n, np.float32)
    x[[3, n - 1]] = 2.0 if name == "argmax" else -2.0     # a tie across two threads' slots
    close(*run(name, [x], axis=0))
    x[n - 2] = np.nan
    close(*run(name, [x], axis=None))
    close(*run(name, [np.array(3.5)], axis=None))         # 0-d: index 0


# ---------------------------------------------------------------- one_hot

@pytest.mark.parametrize("idx_dtype", ["int32", "int64"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "bool"])
def test_one_hot(idx_dtype, dtype):
    idx = np.array([[0, 3, -1], [5, 2, 4]], idx_dtype)    # -1 and 5 are outside [0, 5): zero rows
    close(*run("one_hot", [idx], depth=5, dtype=dtype))
    close(*run("one_hot", [np.array(2, idx_dtype)], depth=3, dtype=dtype))


# ---------------------------------------------------------------- random

@pytest.mark.parametrize("name", ["random_uniform", "random_normal"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4)])
def test_random_bit_identical(name, dtype, shape):
    like = np.zeros(shape, np.float32)
    draws = []
    for counter in (np.int64(0), np.int64(41), np.int32(-3)):
        got, want = run(name, [like, np.array(counter)], seed=123, stream=2, dtype=dtype)
        assert got.dtype == want.dtype
        if name == "random_normal" and dtype == "float64":
            # the kernel's log1p is libm's (math.log1p), the reference's numpy's, which has its own
            # SIMD log1p where the CPU has AVX-512 (numpy 2.4: 7% of float64 results 1 ulp apart)
            np.testing.assert_allclose(got, want, rtol=1e-14, atol=0)
        else:
            assert np.array_equal(got, want)
        draws.append(got)
    assert not np.array_equal(draws[0], draws[1])         # each call (counter) draws fresh numbers


def test_random_streams_and_seeds_differ():
    like, counter = np.zeros((9,), np.float32), np.array(np.int64(5))
    a, want_a = run("random_uniform", [like, counter], seed=1, stream=1)
    b, want_b = run("random_uniform", [like, counter], seed=1, stream=2)
    c, want_c = run("random_uniform", [like, counter], seed=2, stream=1)
    assert np.array_equal(a, want_a) and np.array_equal(b, want_b) and np.array_equal(c, want_c)
    assert not np.array_equal(a, b) and not np.array_equal(a, c)
