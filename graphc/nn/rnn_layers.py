"""Recurrent layers (SimpleRNN, LSTM, GRU) and their one-step cells, built from ordinary graph nodes.

A cell is a plain function of graph nodes computing one time step; a layer owns the weights and
runs its cell over the time axis, either with gc.scan (one loop node: the graph stays the same
size whatever the sequence length, and the length may be unknown) or, with unroll=True, as a
Python loop that builds one cell per step (needs a known length; it is the oracle the scan
version is tested against).

    model = gc.nn.Sequential([gc.nn.LSTM(64, seed=0), gc.nn.Dense(10, seed=1)])
    logits = model(x)                       # x: (batch, time, features)

Weight layout (one matrix per kind for all gates, so one matmul per step computes them all):
    W (features, k*units)   input kernel       k = 1 (SimpleRNN), 4 (LSTM), 3 (GRU)
    U (units, k*units)      recurrent kernel
    b (k*units,)            bias (GRU: b and b_h, see gru_cell)
Gate blocks are laid out along the last axis in PyTorch's order, so PyTorch weights load as
W = weight_ih.T, U = weight_hh.T (LSTM: b = bias_ih + bias_hh).

The input projection x @ W + b does not depend on the state, so the layers compute it for all
time steps at once before the loop (one (time*batch, features) matmul instead of `time` small
ones); inside the loop only h @ U remains. The cells below take x itself and do both.
"""
import numpy as np

import graphc.api as F
from graphc.core.errors import ShapeError, where
from graphc.core.graph import user_location

from .layers import Layer, _graph_seed, _initializer, activation

__all__ = ["simple_rnn_cell", "lstm_cell", "gru_cell", "SimpleRNN", "LSTM", "GRU"]


# ---------------------------------------------------------------- cells (one time step)


def simple_rnn_cell(x, h, W, U, b, activation=F.tanh):
    """One Elman step: h' = activation(x @ W + h @ U + b). x (batch, features), h (batch, units)."""
    return _rnn_step(x @ W + b, h, U, activation)


def lstm_cell(x, h, c, W, U, b):
    """One LSTM step; returns (h', c'). W (features, 4u), U (u, 4u), b (4u,), gates in PyTorch's
    order i, f, g, o along the last axis:

        [i, f, g, o] = split(x @ W + h @ U + b, 4)
        i, f, o = sigmoid(i), sigmoid(f), sigmoid(o);  g = tanh(g)
        c' = f * c + i * g
        h' = o * tanh(c')
    """
    return _lstm_step(x @ W + b, h, c, U)


def gru_cell(x, h, W, U, b, b_h):
    """One GRU step (PyTorch's formulation, Keras' reset_after=True); returns h'. W (features, 3u),
    U (u, 3u), input bias b (3u,) and recurrent bias b_h (3u,) -- PyTorch's bias_ih and bias_hh --
    gates in the order r, z, n:

        r = sigmoid(x W_r + b_ir + h U_r + b_hr)
        z = sigmoid(x W_z + b_iz + h U_z + b_hz)
        n = tanh(x W_n + b_in + r * (h U_n + b_hn))
        h' = (1 - z) * n + z * h
    b_hn needs its own bias because the reset gate multiplies it; for r and z the two biases
    only add up (both are kept so that PyTorch weights load unchanged).
    """
    return _gru_step(x @ W + b, h, U, b_h)


def _rnn_step(xw, h, U, act):
    return act(xw + h @ U)


def _lstm_step(xw, h, c, U):
    i, f, g, o = F.split(xw + h @ U, 4, axis=-1)
    c = F.sigmoid(f) * c + F.sigmoid(i) * F.tanh(g)
    return F.sigmoid(o) * F.tanh(c), c


def _gru_step(xw, h, U, b_h):
    x_r, x_z, x_n = F.split(xw, 3, axis=-1)
    h_r, h_z, h_n = F.split(h @ U + b_h, 3, axis=-1)
    r = F.sigmoid(x_r + h_r)
    z = F.sigmoid(x_z + h_z)
    n = F.tanh(x_n + r * h_n)
    return (1.0 - z) * n + z * h


# ---------------------------------------------------------------- layers


def _orthogonal_blocks(units, k, seed, dtype):
    """(units, k*units): k independent random orthogonal blocks (QR of a seeded normal, signs
    fixed by R's diagonal so the draw is uniform). An orthogonal recurrent matrix keeps h @ U's
    norm, so early in training the signal neither dies out nor blows up across steps
    (Saxe et al. 2014; Keras' default for recurrent kernels)."""
    rng = np.random.default_rng(seed)
    blocks = []
    for _ in range(k):
        q, r = np.linalg.qr(rng.standard_normal((units, units)))
        blocks.append(q * np.sign(np.diag(r)))
    return np.concatenate(blocks, axis=1).astype(dtype)


class _Recurrent(Layer):
    """What the three layers share: checks, weights, the time loop (scan or unrolled).

    unroll=False runs the cell with gc.scan (any time length, even unknown); unroll=True builds
    one cell per step (a known length).
    `used_scan` says, after the layer has been applied, which of the two it built.
    """

    gates = 1

    def __init__(self, units, return_sequences=False, unroll=False, kernel_init="glorot_uniform",
                 seed=None, name=None):
        super().__init__(name)
        self.units, self.return_sequences, self.unroll = int(units), bool(return_sequences), bool(unroll)
        self.kernel_init, self.seed = kernel_init, seed
        self.used_scan = None          # after a call: True if it was built with gc.scan

    def _check(self, x):
        kind = type(self).__name__
        if x.ndim != 3:
            raise ShapeError(f"{kind} {self.name}: input must be (batch, time, features), got "
                             f"{x.type} (rank {x.ndim}){where(user_location())}")
        if x.shape[-1] is None:
            raise ShapeError(f"{kind} {self.name}: the feature axis (last) of its input must be known, "
                             f"got {x.type}{where(user_location())}")

    def build(self, x):
        self._check(x)
        seed = self.seed if self.seed is not None else _graph_seed(x.graph)
        k, u = self.gates, self.units
        W = _initializer(self.kernel_init, seed)((x.shape[-1], k * u), x.dtype)
        self.W = self.variable(np.asarray(W, x.dtype), "W")
        self.U = self.variable(_orthogonal_blocks(u, k, seed + 1, x.dtype), "U")
        self.b = self.variable(self._bias(x.dtype), "b")
        self.params = [self.W, self.U, self.b]

    def _bias(self, dtype):
        return np.zeros(self.gates * self.units, dtype)

    def forward(self, x, training):
        self._check(x)
        xs = F.transpose(x, (1, 0, 2))                    # time-major (T, B, features)
        xw = xs @ self.W + self.b                          # every step's input projection at once
        zeros = F.broadcast_like(F.constant(np.zeros((1, self.units), x.dtype)), xw[0][:, :self.units])
        init = self._init_state(zeros)
        self.used_scan = not self.unroll
        if self.used_scan:
            def fn(carry, xw_t):
                carry = self._step(xw_t, carry)
                return carry, (self._output(carry) if self.return_sequences else None)
            final, ys = F.scan(fn, init, xw)
            if not self.return_sequences:
                return self._output(final)
            return F.transpose(ys, (1, 0, 2))
        return self._unrolled(xw, init, x)

    def _unrolled(self, xw, carry, x):
        steps = x.shape[1]
        if steps is None:
            raise ShapeError(f"{type(self).__name__} {self.name}: unroll=True needs a "
                             f"known time length, got {x.type}{where(user_location())}")
        outputs = []
        for t in range(steps):
            carry = self._step(xw[t], carry)
            if self.return_sequences:
                outputs.append(F.expand_dims(self._output(carry), 1))
        if not self.return_sequences:
            return self._output(carry)
        return outputs[0] if steps == 1 else F.concatenate(outputs, axis=1)

    # subclasses: the state, one step on a precomputed projection, the output of a state
    def _init_state(self, zeros):
        return zeros

    def _output(self, state):
        return state


class SimpleRNN(_Recurrent):
    """Elman RNN: h_t = activation(x_t @ W + h_{t-1} @ U + b), h_0 = 0. Input (batch, time,
    features); output the last h (batch, units) or, with return_sequences, every h
    (batch, time, units)."""

    gates = 1

    def __init__(self, units, activation="tanh", return_sequences=False, unroll=False,
                 kernel_init="glorot_uniform", seed=None, name=None):
        super().__init__(units, return_sequences, unroll, kernel_init, seed, name)
        self.act = globals()["activation"](activation)

    def _step(self, xw_t, h):
        return _rnn_step(xw_t, h, self.U, self.act)


class LSTM(_Recurrent):
    """Long short-term memory (see lstm_cell for the gates); state (h, c), both starting at 0;
    outputs h. The forget gate's bias starts at 1 (Gers et al. 2000, Jozefowicz et al. 2015):
    with f = sigmoid(1) ~ 0.73 instead of 0.5 the cell starts out keeping most of c, so the
    gradient reaches early steps before the gates have learned anything."""

    gates = 4

    def __init__(self, units, return_sequences=False, unroll=False, kernel_init="glorot_uniform",
                 seed=None, name=None):
        super().__init__(units, return_sequences, unroll, kernel_init, seed, name)

    def _bias(self, dtype):
        b = np.zeros(4 * self.units, dtype)
        b[self.units:2 * self.units] = 1.0                 # the f block (order i, f, g, o)
        return b

    def _init_state(self, zeros):
        return (zeros, zeros)

    def _step(self, xw_t, state):
        return _lstm_step(xw_t, state[0], state[1], self.U)

    def _output(self, state):
        return state[0]


class GRU(_Recurrent):
    """Gated recurrent unit, PyTorch's formulation (see gru_cell); h_0 = 0. Its params are
    W, U, b (input bias) and b_h (recurrent bias), all starting at zero but the kernels."""

    gates = 3

    def __init__(self, units, return_sequences=False, unroll=False, kernel_init="glorot_uniform",
                 seed=None, name=None):
        super().__init__(units, return_sequences, unroll, kernel_init, seed, name)

    def build(self, x):
        super().build(x)
        self.b_h = self.variable(np.zeros(3 * self.units, x.dtype), "b_h")
        self.params.append(self.b_h)

    def _step(self, xw_t, h):
        return _gru_step(xw_t, h, self.U, self.b_h)
