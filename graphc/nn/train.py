"""Training loop: fit, evaluate, predict, early stopping, saving.

`fit` builds two compiled functions on the model's graph -- a train step
(loss, gradients and every update in one call) and a predict function (the
model in evaluation mode) -- then runs epochs of shuffled mini-batches:
batch_size=1 is stochastic gradient descent, batch_size=len(x) batch
gradient descent. Training is in float32 unless asked otherwise: float64 data
(numpy's and scikit-learn's default) is cast, see `fit`'s dtype.
"""
from dataclasses import dataclass, field

import numpy as np

import graphc.api as F
from graphc.core.errors import GraphError, ShapeError
from graphc.core.graph import Graph
from graphc.core.types import as_dtype
from graphc.function import function

from . import losses


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
    """A model compiled for training and prediction on one backend.

    Float targets take the dtype of the model's outputs, whatever y_dtype says (the losses
    compare the two in one dtype); `inputs` and `targets` convert arrays the same way."""

    def __init__(self, model, loss, optimizer, x_shape, x_dtype, y_shape, y_dtype, backend="cpu",
                 regularization=None):
        self.model, self.loss_fn, self.optimizer, self.backend = model, loss, optimizer, backend
        graph = model.graph or Graph("model")
        with graph:
            self.x = F.placeholder((None,) + tuple(x_shape), x_dtype, name="x")
            out = model(self.x, training=True)
            y_dtype = out.dtype if np.dtype(y_dtype).kind == "f" and out.dtype.kind == "f" else y_dtype
            self.y = F.placeholder((None,) + tuple(y_shape), y_dtype, name="y")
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

    def inputs(self, x):
        """x as the x placeholder takes it: float arrays cast to its float dtype."""
        return _as_float(np.asarray(x), self.x.dtype)

    def targets(self, y):
        """y as the y placeholder takes it: float targets cast to the outputs' float dtype."""
        return _as_float(np.asarray(y), self.y.dtype)

    def predict(self, x, batch_size=None):
        """The model's outputs in evaluation mode (one call per batch; default: one call,
        so that a compiled function sees one shape)."""
        x = self.inputs(x)
        batch_size = batch_size or max(len(x), 1)
        return np.concatenate([self.predict_fn(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])

    def evaluate(self, x, y, batch_size=None):
        """Mean loss and, for classification targets, accuracy (see `accuracy_rule`)."""
        x, y = self.inputs(x), self.targets(y)
        batch_size = batch_size or max(len(x), 1)
        rule = self.accuracy_rule(y)
        batch_losses, sizes, correct, compared = [], [], 0, 0
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            batch_losses.append(float(self.eval_loss(xb, yb)))
            sizes.append(len(xb))
            if rule is not None:
                hits = rule(self.predict_fn(xb), yb)
                correct, compared = correct + int(hits.sum()), compared + hits.size
        result = {"loss": float(np.average(batch_losses, weights=sizes))}
        if rule is not None and compared:
            result["accuracy"] = correct / compared
        return result

    def accuracy_rule(self, y):
        """How a batch of outputs is compared with its targets for accuracy: a function
        (outputs, targets) -> bool array, or None where accuracy means nothing (regression).

        - integer class labels of shape outputs.shape[:-1]: argmax of the outputs;
        - one-hot (or probability) rows of the outputs' shape: argmax of both, with
          softmax_cross_entropy or for any loss when the targets are one-hot rows;
        - one output per example ((n,) or (n, 1)) and 0/1 labels ((n,) or (n, 1)): a sigmoid
          binary classifier. Its outputs are logits (thresholded at 0) when the loss is
          binary_crossentropy_with_logits, probabilities (at 0.5) when it is binary_crossentropy
          or, for another loss, when the model ends in a sigmoid; else no accuracy.
        """
        out = self.out_eval
        if out.ndim <= 1 or out.shape[-1] == 1:
            threshold = _threshold(self.loss_fn, out)
            if threshold is None or y.size != len(y) or not np.isin(y, (0, 1)).all():
                return None
            return lambda o, t: (o.reshape(len(o)) > threshold) == (t.reshape(len(t)) > 0.5)
        if y.dtype.kind in "iu" and y.ndim == out.ndim - 1:
            return lambda o, t: o.argmax(axis=-1) == t
        if y.dtype.kind == "f" and y.shape[1:] == out.shape[1:] and (
                self.loss_fn is losses.softmax_cross_entropy or _one_hot_rows(y)):
            return lambda o, t: o.argmax(axis=-1) == t.argmax(axis=-1)
        return None

    def snapshot(self):
        return {v: F.get_value(v) for v in self.model.variables}

    def restore(self, values):
        for v, a in values.items():
            F.set_value(v, a)


def _threshold(loss, out):
    """Where a one-output binary classifier says 1: logits above 0, probabilities above 0.5;
    None if its outputs are neither (a regression)."""
    if loss is losses.binary_crossentropy_with_logits:
        return 0.0
    if loss is losses.binary_crossentropy or out.op.name == "sigmoid":
        return 0.5
    return None


def _one_hot_rows(y):
    return y.size > 0 and np.isin(y, (0, 1)).all() and (y.sum(axis=-1) == 1).all()


def _as_float(a, dtype):
    """a in dtype if both are floats (float64 data for a float32 model), else a as it is."""
    return a.astype(dtype, copy=False) if a.dtype.kind == "f" and np.dtype(dtype).kind == "f" else a


def _model_dtype(model):
    """The float dtype of a model's variables, or None before it has been applied to an input."""
    return next((v.dtype for v in model.variables if v.dtype.kind == "f"), None)


def fit(model, loss, optimizer, x, y, epochs=10, batch_size=32, validation_data=None,
        early_stopping=None, schedule=None, regularization=None, backend="cpu", shuffle=True,
        seed=0, verbose=True, trainer=None, dtype=None):
    """Train `model` on (x, y); return (History, Trainer). See the module docstring.

    dtype: the float dtype to train in. Default: the dtype of the model's variables if it has
    been applied to an input already, else float32 -- also when x is float64, as numpy and
    scikit-learn arrays are: pass dtype=gc.float64 to train in float64. Float x is cast to it
    (integer x, e.g. token ids, is fed as it is) and float targets to the dtype of the model's
    outputs, as the loss needs them; integer labels stay integers. validation_data, evaluate and
    predict convert their arrays the same way.
    """
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ShapeError(f"fit: x has {len(x)} examples, y has {len(y)}")
    if trainer is None:
        dtype = as_dtype(dtype) if dtype is not None else (_model_dtype(model) or np.dtype(np.float32))
        x_dtype = dtype if x.dtype.kind == "f" else x.dtype
        trainer = Trainer(model, loss, optimizer, x.shape[1:], x_dtype, y.shape[1:], y.dtype, backend,
                          regularization)
    x, y = trainer.inputs(x), trainer.targets(y)
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


def _check_built(model, what):
    # a layer makes its variables when it first sees an input: before that there is nothing to
    # save or to load into, and comparing names would only list what the file has
    if not model.variables:
        raise GraphError(f"{what}: the model has no variables yet; layers create theirs when the "
                         "model is first applied to an input, so build it first: "
                         "model(gc.placeholder((None, n_features), gc.float32))")


def save(model, path):
    """The model's variables (weights and running statistics) to an .npz file, by name."""
    _check_built(model, f"save {path}")
    arrays = {v.name: F.get_value(v) for v in model.variables}
    np.savez(path, **arrays)


def load(model, path):
    """Set the model's variables from an .npz file written by save (no pickle). The model must
    have been applied to an input (built) first, in the same layer order as the saved one."""
    _check_built(model, f"load {path}")
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
