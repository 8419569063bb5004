"""scan: a loop over time as one node -- recurrence (RNN, LSTM, GRU) without unrolling.

    final_carry, ys = gc.scan(fn, init, xs)        # fn(carry, x_t) -> (new_carry, y_t)

Why a loop op. Unrolling T steps into the graph makes the graph, the passes, the generated
code and its compile time grow with T (and a new T means a new program). A scan node holds
the step body once, as a Region (graphc/core/region.py), in its attrs; every backend runs that
body T times: the interpreter in a Python loop (`ref`), the CPU backend as a compiled loop
over a compiled body (runtime/cpu/lower_scan.py). The node hash-conses like any other (its key
is the body's ops and attrs), and the passes treat it as an opaque black box.

Tracing. fn is called once, on stand-in nodes (`scan_arg`, an internal leaf op) built in the
same graph with the types of the carry and of one time slice. The nodes between those
stand-ins and fn's outputs are the body; every other node they read (weights, biases,
constants, any value of the enclosing graph) is *captured*: it becomes an input of the scan
node and a parameter of the body, so gradients flow to it.

Inputs and outputs. inputs = init carries + xs + captured (the region's parameters, in the
same order, a time slice standing for each x). The node's type is a TupleType read through
`output` nodes: the final carries, the stacked y_t (T, ...), and -- for the gradient -- the
stacked carries each step started from (T, ...) and the stacked values of the body steps
named by attr `save` (T, ...), which gc.scan does not return.

The gradient (passes/scan_grad.py) is backpropagation through time as another scan, run in
reverse: its carry is dL/dcarry (plus the gradients of the captured values summed so far,
where they cannot be summed after the loop), its xs are (xs, the saved carries, the saved
step values, dL/dys), and its body is the gradient of the forward body by the ordinary
autodiff. How the gradient stores what it needs:
- Saved step values (`save`). The backward body needs the body's intermediates -- an LSTM's
  gate activations, tanh(c'), a mask -- and recomputing them means running the forward step
  twice (its GEMMs and transcendentals). So when a scan is built, `RESIDUALS` (installed by
  passes/scan_grad.py) differentiates the body once on stand-ins and lists the per-step
  values the gradient nodes read; the forward scan outputs them stacked, and the backward
  body reads its time slice of them instead of the replayed node. Values that depend only on
  captured values are not saved (they are the same at every step). The CPU backend writes
  a saved value only when a gradient reads it, so a scan without gradient pays nothing.
- Saved carries: the carry each step started from (h_t for dL/dU = h_t^T dz_t, ...).
- Sums after the loop: a captured value's gradient that is a sum over steps of P_t^T Q_t (a
  weight's: x_t^T dz_t, h_t^T dz_t) or of column sums (a bias's) is not accumulated in the
  backward carry; the backward scan emits Q_t (and P_t unless it is already a stacked
  input), and one GEMM over the T*B rows (one column sum) after the loop gives the total.
Since the backward is an ordinary scan of ordinary ops, second derivatives and every backend
come with it (a gradient reaching a saved value flows through the replayed step).
(ops/ may not import passes/, so passes/scan_grad.py installs the rules: `GRAD_RULE`.)
The cost of that choice: memory for T carries and T copies of each saved value.

Limits: a random op inside fn draws the same numbers at every step (its counter is captured,
not carried); check_numerics looks at the scan's outputs, not at each step's values.
"""
import itertools

import numpy as np

from graphc.core.errors import DTypeError, GraphError, ShapeError
from graphc.core.errors import where as at
from graphc.core.graph import Node, ancestors, get_default_graph, user_location
from graphc.core.region import Param, Ref, Region, Step
from graphc.core.types import TensorType, TupleType, fmt_shape

from .base import REGISTRY, Op, as_node, register
from .sources import Source

_unique = itertools.count()
GRAD_RULE = []          # [rule(node, gs) -> grads], installed by passes/scan_grad.py
RESIDUALS = []          # [which(region, n_carry, n_x, param types) -> steps to save], passes/scan_grad.py


class ScanArg(Source):
    """A stand-in for a carry, a time slice or a captured value while fn is traced. Not in the
    registry: it never reaches a program (the body refers to it as a region parameter)."""
    name = "scan_arg"

    def key(self, attrs):
        return next(_unique)        # every stand-in is its own value


STAND_IN = ScanArg()


@register
class Scan(Op):
    name = "scan"
    kind = "opaque"

    def canonical(self, types, region, n_carry, n_x, reverse=False, length=None, save=()):
        save = tuple(int(j) for j in save)
        if any(not 0 <= j < len(region.steps) for j in save) or len(set(save)) != len(save):
            raise GraphError(f"scan: save={save} must name distinct steps of the body (it has {len(region.steps)})")
        return {"region": region, "n_carry": int(n_carry), "n_x": int(n_x), "reverse": bool(reverse),
                "length": None if length is None else int(length), "save": save}

    def key(self, attrs):
        r = attrs["region"]
        steps = tuple((s.op.name, s.op.key(s.kwargs), s.operands) for s in r.steps)
        return (r.n_params, steps, r.outputs, attrs["n_carry"], attrs["n_x"], attrs["reverse"], attrs["length"],
                attrs["save"])

    def infer(self, types, region, n_carry, n_x, reverse, length, save):
        carries, xs = list(types[:n_carry]), types[n_carry:n_carry + n_x]
        if region.n_params != len(types):
            raise GraphError(f"the body has {region.n_params} parameters, the node {len(types)} inputs")
        if any(x.ndim == 0 for x in xs):
            raise ShapeError("every x needs a leading time axis, got " + ", ".join(fmt_shape(x.shape) for x in xs))
        T = time_length([x.shape for x in xs], length)
        inner = region.types(carries + [TensorType(x.shape[1:], x.dtype) for x in xs] + list(types[n_carry + n_x:]))
        outs = [inner[j] for j in region.outputs]
        for k, (c, new) in enumerate(zip(carries, outs)):
            check_carry(k, c, new)
        ys = [TensorType((T,) + y.shape, y.dtype) for y in outs[n_carry:]]
        saved = [TensorType((T,) + c.shape, c.dtype) for c in carries]
        for j in save:
            if not isinstance(inner[j], TensorType):
                raise GraphError(f"scan: save names step {j}, of type {inner[j]}: only a tensor step can be saved")
        kept = [TensorType((T,) + inner[j].shape, inner[j].dtype) for j in save]
        return TupleType(tuple(carries + ys + saved + kept))

    def ref(self, *arrays, region, n_carry, n_x, reverse, length, save):
        carry, xs = list(arrays[:n_carry]), arrays[n_carry:n_carry + n_x]
        static = list(arrays[n_carry + n_x:])
        T = time_length([x.shape for x in xs], length)
        ys, saved, kept = [None] * T, [None] * T, [None] * T
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            saved[t] = carry
            vals = evaluate(region, carry + [x[t] for x in xs] + static)
            outs = [vals[j] for j in region.outputs]
            carry = [np.asarray(o, c.dtype) for o, c in zip(outs[:n_carry], carry)]
            ys[t] = outs[n_carry:]
            kept[t] = [vals[j] for j in save]
        if T == 0:     # nothing ran: the shapes of y_t from the body's types
            inner = region.types([TensorType(a.shape, a.dtype) for a in arrays[:n_carry]]
                                 + [TensorType(x.shape[1:], x.dtype) for x in xs]
                                 + [TensorType(a.shape, a.dtype) for a in static])
            empty = [np.zeros((0,) + inner[j].shape, inner[j].dtype) for j in list(region.outputs) + list(save)]
            no = len(region.outputs)
            return tuple(list(arrays[:n_carry]) + empty[n_carry:no] + empty[:n_carry] + empty[no:])
        stacked = [np.stack([y[k] for y in ys]) for k in range(len(region.outputs) - n_carry)]
        stacked += [np.stack([c[k] for c in saved]) for k in range(n_carry)]
        stacked += [np.stack([v[k] for v in kept]) for k in range(len(save))]
        return tuple([np.array(c, order="C") for c in carry] + stacked)

    def grad(self, node, gs):
        return GRAD_RULE[0](node, gs)

    def label(self, node):
        return [("steps", len(node.attrs["region"].steps)), ("reverse", node.attrs["reverse"] or None)]


def evaluate(region, arrays):
    """Region.evaluate, except that a step of several outputs (a scan inside the body, a split)
    keeps its tuple of arrays, for the `output` steps that read it."""
    vals = []
    for s in region.steps:
        out = s.op.ref(*[arrays[x.index] if isinstance(x, Param) else vals[x.index] for x in s.operands], **s.kwargs)
        vals.append(out if isinstance(out, tuple) else np.asarray(out))
    return vals


def time_length(shapes, length):
    """T: the common leading size of the xs (None: known at call time), else `length`."""
    known = sorted({s[0] for s in shapes if s[0] is not None})
    if len(known) > 1:
        raise ShapeError("the xs have different lengths: " + ", ".join(fmt_shape(s) for s in shapes))
    if length is not None and known and known[0] != length:
        raise ShapeError(f"length={length}, but the xs have length {known[0]}")
    if not shapes:
        return length
    return known[0] if known else length


def check_carry(k, old, new):
    """fn's new carry k must have the carry's dtype and shape (a None dimension matches any size)."""
    if new.dtype != old.dtype:
        raise DTypeError(f"fn returned carry {k} as {new}, the carry is {old}: a step must keep its dtype")
    if new.ndim != old.ndim or any(a is not None and b is not None and a != b for a, b in zip(old.shape, new.shape)):
        raise ShapeError(f"fn returned carry {k} of shape {fmt_shape(new.shape)}, the carry has shape "
                         f"{fmt_shape(old.shape)}: a step must keep its shape")


# ---------------------------------------------------------------- tracing a body


def stand_in(graph, t, name):
    return graph.add(STAND_IN, (), {"shape": t.shape, "dtype": t.dtype}, name=name)


def trace(graph, body, carry_types, x_types, static, loc):
    """Region of body(carries, x_ts, statics) -> (new carries, ys), traced on stand-ins, and the
    captured nodes. The region's parameters: carries, x_ts, statics, then the captured nodes."""
    cs = [stand_in(graph, t, "carry") for t in carry_types]
    xts = [stand_in(graph, t, "x_t") for t in x_types]
    ss = [stand_in(graph, s.type, "captured") for s in static]
    new_c, ys = body(cs, xts, ss)
    outs = list(new_c) + list(ys)
    for o in outs:
        if not isinstance(o, Node):
            raise GraphError(f"scan: fn returned {o!r}, not a graph node (a carry and y_t must be tensors "
                             f"built from the carry, x_t or other nodes){at(loc)}")
        if o.graph is not graph:
            raise GraphError(f"scan: fn returned {o.name}{at(o.loc)} of another graph{at(loc)}")
    index = {n: k for k, n in enumerate(cs + xts + ss)}
    inside, captured, steps, step_of = set(), [], [], {}
    order = ancestors(outs)
    for n in order:
        if n not in index and any(i in index or i in inside for i in n.inputs):
            inside.add(n)

    def operand(x):
        if x in index:
            return Param(index[x])
        if x in inside:
            return Ref(step_of[x])
        if x not in captured:
            captured.append(x)
        return Param(len(index) + captured.index(x))

    for n in order:
        if n in inside:
            steps.append(Step(n.op, tuple(sorted(n.attrs.items())), tuple(operand(i) for i in n.inputs)))
            step_of[n] = len(steps) - 1
    outputs = []
    for o in outs:
        if o not in inside:      # a stand-in or a captured value returned as it is: a copy step
            p = operand(o)
            steps.append(Step(REGISTRY["broadcast_like"], (), (p, p)))
            step_of[o] = len(steps) - 1
        outputs.append(step_of[o])
    return Region(len(index) + len(captured), tuple(steps), tuple(outputs)), captured


def replay(graph, region, args, steps=None):
    """The values of the region's outputs (or of the steps `steps`), built as nodes of graph
    on the nodes args (its parameters)."""
    vals = []
    for s in region.steps:
        ins = [args[x.index] if isinstance(x, Param) else vals[x.index] for x in s.operands]
        vals.append(graph.add(s.op, ins, s.kwargs))
    return [vals[j] for j in (region.outputs if steps is None else steps)]


def build_scan(graph, body, init, xs, static, reverse, length, loc, name=None):
    """The scan node of body (see trace) over init, xs and the static nodes; its output nodes
    (finals, ys, then the saved carries followed by the saved step values, `save`)."""
    carry_types = [c.type for c in init]
    x_types = [TensorType(x.shape[1:], x.dtype) for x in xs]
    region, captured = trace(graph, body, carry_types, x_types, static, loc)
    param_types = carry_types + x_types + [s.type for s in list(static) + captured]
    save = RESIDUALS[0](region, len(init), len(xs), param_types) if RESIDUALS else ()
    attrs = {"region": region, "n_carry": len(init), "n_x": len(xs), "reverse": reverse, "length": length,
             "save": save}
    node = graph.add(REGISTRY["scan"], list(init) + list(xs) + list(static) + captured, attrs,
                     name=name or "scan", loc=loc)
    parts = [graph.add(REGISTRY["output"], (node,), {"index": k}, loc=loc) for k in range(len(node.type.types))]
    nc, ny = len(init), len(region.outputs) - len(init)
    return node, parts[:nc], parts[nc:nc + ny], parts[nc + ny:]


def scan(fn, init, xs=None, length=None, reverse=False, name=None):
    """Loop fn over the time axis (axis 0) of xs: `final_carry, ys = gc.scan(fn, init, xs)`.

    fn(carry, x_t) -> (new_carry, y_t). init: a node or a tuple of nodes (the carry has that
    structure, and each new carry the same shape and dtype); xs: a node, a tuple of nodes
    (each (T, ...); x_t is one slice, with the same structure) or None (then give length=T);
    y_t: a node, a tuple of nodes or None. ys stacks the y_t: (T, ...) each; None if y_t is.
    reverse=True runs from the last step to the first (ys stay indexed by t). fn may read any
    node of the graph (weights, ...): those become inputs of the scan, and get gradients."""
    loc = user_location()
    carry_tuple, x_tuple = isinstance(init, (tuple, list)), isinstance(xs, (tuple, list))
    init = [as_node(c) for c in (init if carry_tuple else [init])]
    xs = [] if xs is None else [as_node(x) for x in (xs if x_tuple else [xs])]
    graph = (init + xs)[0].graph if init + xs else get_default_graph()
    for x in xs:
        if x.ndim == 0:
            raise ShapeError(f"scan: xs need a leading time axis, got {x.name} of shape (){at(loc)}")
    try:
        T = time_length([x.shape for x in xs], length)
    except ShapeError as e:
        raise ShapeError(f"scan: {e}{at(loc)}") from None
    if not xs and length is None:
        raise ShapeError(f"scan: without xs, give the number of steps as length={at(loc)}")
    y_form = []

    def body(cs, xts, ss):
        out = fn(tuple(cs) if carry_tuple else cs[0], (tuple(xts) if x_tuple else xts[0]) if xs else None)
        if not isinstance(out, tuple) or len(out) != 2:
            raise GraphError(f"scan: fn must return (new_carry, y_t), got {out!r}{at(loc)}")
        new, y = out
        if carry_tuple != isinstance(new, (tuple, list)) or carry_tuple and len(new) != len(cs):
            raise GraphError(f"scan: fn returned a carry of another structure than init: "
                             f"{_form(new)} for {_form(tuple(cs) if carry_tuple else cs[0])}{at(loc)}")
        new = list(new) if carry_tuple else [new]
        for k, (c, n) in enumerate(zip(cs, new)):
            if isinstance(n, Node):
                try:
                    check_carry(k, c.type, n.type)
                except GraphError as e:
                    raise type(e)(f"scan: {e}{at(n.loc)}{at(loc)}") from None
        y_form.append(None if y is None else isinstance(y, (tuple, list)))
        return new, [] if y is None else list(y) if y_form[0] else [y]

    node, finals, ys, _ = build_scan(graph, body, init, xs, [], bool(reverse), T, loc, name)
    final = tuple(finals) if carry_tuple else finals[0]
    if y_form[0] is None:
        return final, None
    return final, tuple(ys) if y_form[0] else ys[0]


def _form(v):
    if isinstance(v, (tuple, list)):
        return "(" + ", ".join(_form(x) for x in v) + ")"
    return str(v.type) if isinstance(v, Node) else repr(v)
