"""Peer columns of `graphc bench` for W5 (CNN step) and W7 (LSTM step): jax.jit (lax.conv,
lax.scan), torch.compile, and for W5 a hand-written Numba step (im2col + BLAS), each written
the way a user of that tool would write it, from the same weights and data as graphc's graph."""
import numpy as np

from .workloads_nn import cnn_params, lstm_params, w5_cnn_step, w7_lstm_step

LR = 0.01


def _jax_w5():
    import jax
    import jax.numpy as jnp
    w = w5_cnn_step()
    params = [jnp.asarray(p) for p in cnn_params()]

    def loss(params, x, y):
        wc, bc, wf, bf = params
        z = jax.lax.conv_general_dilated(x, wc, (1, 1), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW"))
        a = jax.nn.relu(z + bc[None, :, None, None])
        p = jax.lax.reduce_window(a, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
        logp = jax.nn.log_softmax(p.reshape(x.shape[0], -1) @ wf + bf, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))
    return jax_sgd(jax, jnp, loss, params, w)


def _jax_w7():
    import jax
    import jax.numpy as jnp
    w = w7_lstm_step()
    params = [jnp.asarray(p) for p in lstm_params()]

    def loss(params, x, y):
        W, U, b, wd, bd = params
        u = U.shape[0]

        def cell(hc, xt):
            h, c = hc
            z = xt @ W + h @ U + b
            i, f, g, o = (jax.nn.sigmoid(z[:, :u]), jax.nn.sigmoid(z[:, u:2 * u]), jnp.tanh(z[:, 2 * u:3 * u]),
                          jax.nn.sigmoid(z[:, 3 * u:]))
            c = f * c + i * g
            return (o * jnp.tanh(c), c), None
        zeros = jnp.zeros((x.shape[1], u), jnp.float32)
        (h, _), _ = jax.lax.scan(cell, (zeros, zeros), x)
        logp = jax.nn.log_softmax(h @ wd + bd, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))
    return jax_sgd(jax, jnp, loss, params, w)


def jax_sgd(jax, jnp, loss, params, w):
    """A jax.jit SGD step (lr LR) of loss(params, x, y) on workload w's data, as a callable."""
    @jax.jit
    def step(params, x, y):
        value, grads = jax.value_and_grad(loss)(params, x, y)
        return value, [p - LR * g for p, g in zip(params, grads)]
    x, y = jnp.asarray(w.data[0]), jnp.asarray(w.data[1])
    state = {"params": params}

    def run():
        value, state["params"] = step(state["params"], x, y)
        return np.asarray(value.block_until_ready())
    return run, w.data


def _torch_w5():
    import torch
    import torch.nn.functional as F
    w = w5_cnn_step()
    params = [torch.tensor(p, requires_grad=True) for p in cnn_params()]

    def loss(params, x, y):
        wc, bc, wf, bf = params
        a = torch.relu(F.conv2d(x, wc, bc))
        return F.cross_entropy(F.max_pool2d(a, 2).reshape(x.shape[0], -1) @ wf + bf, y)
    return torch_sgd(torch, torch.compile(loss), params, w)


def _torch_w7():
    import torch
    import torch.nn.functional as F
    w = w7_lstm_step()
    params = [torch.tensor(p, requires_grad=True) for p in lstm_params()]

    def loss(params, x, y):
        W, U, b, wd, bd = params
        u = U.shape[0]
        h = c = torch.zeros(x.shape[1], u)
        for t in range(x.shape[0]):
            z = x[t] @ W + h @ U + b
            i, f, g, o = torch.sigmoid(z[:, :u]), torch.sigmoid(z[:, u:2 * u]), torch.tanh(z[:, 2 * u:3 * u]), \
                torch.sigmoid(z[:, 3 * u:])
            c = f * c + i * g
            h = o * torch.tanh(c)
        return F.cross_entropy(h @ wd + bd, y)
    return torch_sgd(torch, torch.compile(loss), params, w)


def torch_sgd(torch, loss_fn, params, w):
    """An SGD step (lr LR) of the compiled loss_fn(params, x, y) on workload w's data."""
    x, y = torch.from_numpy(w.data[0]), torch.from_numpy(w.data[1])

    def run():
        loss = loss_fn(params, x, y)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p -= LR * g
        return loss.detach().numpy()
    return run, w.data


def _numba_w5():
    """The W5 step by hand in Numba: im2col into a (N*26*26, 9) matrix, the convolution as one
    GEMM with the (9, 8) filters, bias + ReLU + 2x2 max pool (remembering each window's
    arg-max) in one loop, the dense layer and cross-entropy, then the backward pass the same
    way and SGD in place."""
    from numba import njit

    @njit(cache=True)
    def step(x, y, wc, bc, wf, bf, lr):
        n, k, oh = x.shape[0], 3, x.shape[2] - 2
        ph = oh // 2
        cols = np.empty((n * oh * oh, k * k), np.float32)
        for b in range(n):
            for i in range(oh):
                for j in range(oh):
                    r = (b * oh + i) * oh + j
                    for di in range(k):
                        for dj in range(k):
                            cols[r, di * k + dj] = x[b, 0, i + di, j + dj]
        z = np.dot(cols, wc.reshape(8, k * k).T.copy())                  # (n*26*26, 8)
        f = np.empty((n, 8 * ph * ph), np.float32)
        arg = np.empty((n, 8, ph, ph), np.int64)
        for b in range(n):
            for o in range(8):
                for i in range(ph):
                    for j in range(ph):
                        best, at = np.float32(-np.inf), 0
                        for d in range(4):
                            r = (b * oh + 2 * i + d // 2) * oh + 2 * j + d % 2
                            v = max(z[r, o] + bc[o], np.float32(0))
                            if v > best:
                                best, at = v, r
                        f[b, (o * ph + i) * ph + j], arg[b, o, i, j] = best, at
        logits = np.dot(f, wf) + bf
        loss = np.float32(0)
        g = np.empty_like(logits)
        for b in range(n):
            m = logits[b].max()
            e = np.exp(logits[b] - m)
            s = e.sum()
            loss -= logits[b, y[b]] - m - np.log(s)
            g[b] = e / s
            g[b, y[b]] -= 1
        g /= n
        gf = np.dot(g, wf.T.copy())
        gz = np.zeros_like(z)
        for b in range(n):
            for o in range(8):
                for i in range(ph):
                    for j in range(ph):
                        r = arg[b, o, i, j]
                        if z[r, o] + bc[o] > 0:
                            gz[r, o] += gf[b, (o * ph + i) * ph + j]
        wf -= lr * np.dot(f.T.copy(), g)
        bf -= lr * g.sum(axis=0)
        wc -= lr * np.dot(gz.T.copy(), cols).reshape(wc.shape)
        bc -= lr * gz.sum(axis=0)
        return loss / n

    w = w5_cnn_step()
    params = cnn_params()
    x, y = w.data
    return (lambda: step(x, y, *params, np.float32(LR))), w.data


JAX = {"W5": _jax_w5, "W7": _jax_w7}
TORCH = {"W5": _torch_w5, "W7": _torch_w7}
NUMBA = {"W5": _numba_w5}
