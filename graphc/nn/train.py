"""Training loop: fit, evaluate, predict, early stopping, saving.

`fit` builds two compiled functions on the model's graph -- a train step
(loss, gradients and every update in one call) and a predict function (the
model in evaluation mode) -- then runs epochs of shuffled mini-batches:
batch_size=1 is stochastic gradient descent, batch_size=len(x) batch
gradient descent.
"""
from dataclasses import dataclass, field

import numpy as np

import graphc.api as F
from graphc.core.errors import GraphError, ShapeError
from graphc.core.graph import Graph
from graphc.function import function


@dataclass
class History:
    """Per-epoch values: history["loss"], history["val_loss"], history["val_accuracy"], ..."""
    epochs: dict = field(default_factory=dict)
    stopped_epoch: int = None
    best_epoch: int = None

    def add(self, **values):
        for k, v in values.items():
            self.epochs.setdefault(k, []).append(float(v))

    def __getitem__(self, key):
        return self.epochs[key]


@dataclass
class EarlyStopping:
    """Stop when `monitor` has not improved by min_delta for `patience` epochs; then put back
    the weights of the best epoch (restore_best)."""
    monitor: str = "val_loss"
    patience: int = 5
    min_delta: float = 0.0
    mode: str = "min"
    restore_best: bool = True


class Trainer:
    """A model compiled for training and prediction on one backend."""

    def __init__(self, model, loss, optimizer, x_shape, x_dtype, y_shape, y_dtype, backend="cpu",
                 regularization=None):
        self.model, self.optimizer, self.backend = model, optimizer, backend
        graph = model.graph or Graph("model")
        with graph:
            self.x = F.placeholder((None,) + tuple(x_shape), x_dtype, name="x")
            self.y = F.placeholder((None,) + tuple(y_shape), y_dtype, name="y")
            out = model(self.x, training=True)
            per_example = loss(out, self.y)
            self.loss = per_example if per_example.shape == () else F.mean(per_example)
            total = self.loss + regularization(model.params) if regularization else self.loss
            updates = dict(optimizer.updates(total, model.params))
            updates.update(model.state_updates)
            self.step = function([self.x, self.y], [self.loss], updates, backend=backend)
            self.out_eval = model(self.x, training=False)
            self.predict_fn = function([self.x], self.out_eval, backend=backend)
            eval_loss = loss(self.out_eval, self.y)
            eval_loss = eval_loss if eval_loss.shape == () else F.mean(eval_loss)
            self.eval_loss = function([self.x, self.y], eval_loss, backend=backend)

    def predict(self, x, batch_size=None):
        """The model's outputs in evaluation mode (one call per batch; default: one call,
        so that a compiled function sees one shape)."""
        batch_size = batch_size or max(len(x), 1)
        return np.concatenate([self.predict_fn(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])

    def evaluate(self, x, y, batch_size=None):
        """Mean loss and, for integer labels, accuracy (argmax of the outputs)."""
        batch_size = batch_size or max(len(x), 1)
        losses, sizes, correct = [], [], 0
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            losses.append(float(self.eval_loss(xb, yb)))
            sizes.append(len(xb))
            if yb.dtype.kind in "iu":
                correct += int((self.predict_fn(xb).argmax(axis=-1) == yb).sum())
        result = {"loss": float(np.average(losses, weights=sizes))}
        if y.dtype.kind in "iu":
            result["accuracy"] = correct / len(x)
        return result

    def snapshot(self):
        return {v: F.get_value(v) for v in self.model.variables}

    def restore(self, values):
        for v, a in values.items():
            F.set_value(v, a)


def fit(model, loss, optimizer, x, y, epochs=10, batch_size=32, validation_data=None,
        early_stopping=None, schedule=None, regularization=None, backend="cpu", shuffle=True,
        seed=0, verbose=True, trainer=None):
    """Train `model` on (x, y); return (History, Trainer). See the module docstring."""
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ShapeError(f"fit: x has {len(x)} examples, y has {len(y)}")
    trainer = trainer or Trainer(model, loss, optimizer, x.shape[1:], x.dtype, y.shape[1:], y.dtype,
                                 backend, regularization)
    history, rng = History(), np.random.default_rng(seed)
    best, best_value, waited = None, None, 0
    stopper = early_stopping
    bar = _progress(epochs, verbose)
    for epoch in range(epochs):
        order = rng.permutation(len(x)) if shuffle else np.arange(len(x))
        total, seen = 0.0, 0
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            (value,) = trainer.step(x[idx], y[idx])
            total, seen = total + float(value) * len(idx), seen + len(idx)
            if bar is not None:
                bar.set_postfix(epoch=epoch + 1, loss=f"{total / seen:.4f}", refresh=False)
        record = {"loss": total / seen, "lr": optimizer.lr}
        if validation_data is not None:
            record.update({f"val_{k}": v for k, v in trainer.evaluate(*validation_data).items()})
        history.add(**record)
        if bar is not None:
            bar.update(1)
            bar.set_postfix({k: f"{v:.4f}" for k, v in record.items()})
        if schedule is not None:
            schedule.step(epoch=epoch, metric=record.get("val_loss", record["loss"]))
        if stopper is not None:
            if stopper.monitor not in record:
                raise GraphError(f"early stopping monitors {stopper.monitor!r}, which this run does not "
                                 f"record (it has {', '.join(record)})")
            value = record[stopper.monitor] * (1 if stopper.mode == "min" else -1)
            if best_value is None or value < best_value - stopper.min_delta:
                best_value, waited, history.best_epoch = value, 0, epoch
                best = trainer.snapshot() if stopper.restore_best else None
            else:
                waited += 1
                if waited >= stopper.patience:
                    history.stopped_epoch = epoch
                    break
    if bar is not None:
        bar.close()
    if stopper is not None and stopper.restore_best and best is not None:
        trainer.restore(best)
    return history, trainer


def _progress(epochs, verbose):
    if not verbose:
        return None
    try:
        from tqdm import tqdm
    except ImportError:            # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=epochs, desc="fit", unit="epoch")


# ---------------------------------------------------------------- saving


def save(model, path):
    """The model's variables (weights and running statistics) to an .npz file, by name."""
    arrays = {v.name: F.get_value(v) for v in model.variables}
    np.savez(path, **arrays)


def load(model, path):
    """Set the model's variables from an .npz file written by save (no pickle)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            stored = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError) as e:     # not there, not an npz, truncated, pickled
        raise GraphError(f"load {path}: not a readable .npz of saved variables: {e}") from None
    mine = {v.name: v for v in model.variables}
    missing, extra = sorted(set(mine) - set(stored)), sorted(set(stored) - set(mine))
    if missing or extra:
        raise GraphError(f"load {path}: the file and the model differ: missing in the file {missing}, "
                         f"not in the model {extra}")
    for name, v in mine.items():
        a = stored[name]
        if a.shape != v.shape or a.dtype != v.dtype:
            raise ShapeError(f"load {path}: {name} is {a.dtype}{list(a.shape)} in the file, "
                             f"{v.type} in the model")
        F.set_value(v, a)
