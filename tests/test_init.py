"""graphc.init: shapes and dtypes, seeds (reproduce on re-creation, advance
between calls), fans for dense and conv kernels, variance and bounds of the
Glorot/He variants on large matrices, get() by name, and errors."""
import math

import numpy as np
import pytest

import graphc as gc
from graphc import init

RANDOM = [init.Uniform, init.Normal, init.GlorotUniform, init.GlorotNormal, init.HeUniform, init.HeNormal]
SHAPES = [(), (7,), (3, 4), (8, 3, 3, 3), (2, 0)]


@pytest.mark.parametrize("cls", RANDOM + [init.Zeros, init.Ones], ids=lambda c: c.__name__)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, "float32", gc.float64], ids=str)
def test_shape_and_dtype(cls, shape, dtype):
    a = cls()(shape, dtype)
    assert a.shape == shape and a.dtype == np.dtype(dtype) and np.isfinite(a).all()


def test_default_dtype_and_int_shape():
    a = init.GlorotUniform()(5)
    assert a.shape == (5,) and a.dtype == np.float32
    w = gc.variable(init.HeNormal(seed=1)((3, 4)), name="w")    # what layers do with it
    assert w.type == gc.TensorType((3, 4), gc.float32)


def test_constants():
    assert np.all(init.Zeros()((2, 3)) == 0) and np.all(init.Ones()((2,), np.float64) == 1)
    assert np.all(init.Constant(0.1)((4,)) == np.float32(0.1))
    ints = init.Constant(7)((3,), np.int64)                     # constants may be ints
    assert ints.dtype == np.int64 and np.all(ints == 7)

# ---------------------------------------------------------------- seeds


@pytest.mark.parametrize("cls", RANDOM, ids=lambda c: c.__name__)
def test_seeds_reproduce_and_calls_advance(cls):
    a, b = cls(seed=3), cls(seed=3)
    first, second = a((20, 30)), a((20, 30))
    assert not np.array_equal(first, second)                   # one object advances: two layers differ
    np.testing.assert_array_equal(first, b((20, 30)))          # re-created with the seed: same sequence
    np.testing.assert_array_equal(second, b((20, 30)))
    assert not np.array_equal(first, cls(seed=4)((20, 30)))    # another seed: other values
    np.testing.assert_allclose(cls(seed=3)((20, 30), np.float64), first, rtol=1e-6)   # dtype only rounds


def test_default_seed_is_zero():
    np.testing.assert_array_equal(init.GlorotUniform()((4, 4)), init.GlorotUniform(seed=0)((4, 4)))

# ---------------------------------------------------------------- fans, variance, bounds


@pytest.mark.parametrize("shape, fans", [
    ((), (1, 1)), ((7,), (7, 7)), ((784, 256), (784, 256)),
    ((64, 32, 3, 3), (32 * 9, 64 * 9)),        # conv (out, in, kh, kw)
    ((16, 8, 5), (40, 80)),                     # 1-D conv (out, in, k)
])
def test_compute_fans(shape, fans):
    assert init.compute_fans(shape) == fans


@pytest.mark.parametrize("cls, shape, var", [
    (init.GlorotUniform, (400, 600), 2 / 1000),
    (init.GlorotNormal, (400, 600), 2 / 1000),
    (init.HeUniform, (500, 400), 2 / 500),
    (init.HeNormal, (500, 400), 2 / 500),
    (init.GlorotUniform, (128, 64, 3, 3), 2 / (64 * 9 + 128 * 9)),
    (init.HeNormal, (128, 64, 3, 3), 2 / (64 * 9)),
], ids=lambda v: v.__name__ if isinstance(v, type) else str(v))
def test_variance(cls, shape, var):
    a = cls(seed=1)(shape, np.float64)
    assert abs(a.mean()) < 0.02 * math.sqrt(var)
    assert a.var() == pytest.approx(var, rel=0.03)


@pytest.mark.parametrize("cls, var", [(init.GlorotNormal, 2 / 1000), (init.HeNormal, 2 / 500)],
                         ids=lambda v: v.__name__ if isinstance(v, type) else "")
def test_truncated_normal_keeps_variance_and_has_no_tails(cls, var):
    a = cls(seed=2, truncated=True)((500, 500), np.float64)
    assert a.var() == pytest.approx(var, rel=0.03)
    assert np.abs(a).max() <= 2 * math.sqrt(var) / 0.87962566103423978 + 1e-12
    assert np.abs(cls(seed=2)((500, 500), np.float64)).max() > 3 * math.sqrt(var)   # the default is not cut


@pytest.mark.parametrize("make, shape, limit", [
    (lambda: init.GlorotUniform(seed=5), (300, 200), math.sqrt(6 / 500)),
    (lambda: init.HeUniform(seed=5), (300, 200), math.sqrt(6 / 300)),
    (lambda: init.GlorotUniform(seed=5), (32, 16, 3, 3), math.sqrt(6 / (16 * 9 + 32 * 9))),
    (lambda: init.Uniform(seed=5), (300, 200), 0.05),
], ids=["glorot", "he", "glorot-conv", "uniform"])
def test_uniform_bounds(make, shape, limit):
    a = make()(shape, np.float64)
    assert a.min() >= -limit and a.max() <= limit
    assert a.min() < -0.99 * limit and a.max() > 0.99 * limit   # and the whole range is used


def test_uniform_and_normal_parameters():
    a = init.Uniform(2.0, 3.0, seed=1)((1000,), np.float64)
    assert a.min() >= 2 and a.max() < 3
    b = init.Normal(mean=1.0, std=0.5, seed=1)((100_000,), np.float64)
    assert b.mean() == pytest.approx(1.0, abs=0.01) and b.std() == pytest.approx(0.5, rel=0.02)

# ---------------------------------------------------------------- get()


@pytest.mark.parametrize("name, cls", [
    ("zeros", init.Zeros), ("ones", init.Ones), ("uniform", init.Uniform), ("normal", init.Normal),
    ("glorot_uniform", init.GlorotUniform), ("glorot_normal", init.GlorotNormal),
    ("he_uniform", init.HeUniform), ("he_normal", init.HeNormal),
    ("xavier_uniform", init.GlorotUniform), ("kaiming_normal", init.HeNormal),
    ("Glorot-Uniform", init.GlorotUniform), (" HE_NORMAL ", init.HeNormal),
])
def test_get_by_name(name, cls):
    got = init.get(name)
    assert type(got) is cls
    assert got((3, 2)).shape == (3, 2)


def test_get_passes_the_seed_and_objects_through():
    np.testing.assert_array_equal(init.get("he_normal", seed=7)((4, 4)), init.HeNormal(seed=7)((4, 4)))
    assert not np.array_equal(init.get("he_normal", seed=7)((4, 4)), init.get("he_normal", seed=8)((4, 4)))
    obj = init.GlorotUniform(seed=1)
    assert init.get(obj) is obj

    def custom(shape, dtype=np.float32):
        return np.full(shape, 0.5, dtype)
    assert init.get(custom) is custom


def test_get_bad_names():
    with pytest.raises(init.InitializerError, match=r"unknown initializer 'glorot'.*glorot_uniform.*he_normal"):
        init.get("glorot")
    with pytest.raises(gc.GraphError):          # a GraphError, and a ValueError for code that expects one
        init.get("")
    with pytest.raises(ValueError, match="initializer name or a callable"):
        init.get(3)

# ---------------------------------------------------------------- errors


def test_bad_arguments():
    with pytest.raises(init.InitializerError, match="low < high"):
        init.Uniform(1.0, 0.0)
    with pytest.raises(init.InitializerError, match="std must be >= 0"):
        init.Normal(std=-1.0)
    with pytest.raises(init.InitializerError, match="seed must be a non-negative int"):
        init.GlorotUniform(seed=-1)
    with pytest.raises(init.InitializerError, match="seed"):
        init.HeNormal(seed=1.5)
    with pytest.raises(init.InitializerError, match="normal variants only"):
        init.GlorotUniform(truncated=True)
    with pytest.raises(init.InitializerError, match="must be a number"):
        init.Constant("one")


@pytest.mark.parametrize("shape", [(None, 3), (-1, 2), (2.5,), "ab", (True, 2)], ids=str)
def test_bad_shapes(shape):
    with pytest.raises(gc.ShapeError, match="shape"):
        init.GlorotUniform()(shape)


def test_bad_dtypes():
    with pytest.raises(gc.DTypeError, match="float32 or float64"):
        init.HeNormal()((2, 2), np.int32)
    with pytest.raises(gc.DTypeError):
        init.Zeros()((2, 2), np.float16)


def test_repr():
    assert repr(init.Uniform(-1, 1, seed=2)) == "Uniform(low=-1, high=1, seed=2)"
    assert repr(init.HeNormal(seed=3)) == "HeNormal(truncated=False, seed=3)"
    assert repr(init.Zeros()) == "Zeros()"
