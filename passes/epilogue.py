"""Fusion of a convolution with the elementwise work that follows it (its epilogue).

A CNN layer is a convolution and then a few cheap elementwise ops on its output:
a bias, a batch norm in inference (a scale and a shift), an activation, a
residual add. After `fuse_elementwise` those are one fused group; run apart,
the group reads back the whole convolution output after the convolution wrote
it. Here the convolution becomes step 0 of that group's region, and the compiled
backends run the epilogue on each image's convolution output as it is produced,
while it is in cache, and never store the convolution's own output:

    before:  c = conv2d(x, w);  y = fused[add, relu](c, b)
    after:   y = fused[conv2d, add, relu](x, w, b)

A convolution joins the group that reads it when
- the group is the convolution's only reader and no root needs the convolution
  itself (else its output must be stored anyway), and
- the group's domain is the convolution's output shape (a group reading a
  convolution broadcast to a larger shape keeps them apart), and
- the group is elementwise: not a reduction, not a group with a producer already.

The gradient ops of a convolution (conv2d_grad_input, conv2d_grad_weight) are
not fused: their outputs feed reductions and updates, not epilogues.
"""
from graphc.core.graph import ancestors
from graphc.core.region import Param, Ref, Region, Step
from graphc.ops import REGISTRY
from graphc.ops.fused import producer

from .rewrite import rebuild, users

PRODUCERS = {"conv2d"}


def _steps_of(n):
    """(region, inputs) of an elementwise node or an elementwise fused group."""
    if n.op.name == "fused":
        return n.attrs["region"], n.inputs
    step = Step(n.op, tuple(sorted(n.attrs.items())), tuple(Param(k) for k in range(len(n.inputs))))
    return Region(len(n.inputs), (step,), (0,)), n.inputs


def _candidate(n, use, roots):
    """The index of the convolution input that may join n's group, or None."""
    if not (n.op.kind == "elementwise" or n.op.name == "fused" and n.attrs.get("reduce") is None
            and producer(n) is None):
        return None
    domain = n.type.types[0].shape if n.op.name == "fused" and len(n.attrs["region"].outputs) > 1 else n.type.shape
    for k, x in enumerate(n.inputs):
        if x.op.name in PRODUCERS and x not in roots and x.shape == domain and len(set(use[x])) == 1:
            return k
    return None


def _with_producer(n, conv, new_inputs):
    """n's group with `conv` (read by n, maybe more than once) as its step 0: params (x, w,
    n's other inputs)."""
    region, _ = _steps_of(n)
    params = [conv.inputs[0], conv.inputs[1]]
    for i in new_inputs:
        if i is not conv and i not in params:
            params.append(i)

    def operand(x):
        if isinstance(x, Param):
            i = new_inputs[x.index]
            return Ref(0) if i is conv else Param(params.index(i))
        return Ref(x.index + 1)

    head = Step(conv.op, tuple(sorted(conv.attrs.items())), (Param(0), Param(1)))
    steps = (head,) + tuple(s._replace(operands=tuple(operand(x) for x in s.operands)) for s in region.steps)
    fused = Region(len(params), steps, tuple(j + 1 for j in region.outputs))
    return n.graph.add(REGISTRY["fused"], params, {"region": fused, "reduce": None},
                       name=n.name, loc=n.loc)


def fuse_conv_epilogue(roots):
    """Each convolution read only by one elementwise group of its shape joins that group."""
    nodes = ancestors(list(roots))
    use = users(nodes)
    root_set = set(roots)
    memo = {}
    for n in nodes:
        k = _candidate(n, use, root_set)
        ins = [memo[i] for i in n.inputs]
        if k is None:
            memo[n] = rebuild(n, ins)
            continue
        # the rebuilt convolution is left unread: nothing but n read it
        memo[n] = _with_producer(n, ins[k], ins)
    return [memo[r] for r in roots]
