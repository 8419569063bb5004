"""The benchmark workloads of BENCHMARKS.md as graphs, shared by `graphc bench`,
`graphc passes` and the tests. Each builder returns a Workload: the graph's
inputs/outputs/updates, sample data, and a hand-written numpy version."""
from dataclasses import dataclass, field

import numpy as np

import graphc as gc


@dataclass
class Workload:
    name: str
    description: str
    inputs: list
    outputs: list
    updates: dict = field(default_factory=dict)
    data: list = field(default_factory=list)
    numpy_fn: callable = None            # data -> outputs, op by op, as a user would write it

    def function(self, backend="interp", **options):
        return gc.function(self.inputs, self.outputs, self.updates, backend=backend, **options)


def w1_elementwise(n=4_000_000, seed=0):
    """y = tanh(1.5x + 0.3) * sigmoid(x) - 0.5x^2 + abs(x)."""
    with gc.Graph("W1"):
        x = gc.placeholder((n,), gc.float32, name="x")
        y = gc.tanh(1.5 * x + 0.3) * gc.sigmoid(x) - 0.5 * x ** 2 + gc.abs(x)
    data = [np.random.default_rng(seed).normal(size=n).astype(np.float32)]

    def numpy_fn(x):
        return [np.tanh(1.5 * x + 0.3) * (1 / (1 + np.exp(-x))) - 0.5 * x ** 2 + np.abs(x)]
    return Workload("W1", f"elementwise chain, N={n:,}", [x], [y], data=data, numpy_fn=numpy_fn)


def w2_softmax(rows=4096, cols=1024, seed=0):
    with gc.Graph("W2"):
        x = gc.placeholder((rows, cols), gc.float32, name="x")
        y = gc.softmax(x, axis=-1)
    data = [np.random.default_rng(seed).normal(size=(rows, cols)).astype(np.float32)]

    def numpy_fn(x):
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return [e / e.sum(axis=1, keepdims=True)]
    return Workload("W2", f"row softmax ({rows}, {cols})", [x], [y], data=data, numpy_fn=numpy_fn)


def mlp_params(sizes=(784, 256, 256, 10), seed=0):
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        limit = np.sqrt(6 / (fan_in + fan_out))       # Glorot uniform
        params.append(rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32))
        params.append(np.zeros(fan_out, np.float32))
    return params


def mlp_forward(x, variables):
    h = x
    for k in range(0, len(variables), 2):
        h = h @ variables[k] + variables[k + 1]
        if k + 2 < len(variables):
            h = gc.relu(h)
    return h


def w3_train_step(batch=128, sizes=(784, 256, 256, 10), lr=0.01, seed=0, any_batch=False, prefix=""):
    """One SGD step of an MLP with ReLU and softmax cross-entropy on integer labels.
    any_batch: the placeholders' batch dimension is None (one shape family for every batch);
    prefix: put before every node name (W6b: a second graph with other names)."""
    params = mlp_params(sizes, seed)
    rows = None if any_batch else batch
    with gc.Graph("W3"):
        x = gc.placeholder((rows, sizes[0]), gc.float32, name=prefix + "x")
        y = gc.placeholder((rows,), gc.int64, name=prefix + "y")
        names = [f"{prefix}{kind}{k // 2 + 1}" for k, kind in zip(range(len(params)), ["W", "b"] * len(params))]
        variables = [gc.variable(p, name=nm) for p, nm in zip(params, names)]
        logits = mlp_forward(x, variables)
        loss = -gc.mean(gc.sum(gc.one_hot(y, sizes[-1]) * gc.log_softmax(logits, axis=-1), axis=-1))
        grads = gc.grad(loss, variables)
        updates = {v: v - lr * g for v, g in zip(variables, grads)}
    rng = np.random.default_rng(seed + 1)
    data = [rng.normal(size=(batch, sizes[0])).astype(np.float32),
            rng.integers(0, sizes[-1], size=batch).astype(np.int64)]
    w = [p.copy() for p in params]

    def numpy_fn(x, y):
        """The same step by hand: forward, backward, in-place SGD (on its own copy of the weights)."""
        acts = [x]
        for k in range(0, len(w), 2):
            z = acts[-1] @ w[k] + w[k + 1]
            acts.append(np.maximum(z, 0) if k + 2 < len(w) else z)
        z = acts[-1]
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        loss = -logp[np.arange(len(y)), y].mean()
        g = np.exp(logp)
        g[np.arange(len(y)), y] -= 1
        g /= len(y)
        for k in range(len(w) - 2, -1, -2):
            gw, gb = acts[k // 2].T @ g, g.sum(axis=0)
            if k:
                g = (g @ w[k].T) * (acts[k // 2] > 0)
            w[k] -= lr * gw
            w[k + 1] -= lr * gb
        return [np.float32(loss)]
    return Workload("W3", f"MLP train step, batch {batch}, {'-'.join(map(str, sizes))}", [x, y], [loss],
                    dict(updates), data, numpy_fn)


def w4_forward(sizes=(784, 256, 256, 10), seed=0, batch=1):
    """The W3 network's forward pass for one example (per-call overhead; `batch` for tests)."""
    params = mlp_params(sizes, seed)
    with gc.Graph("W4"):
        x = gc.placeholder((batch, sizes[0]), gc.float32, name="x")
        variables = [gc.variable(p) for p in params]
        probs = gc.softmax(mlp_forward(x, variables), axis=-1)
    data = [np.random.default_rng(seed + 1).normal(size=(batch, sizes[0])).astype(np.float32)]

    def numpy_fn(x):
        h = x
        for k in range(0, len(params), 2):
            h = h @ params[k] + params[k + 1]
            if k + 2 < len(params):
                h = np.maximum(h, 0)
        e = np.exp(h - h.max(axis=1, keepdims=True))
        return [e / e.sum(axis=1, keepdims=True)]
    return Workload("W4", "MLP forward, batch 1", [x], [probs], data=data, numpy_fn=numpy_fn)


WORKLOADS = {"W1": w1_elementwise, "W2": w2_softmax, "W3": w3_train_step, "W4": w4_forward}

# one line each, for `graphc bench --help`
DESCRIPTIONS = {
    "W1": "elementwise chain tanh(1.5x + 0.3) * sigmoid(x) - 0.5x^2 + |x|, N = 4,000,000 (and the copy floor)",
    "W2": "row softmax of a (4096, 1024) float32 matrix",
    "W3": "MLP training step, batch 128, 784-256-256-10: forward, backward, in-place SGD (8 GEMMs)",
    "W4": "the W3 network's forward pass at batch 1 (per-call overhead)",
}
