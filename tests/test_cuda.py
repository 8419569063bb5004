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
    assert fc.host_ops == [], f"{name} ran on the host"            # every op has a CUDA kernel


def test_integer_and_bool_ops():
    rng = np.random.default_rng(0)
    a = rng.integers(-5, 5, (3, 4)).astype(np.int32)
    b = rng.integers(1, 5, (4,)).astype(np.int64)
    with gc.Graph():
        x, y = gc.placeholder((3, 4), gc.int32), gc.placeholder((4,), gc.int64)
        outs = [x + y, x * 2, x / y, gc.maximum(x, y), gc.sum(x, axis=0), gc.prod(y), x ** 2,
                gc.max(x, axis=1), gc.argmax(x, axis=0), gc.argmin(x), (x > 0) & (y < 3), gc.where(x > 0, x, y),
                gc.cast(x, gc.float32), gc.abs(x), gc.sign(x), x @ gc.reshape(y, (4, 1)), gc.one_hot(y, 5)]
        fi, fc = both([x, y], outs)
    for u, v in zip(fc(a, b), fi(a, b)):
        assert u.dtype == v.dtype and u.shape == v.shape
        np.testing.assert_allclose(u, v, rtol=1e-12)


def test_special_values_follow_numpy():
    """inf, nan, overflow and log(0) give numpy's answers (devmath.py: IEEE on GPU and simulator)."""
    x = np.array([0.0, -0.0, 1e-40, -1.0, np.inf, -np.inf, np.nan, 100.0, -100.0, 88.8], np.float32)
    with gc.Graph():
        p = gc.placeholder((10,), gc.float32)
        outs = [gc.exp(p), gc.log(p), gc.tanh(p), gc.sigmoid(p), gc.softplus(p), gc.sqrt(p), gc.elu(p),
                gc.relu(p), gc.maximum(p, 0.0), gc.max(p), 1.0 / p, gc.softmax(p), gc.exp(gc.cast(p, gc.float64) * 10)]
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
        t = gc.transpose(h)[1:, ::2]                    # copies on the device
        yield both([x, b], [h, s, m, sm, t, gc.log_softmax(x, axis=0), gc.reshape(h, (-1,))])


@pytest.mark.parametrize("batch", [1, 3, 7])
def test_fusion_kernels_and_none_shapes(fused_fns, batch):
    fi, fc = fused_fns
    rng = np.random.default_rng(batch)
    x, b = rng.normal(size=(batch, 5)).astype(np.float32), rng.normal(size=5).astype(np.float32)
    close(fc(x, b), fi(x, b), np.float32)
    assert any(n.op.name == "fused" for n in fc.nodes)
    assert "@cuda.jit" in fc.source and "fused_" in fc.source and "THREADS](" in fc.source


@pytest.mark.parametrize("axis", [0, 1, 2, (0, 1), (0, 2), (1, 2), None])
@pytest.mark.parametrize("op", ["sum", "mean", "max", "prod"])
def test_reductions_over_each_axis_and_several(op, axis):
    rng = np.random.default_rng(3)
    a = rng.normal(size=(3, 4, 5))
    with gc.Graph():
        x = gc.placeholder(a.shape, gc.float64)
        y = getattr(gc, op)(x * 0.5, axis=axis)
        fi, fc = both([x], [y, getattr(gc, op)(x, axis=axis, keepdims=True)])
    close(fc(a), fi(a), np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_a_long_reduction_is_split_over_blocks_and_combined(dtype):
    """Few outputs, many elements: several blocks per output write partial results that the
    second kernel combines (launch.reduce_grid); both stages are exercised."""
    from graphc.runtime.cuda.launch import REDUCE_THREADS, reduce_grid
    n = REDUCE_THREADS * 11          # > 4 elements per thread of a block: worth splitting
    a = np.random.default_rng(0).integers(-50, 50, (2, n)).astype(dtype)
    assert reduce_grid(a.shape, (1,))[1] > 1 and reduce_grid((2 * n,), (0,))[1] > 1
    with gc.Graph():
        x = gc.placeholder(a.shape, dtype)
        fi, fc = both([x], [gc.sum(x, axis=1), gc.max(x), gc.mean(gc.cast(x, gc.float64))])
    got, want = fc(a), fi(a)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_allclose(got[2], want[2], rtol=1e-12)
    assert "_finish[" in fc.source


@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (5, 3, 7), (9, 6, 2), (4, 11, 5)])
def test_matmul_at_sizes_that_are_not_multiples_of_the_tile(m, k, n):
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    a, b = rng.normal(size=(m, k)), rng.normal(size=(k, n))
    with gc.Graph():
        x, w = gc.placeholder((m, k), gc.float64), gc.placeholder((k, n), gc.float64)
        fi, fc = both([x, w], [x @ w, gc.transpose(x) @ gc.ones((m, 2)) if False else x @ w * 2])
    close(fc(a, b), fi(a, b), np.float64)


def test_random_ops_match_cpu_bit_for_bit():
    """One seed, one formula (ops/random.py): the same numbers on cuda, cpu and interp, call after
    call (float64 normals to the last bits of numpy's log1p against libm's)."""
    def build():
        with gc.Graph():
            x = gc.placeholder((3, 5), gc.float32)
            outs = [gc.random.uniform(x, seed=7), gc.random.normal((4, 2), seed=3, dtype="float64"),
                    x * gc.random.bernoulli(x, 0.5, seed=1)]
            return x, outs
    a = np.ones((3, 5), np.float32)
    fns = [gc.function(*build(), backend=b) for b in ("interp", "cpu", "cuda")]
    for _ in range(2):                         # the counter advances on every call
        got = [f(a) for f in fns]
        for k, (u, v, w) in enumerate(zip(*got)):
            np.testing.assert_array_equal(w, v)          # cuda and cpu: libm's log1p, sqrt and cos
            if k == 1:     # float64 normals: numpy's own SIMD log1p (AVX-512) may differ by an ulp
                np.testing.assert_allclose(w, u, rtol=1e-14, atol=0)
            else:
                np.testing.assert_array_equal(w, u)
    assert not np.array_equal(got[2][0], fns[2](a)[0])


def test_variables_stay_on_the_device_and_are_updated_in_place():
    with gc.Graph() as g:
        x = gc.placeholder((4,), gc.float32)
        v = gc.variable(np.zeros(4, np.float32), name="v")
        f = gc.function([x], gc.sum(v), updates={v: v + x}, backend="cuda")
    for k in range(3):
        assert f(np.ones(4, np.float32)) == 4 * k          # each call sees the previous update
        assert g.store.where(v) == "cuda"                  # nothing copied it back
    before = g.store.get(v, "cuda").array
    f(np.ones(4, np.float32))
    assert g.store.get(v, "cuda").array is before          # the same device array, written in place
    np.testing.assert_array_equal(gc.get_value(v), np.full(4, 4.0))     # copied back on demand
    assert g.store.where(v) == "host"
    assert f(np.ones(4, np.float32)) == 16                 # and up again


def test_outputs_are_fresh_and_updates_use_old_values():
    with gc.Graph():
        a = gc.variable(np.arange(3, dtype=np.float32), name="a")
        b = gc.variable(np.ones(3, np.float32), name="b")
        s = gc.variable(np.float64(2.0), name="s")         # a 0-d variable
        x = gc.placeholder((3,), gc.float32)
        f = gc.function([x], [a, a * 2 + x, s], updates={a: b, b: a + x, s: s * 3}, backend="cuda")
        out_a, out_2, out_s = f(np.full(3, 10, np.float32))
    np.testing.assert_array_equal(out_a, [0, 1, 2])
    np.testing.assert_array_equal(gc.get_value(a), [1, 1, 1])
    np.testing.assert_array_equal(gc.get_value(b), [10, 11, 12])
    assert out_s.shape == () and out_s == 2 and gc.get_value(s).shape == () and gc.get_value(s) == 6


def test_five_mlp_training_steps_match_the_interpreter_step_for_step():
    from graphc.tools.workloads import w3_train_step
    wi, wc = (w3_train_step(batch=6, sizes=(12, 10, 7, 4)) for _ in range(2))
    fi, fc = wi.function("interp"), wc.function("cuda")
    for _ in range(5):
        np.testing.assert_allclose(fc(*wc.data)[0], fi(*wi.data)[0], rtol=1e-5)
    for vi, vc in zip(wi.updates, wc.updates):
        np.testing.assert_allclose(gc.get_value(vc), gc.get_value(vi), rtol=1e-4, atol=1e-6)
    assert fc.host_ops == [] and "launch_matmul" in fc.source


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_recurrent_layers_scan_on_the_device_forward_and_backward(kind):
    """A scan (and its gradient, a reverse scan) runs its body's kernels once per step from the
    host: the outputs and every gradient match the interpreter, for two sequence lengths."""
    with gc.Graph():
        x = gc.placeholder((None, None, 3), gc.float64)
        layer = getattr(gc.nn, kind)(4, return_sequences=True, seed=5)
        y = layer(x)
        outs = [y] + gc.grad(gc.sum(y * y), layer.params)
        fi, fc = both([x], outs)
    for n, steps in ((2, 3), (1, 5)):
        xs = np.random.default_rng(n).standard_normal((n, steps, 3))
        close(fc(xs), fi(xs), np.float64, rtol=1e-10)
    assert fc.host_ops == [] and "scan_loop(" in fc.source and "the body of" in fc.source


def test_a_call_copies_only_its_feeds_in_and_its_outputs_out(monkeypatch):
    """Values between kernels, constants and variables stay on the device: after the first call
    (which uploads the constants and variables), a training step copies 2 feeds to the device
    and 1 output back, nothing else."""
    from numba import cuda
    from graphc.tools.workloads import w3_train_step
    w = w3_train_step(batch=4, sizes=(6, 5, 3))
    f = w.function("cuda")
    f(*w.data)
    counts = {"in": 0, "out": 0}
    to_device, array_type = cuda.to_device, type(cuda.device_array(1))
    copy_to_host = array_type.copy_to_host

    def counted_in(*args, **kwargs):
        counts["in"] += 1
        return to_device(*args, **kwargs)

    def counted_out(self, *args, **kwargs):
        counts["out"] += 1
        return copy_to_host(self, *args, **kwargs)
    monkeypatch.setattr(cuda, "to_device", counted_in)
    monkeypatch.setattr(array_type, "copy_to_host", counted_out)
    f(*w.data)
    assert counts == {"in": 2, "out": 1}


def test_interpreter_cpu_and_cuda_take_turns_on_shared_variables():
    with gc.Graph():
        x = gc.placeholder((3, 4), gc.float32)
        W = gc.variable(np.ones((4, 3), np.float32), name="W")
        y = gc.sum(x @ W)
        (g,) = gc.grad(y, [W])
        fns = [gc.function([x], y, {W: W - 0.1 * g}, backend=b) for b in ("cuda", "interp", "cpu", "cuda")]
    xv = np.random.default_rng(0).random((3, 4)).astype(np.float32)
    w = np.ones((4, 3))
    for f in fns + fns:
        np.testing.assert_allclose(f(xv), (xv @ w).sum(), rtol=1e-5)
        w = w - 0.1 * np.repeat(xv.sum(axis=0)[:, None], 3, axis=1)
        np.testing.assert_allclose(gc.get_value(W), w, rtol=1e-5, atol=1e-5)
