"""Reverse-mode autodiff that builds gradient nodes into the graph.

micrograd's backward pass, except that every step builds graph nodes instead
of computing numbers: walk the nodes between the xs and y in reverse
topological order, ask each op for its gradient rule (ops/*.py, next to its
reference), and sum the contributions that reach each node. Nothing is
evaluated; the result is an ordinary graph that can be drawn, optimized,
compiled, or differentiated again.

Two things every rule can leave to this driver:
- broadcasting: a rule may return a gradient of its output's shape; it is
  summed back to the input's shape here (`sum_to`);
- dtype: a gradient of a wider dtype (float32 input met float64) is cast back.
Inputs that are not floats, and ops marked `no_grad` (argmax, comparisons,
sign, one_hot, casts to ints...), get no gradient: a zero contribution.

A dimension that is None is assumed not to be broadcast (size 1 fed where a
larger size meets it); feed the full size there.
"""
from graphc.core.errors import ForeignNodeError, GraphError, ShapeError, where
from graphc.core.graph import Node, ancestors, user_location
from graphc.core.types import TupleType, fmt_shape
from graphc.ops.base import as_node, constant_node, is_float
from graphc.ops.broadcast import broadcast_like
from graphc.ops.reductions import sum
from graphc.ops.unary import cast


def grad(y, xs, unconnected="error"):
    """dy/dx for each x in xs, as nodes in y's graph.

    y: a scalar float node. xs: a node or a list of nodes (variables,
    placeholders or any intermediate). unconnected: "error" (default) raises
    naming the xs that y does not depend on; "zero" returns zeros for them.
    """
    loc = user_location()
    single = isinstance(xs, Node)
    xs = [xs] if single else list(xs)
    _check(y, xs, unconnected, loc)
    order = ancestors([y])
    upstream = set(order)
    unconnected_xs = [x for x in xs if x not in upstream]
    if unconnected_xs and unconnected == "error":
        raise GraphError("grad: y" + where(y.loc) + " does not depend on "
                         + ", ".join(f"{x.name}{where(x.loc)}" for x in unconnected_xs)
                         + "; pass unconnected='zero' to get zeros for them" + where(loc))
    grads = backward(y, xs, order)
    # an x reached only through no_grad ops (argmax, x > 0, ...) gets zeros, like an unconnected one
    out = [grads[x] if x in grads else broadcast_like(as_node(0, like=x), x) for x in xs]
    return out[0] if single else out


def backward(y, xs, order=None):
    """{node: dy/dnode} for every node between the xs and y that a gradient reaches."""
    order = order or ancestors([y])
    on_path = _between(xs, order)
    contributions = {y: [constant_node(1, dtype=y.dtype, graph=y.graph)]}
    grads = {}
    for node in reversed(order):
        if node not in on_path or node not in contributions:
            continue
        if isinstance(node.type, TupleType):       # several outputs: one gradient (or None) per output
            g = grads[node] = [_sum(terms) if terms else None for terms in contributions.pop(node)]
        else:
            g = grads[node] = _sum(contributions.pop(node))
        if node.op.name == "output":               # hand the gradient to its output slot of the node
            parent, k = node.inputs[0], node.attrs["index"]
            slots = contributions.setdefault(parent, [[] for _ in parent.type.types])
            slots[k].append(g)
            continue
        if not node.inputs or node.op.no_grad:
            continue
        wanted = [x in on_path and is_float(x) for x in node.inputs]
        if not any(wanted):
            continue
        for x, gx, want in zip(node.inputs, node.op.grad(node, g), wanted):
            if want and gx is not None:
                contributions.setdefault(x, []).append(_fit(gx, x, node))
    return grads


def _between(xs, order):
    """Nodes of `order` (y's ancestors, topologically sorted) that depend on some x."""
    reach = set(xs)
    for n in order:
        if any(i in reach for i in n.inputs):
            reach.add(n)
    return reach & set(order)


def _sum(terms):
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def _fit(g, x, node):
    """g summed back over the axes along which x was broadcast, in x's dtype."""
    g = sum_to(g, x.shape, node)
    return g if g.dtype == x.dtype else cast(g, x.dtype)


def sum_to(g, shape, node=None):
    """Sum g over leading axes and over axes where `shape` has 1, so it ends up with `shape`."""
    lead = g.ndim - len(shape)
    if lead < 0:
        raise ShapeError(f"grad: the rule of {node.op.name if node else '?'} gave a gradient of shape "
                         f"{fmt_shape(g.shape)} for an input of shape {fmt_shape(shape)}")
    if lead:
        g = sum(g, axis=tuple(range(lead)))
    ones = tuple(i for i, (d, s) in enumerate(zip(shape, g.shape)) if d == 1 and s != 1)
    if ones:
        g = sum(g, axis=ones, keepdims=True)
    return g


def _check(y, xs, unconnected, loc):
    if unconnected not in ("error", "zero"):
        raise GraphError(f"grad: unconnected must be 'error' or 'zero', got {unconnected!r}{where(loc)}")
    if not isinstance(y, Node):
        raise GraphError(f"grad: y must be a graph node, got {y!r}{where(loc)}")
    if y.shape != ():
        raise ShapeError(f"grad: y must be a scalar, got {y.name} of shape {fmt_shape(y.shape)}"
                         f"{where(y.loc)}; reduce it first, e.g. gc.sum(y) or gc.mean(y){where(loc)}")
    if not is_float(y):
        raise GraphError(f"grad: y{where(y.loc)} must be a float scalar, got {y.dtype}{where(loc)}")
    for x in xs:
        if not isinstance(x, Node):
            raise GraphError(f"grad: {x!r} is not a graph node{where(loc)}")
        if x.graph is not y.graph:
            raise ForeignNodeError(f"grad: {x.name}{where(x.loc)} belongs to {x.graph.name}, "
                                   f"y to {y.graph.name}{where(loc)}")
        if not is_float(x):
            raise GraphError(f"grad: {x.name}{where(x.loc)} is {x.dtype}; only float tensors have gradients"
                             f"{where(loc)}")
