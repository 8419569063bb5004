"""The CPU backend against the interpreter: every op, fusion shapes, the memory
plan's update semantics, None shapes, and several W3 training steps.

Compiles are the slow part (Numba, ~0.5 s each when the kernel cache is cold),
so graphs are small and compiled functions are shared through module fixtures.
"""
import numpy as np
import pytest

import graphc as gc
from graphc.ops import REGISTRY
from graphc.tools.workloads import w3_train_step

from test_grad_registry import CASES, NO_GRAD


def both(inputs, outputs, updates=None, **options):
    return (gc.function(inputs, outputs, updates, backend="interp"),
            gc.function(inputs, outputs, updates, backend="cpu", **options))


def close(a, b, dtype):
    tol = dict(rtol=3e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for x, y in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b]):
        assert x.shape == y.shape and x.dtype == y.dtype, (x.shape, y.shape, x.dtype, y.dtype)
        np.testing.assert_allclose(x, y, **tol)


ROWS = [(name, *row[:2], (row[2].get("shapes") if len(row) > 2 else None)) for name, row in sorted(CASES.items())]
ROWS += [(name, build, [np.random.default_rng(1).normal(size=(3, 4))], None) for name, build in sorted(NO_GRAD.items())]


def test_every_op_has_a_cpu_case():
    covered = {r[0] for r in ROWS}
    random = {"random_uniform", "random_normal"}        # cpu vs interp in tests/test_nn.py
    assert set(REGISTRY) - {"placeholder", "constant", "variable", "fused", "output"} - random <= covered


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, build, arrays, shapes", ROWS, ids=[r[0] for r in ROWS])
def test_op_matches_interpreter(name, build, arrays, shapes, dtype):
    arrays = [a.astype(dtype) if a.dtype.kind == "f" else a for a in arrays]
    with gc.Graph():
        phs = [gc.placeholder(s, a.dtype) for s, a in zip(shapes or [a.shape for a in arrays], arrays)]
        fi, fc = both(phs, build(*phs))
    close(fc(*arrays), fi(*arrays), dtype)


def test_integer_and_bool_ops():
    rng = np.random.default_rng(0)
    a = rng.integers(-5, 5, (3, 4)).astype(np.int32)
    b = rng.integers(1, 5, (4,)).astype(np.int64)
    with gc.Graph():
        x, y = gc.placeholder((3, 4), gc.int32), gc.placeholder((4,), gc.int64)
        outs = [x + y, x * 2, x // 1 if False else x / y, gc.maximum(x, y), gc.sum(x, axis=0), gc.prod(y),
                gc.max(x, axis=1), gc.argmax(x, axis=0), gc.argmin(x), (x > 0) & (y < 3), gc.where(x > 0, x, y),
                gc.cast(x, gc.float32), gc.abs(x), gc.sign(x), x @ gc.reshape(y, (4, 1)), gc.one_hot(y, 5)]
        fi, fc = both([x, y], outs)
    for u, v in zip(fc(a, b), fi(a, b)):
        assert u.dtype == v.dtype and u.shape == v.shape
        np.testing.assert_allclose(u, v, rtol=1e-12)


def test_special_values_follow_numpy():
    x = np.array([0.0, -0.0, 1e-40, -1.0, np.inf, -np.inf, np.nan, 100.0, -100.0, 88.8], np.float32)
    with gc.Graph():
        p = gc.placeholder((10,), gc.float32)
        outs = [gc.exp(p), gc.log(p), gc.tanh(p), gc.sigmoid(p), gc.softplus(p), gc.sqrt(p), gc.elu(p),
                gc.relu(p), gc.maximum(p, 0.0), gc.max(p), 1.0 / p, gc.softmax(p)]
        fi, fc = both([p], outs)
    for u, v in zip(fc(x), fi(x)):
        np.testing.assert_allclose(u, v, rtol=2e-6, atol=1e-37, equal_nan=True)


@pytest.fixture(scope="module")
def fused_fns():
    with gc.Graph():
        x = gc.placeholder((None, 5), gc.float32, name="x")
        b = gc.placeholder((5,), gc.float32, name="b")
        h = gc.tanh(x * 1.5 + b)                        # a fused group with a broadcast input
        s = gc.sum(h * x, axis=1)                       # a reduction of a fused prologue
        m = gc.mean((x - b) ** 2, axis=0, keepdims=True)
        e = gc.exp(x - gc.max(x, axis=1, keepdims=True))
        sm = e / gc.sum(e, axis=1, keepdims=True)       # a softmax written by hand
        t = gc.transpose(h)[1:, ::2]                    # views
        yield both([x, b], [h, s, m, sm, t, gc.log_softmax(x, axis=0)])


@pytest.mark.parametrize("batch", [1, 3, 7])
def test_fusion_kernels_and_none_shapes(fused_fns, batch):
    fi, fc = fused_fns
    rng = np.random.default_rng(batch)
    x, b = rng.normal(size=(batch, 5)).astype(np.float32), rng.normal(size=5).astype(np.float32)
    close(fc(x, b), fi(x, b), np.float32)
    assert any(n.op.name == "fused" for n in fc.nodes)


def test_outputs_are_fresh_and_updates_use_old_values():
    with gc.Graph():
        a = gc.variable(np.arange(3, dtype=np.float32), name="a")
        b = gc.variable(np.ones(3, np.float32), name="b")
        x = gc.placeholder((3,), gc.float32)
        f = gc.function([x], [a, a * 2 + x], updates={a: b, b: a + x}, backend="cpu")
        out_a, out_2 = f(np.full(3, 10, np.float32))
        np.testing.assert_array_equal(out_a, [0, 1, 2])            # the old value, not the new
        np.testing.assert_array_equal(gc.get_value(a), [1, 1, 1])  # a took b's old value
        np.testing.assert_array_equal(gc.get_value(b), [10, 11, 12])
        out_a[:] = 99                                              # the caller owns what it got
        np.testing.assert_array_equal(gc.get_value(a), [1, 1, 1])


def test_w3_training_steps_match_the_interpreter():
    wi, wc = w3_train_step(batch=16), w3_train_step(batch=16)
    fi, fc = wi.function("interp"), wc.function("cpu")
    for _ in range(3):
        np.testing.assert_allclose(fc(*wc.data)[0], fi(*wi.data)[0], rtol=1e-5)
    for vi, vc in zip(wi.updates, wc.updates):
        np.testing.assert_allclose(gc.get_value(vc), gc.get_value(vi), rtol=1e-4, atol=1e-6)
    assert "matmul_into" in fc.source and "def step(" in fc.source


def test_compile_times_and_source_are_exposed():
    with gc.Graph():
        x = gc.placeholder((4,), gc.float32)
        f = gc.function([x], gc.exp(x) + 1, backend="cpu")
    with pytest.raises(gc.GraphError):
        f.source
    f(np.zeros(4, np.float32))
    assert "exp32" in f.source
    (times,) = f.compile_times.values()
    assert {"specialize", "codegen", "write_import", "numba"} <= set(times)


def test_bad_feeds_are_checked_on_the_fast_path_too():
    with gc.Graph():
        x = gc.placeholder((None, 2), gc.float32, name="x")
        f = gc.function([x], x * 2, backend="cpu")
    f(np.zeros((3, 2), np.float32))
    with pytest.raises(gc.DTypeError):
        f(np.zeros((3, 2), np.float64))
    with pytest.raises(gc.ShapeError):
        f(np.zeros((3, 3), np.float32))
    with pytest.raises(gc.ArgumentError):
        f()
    np.testing.assert_array_equal(f(np.ones((2, 2), np.float32).T), np.full((2, 2), 2))  # a strided feed


# ---------------------------------------------------------------- random graphs (from the passes tests)

from hypothesis import HealthCheck, given, note, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from test_passes_semantics import HypothesisChooser, assert_same, describe, random_program  # noqa: E402


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(st.data())
def test_random_graphs_match_the_interpreter(data):
    """Each example compiles a new module (~0.5 s cold), so fewer examples than the passes test."""
    g, inputs, outputs, bounds, feeds = random_program(HypothesisChooser(data))
    note(describe(outputs))
    want = gc.function(inputs, outputs, backend="interp")(*feeds)
    got = gc.function(inputs, outputs, backend="cpu")(*feeds)
    assert_same(got, want, bounds, "cpu backend")


def test_constants_between_variables_keep_the_argument_order():
    """The step's parameters are feeds, variables, constants, buffers: a constant built
    between two variables must not shift them (a real bug once: Adam's state came after it)."""
    with gc.Graph():
        x = gc.placeholder((3,), gc.float32)
        a = gc.variable(np.ones(3, np.float32), name="a")
        c = gc.constant(np.arange(3, dtype=np.float32))
        b = gc.variable(np.full(3, 2, np.float32), name="b")
        y = (x + a) * c + b
        f = gc.function([x], y, {a: a + c, b: b * 2}, backend="cpu")
    xv = np.ones(3, np.float32)
    np.testing.assert_allclose(f(xv), [2, 4, 6])                # (1 + 1) * c + 2
    np.testing.assert_allclose(f(xv), [4, 7, 12])               # (1 + a) * c + b, a = 1 + c, b = 4
    np.testing.assert_allclose(gc.get_value(a), [1, 3, 5])
    np.testing.assert_allclose(gc.get_value(b), [8, 8, 8])


@pytest.mark.parametrize("jit_step", [True, False])
def test_the_step_compiled_or_plain_python_gives_the_same_answers(jit_step):
    """A long step stays plain Python (it only calls kernels); both forms must agree."""
    wi, wc = w3_train_step(batch=8), w3_train_step(batch=8)
    fi, fc = wi.function("interp"), wc.function("cpu", jit_step=jit_step)
    for _ in range(2):
        np.testing.assert_allclose(fc(*wc.data)[0], fi(*wi.data)[0], rtol=1e-5)
    assert ("@njit(cache=True, error_model=\"numpy\")\ndef step(" in fc.source) == jit_step


def test_a_parallel_loop_matches_the_interpreter():
    """Big elementwise and softmax kernels in a graph without BLAS run with prange."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 640)).astype(np.float32)
    with gc.Graph():
        p = gc.placeholder((256, 640), gc.float32)
        fi, fc = both([p], [gc.tanh(p * 1.5) * gc.sigmoid(p) + gc.abs(p), gc.softmax(p)])
    assert fc.parallel and "prange" in (fc(x) and fc.source)
    close(fc(x), fi(x), np.float32)
    import numba
    assert numba.threading_layer() in ("omp", "workqueue", "tbb")


def test_interpreter_and_cpu_functions_can_take_turns_on_shared_variables():
    """Both backends update the same variables; the CPU one in place, so they must stay C arrays
    (a Fortran-ordered initial value and a transposed gradient included)."""
    with gc.Graph():
        x = gc.placeholder((3, 4), gc.float32)
        W = gc.variable(np.asfortranarray(np.ones((4, 3), np.float32)), name="W")
        y = gc.sum(x @ W)
        (g,) = gc.grad(y, [W])
        fi, fc = both([x], y, {W: W - 0.1 * g})
    xv = np.random.default_rng(0).random((3, 4)).astype(np.float32)
    w = np.ones((4, 3))
    for f in [fc, fi, fc, fi, fc]:
        np.testing.assert_allclose(f(xv), (xv @ w).sum(), rtol=1e-5)
        w = w - 0.1 * np.repeat(xv.sum(axis=0)[:, None], 3, axis=1)
        np.testing.assert_allclose(gc.get_value(W), w, rtol=1e-5, atol=1e-5)
