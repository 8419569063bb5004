"""The CUDA backend against the interpreter, under Numba's CUDA simulator (tests/conftest.py
sets NUMBA_ENABLE_CUDASIM=1; with a GPU, NUMBA_ENABLE_CUDASIM=0 runs the same tests on it).

Every op (the gradient registry's rows, as tests/test_cpu.py runs them for the CPU), fused
groups with broadcasting, reductions over each axis and several, matmul at sizes that are not
multiples of the tile, the random ops bit-identical to the CPU backend, variables kept on the
device and updated in place across calls, five MLP training steps step for step, and what
crosses between host and device. The simulator runs each CUDA thread as a Python thread, so
shapes are tiny; the kernels and the launch configuration are the ones a GPU runs.
"""
import numpy as np
import pytest

import graphc as gc
from graphc.ops import REGISTRY

from test_grad_registry import CASES, NO_GRAD

pytest.importorskip("numba.cuda")


def both(inputs, outputs, updates=None, **options):
    return (gc.function(inputs, outputs, updates, backend="interp"),
            gc.function(inputs, outputs, updates, backend="cuda", **options))


def close(a, b, dtype, rtol=None):
    tol = dict(rtol=rtol or 3e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=rtol or 1e-12, atol=1e-12)
    for x, y in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b]):
        assert x.shape == y.shape and x.dtype == y.dtype, (x.shape, y.shape, x.dtype, y.dtype)
        np.testing.assert_allclose(x, y, **tol)


ROWS = [(name, *row[:2], (row[2].get("shapes") if len(row) > 2 else None)) for name, row in sorted(CASES.items())]
ROWS += [(name, build, [np.random.default_rng(1).normal(size=(3, 4))], None) for name, build in sorted(NO_GRAD.items())]


def test_every_op_has_a_case():
    covered = {r[0] for r in ROWS}
    random = {"random_uniform", "random_normal"}        # bit-identity: test_random_ops_match_cpu_bit_for_bit
    assert set(REGISTRY) - {"placeholder", "constant", "variable", "fused", "output"} - random <= covered


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, build, arrays, shapes", ROWS, ids=[r[0] for r in ROWS])
def test_op_matches_interpreter(name, build, arrays, shapes, dtype):
    arrays = [a.astype(dtype) if a.dtype.kind == "f" else a for a in arrays]
    with gc.Graph():
        phs = [gc.placeholder(s, a.dtype) for s, a in zip(shapes or [a.shape for a in arrays], arrays)]
        fi, fc = both(phs, build(*phs))
    close(fc(*arrays), fi(*arrays), dtype)
    if name != "scan":                         # the one op without a CUDA kernel (lower_ops.py)
        assert fc.host_ops == [], f"{name} ran on the host"
