"""Optional peer columns for `graphc bench`: JAX, PyTorch, PyTensor, when installed.

Each returns {column: make} where make() -> (callable running one call, data),
written the way a user of that framework would write the workload.
"""
import importlib.util

import numpy as np

from .workloads import WORKLOADS, mlp_params


def available(name):
    cols = {}
    if importlib.util.find_spec("jax") is not None:
        make = JAX.get(name)
        if make:
            cols["jax"] = make
    if importlib.util.find_spec("torch") is not None:
        make = TORCH.get(name)
        if make:
            cols["torch"] = make
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

    @jax.jit
    def step(params, x, y):
        value, grads = jax.value_and_grad(loss)(params, x, y)
        return value, [p - 0.01 * g for p, g in zip(params, grads)]
    x, y = jnp.asarray(w.data[0]), jnp.asarray(w.data[1])
    state = {"params": params}

    def run():
        value, state["params"] = step(state["params"], x, y)
        return np.asarray(value.block_until_ready())
    return run, w.data


def _jax_w4():
    import jax
    import jax.numpy as jnp
    w = WORKLOADS["W4"]()
    params = [jnp.asarray(p) for p in mlp_params()]
    f = jax.jit(lambda x: jax.nn.softmax(_jax_mlp(params, x), axis=-1))
    x = jnp.asarray(w.data[0])
    return (lambda: np.asarray(f(x).block_until_ready())), w.data


JAX = {"W1": _jax_w1, "W2": _jax_w2, "W3": _jax_w3, "W4": _jax_w4}

# ---------------------------------------------------------------- PyTorch (eager)


def _torch_w1():
    import torch
    w = WORKLOADS["W1"]()
    x = torch.from_numpy(w.data[0])
    return (lambda: (torch.tanh(1.5 * x + 0.3) * torch.sigmoid(x) - 0.5 * x ** 2 + x.abs()).numpy()), w.data


def _torch_w2():
    import torch
    w = WORKLOADS["W2"]()
    x = torch.from_numpy(w.data[0])
    return (lambda: torch.softmax(x, dim=-1).numpy()), w.data


def _torch_w3():
    import torch
    w = WORKLOADS["W3"]()
    params = [torch.tensor(p, requires_grad=True) for p in mlp_params()]
    x, y = torch.from_numpy(w.data[0]), torch.from_numpy(w.data[1])

    def run():
        h = x
        for k in range(0, len(params), 2):
            h = h @ params[k] + params[k + 1]
            if k + 2 < len(params):
                h = torch.relu(h)
        loss = torch.nn.functional.cross_entropy(h, y)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p -= 0.01 * g
        return loss.detach().numpy()
    return run, w.data


def _torch_w4():
    import torch
    w = WORKLOADS["W4"]()
    params = [torch.from_numpy(p) for p in mlp_params()]
    x = torch.from_numpy(w.data[0])

    def run():
        with torch.no_grad():
            h = x
            for k in range(0, len(params), 2):
                h = h @ params[k] + params[k + 1]
                if k + 2 < len(params):
                    h = torch.relu(h)
            return torch.softmax(h, dim=-1).numpy()
    return run, w.data


TORCH = {"W1": _torch_w1, "W2": _torch_w2, "W3": _torch_w3, "W4": _torch_w4}
