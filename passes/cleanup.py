"""The cleanup passes: constant folding, common-subexpression elimination,
dead-code elimination."""
from dataclasses import replace

import numpy as np

from graphc.core.graph import ancestors
from graphc.core.types import TupleType
from graphc.ops.base import constant_node, fill_value
from graphc.ops.broadcast import broadcast_to

from .rewrite import rebuild, rewrite, users

FOLD_LIMIT = 1 << 16   # elements: folding never materializes a constant bigger than this


def constant_fold(roots, limit=FOLD_LIMIT):
    """An op whose inputs are all constants becomes a constant, computed by its numpy reference,
    unless the result would have more than `limit` elements (broadcast_to(0.0, big) stays lazy)."""
    def rule(n, ins):
        if n.op.kind == "elementwise" and n.op.name != "broadcast_to" and n.type.is_concrete \
                and n.type.size > 1 and not all(x.op.name == "constant" for x in ins):
            fills = [fill_value(x) for x in ins]
            if all(v is not None for v in fills):        # op(fill a, fill b) -> fill op(a, b), kept lazy
                # each fill in its own dtype, as the unfolded graph computes it (the refs are functions
                # of the values, not of the layout: a one-element stand-in gives the same bits)
                try:
                    with np.errstate(all="ignore"):
                        v = n.op.ref(*[np.asarray(v, x.dtype) for v, x in zip(fills, ins)], **n.attrs)
                except (ValueError, ArithmeticError):
                    return None      # raised when it runs, naming the node
                return broadcast_to(constant_node(np.asarray(v, n.dtype), graph=n.graph), n.shape)
        if n.op.kind in ("source", "fused") or not all(x.op.name == "constant" for x in ins):
            return None
        if isinstance(n.type, TupleType):
            return None          # several outputs (split): its output nodes are not constants of their own
        if n.type.size is None or n.type.size > limit:
            return None
        if n.type.size > max(x.type.size for x in ins):
            return None          # a broadcast of a constant stays lazy: kernels read the small one
        try:
            with np.errstate(all="ignore"):
                value = np.asarray(n.op.ref(*[x.attrs["value"] for x in ins], **n.attrs))
        except (ValueError, ArithmeticError):
            return None          # an error (int ** negative int): raised when it runs, naming the node
        return constant_node(value.astype(n.dtype, copy=False), graph=n.graph)
    return rewrite(roots, rule)


def cse(roots):
    """Hash-consing already merges equal nodes as they are built; what it cannot see is
    a + b next to b + a. Ordering commutative inputs lets it merge those too, where the swap
    is exact (`Op.commutes`: maximum/minimum of floats keep their order, since numpy's
    max(-0.0, +0.0) is its second input): constants last (x * 2.0, whichever was built
    first, so that equal kernels of two graphs are one text, compiled once), else by node id."""
    def key(x):
        return x.op.name == "constant", x.id

    def rule(n, ins):
        if n.op.commutes(n) and key(ins[0]) > key(ins[1]):
            return rebuild(n, (ins[1], ins[0]))
        return None
    return rewrite(roots, rule)


def dce(roots):
    """Nodes that no root needs are never part of a program: a function runs only the
    ancestors of its roots. What remains to remove are the unused outputs of fused
    nodes with several outputs (left behind when a later pass drops their users)."""
    nodes = ancestors(list(roots))
    use = users(nodes)
    shrink = {}
    for n in nodes:
        if n.op.name == "fused" and len(n.attrs["region"].outputs) > 1:
            used = sorted({u.attrs["index"] for u in use[n]})
            if len(used) < len(n.attrs["region"].outputs):
                shrink[n] = used

    if not shrink:
        return list(roots)

    def rule(n, ins):
        if n in shrink:
            region = n.attrs["region"]
            kept = replace(region, outputs=tuple(region.outputs[i] for i in shrink[n]))
            return n.graph.add(n.op, ins, dict(n.attrs, region=kept), name=n.name, loc=n.loc)
        if n.op.name == "output" and n.inputs[0] in shrink:
            f = ins[0]
            if len(f.attrs["region"].outputs) == 1:
                return f
            index = shrink[n.inputs[0]].index(n.attrs["index"])
            return n.graph.add(n.op, (f,), {"index": index}, name=n.name, loc=n.loc)
        return None
    return rewrite(roots, rule)
