"""Recurrent cells and layers (graphc/nn/rnn_layers.py) against numpy written out here in float64:
one step of each cell, whole sequences of each layer, gradients by finite differences, the cpu
backend against the interpreter, the errors; and the gc.scan path against the unrolled one."""
import numpy as np
import pytest

import graphc as gc
from tests.gradcheck import check_grad

B, T, NF, U = 2, 3, 3, 4          # batch, time, features, units


def sig(a):
    return 1.0 / (1.0 + np.exp(-a))


# numpy steps, each from its formula (PyTorch's documentation), gate blocks split by hand
def np_rnn(x, h, W, Uw, b):
    return np.tanh(x @ W + h @ Uw + b)


def np_lstm(x, h, c, W, Uw, b):
    z = x @ W + h @ Uw + b
    u = h.shape[-1]
    i, f, g, o = sig(z[:, :u]), sig(z[:, u:2 * u]), np.tanh(z[:, 2 * u:3 * u]), sig(z[:, 3 * u:])
    c2 = f * c + i * g
    return o * np.tanh(c2), c2


def np_gru(x, h, W, Uw, b, bh):
    u = h.shape[-1]
    gi, gh = x @ W + b, h @ Uw + bh
    r = sig(gi[:, :u] + gh[:, :u])
    z = sig(gi[:, u:2 * u] + gh[:, u:2 * u])
    n = np.tanh(gi[:, 2 * u:] + r * gh[:, 2 * u:])
    return (1 - z) * n + z * h


def arrays(k, seed=0):
    """x (B, NF), h, c (B, U), W (NF, kU), U (U, kU), b, b_h (kU,), float64."""
    r = np.random.default_rng(seed)
    return [r.standard_normal(s) * 0.7 for s in [(B, NF), (B, U), (B, U), (NF, k * U), (U, k * U),
                                                   (k * U,), (k * U,)]]


def run_cell(make, args):
    with gc.Graph():
        phs = [gc.placeholder(a.shape, gc.float64) for a in args]
        out = make(*phs)
        return gc.function(phs, list(out) if isinstance(out, tuple) else out)(*args)


def test_simple_rnn_cell_is_one_elman_step():
    x, h, _, W, Uw, b, _ = arrays(1)
    got = run_cell(gc.nn.simple_rnn_cell, [x, h, W, Uw, b])
    np.testing.assert_allclose(got, np_rnn(x, h, W, Uw, b), rtol=1e-12)


def test_lstm_cell_gates_are_i_f_g_o():
    x, h, c, W, Uw, b, _ = arrays(4)
    got_h, got_c = run_cell(gc.nn.lstm_cell, [x, h, c, W, Uw, b])
    want_h, want_c = np_lstm(x, h, c, W, Uw, b)
    np.testing.assert_allclose(got_c, want_c, rtol=1e-12)
    np.testing.assert_allclose(got_h, want_h, rtol=1e-12)


def test_gru_cell_is_pytorchs_formula():
    x, h, _, W, Uw, b, bh = arrays(3)
    got = run_cell(gc.nn.gru_cell, [x, h, W, Uw, b, bh])
    np.testing.assert_allclose(got, np_gru(x, h, W, Uw, b, bh), rtol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_cell_gradients_through_two_steps_match_finite_differences(cell):
    x, h, c, W, Uw, b, bh = arrays({"rnn": 1, "lstm": 4, "gru": 3}[cell], seed=1)
    x2 = x[::-1].copy()
    if cell == "rnn":
        check_grad(lambda x, h, W, Uw, b: gc.nn.simple_rnn_cell(
            x, gc.nn.simple_rnn_cell(x * 0.5, h, W, Uw, b), W, Uw, b), [x, h, W, Uw, b])
    elif cell == "lstm":
        def two(x, x2, h, c, W, Uw, b):
            h, c = gc.nn.lstm_cell(x, h, c, W, Uw, b)
            h, c = gc.nn.lstm_cell(x2, h, c, W, Uw, b)
            return h * c
        check_grad(two, [x, x2, h, c, W, Uw, b])
    else:
        check_grad(lambda x, x2, h, W, Uw, b, bh: gc.nn.gru_cell(
            x2, gc.nn.gru_cell(x, h, W, Uw, b, bh), W, Uw, b, bh), [x, x2, h, W, Uw, b, bh])


# ---------------------------------------------------------------- layers, unrolled


def np_layer(layer, xs):
    """The layer's sequence in numpy from its own weights: (every h (B, T, U), last h)."""
    W, Uw, b = (gc.get_value(p) for p in (layer.W, layer.U, layer.b))
    h = np.zeros((xs.shape[0], layer.units))
    c, hs = h, []
    for t in range(xs.shape[1]):
        x = xs[:, t]
        if isinstance(layer, gc.nn.LSTM):
            h, c = np_lstm(x, h, c, W, Uw, b)
        elif isinstance(layer, gc.nn.GRU):
            h = np_gru(x, h, W, Uw, b, gc.get_value(layer.b_h))
        else:
            h = np_rnn(x, h, W, Uw, b)
        hs.append(h)
    return np.stack(hs, axis=1), h


LAYERS = {"rnn": gc.nn.SimpleRNN, "lstm": gc.nn.LSTM, "gru": gc.nn.GRU}


@pytest.mark.parametrize("kind", list(LAYERS))
def test_unrolled_layers_match_numpy_for_both_outputs(kind):
    xs = np.random.default_rng(2).standard_normal((B, T, NF))
    with gc.Graph():
        x = gc.placeholder((None, T, NF), gc.float64)
        last_layer = LAYERS[kind](U, unroll=True, seed=3)
        seq_layer = LAYERS[kind](U, unroll=True, return_sequences=True, seed=3)
        last, seq = last_layer(x), seq_layer(x)
        assert last.shape == (None, U) and seq.shape == (None, T, U)
        got_last, got_seq = gc.function([x], [last, seq])(xs)
    assert last_layer.used_scan is False
    want_seq, want_last = np_layer(last_layer, xs)
    np.testing.assert_allclose(got_last, want_last, rtol=1e-10)
    np.testing.assert_allclose(got_seq, want_seq, rtol=1e-10)
    np.testing.assert_array_equal(gc.get_value(last_layer.W), gc.get_value(seq_layer.W))   # seeded


def test_lstm_initial_weights_forget_bias_one_orthogonal_recurrent_blocks():
    with gc.Graph():
        layer = gc.nn.LSTM(U, seed=0)
        layer(gc.placeholder((None, T, NF), gc.float32))
    b, Uw = gc.get_value(layer.b), gc.get_value(layer.U)
    assert b.dtype == np.float32 and Uw.shape == (U, 4 * U)
    np.testing.assert_array_equal(b, np.repeat([0.0, 1.0, 0.0, 0.0], U))
    for k in range(4):
        block = Uw[:, k * U:(k + 1) * U].astype(np.float64)
        np.testing.assert_allclose(block.T @ block, np.eye(U), atol=1e-6)
    assert [p.name.split("/")[-1] for p in layer.params] == ["W", "U", "b"]


def test_unrolled_gru_layer_gradient_matches_finite_differences():
    xs = np.random.default_rng(4).standard_normal((B, T, NF))
    with gc.Graph():
        x = gc.placeholder((B, T, NF), gc.float64)
        layer = gc.nn.GRU(U, unroll=True, return_sequences=True, seed=5)
        w = gc.constant(np.random.default_rng(6).uniform(0.5, 1.5, (B, T, U)))
        loss = gc.sum(layer(x) * w)
        grads = gc.grad(loss, layer.params + [x])
        f, g = gc.function([x], loss), gc.function([x], grads)
    analytic = g(xs)
    eps = 1e-6
    for p, got in zip(layer.params, analytic):
        value = gc.get_value(p).copy()
        flat = value.reshape(-1)
        for i in range(0, flat.size, max(1, flat.size // 7)):        # a spread of entries
            old = flat[i]
            flat[i] = old + eps
            gc.set_value(p, value)
            hi = float(f(xs))
            flat[i] = old - eps
            gc.set_value(p, value)
            lo = float(f(xs))
            flat[i] = old
            gc.set_value(p, value)
            np.testing.assert_allclose(got.reshape(-1)[i], (hi - lo) / (2 * eps), rtol=1e-5, atol=1e-7,
                                       err_msg=f"{p.name}[{i}]")


# ---------------------------------------------------------------- cpu backend, errors


@pytest.fixture(scope="module")
def tiny_lstm():
    """One LSTM over 2 steps, its loss and gradients, compiled once for cpu and interp."""
    with gc.Graph():
        x = gc.placeholder((None, 2, NF), gc.float64)
        layer = gc.nn.LSTM(U, unroll=True, return_sequences=True, seed=7)
        y = layer(x)
        grads = gc.grad(gc.sum(y * y), layer.params)
        outs = [y] + grads
        return gc.function([x], outs, backend="interp"), gc.function([x], outs, backend="cpu")


def test_cpu_backend_matches_interpreter_on_a_tiny_lstm(tiny_lstm):
    fi, fc = tiny_lstm
    for n in (1, 3):
        xs = np.random.default_rng(n).standard_normal((n, 2, NF))
        for got, want in zip(fc(xs), fi(xs)):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_bad_inputs_are_shape_errors_naming_the_layer():
    with gc.Graph():
        with pytest.raises(gc.ShapeError, match=r"LSTM lstm_\d+: input must be \(batch, time, features\)"):
            gc.nn.LSTM(U)(gc.placeholder((None, NF), gc.float32))
        with pytest.raises(gc.ShapeError, match="feature axis"):
            gc.nn.GRU(U)(gc.placeholder((None, T, None), gc.float32))
        with pytest.raises(gc.ShapeError, match="known time length"):
            gc.nn.SimpleRNN(U, unroll=True)(gc.placeholder((None, None, NF), gc.float32))
        with pytest.raises(gc.GraphError, match="unknown activation"):
            gc.nn.SimpleRNN(U, activation="nope")


# ---------------------------------------------------------------- gc.scan against the unrolled graph


@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("sequences", [False, True])
def test_scan_layers_match_unrolled_outputs_and_gradients(kind, sequences):
    xs = np.random.default_rng(8).standard_normal((B, T, NF))
    with gc.Graph():
        x = gc.placeholder((None, T, NF), gc.float64)
        scanned = LAYERS[kind](U, return_sequences=sequences, seed=9)
        unrolled = LAYERS[kind](U, return_sequences=sequences, unroll=True, seed=9)
        ys, yu = scanned(x), unrolled(x)
        assert scanned.used_scan and ys.shape == yu.shape
        w = gc.constant(np.random.default_rng(10).uniform(0.5, 1.5, (B,) + yu.shape[1:]))
        gs = gc.grad(gc.sum(ys * w), scanned.params + [x])
        gu = gc.grad(gc.sum(yu * w), unrolled.params + [x])
        got, want = gc.function([x], [ys] + gs)(xs), gc.function([x], [yu] + gu)(xs)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", ["interp", "cpu"])
def test_scan_lstm_takes_an_unknown_time_length(backend):
    with gc.Graph():
        x = gc.placeholder((None, None, NF), gc.float64)
        layer = gc.nn.LSTM(U, return_sequences=True, seed=11)
        y = layer(x)
        assert y.shape == (None, None, U)
        fc = gc.function([x], y, backend=backend)
    for steps in (1, 4):
        xs = np.random.default_rng(steps).standard_normal((B, steps, NF))
        np.testing.assert_allclose(fc(xs), np_layer(layer, xs)[0], rtol=1e-10, atol=1e-12)


def test_cpu_scan_lstm_outputs_and_gradients_match_the_interpreter():
    xs = np.random.default_rng(12).standard_normal((B, T, NF))
    with gc.Graph():
        x = gc.placeholder((None, T, NF), gc.float64)
        layer = gc.nn.LSTM(U, return_sequences=True, seed=13)
        y = layer(x)
        outs = [y] + gc.grad(gc.sum(y * y), layer.params + [x])
        fi, fc = gc.function([x], outs, backend="interp"), gc.function([x], outs, backend="cpu")
    for got, want in zip(fc(xs), fi(xs)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- saved gate values against recomputation


def _scan_cell(kind):
    """(h0, xs (T, B, NF), W, Uw, b, b_h) -> the scan's final h plus its ys summed over time."""
    from graphc.nn.rnn_layers import gru_cell, lstm_cell

    def build(h0, xs, W, Uw, b, bh):
        if kind == "lstm":
            cell = lambda hc, x: (lstm_cell(x, hc[0], hc[1], W, Uw, b + bh), hc[0] * hc[1])    # noqa: E731
            (h, c), ys = gc.scan(cell, (h0, h0 * 0.5), xs)
        else:
            (h, ys) = gc.scan(lambda h, x: (gru_cell(x, h, W, Uw, b, bh), h * x[:, :1]), h0, xs)
        return h + gc.sum(ys, axis=0)
    return build


def _backward_ops(kind, args):
    """The op names of the backward scan's body, for the gradient of the cell's scan."""
    with gc.Graph() as g:
        phs = [gc.placeholder(a.shape, gc.float64) for a in args]
        gc.grad(gc.sum(_scan_cell(kind)(*phs) ** 2), phs)
    backward = [n for n in g.nodes if n.op.name == "scan" and n.attrs["reverse"]]
    assert len(backward) == 1
    return set(backward[0].attrs["region"].op_names())


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_saved_gate_values_give_the_recomputed_gradients_and_finite_differences(kind, monkeypatch):
    """The forward scan saves the gate values its gradient reads (attr save), and the backward
    body reads them: no sigmoid or tanh runs again there. Its gradients equal those of the
    backward body that replays the forward step (no saved values) and finite differences."""
    from graphc.ops import scan as scan_op
    k = 4 if kind == "lstm" else 3
    r = np.random.default_rng(21)
    args = [r.standard_normal(s) * 0.6 for s in [(B, U), (T, B, NF), (NF, k * U), (U, k * U), (k * U,), (k * U,)]]
    saved = check_grad(_scan_cell(kind), args, rtol=1e-6, atol=1e-8)
    assert not {"sigmoid", "tanh"} & _backward_ops(kind, args)
    monkeypatch.setattr(scan_op, "RESIDUALS", [])     # no saved values: the backward replays the step
    assert {"sigmoid", "tanh"} <= _backward_ops(kind, args)
    replayed = check_grad(_scan_cell(kind), args, rtol=1e-6, atol=1e-8)
    for a, b in zip(saved, replayed):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
