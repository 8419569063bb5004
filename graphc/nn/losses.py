"""Loss functions: plain functions of nodes that return per-example losses.

Every loss maps inputs of shape (batch, ...) to a node of shape (batch,): one
loss per example, reduced over every non-batch axis (a mean, except over the
class axis of the cross-entropies, which is a sum). A 1-D input gives one
value per element. Reducing over the batch is left to you, usually
`gc.mean(loss)`, so the same loss serves training (the mean), evaluation (a
sum over many batches) and per-example weighting (`gc.mean(w * loss)`).

The losses are built from ordinary ops, so `gc.grad` differentiates them with
the ops' own rules; each is written in a form whose value *and* gradient stay
finite for extreme inputs (logits of +-1000, probabilities of exactly 0 or 1).

Inputs are checked when the loss is built: predictions must be float, targets
must have the predictions' shape (None, a size known at call time, matches
any size) and dtype. Broadcasting is refused on purpose: a (batch,) target
against (batch, 1) predictions would silently give a (batch, batch) loss.
A target that is not a node (a numpy array or a number) becomes a constant of
the predictions' dtype.
"""
import numpy as np

import graphc.api as F
from graphc.core.errors import DTypeError, GraphError, ShapeError
from graphc.core.errors import where as at
from graphc.core.graph import Node, user_location
from graphc.core.types import FLOATS, INTS, fmt_shape

__all__ = ["mean_squared_error", "root_mean_squared_error", "rmse", "binary_crossentropy",
           "binary_crossentropy_with_logits", "softmax_cross_entropy", "negative_log_likelihood",
           "mse", "bce", "bce_with_logits", "cross_entropy", "nll"]

# ---------------------------------------------------------------- checks and helpers


def _float_input(loss, what, x):
    if not isinstance(x, Node):
        raise GraphError(f"{loss}: {what} must be a graph node, got {type(x).__name__}{at(user_location())}")
    if x.dtype not in FLOATS:
        raise DTypeError(f"{loss}: {what} must be float32 or float64, got {x.type}{at(user_location())}")
    return x


def _target(loss, x, like, what="target", like_what="pred", allow_int=False):
    """`x` as a node shaped and typed like `like` (ints/bools are cast when allow_int)."""
    if not isinstance(x, Node):
        arr = np.asarray(x)
        x = F.constant(arr.astype(like.dtype) if arr.dtype.kind in "fiub" else arr, graph=like.graph)
    if x.dtype != like.dtype:
        if allow_int and x.dtype not in FLOATS:
            x = F.cast(x, like.dtype)
        else:
            raise DTypeError(f"{loss}: {like_what} {like.type} and {what} {x.type} must have the same dtype; "
                             f"convert one with gc.cast(..., gc.{like.dtype}){at(user_location())}")
    _same_shape(loss, like.shape, x.shape, f"{like_what} {like.type} and {what} {x.type}")
    return x


def _compatible(want, got):
    """Same rank and sizes, a None (known at call time) matching any size."""
    return len(want) == len(got) and all(a is None or b is None or a == b for a, b in zip(want, got))


def _same_shape(loss, want, got, described):
    if not _compatible(want, got):
        raise ShapeError(f"{loss}: {described} must have the same shape, got {fmt_shape(want)} "
                         f"and {fmt_shape(got)} (losses do not broadcast){at(user_location())}")


def _per_example(x):
    """Mean over every axis but the first: (batch, ...) -> (batch,); 0-D and 1-D stay as they are."""
    return F.mean(x, axis=tuple(range(1, x.ndim))) if x.ndim > 1 else x


def _safe_sqrt(x):
    """sqrt(x) for x >= 0 whose gradient at x == 0 is 0 instead of nan.

    sqrt's rule is g * 0.5 / sqrt(x): at 0 it is 0 * inf = nan even where g is
    0. Both `where`s are needed: the outer one picks the value, the inner one
    keeps sqrt away from 0 so its (discarded) gradient there is finite. The
    test is x != 0, not x > 0, so that a nan still comes out as nan.
    """
    nonzero = F.not_equal(x, 0)
    return F.where(nonzero, F.sqrt(F.where(nonzero, x, 1)), 0)


def _labels(labels, like):
    """A non-node labels array as a constant: integers as int64, anything else in like's dtype."""
    if isinstance(labels, Node):
        return labels
    arr = np.asarray(labels)
    arr = arr.astype(np.int64) if arr.dtype.kind in "iu" else arr.astype(like.dtype)
    return F.constant(arr, graph=like.graph)


def _pick(loss, scores, labels, what):
    """scores[..., labels]: each position's score of its labelled class, shape scores.shape[:-1].

    Built as sum(where(one_hot(labels), scores, 0)) rather than one_hot * scores:
    0 * -inf is nan, and log-probabilities of -inf (log of an underflowed
    softmax) are legal in the classes that are not picked. A label outside
    [0, classes) picks nothing (one_hot gives a row of zeros): its loss is 0.
    """
    if labels.dtype not in INTS:
        raise DTypeError(f"{loss}: integer labels must be int32 or int64, got {labels.type}{at(user_location())}")
    if scores.ndim < 1:
        raise ShapeError(f"{loss}: {what} need a class axis, got a scalar {scores.type}{at(user_location())}")
    want, got = scores.shape[:-1], labels.shape
    if not _compatible(want, got):
        raise ShapeError(f"{loss}: {what} {scores.type} need integer labels of shape {fmt_shape(want)} "
                         f"(one class index per row), got {labels.type}"
                         + ("; one-hot or probability targets must be floats" if len(got) == len(want) + 1 else "")
                         + at(user_location()))
    depth = scores.shape[-1]
    if depth is None:
        raise ShapeError(f"{loss}: the number of classes (the last axis of {what} {scores.type}) must be known "
                         f"when the graph is built, to one-hot the labels{at(user_location())}")
    mask = F.one_hot(labels, depth, dtype=bool)
    return F.sum(F.where(mask, scores, 0), axis=-1)

# ---------------------------------------------------------------- regression


def mean_squared_error(pred, target):
    """mean((pred - target)**2) over the non-batch axes: shape (batch,).

    Gradient: 2 * (pred - target) / n per element (n elements per example).
    """
    pred = _float_input("mean_squared_error", "pred", pred)
    target = _target("mean_squared_error", target, pred)
    return _per_example(F.square(pred - target))


def root_mean_squared_error(pred, target):
    """sqrt(mean((pred - target)**2)) per example: shape (batch,).

    The mean of these is NOT the batch RMSE (mean(sqrt(.)) <= sqrt(mean(.))):
    the batch RMSE is sqrt(mean(mean_squared_error(pred, target))), which is
    what `rmse` returns. At an exact fit (per-example mse 0) the gradient is
    0, a subgradient of this kink, instead of sqrt's 0/0 = nan.
    """
    pred = _float_input("root_mean_squared_error", "pred", pred)
    target = _target("root_mean_squared_error", target, pred)
    return _safe_sqrt(_per_example(F.square(pred - target)))


def rmse(pred, target):
    """The batch RMSE, a scalar: sqrt(mean((pred - target)**2)) over every element.

    Equal to sqrt(gc.mean(mean_squared_error(pred, target))) (each example has
    the same number of elements). Unlike the other losses this one is already
    reduced over the batch: it is the number people report and the one whose
    minimisation is least-squares fitting; the mean of the per-example RMSEs
    (`root_mean_squared_error`) weights examples differently. Gradient 0 at an
    exact fit.
    """
    pred = _float_input("rmse", "pred", pred)
    target = _target("rmse", target, pred)
    return _safe_sqrt(F.mean(F.square(pred - target)))

# ---------------------------------------------------------------- binary classification


def binary_crossentropy(probs, targets, eps=1e-7):
    """-(t*log(p) + (1-t)*log(1-p)) with p clipped to [eps, 1-eps], mean over non-batch axes.

    For probabilities (e.g. a sigmoid's output). The clip keeps the loss
    finite at p = 0 or 1, at most -log(eps) (16.1 for 1e-7); where p is
    clipped the gradient is 0. Prefer `binary_crossentropy_with_logits` when
    you have the logits: it needs no clip and its gradient never vanishes.
    targets: floats in [0, 1] of the probabilities' dtype, or int/bool labels
    (cast to it).
    """
    probs = _float_input("binary_crossentropy", "probs", probs)
    targets = _target("binary_crossentropy", targets, probs, "targets", "probs", allow_int=True)
    if not 0 < eps < 0.5:
        raise GraphError(f"binary_crossentropy: eps must be in (0, 0.5), got {eps!r}{at(user_location())}")
    p = F.minimum(F.maximum(probs, eps), 1 - eps)
    return _per_example(-(targets * F.log(p) + (1 - targets) * F.log(1 - p)))


def binary_crossentropy_with_logits(logits, targets):
    """softplus(x) - x*t, mean over non-batch axes: the cross-entropy of sigmoid(x) against t.

    Equal to -(t*log(sigmoid(x)) + (1-t)*log(1-sigmoid(x))), since
    log(sigmoid(x)) = -softplus(-x), log(1 - sigmoid(x)) = -softplus(x) and
    softplus(-x) = softplus(x) - x. softplus is computed without overflow, so
    the loss is finite for any finite x (|x| = 1000 included), and its
    gradient is sigmoid(x) - t, in [-1, 1].
    targets: floats in [0, 1] of the logits' dtype, or int/bool labels (cast).
    """
    logits = _float_input("binary_crossentropy_with_logits", "logits", logits)
    targets = _target("binary_crossentropy_with_logits", targets, logits, "targets", "logits", allow_int=True)
    return _per_example(F.softplus(logits) - logits * targets)

# ---------------------------------------------------------------- multi-class classification


def softmax_cross_entropy(logits, labels):
    """-sum(t * log_softmax(x)) over the class axis (the last), then mean over other non-batch axes.

    logits: (batch, classes), or (batch, ..., classes) for per-position
    classes (the per-example loss is then the mean over the positions).
    labels, either form:
      - integer class indices, int32/int64 of shape logits.shape[:-1]: the
        loss is -log_softmax(x)[label] (one_hot picks it). A label outside
        [0, classes), e.g. -1, gives a loss of 0 and no gradient, as
        TensorFlow's one_hot does: it can mark padding, but it also hides
        bad labels;
      - float targets of the logits' shape and dtype: one-hot rows or any
        probability distributions (label smoothing).
    log_softmax is x - logsumexp(x), finite for any finite logits; the
    gradient with respect to the logits is softmax(x) - t (for targets summing
    to 1), in [-1, 1].
    """
    loss = "softmax_cross_entropy"
    logits = _float_input(loss, "logits", logits)
    if logits.ndim < 1:
        raise ShapeError(f"{loss}: logits need a class axis, got a scalar {logits.type}{at(user_location())}")
    log_probs = F.log_softmax(logits, axis=-1)
    labels = _labels(labels, logits)
    if labels.dtype in INTS:
        return _per_example(-_pick(loss, log_probs, labels, "logits"))
    if labels.dtype not in FLOATS:
        raise DTypeError(f"{loss}: labels must be int32/int64 class indices or float targets, "
                         f"got {labels.type}{at(user_location())}")
    targets = _target(loss, labels, logits, "float targets", "logits")
    return _per_example(-F.sum(targets * log_probs, axis=-1))


def negative_log_likelihood(log_probs, labels):
    """-log_probs[..., label]: the log-probability of the labelled class, negated; shape (batch,).

    Picked along the last (class) axis, then averaged over any other non-batch
    axes, as in softmax_cross_entropy.

    log_probs: (batch, classes) log-probabilities, e.g. gc.log_softmax(x);
    labels: int32/int64 class indices of shape log_probs.shape[:-1]. With
    log_probs = log_softmax(x) this equals softmax_cross_entropy(x, labels).
    -inf in a class that is not the label is fine (the loss stays finite); a
    label outside [0, classes) gives 0, as in softmax_cross_entropy.
    """
    log_probs = _float_input("negative_log_likelihood", "log_probs", log_probs)
    labels = _labels(labels, log_probs)
    return _per_example(-_pick("negative_log_likelihood", log_probs, labels, "log_probs"))


# short names (rmse is not an alias: it is the batch scalar, see its docstring)
mse = mean_squared_error
bce = binary_crossentropy
bce_with_logits = binary_crossentropy_with_logits
cross_entropy = softmax_cross_entropy
nll = negative_log_likelihood
