"""The CPU backend's fast kernels against the interpreter: row softmax / log_softmax (any axis,
-inf and nan entries), the vectorized row_max / row_min, matmul through one BLAS gemm
(transposed views, 1-D and batched operands, alpha / beta), and the SGD update folded into the
gemm that computes its gradient (where it is safe, and only there)."""
import re

import numpy as np
import pytest

import graphc as gc
from graphc.runtime.cpu.fastmath import matmul_into, row_max, row_min
from graphc.tools.workloads import w3_train_step

rng = np.random.default_rng(7)
TOL = {"float32": dict(rtol=1e-5, atol=1e-5), "float64": dict(rtol=1e-12, atol=1e-12)}


def _data(shape, dtype, special):
    x = (rng.normal(size=shape) * 5).astype(dtype)
    flat = x.reshape(-1)
    if special and flat.size:
        flat[rng.integers(0, flat.size, 2)] = -np.inf
        if flat.size > 5:
            flat[rng.integers(0, flat.size)] = np.nan
        if flat.size > 8:
            flat[rng.integers(0, flat.size)] = np.inf
    return x


def _same(interp, cpu, dtype):
    for a, b in zip(interp, cpu):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, equal_nan=True, **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(7,), (1,), (4, 1), (1, 5), (3, 17), (2, 3, 5), (300, 513)])
@pytest.mark.parametrize("special", [False, True])
def test_softmax_and_log_softmax_match_the_interpreter_on_every_axis(dtype, shape, special):
    x_val = _data(shape, dtype, special)
    for axis in range(-1, len(shape)):
        with gc.Graph():
            x = gc.placeholder(shape, dtype)
            ys = [gc.softmax(x, axis=axis), gc.log_softmax(x, axis=axis)]
        expected = gc.function([x], ys, backend="interp")(x_val)
        for parallel in (None, True):            # 300 x 513 is large enough to run in parallel
            _same(expected, gc.function([x], ys, backend="cpu", parallel=parallel)(x_val), dtype)


def test_a_row_of_only_minus_inf_gives_nan_as_numpy_does():
    x_val = np.array([[-np.inf, -np.inf], [0.0, -np.inf]], np.float32)
    with gc.Graph():
        x = gc.placeholder((None, 2), gc.float32)
        ys = [gc.softmax(x), gc.log_softmax(x)]
    _same(gc.function([x], ys)(x_val), gc.function([x], ys, backend="cpu")(x_val), "float32")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_max_and_row_min_let_nan_win_and_handle_any_length(dtype):
    for n in (0, 1, 7, 16, 37, 1000):
        a = rng.normal(size=n).astype(dtype)
        assert row_max(a, dtype(-np.inf)) == (a.max() if n else -np.inf)
        assert row_min(a, dtype(np.inf)) == (a.min() if n else np.inf)
        if n:
            a[rng.integers(0, n)] = np.nan
            assert np.isnan(row_max(a, dtype(-np.inf))) and np.isnan(row_min(a, dtype(np.inf)))


MATMUL_SHAPES = [((5, 3), (3, 4)), ((3,), (3, 4)), ((5, 3), (3,)), ((3,), (3,)), ((2, 5, 3), (3, 4)),
                 ((2, 5, 3), (3,)), ((2, 5, 3), (2, 3, 4)), ((5, 3), (2, 3, 4)), ((3,), (2, 3, 4)),
                 ((1, 5, 3), (2, 3, 4)), ((2, 1, 5, 3), (3, 3, 4)), ((0, 3), (3, 4)), ((5, 0), (0, 4)),
                 ((2, 0, 3), (3, 4)), ((1, 1), (1, 1))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sa, sb", MATMUL_SHAPES)
def test_matmul_into_is_numpys_matmul_with_alpha_and_beta(dtype, sa, sb):
    a, b = rng.normal(size=sa).astype(dtype), rng.normal(size=sb).astype(dtype)
    ref = np.matmul(a, b)
    out = np.empty(ref.shape or (1,), dtype)
    matmul_into(a, b, out)
    np.testing.assert_allclose(out.reshape(ref.shape), ref, rtol=1e-5, atol=1e-5)
    old = rng.normal(size=out.shape).astype(dtype)
    out[...] = old
    matmul_into(a, b, out, -0.5, 1.0)
    np.testing.assert_allclose(out.reshape(ref.shape), old.reshape(ref.shape) - 0.5 * ref, rtol=1e-5, atol=1e-5)


def test_matmul_into_takes_transposed_views_without_copying_them():
    a, b = rng.normal(size=(6, 5)).astype(np.float32), rng.normal(size=(4, 6)).astype(np.float32)
    out = np.empty((5, 4), np.float32)
    matmul_into(a.T, b.T, out)
    np.testing.assert_allclose(out, a.T @ b.T, rtol=1e-5)
    sigs = [s for s in matmul_into.signatures if str(s[0]).endswith("F')") or "2d, F" in str(s[0])]
    assert sigs, "a transposed operand is compiled as an F-layout array (BLAS's transposition flag)"


@pytest.mark.parametrize("m, k, n", [(1, 6, 4), (5, 6, 1), (1, 6, 1), (1, 1, 3)])
@pytest.mark.parametrize("a_t, b_t", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul_into_one_row_or_column_goes_through_gemv_in_every_layout(m, k, n, a_t, b_t):
    """m = 1 or n = 1 is a gemv call (gemm.py); each operand C or F (a transposed view)."""
    a = rng.normal(size=(k, m) if a_t else (m, k)).astype(np.float32)
    b = rng.normal(size=(n, k) if b_t else (k, n)).astype(np.float32)
    a, b = (a.T if a_t else a), (b.T if b_t else b)
    out = rng.normal(size=(m, n)).astype(np.float32)
    old = out.copy()
    matmul_into(a, b, out, 2.0, 0.5)
    np.testing.assert_allclose(out, 2.0 * (a @ b) + 0.5 * old, rtol=1e-5, atol=1e-5)
    matmul_into(a, b, out)
    np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
@pytest.mark.parametrize("sa, sb", MATMUL_SHAPES)
def test_compiled_matmul_matches_the_interpreter(dtype, sa, sb):
    with gc.Graph():
        a, b = gc.placeholder(sa, dtype), gc.placeholder(sb, dtype)
        ys = [gc.matmul(a, b)] + ([gc.matmul(gc.transpose(b), b)] if len(sb) == 2 else [])
    a_val, b_val = (rng.normal(size=sa) * 3).astype(dtype), (rng.normal(size=sb) * 3).astype(dtype)
    expected = gc.function([a, b], ys)(a_val, b_val)
    got = gc.function([a, b], ys, backend="cpu")(a_val, b_val)
    for e, g in zip(expected, got):
        assert e.shape == g.shape
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)


def _step_lines(fn, kernel):
    body = fn.source[fn.source.index("def step("):]
    return [line.split("#")[0] for line in body.splitlines() if line.strip().startswith(kernel + "(")]


def test_the_lines_of_matmul_and_softmax_hold_no_batch_size():
    with gc.Graph():
        x = gc.placeholder((None, 6), gc.float32, name="x")
        v = gc.placeholder((None,), gc.float32, name="v")
        W = gc.variable(rng.normal(size=(6, 3)).astype(np.float32), name="W")
        y = gc.softmax(x @ W) + gc.log_softmax(x @ W, axis=0) + gc.reshape(v @ x, (1, 6)) @ W
    f = gc.function([x, v], [y], backend="cpu")
    f(np.ones((37, 6), np.float32), np.ones(37, np.float32))
    lines = _step_lines(f, "matmul_into") + _step_lines(f, "softmax_rows") + _step_lines(f, "log_softmax_cols")
    assert len(lines) == 5 and not any(re.search(r"\b37\b", line) for line in lines), lines


# ---------------------------------------------------------------- the SGD update in the gemm


def _sgd(extra_reader=False, reads_itself=False):
    """A tiny regression step; its W update may be folded into the gemm computing its gradient."""
    with gc.Graph():
        x = gc.placeholder((None, 4), gc.float32, name="x")
        t = gc.placeholder((None, 4), gc.float32, name="t")
        W = gc.variable(np.random.default_rng(0).normal(size=(4, 4)).astype(np.float32), name="W")
        h = x @ W
        loss = gc.mean((h - t) ** 2)
        (g,) = gc.grad(loss, [W])
        if reads_itself:
            g = g + 0.1 * (gc.transpose(W) @ W)        # the gemm would read the memory it writes
        outputs = [loss]
        if extra_reader:
            outputs.append(gc.sum(x @ gc.transpose(W)))   # reads W: may run after the gradient's gemm
    return [x, t], outputs, {W: W - 0.05 * g}, W


@pytest.mark.parametrize("extra_reader", [False, True])
@pytest.mark.parametrize("reads_itself", [False, True])
def test_an_sgd_update_folded_into_the_gemm_computes_what_the_interpreter_does(extra_reader, reads_itself):
    data = [rng.normal(size=(9, 4)).astype(np.float32) for _ in range(2)]
    results = {}
    for backend in ("interp", "cpu"):
        inputs, outputs, updates, W = _sgd(extra_reader, reads_itself)
        f = gc.function(inputs, outputs, updates, backend=backend)
        results[backend] = [f(*data) for _ in range(3)], gc.get_value(W)
        if backend == "cpu":
            folded = [line for line in _step_lines(f, "matmul_into") if "var_W, -0.05, 1.0" in line]
            assert folded or extra_reader or reads_itself
            if reads_itself:
                assert not folded
    for a, b in zip(results["interp"][0], results["cpu"][0]):
        for u, v in zip(a, b):
            np.testing.assert_allclose(v, u, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(results["cpu"][1], results["interp"][1], rtol=1e-5, atol=1e-6)


def test_w3_folds_its_three_weight_updates_and_matches_the_interpreter():
    runs = {}
    for backend in ("interp", "cpu"):
        w = w3_train_step(batch=16, sizes=(12, 8, 8, 5))
        f = w.function(backend)
        losses = [float(f(*w.data)[0]) for _ in range(3)]
        runs[backend] = losses, [gc.get_value(v) for v in w.updates]
        if backend == "cpu":
            assert sum("1.0)" in line for line in _step_lines(f, "matmul_into")) == 3
    np.testing.assert_allclose(runs["cpu"][0], runs["interp"][0], rtol=1e-5)
    for a, b in zip(runs["cpu"][1], runs["interp"][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_exp_nonpos32_is_exp32_for_every_nonpositive_float32():
    """softmax's exp(x - max): as accurate as exp32 wherever x <= 0 (-inf, -0.0, nan included)."""
    from numba import njit

    from graphc.runtime.cpu.fastmath import MAX_REL_ERROR, exp_nonpos32

    @njit(error_model="numpy")
    def apply(x, out):
        for i in range(x.size):
            out[i] = exp_nonpos32(x[i])

    x = -np.abs(np.concatenate([rng.uniform(-110, 0, 200_000), rng.normal(0, 1e-3, 10_000),
                                10.0 ** rng.uniform(-45, 2.3, 50_000),
                                [0.0, 1e-45, 87.3, 87.33, 87.34, 103.9, 104.0, np.inf]]).astype(np.float32))
    x = np.append(x, [np.float32(-0.0), np.float32(np.nan)])
    got = np.empty_like(x)
    apply(x, got)
    want = np.exp(x.astype(np.float64))
    assert got[-1] != got[-1] and got[-2] == 1.0 and got[-3] == 0.0       # nan, -0.0, -inf
    normal = want >= np.finfo(np.float32).tiny
    rel = np.abs(got[normal] - want[normal]) / want[normal]
    assert rel.max() <= MAX_REL_ERROR
    assert np.all(np.abs(got[~normal & (want == want)] - want[~normal & (want == want)]) <= np.finfo(np.float32).tiny)
