"""gc.dask.fit: synchronous data-parallel training on a dask.distributed cluster.

Each mini-batch (the same batches, in the same order, as gc.nn.fit with the same seed)
is split into one shard per worker. A worker runs the compiled *gradient* function --
(x, y) -> (loss, dL/dparam...), no updates -- on its shard, with the parameter values
the driver sends for this step. The driver averages the shards' gradients weighted by
shard size (the loss is a mean over examples, so this is the whole batch's gradient)
and applies the optimizer once, with a compiled function whose inputs are the
gradients: the optimizer's own `updates` on the surrogate loss sum(p * G), whose
gradient with respect to p is exactly G. So the weights equal single-process training
on the same batches, up to the order of the floating-point sums.

A step is all or nothing: the update runs only once every shard came back. A worker
that dies mid-step makes the step run again on the workers alive (`retries` times,
dask itself also reschedules a lost task); an error of the computation itself (bad
data, check_numerics) is not retried and names the worker. Either way no update was
applied for that step.

Cost per step: one task per worker (scheduler round trip, a few ms on one machine),
the parameters sent to every worker and the gradients sent back (2 x parameter bytes
per worker), and the driver's apply step. It pays when a shard's gradient takes well
longer than that: big batches and models; for a small MLP a single process is faster.
"""
import pickle
import time

import numpy as np

import graphc.api as F
from graphc.core.errors import GraphError, ShapeError
from graphc.core.graph import Graph
from graphc.core.types import as_dtype
from graphc.function import function
from graphc.nn.train import History, _as_float, _model_dtype, _progress
from graphc.passes.autodiff import grad

from .extra import require
from .serialize import digest_bytes, rebuild, to_form


class ShardError(GraphError):
    """A shard's computation failed on a worker (not retried: it would fail again)."""


def shard_grads(key, form_bytes, values, x, y):
    """On a worker: (loss, gradients...) of one shard, with the parameter values sent."""
    try:
        rebuilt = rebuild(key, lambda: pickle.loads(form_bytes))
        with rebuilt.lock:
            rebuilt.set_values(values)
            return [np.asarray(o) for o in rebuilt.fn(x, y)]
    except Exception as e:
        try:
            from distributed import get_worker
            who = get_worker().address
        except (ImportError, ValueError):
            who = "this process"
        raise ShardError(f"on worker {who}: {type(e).__name__}: {e}") from None


class Program:
    """The driver's compiled pieces: the gradient function (shipped to workers, as bytes)
    and the apply function (the optimizer's updates from fed gradients)."""

    def __init__(self, model, loss, optimizer, x_shape, x_dtype, y_shape, y_dtype, backend, regularization,
                 check_numerics=False):
        graph = model.graph or Graph("model")
        with graph:
            self.x = F.placeholder((None,) + tuple(x_shape), x_dtype, name="x")
            out = model(self.x, training=True)
            if model.state_updates:
                raise GraphError("gc.dask.fit: the model updates state in training ("
                                 + ", ".join(v.name for v in model.state_updates) + ", e.g. batch norm's "
                                 "running statistics); per-shard statistics would differ from the batch's. "
                                 "Train it with gc.nn.fit")
            y_dtype = out.dtype if np.dtype(y_dtype).kind == "f" and out.dtype.kind == "f" else y_dtype
            self.y = F.placeholder((None,) + tuple(y_shape), y_dtype, name="y")
            per_example = loss(out, self.y)
            self.loss = per_example if per_example.shape == () else F.mean(per_example)
            total = self.loss + regularization(model.params) if regularization else self.loss
            self.params = list(model.params)
            grads = grad(total, self.params)
            self.grad_fn = function([self.x, self.y], [self.loss] + list(grads), backend=backend,
                                   check_numerics=check_numerics)
            self.fed = [F.placeholder(p.shape, p.dtype, name=f"grad/{p.name}") for p in self.params]
            surrogate = F.sum(self.params[0] * self.fed[0])
            for p, g in zip(self.params[1:], self.fed[1:]):
                surrogate = surrogate + F.sum(p * g)
            self.apply_fn = function(self.fed, [], optimizer.updates(surrogate, self.params), backend=backend)
        # the variables the gradient function reads, in its form's order: sent with every step
        self.sent = [self.grad_fn.origin[n] for n in self.grad_fn.nodes if n.op.name == "variable"]
        self.form_bytes = pickle.dumps(to_form(self.grad_fn, values=False), protocol=5)
        self.key = digest_bytes(self.form_bytes)

    def values(self):
        return [self.x.graph.store[v] for v in self.sent]


def fit(model, loss, optimizer, x, y, client=None, epochs=1, batch_size=32, shuffle=True, seed=0,
        backend="cpu", dtype=None, regularization=None, retries=2, n_shards=None, verbose=True,
        callback=None, check_numerics=False):
    """Train `model` on (x, y) on a Dask cluster; return a History (loss, lr, step_seconds per epoch).

    The batches, their order (shuffle, seed), the dtype rules and the loss are those of
    gc.nn.fit, so the weights match gc.nn.fit's on the same arguments (see the module docstring).
    client: a dask.distributed Client (default: the current one). n_shards: shards per batch
    (default: the number of workers). retries: how many times a step whose worker died runs
    again. callback(step, loss): called after each applied step (step counts from 1).
    check_numerics: the workers' gradient function raises at a nan or inf (the step then fails).
    """
    distributed = require("distributed")
    if client is None:
        try:
            client = distributed.get_client()
        except ValueError:
            raise GraphError("gc.dask.fit: no dask.distributed Client; start one "
                             "(client = distributed.Client(...)) or pass client=") from None
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ShapeError(f"gc.dask.fit: x has {len(x)} examples, y has {len(y)}")
    dtype = as_dtype(dtype) if dtype is not None else (_model_dtype(model) or np.dtype(np.float32))
    x_dtype = dtype if x.dtype.kind == "f" else x.dtype
    prog = Program(model, loss, optimizer, x.shape[1:], x_dtype, y.shape[1:], y.dtype, backend, regularization,
                   check_numerics)
    x, y = _as_float(x, prog.x.dtype), _as_float(y, prog.y.dtype)
    runner = _Runner(client, prog, n_shards, retries)
    history, rng, step = History(), np.random.default_rng(seed), 0
    bar = _progress(epochs, verbose)
    for epoch in range(epochs):
        order = rng.permutation(len(x)) if shuffle else np.arange(len(x))
        total, seen, spent = 0.0, 0, 0.0
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            step += 1
            start = time.perf_counter()
            value, grads = runner.step(step, x[idx], y[idx])
            prog.apply_fn(*grads)
            spent += time.perf_counter() - start
            total, seen = total + value * len(idx), seen + len(idx)
            if callback is not None:
                callback(step, value)
            if bar is not None:
                bar.set_postfix(epoch=epoch + 1, loss=f"{total / seen:.4f}", refresh=False)
        n_steps = -(-len(x) // batch_size)
        history.add(loss=total / seen, lr=optimizer.lr, step_seconds=spent / n_steps)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return history


class _Runner:
    """Sends one step's shards to the workers and brings back the weighted mean gradient."""

    def __init__(self, client, prog, n_shards, retries):
        self.client, self.prog, self.retries = client, prog, int(retries)
        self.workers = self._alive()
        self.n_shards = int(n_shards or len(self.workers))
        self.form = self._scatter()

    def _alive(self):
        workers = sorted(self.client.scheduler_info(n_workers=-1)["workers"]) \
            if _takes_n_workers(self.client) else sorted(self.client.scheduler_info()["workers"])
        if not workers:
            raise GraphError("gc.dask.fit: the cluster has no workers")
        return workers

    def _scatter(self):
        return self.client.scatter(self.prog.form_bytes, broadcast=True, hash=False)

    def step(self, step, xb, yb):
        shards = [s for s in np.array_split(np.arange(len(xb)), min(self.n_shards, len(xb))) if len(s)]
        values = self.prog.values()
        failures = []
        for attempt in range(self.retries + 1):
            futures = [self.client.submit(shard_grads, self.prog.key, self.form, values, xb[s], yb[s],
                                          workers=[self.workers[k % len(self.workers)]],
                                          allow_other_workers=True, pure=False)
                       for k, s in enumerate(shards)]
            try:
                results = self.client.gather(futures)
                break
            except ShardError as e:
                raise GraphError(f"gc.dask.fit: step {step} failed {e}; no update was applied for this "
                                 "step (the weights are those after the previous step)") from None
            except Exception as e:                      # a worker died, a connection or data was lost
                failures.append(f"{type(e).__name__}: {e}")
                for f in futures:
                    f.cancel()
                if attempt == self.retries:
                    raise GraphError(f"gc.dask.fit: step {step} failed {attempt + 1} time(s), no update was "
                                     f"applied for it; workers then: {', '.join(self.workers)}; errors: "
                                     + " | ".join(failures)) from None
                time.sleep(0.2 * (attempt + 1))
                self.workers = self._alive()
                self.form = self._scatter()
        n = len(xb)
        weights = [len(s) / n for s in shards]
        value = float(sum(w * float(r[0]) for w, r in zip(weights, results)))
        grads = []
        for k, p in enumerate(self.prog.params):
            g = sum(w * r[1 + k].astype(np.float64) for w, r in zip(weights, results))
            grads.append(np.asarray(g, dtype=p.dtype).reshape(p.shape))
        return value, grads


def _takes_n_workers(client):
    import inspect
    return "n_workers" in inspect.signature(client.scheduler_info).parameters
