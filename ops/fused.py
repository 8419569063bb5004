"""Nodes that run a region (graphc/core/region.py), and `output`, which picks one output
of a node that has several.

A `fused` node, built only by the fusion passes (passes/fusion.py), runs a
region of elementwise ops as one loop over one domain (the shape every step
has), optionally followed by a reduction of the region's output: attrs
`region` and `reduce` = (reduction op, axis, keepdims) or None. Its inputs are
the region's parameters. With several outputs its type is a TupleType and
`output(f, k)` nodes read its parts; a scan op will use the same two pieces.

A region may also start with a convolution (passes/epilogue.py): step 0 is
conv2d(p0, p1), the other steps its elementwise epilogue (bias, batch norm,
activation, residual add), all of the convolution's output shape. The
interpreter runs it step by step like any region; the compiled backends run
the epilogue on the convolution's output as it is produced (`producer`).
"""
import numpy as np

from graphc.core.errors import GraphError, ShapeError
from graphc.core.types import TensorType, TupleType, fmt_shape

from .base import Op, register


@register
class Fused(Op):
    name = "fused"
    kind = "fused"
    no_grad = True      # built after autodiff; its members had their rules then

    def infer(self, types, region, reduce=None):
        inner = region.types(types)
        domain = inner[-1].shape
        if any(t.shape != domain for t in inner):
            # happens only when a None dimension is fed 1 and broadcast inside the group
            raise ShapeError("a fused group needs one domain shape for all its members, got "
                             + ", ".join(fmt_shape(t.shape) for t in inner)
                             + "; feed full sizes where a dimension is None")
        if reduce is not None:
            op, axis, keepdims = reduce
            return op.infer((inner[region.outputs[0]],), axis=axis, keepdims=keepdims)
        if len(region.outputs) > 1:
            return TupleType(tuple(inner[j] for j in region.outputs))
        return inner[region.outputs[0]]

    def ref(self, *xs, region, reduce=None):
        vals = region.evaluate(xs)
        if reduce is not None:
            op, axis, keepdims = reduce
            return op.ref(vals[region.outputs[0]], axis=axis, keepdims=keepdims)
        outs = tuple(vals[j] for j in region.outputs)
        return outs if len(outs) > 1 else outs[0]

    def label(self, node):
        return []


@register
class Output(Op):
    """output(x, index): output `index` of a node with several outputs (a TupleType)."""
    name = "output"
    kind = "fused"
    no_grad = True      # the gradient driver hands each output's gradient to x itself (passes/autodiff.py)

    def infer(self, types, index):
        (t,) = types
        if not isinstance(t, TupleType) or not 0 <= index < len(t.types):
            raise GraphError(f"output {index} of a node of type {t}: it has no such output")
        return t.types[index]

    def ref(self, values, index):
        return np.asarray(values[index])

    def label(self, node):
        return [("index", node.attrs["index"])]


def producer(node):
    """The step a fused node's loop starts from when it is not elementwise (a conv2d: its
    region's step 0, on params 0 and 1), else None."""
    if node.op.name != "fused" or node.attrs.get("reduce") is not None:
        return None
    first = node.attrs["region"].steps[0]
    return first if first.op.kind != "elementwise" else None


def output_types(node):
    """The TensorType of each output of node (one, unless its type is a TupleType)."""
    return list(node.type.types) if isinstance(node.type, TupleType) else [node.type]
