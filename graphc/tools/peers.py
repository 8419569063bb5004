"""Peer columns for `graphc bench`: JAX, PyTorch, PyTensor when installed; hand-written Numba.

Each returns {column: make} where make() -> (callable running one call, data),
written the way a user of that framework would write the workload:
- jax: jax.jit;
- torch: torch.compile (inductor; its first call compiles C++ with the system's compiler);
  for W3 the forward and loss are compiled and AOTAutograd compiles the backward;
- pytensor: pytensor.function(..., mode="NUMBA"), floatX float32;
- numba: hand-written @njit steps (peers_numba.py), always available.
`pip install -e '.[bench]'` installs them (pyproject.toml says which versions).
"""
import importlib.util

import numpy as np

from . import peers_nn
from .peers_numba import NUMBA
from .workloads import WORKLOADS, mlp_params


def installed(module):
    return importlib.util.find_spec(module) is not None


def available(name):
    """{column: make} of the peers installed here that can express workload `name`."""
    cols = {}
    for column, table in (("jax", {**JAX, **peers_nn.JAX}), ("torch", {**TORCH, **peers_nn.TORCH}),
                          ("pytensor", PYTENSOR)):
        if name in table and installed(column):
            cols[column] = table[name]
    numba = {**NUMBA, **peers_nn.NUMBA}
    if name in numba:                  # numba is graphc's own dependency: always there
        cols["numba"] = numba[name]
    return cols


# ---------------------------------------------------------------- JAX (jax.jit)


def _jax_w1():
    import jax
    import jax.numpy as jnp
    w = WORKLOADS["W1"]()
    f = jax.jit(lambda x: jnp.tanh(1.5 * x + 0.3) * jax.nn.sigmoid(x) - 0.5 * x ** 2 + jnp.abs(x))
    x = jnp.asarray(w.data[0])
    return (lambda: np.asarray(f(x).block_until_ready())), w.data


def _jax_w2():
    import jax
    import jax.numpy as jnp
    w = WORKLOADS["W2"]()
    f = jax.jit(lambda x: jax.nn.softmax(x, axis=-1))
    x = jnp.asarray(w.data[0])
    return (lambda: np.asarray(f(x).block_until_ready())), w.data


def _jax_mlp(params, x):
    import jax
    h = x
    for k in range(0, len(params), 2):
        h = h @ params[k] + params[k + 1]
        if k + 2 < len(params):
            h = jax.nn.relu(h)
    return h


def _jax_w3():
    import jax
    import jax.numpy as jnp
    w = WORKLOADS["W3"]()
    params = [jnp.asarray(p) for p in mlp_params()]

    def loss(params, x, y):
        logp = jax.nn.log_softmax(_jax_mlp(params, x), axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))
    return peers_nn.jax_sgd(jax, jnp, loss, params, w)


def _jax_w4():
    import jax
    import jax.numpy as jnp
    w = WORKLOADS["W4"]()
    params = [jnp.asarray(p) for p in mlp_params()]
    f = jax.jit(lambda x: jax.nn.softmax(_jax_mlp(params, x), axis=-1))
    x = jnp.asarray(w.data[0])
    return (lambda: np.asarray(f(x).block_until_ready())), w.data


JAX = {"W1": _jax_w1, "W2": _jax_w2, "W3": _jax_w3, "W4": _jax_w4}

# ---------------------------------------------------------------- PyTorch (torch.compile)


def _torch_mlp(params, x):
    import torch
    h = x
    for k in range(0, len(params), 2):
        h = h @ params[k] + params[k + 1]
        if k + 2 < len(params):
            h = torch.relu(h)
    return h


def _torch_w1():
    import torch
    w = WORKLOADS["W1"]()
    f = torch.compile(lambda x: torch.tanh(1.5 * x + 0.3) * torch.sigmoid(x) - 0.5 * x ** 2 + x.abs())
    x = torch.from_numpy(w.data[0])
    return (lambda: f(x).numpy()), w.data


def _torch_w2():
    import torch
    w = WORKLOADS["W2"]()
    f = torch.compile(lambda x: torch.softmax(x, dim=-1))
    x = torch.from_numpy(w.data[0])
    return (lambda: f(x).numpy()), w.data


def _torch_w3():
    import torch
    w = WORKLOADS["W3"]()
    params = [torch.tensor(p, requires_grad=True) for p in mlp_params()]
    loss_fn = torch.compile(lambda params, x, y: torch.nn.functional.cross_entropy(_torch_mlp(params, x), y))
    return peers_nn.torch_sgd(torch, loss_fn, params, w)


def _torch_w4():
    import torch
    w = WORKLOADS["W4"]()
    params = [torch.from_numpy(p) for p in mlp_params()]
    f = torch.compile(lambda x: torch.softmax(_torch_mlp(params, x), dim=-1))
    x = torch.from_numpy(w.data[0])

    def run():
        with torch.no_grad():
            return f(x).numpy()
    return run, w.data


TORCH = {"W1": _torch_w1, "W2": _torch_w2, "W3": _torch_w3, "W4": _torch_w4}

# ---------------------------------------------------------------- PyTensor (mode="NUMBA")


def _pytensor():
    import pytensor
    pytensor.config.floatX = "float32"        # python scalars in the graphs stay float32
    return pytensor, pytensor.tensor


def _pytensor_mlp(pt, params, x):
    h = x
    for k in range(0, len(params), 2):
        h = h @ params[k] + params[k + 1]
        if k + 2 < len(params):
            h = pt.maximum(h, np.float32(0))
    return h


def _pytensor_w1():
    pytensor, pt = _pytensor()
    w = WORKLOADS["W1"]()
    x = pt.vector("x", dtype="float32")
    y = pt.tanh(1.5 * x + 0.3) * pt.sigmoid(x) - 0.5 * x ** 2 + pt.abs(x)
    f = pytensor.function([x], y, mode="NUMBA")
    return (lambda: f(w.data[0])), w.data


def _pytensor_w2():
    pytensor, pt = _pytensor()
    w = WORKLOADS["W2"]()
    x = pt.matrix("x", dtype="float32")
    f = pytensor.function([x], pt.special.softmax(x, axis=-1), mode="NUMBA")
    return (lambda: f(w.data[0])), w.data


def _pytensor_w3():
    pytensor, pt = _pytensor()
    w = WORKLOADS["W3"]()
    params = [pytensor.shared(p) for p in mlp_params()]
    x, y = pt.matrix("x", dtype="float32"), pt.vector("y", dtype="int64")
    logp = pt.special.log_softmax(_pytensor_mlp(pt, params, x), axis=-1)
    loss = -pt.mean(logp[pt.arange(y.shape[0]), y])
    grads = pytensor.grad(loss, params)
    f = pytensor.function([x, y], loss, updates=[(p, p - np.float32(0.01) * g) for p, g in zip(params, grads)],
                          mode="NUMBA")
    return (lambda: f(*w.data)), w.data


def _pytensor_w4():
    pytensor, pt = _pytensor()
    w = WORKLOADS["W4"]()
    params = [pt.constant(p) for p in mlp_params()]
    x = pt.matrix("x", dtype="float32")
    f = pytensor.function([x], pt.special.softmax(_pytensor_mlp(pt, params, x), axis=-1), mode="NUMBA")
    return (lambda: f(w.data[0])), w.data


PYTENSOR = {"W1": _pytensor_w1, "W2": _pytensor_w2, "W3": _pytensor_w3, "W4": _pytensor_w4}
