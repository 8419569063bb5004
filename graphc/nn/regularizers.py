"""Weight penalties: scalar nodes to add to a loss.

    loss = data_loss + regularizers.l2([W1, W2], 1e-4)

Adding the penalty to the loss puts its gradient into gc.grad's result, so it
works with every optimizer, and shows up in the reported loss. With adaptive
optimizers (Adam, RMSprop...) that gradient is rescaled like any other; for
weight decay that is not, use optim.AdamW.
"""
import numbers

import graphc.api as F
from graphc.core.errors import GraphError, where
from graphc.core.graph import Node, user_location


def l1(params, scale):
    """scale * sum(|p|) over every element of every param; gradient scale * sign(p) (0 at 0)."""
    return _penalty("l1", params, scale, lambda p: F.sum(F.abs(p)))


def l2(params, scale):
    """scale * sum(p^2) over every element of every param; gradient 2 * scale * p.

    No 1/2 in front (Keras's convention): l2(p, scale) has the same gradient as
    SGD(weight_decay=2 * scale), and SGD(weight_decay=wd) is l2(p, wd / 2).
    """
    return _penalty("l2", params, scale, lambda p: F.sum(p * p))


def _penalty(name, params, scale, term):
    loc = user_location()
    params = [params] if isinstance(params, Node) else list(params)
    if not params:
        raise GraphError(f"{name}: no params given{where(loc)}")
    for p in params:
        if not isinstance(p, Node):
            raise GraphError(f"{name}: {p!r} is not a graph node{where(loc)}")
        if p.dtype.kind != "f":
            raise GraphError(f"{name}: {p.name}{where(p.loc)} is {p.dtype}; penalties apply to float tensors"
                             f"{where(loc)}")
    if not isinstance(scale, Node) and (not isinstance(scale, numbers.Real) or isinstance(scale, bool)
                                        or not scale >= 0):
        raise GraphError(f"{name}: scale must be a number >= 0 or a scalar node, got {scale!r}{where(loc)}")
    total = term(params[0])
    for p in params[1:]:
        total = total + term(p)          # mixed float32/float64 params give a float64 total
    return scale * total
