"""W5 (a CNN training step) and W7 (an LSTM training step) of BENCHMARKS.md: the graphc graph,
sample data, and the same step written by hand in numpy (forward, backward, in-place SGD on its
own copy of the weights), as `graphc bench` runs them beside the peers."""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import graphc as gc

from .workloads import Workload


def cnn_params(seed=0, filters=8, k=3, hw=28, classes=10):
    rng = np.random.default_rng(seed)
    flat = filters * ((hw - k + 1) // 2) ** 2
    return [rng.normal(0, np.sqrt(2 / (k * k)), (filters, 1, k, k)).astype(np.float32),
            np.zeros(filters, np.float32),
            rng.uniform(-1, 1, (flat, classes)).astype(np.float32) * np.float32(np.sqrt(6 / (flat + classes))),
            np.zeros(classes, np.float32)]


def _cross_entropy(logits, y):
    """(loss, d loss / d logits) of the mean softmax cross-entropy on integer labels."""
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    g = np.exp(logp)
    g[np.arange(len(y)), y] -= 1
    return -logp[np.arange(len(y)), y].mean(), g / len(y)


def w5_cnn_step(batch=32, lr=0.01, seed=0):
    """(N,1,28,28) -> conv 3x3 x8 -> ReLU -> 2x2 max pool -> flatten -> dense 10 -> cross-entropy; SGD."""
    params = cnn_params(seed)
    with gc.Graph("W5"):
        x = gc.placeholder((batch, 1, 28, 28), gc.float32, name="x")
        y = gc.placeholder((batch,), gc.int64, name="y")
        wc, bc, wf, bf = [gc.variable(p, name=n) for p, n in zip(params, ["Wc", "bc", "Wf", "bf"])]
        h = gc.relu(gc.conv2d(x, wc) + gc.reshape(bc, (1, 8, 1, 1)))
        f = gc.reshape(gc.max_pool2d(h, 2), (batch, -1))
        logits = f @ wf + bf
        loss = -gc.mean(gc.sum(gc.one_hot(y, 10) * gc.log_softmax(logits, axis=-1), axis=-1))
        variables = [wc, bc, wf, bf]
        updates = {v: v - lr * g for v, g in zip(variables, gc.grad(loss, variables))}
    rng = np.random.default_rng(seed + 1)
    data = [rng.normal(size=(batch, 1, 28, 28)).astype(np.float32),
            rng.integers(0, 10, size=batch).astype(np.int64)]
    w = [p.copy() for p in params]

    def numpy_fn(x, y):
        Wc, bc, Wf, bf = w
        n = len(x)
        cols = sliding_window_view(x, (3, 3), axis=(2, 3))                  # (n, 1, 26, 26, 3, 3)
        z = np.tensordot(cols, Wc, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2) + bc[:, None, None]
        a = np.maximum(z, 0)                                                # (n, 8, 26, 26)
        win = a.reshape(n, 8, 13, 2, 13, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, 8, 13, 13, 4)
        arg = win.argmax(axis=-1)                                           # the first max of each window
        f = np.take_along_axis(win, arg[..., None], -1)[..., 0].reshape(n, -1)
        loss, g = _cross_entropy(f @ Wf + bf, y)
        gWf, gbf, gf = f.T @ g, g.sum(axis=0), g @ Wf.T
        gwin = np.zeros_like(win)
        np.put_along_axis(gwin, arg[..., None], gf.reshape(n, 8, 13, 13, 1), -1)
        ga = gwin.reshape(n, 8, 13, 13, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, 8, 26, 26)
        gz = ga * (z > 0)
        gWc = np.tensordot(gz, cols, axes=([0, 2, 3], [0, 2, 3])).reshape(Wc.shape)
        for p, gp in zip(w, [gWc, gz.sum(axis=(0, 2, 3)), gWf, gbf]):
            p -= lr * gp
        return [np.float32(loss)]
    return Workload("W5", f"CNN train step, batch {batch}, conv 3x3x8, pool 2, dense 10", [x, y], [loss],
                    updates, data, numpy_fn)


def lstm_params(seed=0, features=28, units=128, classes=10):
    rng = np.random.default_rng(seed)
    u = np.float32(1 / np.sqrt(units))
    b = np.zeros(4 * units, np.float32)
    b[units:2 * units] = 1                     # forget gate bias 1, as gc.nn.LSTM initializes it
    return [rng.uniform(-u, u, (features, 4 * units)).astype(np.float32),
            rng.uniform(-u, u, (units, 4 * units)).astype(np.float32), b,
            rng.uniform(-u, u, (units, classes)).astype(np.float32), np.zeros(classes, np.float32)]


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def w7_lstm_step(batch=32, steps=28, features=28, units=128, lr=0.01, seed=0):
    """LSTM over `steps` steps (gates i, f, g, o), last h -> dense 10 -> cross-entropy; SGD."""
    from graphc.nn.rnn_layers import lstm_cell
    params = lstm_params(seed, features, units)
    with gc.Graph("W7"):
        x = gc.placeholder((steps, batch, features), gc.float32, name="x")     # time-major
        y = gc.placeholder((batch,), gc.int64, name="y")
        W, U, b, Wd, bd = [gc.variable(p, name=n) for p, n in zip(params, ["W", "U", "b", "Wd", "bd"])]
        zeros = gc.broadcast_to(gc.constant(np.zeros(units, np.float32)), (batch, units))
        (h, _), _ = gc.scan(lambda hc, xt: (lstm_cell(xt, hc[0], hc[1], W, U, b), None), (zeros, zeros), x)
        logits = h @ Wd + bd
        loss = -gc.mean(gc.sum(gc.one_hot(y, 10) * gc.log_softmax(logits, axis=-1), axis=-1))
        variables = [W, U, b, Wd, bd]
        updates = {v: v - lr * g for v, g in zip(variables, gc.grad(loss, variables))}
    rng = np.random.default_rng(seed + 1)
    data = [rng.normal(size=(steps, batch, features)).astype(np.float32),
            rng.integers(0, 10, size=batch).astype(np.int64)]
    w = [p.copy() for p in params]

    def numpy_fn(x, y):
        W, U, b, Wd, bd = w
        u = U.shape[0]
        h, c = np.zeros((len(y), u), np.float32), np.zeros((len(y), u), np.float32)
        saved = []
        for t in range(len(x)):                  # forward, keeping what backward needs
            z = x[t] @ W + h @ U + b
            i, f, o, g = _sigmoid(z[:, :u]), _sigmoid(z[:, u:2 * u]), _sigmoid(z[:, 3 * u:]), np.tanh(z[:, 2 * u:3 * u])
            c_new = f * c + i * g
            saved.append((h, c, i, f, g, o, np.tanh(c_new)))
            h, c = o * saved[-1][6], c_new
        loss, gl = _cross_entropy(h @ Wd + bd, y)
        gWd, gbd, gh = h.T @ gl, gl.sum(axis=0), gl @ Wd.T
        gc_ = np.zeros_like(c)
        gW, gU, gb = np.zeros_like(W), np.zeros_like(U), np.zeros_like(b)
        for t in reversed(range(len(x))):        # backpropagation through time
            h_prev, c_prev, i, f, g, o, tc = saved[t]
            gc_ = gc_ + gh * o * (1 - tc * tc)
            gz = np.concatenate([gc_ * g * i * (1 - i), gc_ * c_prev * f * (1 - f),
                                 gc_ * i * (1 - g * g), gh * tc * o * (1 - o)], axis=1)
            gW += x[t].T @ gz
            gU += h_prev.T @ gz
            gb += gz.sum(axis=0)
            gh, gc_ = gz @ U.T, gc_ * f
        for p, gp in zip(w, [gW, gU, gb, gWd, gbd]):
            p -= lr * gp
        return [np.float32(loss)]
    return Workload("W7", f"LSTM train step, batch {batch}, {steps} steps x {features}, hidden {units}",
                    [x, y], [loss], updates, data, numpy_fn)


NN_WORKLOADS = {"W5": w5_cnn_step, "W7": w7_lstm_step}
NN_DESCRIPTIONS = {
    "W5": "CNN training step, (32, 1, 28, 28) -> conv 3x3 x8 -> ReLU -> max pool 2 -> dense 10, SGD",
    "W7": "LSTM training step, batch 32, 28 steps of 28 features, hidden 128 -> dense 10, SGD",
}
