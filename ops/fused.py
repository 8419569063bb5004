"""Fused ops, built only by the fusion passes (passes/fusion.py).

A `fused` node runs a small body of elementwise ops in one loop over one
domain (the shape every member of the group has), optionally followed by a
reduction of the body's result. Its inputs are the group's external inputs;
`body` lists the member ops in order as (op name, attrs, refs), where a ref
is ("in", k) for external input k or ("op", j) for body entry j; `outs` names
the body entries that are needed outside. With several outs the node's value
is a tuple and `fused_output` nodes pick its parts.
"""
import numpy as np

from graphc.errors import ShapeError
from graphc.types import TensorType, fmt_shape

from .base import REGISTRY, Op, register


def body_types(types, body):
    """The TensorType of every body entry, given the external inputs' types."""
    out = []
    for op_name, attrs, refs in body:
        args = tuple(types[k] if src == "in" else out[k] for src, k in refs)
        out.append(REGISTRY[op_name].infer(args, **dict(attrs)))
    return out


@register
class Fused(Op):
    name = "fused"
    kind = "fused"
    no_grad = True      # built after autodiff; its members had their rules then

    def infer(self, types, body, outs, reduce=None):
        inner = body_types(types, body)
        domain = inner[-1].shape
        if any(t.shape != domain for t in inner):
            # happens only when a None dimension is fed 1 and broadcast inside the group
            raise ShapeError("a fused group needs one domain shape for all its members, got "
                             + ", ".join(fmt_shape(t.shape) for t in inner)
                             + "; feed full sizes where a dimension is None")
        if reduce is not None:
            op_name, axis, keepdims = reduce
            return REGISTRY[op_name].infer((inner[outs[0]],), axis=axis, keepdims=keepdims)
        return inner[outs[0]]

    def out_types(self, node):
        """The TensorType of each of the node's outputs."""
        if node.attrs.get("reduce") is not None:
            return [node.type]
        inner = body_types(tuple(x.type for x in node.inputs), node.attrs["body"])
        return [inner[j] for j in node.attrs["outs"]]

    def ref(self, *xs, body, outs, reduce=None):
        vals = []
        for op_name, attrs, refs in body:
            args = [xs[k] if src == "in" else vals[k] for src, k in refs]
            vals.append(np.asarray(REGISTRY[op_name].ref(*args, **dict(attrs))))
        if reduce is not None:
            op_name, axis, keepdims = reduce
            return REGISTRY[op_name].ref(vals[outs[0]], axis=axis, keepdims=keepdims)
        return tuple(vals[j] for j in outs) if len(outs) > 1 else vals[outs[0]]


@register
class FusedOutput(Op):
    """fused_output(f, index, dtype): output `index` of a fused node that has several.
    All outputs of a fused group share its domain shape, so only the dtype is stored."""
    name = "fused_output"
    kind = "fused"
    no_grad = True

    def infer(self, types, index, dtype):
        return TensorType(types[0].shape, dtype)

    def ref(self, values, index, dtype):
        return values[index]
