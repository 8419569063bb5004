"""The vectorizable float32 math against float64 numpy over the whole float32 range:
0, subnormals, huge values, +-inf and nan, within runtime.fastmath.MAX_REL_ERROR."""
import numpy as np
import pytest
from numba import njit

from graphc.runtime.cpu import fastmath as fm


def _vectorized(f):
    @njit(error_model="numpy")
    def apply(x, out):
        for i in range(x.size):
            out[i] = f(x[i])
    return apply


def inputs(positive=False):
    rng = np.random.default_rng(0)
    parts = [rng.uniform(-110, 90, 200_000), rng.normal(0, 1, 100_000), rng.normal(0, 1e-3, 10_000),
             np.sign(rng.normal(size=50_000)) * 10.0 ** rng.uniform(-45, 38.5, 50_000),
             [0.0, -0.0, 1e-45, -1e-45, 1e-40, 1.17e-38, 3.4e38, -3.4e38, np.inf, -np.inf, np.nan,
              88.72, 88.7228, 88.73, -87.3, -103.9, -104.0, -105.0, 0.625, -0.625, 1e-8]]
    x = np.concatenate([np.asarray(p, np.float64) for p in parts]).astype(np.float32)
    return np.abs(x) if positive else x


def sigmoid(x):
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


CASES = [
    ("exp32", np.exp, False),
    ("log32", np.log, True),
    ("tanh32", np.tanh, False),
    ("sigmoid32", sigmoid, False),
    ("softplus32", lambda x: np.logaddexp(0, x), False),
    ("expm1_32", np.expm1, False),
]


@pytest.mark.parametrize("name, reference, positive", CASES, ids=[c[0] for c in CASES])
def test_accuracy_over_the_float32_range(name, reference, positive):
    x = inputs(positive)
    got = np.empty_like(x)
    _vectorized(getattr(fm, name))(x, got)
    with np.errstate(all="ignore"):
        want = reference(x.astype(np.float64)).astype(np.float32)   # the correctly rounded float32 answer
    special = ~np.isfinite(want)
    np.testing.assert_array_equal(got[special], want[special])      # inf, -inf, nan exactly
    ok = np.isfinite(want)
    normal = ok & (np.abs(want) >= np.finfo(np.float32).tiny)
    rel = np.abs(got[normal].astype(np.float64) - want[normal]) / np.abs(want[normal].astype(np.float64))
    assert rel.max() <= fm.MAX_REL_ERROR, (name, rel.max(), x[normal][rel.argmax()])
    sub = ok & ~normal                                               # subnormal results may flush to 0
    assert np.all(np.abs(got[sub].astype(np.float64) - want[sub]) <= np.finfo(np.float32).tiny)


def test_the_float32_loops_vectorize():
    """A fused loop over these functions must compile to SIMD code (ymm/zmm registers)."""
    f = _vectorized(fm.tanh32)
    x = np.ones(64, np.float32)
    f(x, np.empty_like(x))
    asm = f.inspect_asm(f.signatures[0])
    assert "ymm" in asm or "zmm" in asm
