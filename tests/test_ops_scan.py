"""scan (ops/scan.py): forward against a numpy loop and against the hand-unrolled graph, the
gradient (a reverse scan) against finite differences and the unrolled graph's gradient, second
order, clear errors at build time, the CPU backend against the interpreter, and compile time
independent of T (one module, compiled once, for every sequence length)."""
import numpy as np
import pytest

import graphc as gc
from graphc.core.errors import DTypeError, GraphError, ShapeError

from gradcheck import check_grad
from test_shape_families import compiled_count

OPS_TESTED = {"scan"}
rng = np.random.default_rng(7)
T, B, H, I = 4, 2, 3, 5
W0, U0, b0 = rng.normal(size=(H, H)) * 0.5, rng.normal(size=(I, H)) * 0.5, rng.normal(size=H)
XS, H0 = rng.normal(size=(T, B, I)), rng.normal(size=(B, H))


def rnn_step(W, U, b):
    """tanh(h @ W + x_t @ U + b), with a tuple carry (h, running sum of h) and no y."""
    def step(carry, x):
        h, s = carry
        h = gc.tanh(h @ W + x @ U + b)
        return (h, s + h), None
    return step


def numpy_rnn(xs, h, W, U, b):
    s = np.zeros_like(h)
    for x in xs:
        h = np.tanh(h @ W + x @ U + b)
        s = s + h
    return h, s


def test_cumulative_sum_against_numpy_and_the_unrolled_graph():
    x = rng.normal(size=(6, 3))
    with gc.Graph():
        xs = gc.placeholder((6, 3), gc.float64)
        init = gc.constant(np.zeros(3))
        last, ys = gc.scan(lambda c, x_t: (c + x_t, c + x_t), init, xs)
        c, rows = init, []
        for t in range(6):
            c = c + xs[t]
            rows.append(gc.expand_dims(c, 0))
        got = gc.function([xs], [last, ys, c, gc.concatenate(rows, axis=0)])(x)
    assert got[1].shape == (6, 3) and got[1].dtype == np.float64
    np.testing.assert_allclose(got[1], np.cumsum(x, axis=0), rtol=1e-12)
    np.testing.assert_allclose(got[0], x.sum(axis=0), rtol=1e-12)
    np.testing.assert_array_equal(got[1], got[3])
    np.testing.assert_array_equal(got[0], got[2])


def test_rnn_with_a_tuple_carry_and_no_y():
    with gc.Graph():
        xs, h0 = gc.placeholder((T, B, I), gc.float64), gc.placeholder((B, H), gc.float64)
        W, U, b = gc.constant(W0), gc.variable(U0), gc.constant(b0)
        (h, s), ys = gc.scan(rnn_step(W, U, b), (h0, gc.broadcast_like(0.0, h0)), xs)
        assert ys is None
        got = gc.function([xs, h0], [h, s])(XS, H0)
    for a, want in zip(got, numpy_rnn(XS, H0, W0, U0, b0)):
        np.testing.assert_allclose(a, want, rtol=1e-12)


def test_reverse_and_a_tuple_of_xs_and_ys():
    a, b = rng.normal(size=(5, 2)), rng.normal(size=(5,))
    with gc.Graph():
        xa, xb = gc.placeholder((5, 2), gc.float64), gc.placeholder((5,), gc.float64)
        last, (ys, zs) = gc.scan(lambda c, x: (c + x[0] * x[1], (c * 1.0, x[1] * 2.0)),
                                 gc.constant(np.zeros(2)), (xa, xb), reverse=True)
        got = gc.function([xa, xb], [last, ys, zs])(a, b)
    prod = a * b[:, None]
    after = np.cumsum(prod[::-1], axis=0)[::-1]          # the carry after step t, walking back
    np.testing.assert_allclose(got[0], prod.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(got[1], np.concatenate([after[1:], np.zeros((1, 2))]), rtol=1e-12)
    np.testing.assert_allclose(got[2], b * 2.0)


def test_time_length_known_at_call_time_and_length_without_xs():
    with gc.Graph():
        xs = gc.placeholder((None, 3), gc.float64)
        last, ys = gc.scan(lambda c, x: (c * 0.5 + x, c), gc.constant(np.ones(3)), xs)
        assert ys.shape == (None, 3)
        powers, ps = gc.scan(lambda c, _: (c * 2.0, c), gc.constant(1.0), length=4)
        f = gc.function([xs], [last, ys, powers, ps])
    for n in (2, 5, 0):
        x = rng.normal(size=(n, 3))
        c, rows = np.ones(3), []
        for t in range(n):
            rows.append(c)
            c = c * 0.5 + x[t]
        got = f(x)
        np.testing.assert_allclose(got[0], c, rtol=1e-12)
        np.testing.assert_allclose(got[1], np.array(rows).reshape(n, 3), rtol=1e-12)
    np.testing.assert_allclose(got[2], 16.0)
    np.testing.assert_allclose(got[3], [1.0, 2.0, 4.0, 8.0])


def test_errors_name_the_users_line():
    with gc.Graph():
        xs, x2 = gc.placeholder((4, 3), gc.float64), gc.placeholder((5, 3), gc.float64)
        init = gc.constant(np.zeros(3))
        cases = [
            (ShapeError, "keep its shape", lambda: gc.scan(lambda c, x: (gc.sum(c + x), None), init, xs)),
            (DTypeError, "keep its dtype", lambda: gc.scan(lambda c, x: (gc.cast(c + x, gc.float32), None), init, xs)),
            (GraphError, "structure", lambda: gc.scan(lambda c, x: ((c, c), None), init, xs)),
            (ShapeError, "different lengths", lambda: gc.scan(lambda c, x: (c + x[0], None), init, (xs, x2))),
            (GraphError, "not a graph node", lambda: gc.scan(lambda c, x: (c + x, 1.0), init, xs)),
            (GraphError, "(new_carry, y_t)", lambda: gc.scan(lambda c, x: c + x, init, xs)),
            (ShapeError, "length=", lambda: gc.scan(lambda c, x: (c, None), init)),
        ]
        for error, words, build in cases:
            with pytest.raises(error, match=r"(?s)" + __import__("re").escape(words) + ".*test_ops_scan.py"):
                build()


# ---------------------------------------------------------------- gradients


def scan_rnn(h0, xs, W, U, b):
    (h, s), _ = gc.scan(rnn_step(W, U, b), (h0, h0 * 0.0), xs)
    return gc.concatenate([h, s * 0.5], axis=0)


def unrolled_rnn(h0, xs, W, U, b):
    carry = (h0, h0 * 0.0)
    for t in range(T):
        carry, _ = rnn_step(W, U, b)(carry, xs[t])
    return gc.concatenate([carry[0], carry[1] * 0.5], axis=0)


def test_gradient_against_finite_differences_wrt_init_xs_and_captured_weights():
    check_grad(scan_rnn, [H0, XS, W0, U0, b0])


def test_gradient_of_ys_and_reverse_against_finite_differences():
    def build(h0, xs, W):
        _, ys = gc.scan(lambda h, x: (gc.tanh(h @ W + x), h * x), h0, xs, reverse=True)
        return ys
    check_grad(build, [H0[0], rng.normal(size=(T, H)), W0])


def test_gradient_and_second_order_against_the_unrolled_graph():
    with gc.Graph():
        ins = [gc.placeholder(a.shape, gc.float64) for a in (H0, XS, W0, U0, b0)]
        outs = []
        for build in (scan_rnn, unrolled_rnn):
            loss = gc.sum(build(*ins) ** 2)
            g_w = gc.grad(loss, ins[2])
            second = gc.grad(gc.sum(g_w * g_w), [ins[0], ins[2], ins[4]])   # through the backward scan
            outs.append(gc.grad(loss, ins) + second)
        got = gc.function(ins, outs[0] + outs[1])(H0, XS, W0, U0, b0)
    n = len(outs[0])
    for a, b in zip(got[:n], got[n:]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def masked_step(W):
    """A body with non-differentiable parts: a mask z > 0, a one-hot of argmax(z) and an int
    carry counting argmax; their gradients are zero, the float parts' are not."""
    def step(carry, x):
        h, n = carry
        z = h @ W + x
        keep = gc.cast(gc.greater(z, 0.0), gc.float64)
        pick = gc.one_hot(gc.argmax(z, axis=-1), H, dtype=gc.float64)
        return (gc.tanh(z) * keep + 0.5 * pick * z, n + gc.argmax(z, axis=-1)), h * pick
    return step


def scan_masked(h0, xs, W):
    (h, n), ys = gc.scan(masked_step(W), (h0, gc.cast(gc.argmax(h0, axis=-1), gc.int64) * 0), xs)
    return h + gc.sum(ys, axis=0) + gc.expand_dims(gc.cast(n, gc.float64), -1)


def test_saved_values_give_the_recomputed_gradient_with_non_differentiable_parts(monkeypatch):
    """The forward saves what the gradient reads (the mask, the one-hot, tanh(z)); the backward
    body reads them and runs no tanh. The gradients equal finite differences and those of the
    backward body that replays the step (no saved values)."""
    from graphc.ops import scan as scan_op
    args = [H0, rng.normal(size=(T, B, H)), W0]
    with gc.Graph() as g:
        phs = [gc.placeholder(a.shape, gc.float64) for a in args]
        gc.grad(gc.sum(scan_masked(*phs) ** 2), phs)
    fwd, bwd = ([n for n in g.nodes if n.op.name == "scan" and n.attrs["reverse"] == r] for r in (False, True))
    assert fwd[0].attrs["save"] and "tanh" not in bwd[0].attrs["region"].op_names()
    saved = check_grad(scan_masked, args, rtol=1e-6, atol=1e-8)
    monkeypatch.setattr(scan_op, "RESIDUALS", [])
    replayed = check_grad(scan_masked, args, rtol=1e-6, atol=1e-8)
    for a, b in zip(saved, replayed):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def test_the_pass_pipeline_keeps_the_scan_and_optimizes_around_it():
    """The passes treat a scan as a black box: the optimized program (verified after every
    pass) computes what the graph as built computes, with fused groups around the scan."""
    with gc.Graph():
        ins = [gc.placeholder(a.shape, gc.float64) for a in (H0, XS, W0, U0, b0)]
        y = gc.exp(scan_rnn(*ins) * 2.0 + 1.0) * 0.5
        outs = [y] + gc.grad(gc.sum(y), ins)
        plain, optimized = gc.function(ins, outs), gc.function(ins, outs, optimize=True)
    ops = [n.op.name for n in optimized.nodes]
    assert ops.count("scan") == 2 and "fused" in ops      # the forward and the backward scan
    for a, b in zip(optimized(H0, XS, W0, U0, b0), plain(H0, XS, W0, U0, b0)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- the CPU backend


@pytest.fixture(scope="module")
def rnn_fns():
    """One graph: forward, gradient, a reverse scan and a tuple carry, with T given at call time."""
    with gc.Graph():
        xs, h0 = gc.placeholder((None, B, I), gc.float32, name="xs"), gc.placeholder((B, H), gc.float32, name="h0")
        W, U, b = (gc.variable(a.astype(np.float32)) for a in (W0, U0, b0))
        (h, s), _ = gc.scan(rnn_step(W, U, b), (h0, h0 * 0.0), xs)
        _, ys = gc.scan(lambda c, x: (c + gc.sum(x), c * x[0]), gc.constant(np.float32(0)), xs, reverse=True)
        # a scan inside a scan's body: each x_t (B, I) read row by row
        nested, _ = gc.scan(lambda c, x: (c + gc.scan(lambda d, r: (gc.tanh(d + r @ U), None), c, x)[0], None),
                            h0[0], xs)
        loss = gc.sum(h * s) + gc.sum(ys * ys) + gc.sum(nested * nested)
        outs = [h, s, ys, nested, loss] + gc.grad(loss, [h0, xs, W, U, b])
        return gc.function([xs, h0], outs), gc.function([xs, h0], outs, backend="cpu")


def test_cpu_matches_the_interpreter_forward_and_gradient(rnn_fns):
    fi, fc = rnn_fns
    x, h = XS.astype(np.float32), H0.astype(np.float32)
    for a, b in zip(fc(x, h), fi(x, h)):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


def test_cpu_compiles_once_for_every_sequence_length(rnn_fns):
    fi, fc = rnn_fns
    h = H0.astype(np.float32)
    fc(XS.astype(np.float32), h)
    before = compiled_count()
    for n in (5, 50):
        x = rng.normal(size=(n, B, I)).astype(np.float32)
        for a, b in zip(fc(x, h), fi(x, h)):      # float32 sums over 50 steps: relative to the largest
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())
    assert compiled_count() == before, "a new T compiled something"
    assert len({c.module for c in fc._compiled.values()}) == 1
    assert len({c.program.source for c in fc._compiled.values()}) == 1
    x = np.zeros((0, B, I), np.float32)  # no steps: x_t @ U over no rows, gradients summed over none
    for a, b in zip(fc(x, h), fi(x, h)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_the_scan_kernel_is_the_same_text_for_a_fixed_t_of_5_and_of_50():
    texts = []
    for n in (5, 50):
        with gc.Graph():
            xs = gc.placeholder((n, 3), gc.float64)
            W = gc.constant(rng.normal(size=(3, 3)))
            last, ys = gc.scan(lambda c, x: (gc.tanh(c @ W + x), c), gc.constant(np.zeros(3)), xs)
            f = gc.function([xs], [last, ys], backend="cpu")
            x = rng.normal(size=(n, 3))
            got, want = f(x), gc.function([xs], [last, ys])(x)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        program = next(iter(f._compiled.values())).program
        texts.append(sorted(s for s in program.kernel_sources if "scan_body_" in s))
    assert texts[0] == texts[1] and len(texts[0]) == 1


def test_cpu_int_and_0d_carries_no_steps_and_length_without_xs():
    with gc.Graph():
        xs = gc.placeholder((None, 3), gc.float32)

        def step(carry, x):
            v, k = carry                          # a float carry and an int step counter
            return (v * 0.5 + x, k + 1), (gc.sum(x), k)
        (v, k), (s, ks) = gc.scan(step, (gc.constant(np.ones(3, np.float32)), gc.constant(np.int64(0))), xs)
        p, _ = gc.scan(lambda c, _: (c * 2.0, None), gc.constant(np.float32(1.0)), length=5)
        outs = [v, k, s, ks, p, gc.grad(gc.sum(v) + gc.sum(s), xs)]
        fi, fc = gc.function([xs], outs), gc.function([xs], outs, backend="cpu")
    for n in (3, 0):
        x = rng.normal(size=(n, 3)).astype(np.float32)
        for a, b in zip(fc(x), fi(x)):
            assert a.shape == b.shape and a.dtype == b.dtype
            np.testing.assert_allclose(a, b, rtol=1e-6)
    assert fc(x)[1] == 0 and fc(np.ones((2, 3), np.float32))[4] == 32.0


def test_calls_blas_sees_a_matmul_in_the_body_and_in_a_nested_body():
    from graphc.runtime.cpu.lower_scan import calls_blas
    with gc.Graph() as g:
        xs, W, zero = gc.placeholder((4, 2, 3), gc.float64), gc.constant(np.eye(3)), gc.constant(np.zeros(3))
        gc.scan(lambda c, x: (c + gc.scan(lambda d, r: (d @ W + r, None), c, x)[0], None), zero, xs)
        gc.scan(lambda c, x: (c + x, None), zero, xs[0])
    assert [calls_blas(n) for n in g.nodes if n.op.name == "scan"] == [True, True, False]
