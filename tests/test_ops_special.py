"""Special functions against Python's math module: erf in float32 and float64, its special
values (signed zeros, infinities, nan), and the dtype error for integer input."""
import math

import numpy as np
import pytest

import graphc as gc
from graphc.core.errors import DTypeError

OPS_TESTED = {"erf"}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", ["interp", "cpu"])
def test_erf_matches_math_erf(dtype, backend):
    xs = np.concatenate([np.linspace(-6, 6, 97), [-np.inf, np.inf, -0.0, 0.0, 1e-30, -1e-30]]).astype(dtype)
    want = np.array([math.erf(float(v)) for v in xs]).astype(dtype)
    with gc.Graph():
        x = gc.placeholder((None,), dtype)
        (got,) = gc.function([x], [gc.erf(x)], backend=backend)(xs)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=2 * np.finfo(dtype).eps, atol=0)
    assert np.array_equal(np.signbit(got[xs == 0]), np.signbit(xs[xs == 0]))      # erf(-0.0) is -0.0


def test_erf_of_nan_is_nan_and_of_an_empty_tensor_is_empty():
    with gc.Graph():
        x = gc.placeholder((None,), gc.float64)
        f = gc.function([x], [gc.erf(x)])
    assert np.isnan(f(np.array([np.nan]))[0]).all()
    assert f(np.zeros(0))[0].shape == (0,)


def test_erf_needs_a_float_tensor():
    with gc.Graph():
        x = gc.placeholder((3,), gc.int32)
        with pytest.raises(DTypeError, match="erf needs a float tensor, got int32"):
            gc.erf(x)
