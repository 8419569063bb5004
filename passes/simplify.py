"""Algebraic simplification: small local rules, each exact in IEEE arithmetic, bit
for bit, the sign of zero included: x + (-0.0) -> x, but x + 0.0 stays unless x
cannot be -0.0 (-0.0 + 0.0 is +0.0, and 1 / that is inf, not -inf).

Each rule lives on its op (`Op.simplify`, e.g. ops/binary.py's Add: x + (-0.0) -> x),
next to the op's other facts; this pass only applies them. A rule sees the
original node and its (already simplified) inputs and returns a replacement or
None. A replacement always has the node's exact type, so no rule changes a
shape or a dtype. Most of the leftovers that autodiff builds (the seed 1.0
broadcast to a shape, sums over size-1 axes, multiplications by ones)
disappear here.
"""
from graphc.ops.base import fill_value  # noqa: F401  (re-exported: the rules' helper)

from .rewrite import rewrite, to_fixpoint


def _rule(n, ins):
    return n.op.simplify(n, *ins)


def simplify(roots):
    """Apply the ops' algebraic rules until none applies."""
    return to_fixpoint(roots, lambda r: rewrite(r, _rule))
