"""Algebraic simplification: small local rules, each exact in IEEE arithmetic
unless its comment says otherwise.

A rule sees the original node and its (already simplified) inputs and returns
a replacement or None. A replacement always has the node's exact type, so no
rule changes a shape or a dtype. Most of the leftovers that autodiff builds
(the seed 1.0 broadcast to a shape, sums over size-1 axes, multiplications
by ones) disappear here.
"""
import math

import numpy as np

import graphc.api as F

from .rewrite import rewrite, to_fixpoint


def fill_value(x):
    """The one value every element of x has, if x is a constant fill (possibly
    broadcast, reshaped or expanded); else None."""
    while x.op.name in ("broadcast_to", "broadcast_like", "expand_dims", "reshape", "reshape_like"):
        x = x.inputs[0]
    if x.op.name == "constant":
        v = x.attrs["value"]
        if v.size and np.all(v == v.flat[0]) and not np.isnan(v.flat[0]):
            return v.flat[0].item()
    return None


def same_type(x, n):
    return x.type == n.type


def _add(n, a, b):
    # x + 0 -> x. Not bit-exact for x = -0.0 (-0.0 + 0.0 is +0.0); every other x is unchanged.
    if fill_value(b) == 0 and same_type(a, n):
        return a
    if fill_value(a) == 0 and same_type(b, n):
        return b


def _subtract(n, a, b):
    z = fill_value(b)
    if z == 0 and math.copysign(1.0, z) > 0 and same_type(a, n):   # x - (+0.0) -> x, exact for every x
        return a


def _multiply(n, a, b):
    if fill_value(b) == 1 and same_type(a, n):           # x * 1 -> x
        return a
    if fill_value(a) == 1 and same_type(b, n):
        return b


def _divide(n, a, b):
    if fill_value(b) == 1 and same_type(a, n):           # x / 1 -> x
        return a


def _power(n, a, b):
    p = fill_value(b)
    if p == 1 and same_type(a, n):                        # x ** 1 -> x
        return a
    if p == 2 and same_type(a, n):                        # x ** 2 -> x * x (numpy computes it so too)
        return F.multiply(a, a)


def _negative(n, x):
    if x.op.name == "negative":                           # --x -> x
        return x.inputs[0]


def _transpose(n, x):
    axes = n.attrs["axes"]
    if x.op.name == "transpose":                          # transpose(transpose(y)) -> one transpose
        inner = x.attrs["axes"]
        axes = tuple(inner[a] for a in axes)
        x = x.inputs[0]
    if axes == tuple(range(len(axes))):
        return x
    if x is not n.inputs[0]:
        return F.transpose(x, axes)


def _reshape(n, x):
    if x.op.name in ("reshape", "reshape_like"):          # reshape(reshape(y)) -> reshape(y)
        x = x.inputs[0]
    if same_type(x, n) and n.type.is_concrete:
        return x
    if x is not n.inputs[0]:
        return F.reshape(x, n.attrs["shape"])


def _reshape_like(n, x, like):
    if same_type(x, n) and n.type.is_concrete:
        return x


def _broadcast(n, x, *like):
    if same_type(x, n):                                   # broadcast to the shape it has
        return x
    # broadcast_to(expand_dims(scalar)) -> broadcast_to(scalar): broadcasting adds leading axes itself
    if x.op.name in ("expand_dims", "reshape") and x.inputs[0].shape == ():
        scalar = x.inputs[0]
        return F.broadcast_like(scalar, like[0]) if like else F.broadcast_to(scalar, n.attrs["shape"])


def _reduce(n, x):
    axes = n.attrs["axis"]
    # a reduction over size-1 axes reduces nothing (but sum/mean of ints or bools change the dtype)
    if x.dtype == n.dtype and all(x.shape[a] == 1 for a in axes):
        return x if n.attrs["keepdims"] else F.squeeze(x, axes)


def _where(n, c, a, b):
    v = fill_value(c)                                     # a condition known when the graph is built
    if v is True and same_type(a, n):
        return a
    if v is False and same_type(b, n):
        return b


def _cast(n, x):
    if x.dtype == n.dtype:
        return x


RULES = {
    "add": _add, "subtract": _subtract, "multiply": _multiply, "divide": _divide, "power": _power,
    "negative": _negative, "transpose": _transpose, "reshape": _reshape, "reshape_like": _reshape_like,
    "broadcast_to": _broadcast, "broadcast_like": _broadcast, "cast": _cast, "where": _where,
    "sum": _reduce, "mean": _reduce, "max": _reduce, "min": _reduce, "prod": _reduce,
}


def _rule(n, ins):
    rule = RULES.get(n.op.name)
    return rule(n, *ins) if rule else None


def simplify(roots):
    """Apply the algebraic rules until none applies."""
    return to_fixpoint(roots, lambda r: rewrite(r, _rule))
