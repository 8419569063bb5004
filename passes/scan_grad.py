"""The gradient of a scan: backpropagation through time, as a scan run the other way.

The forward scan (ops/scan.py) also outputs, stacked (T, ...), the carry each step started from
and the values of the body's steps that the gradient reads (attr `save`, chosen here by
`residuals` when the scan is built). The backward scan walks the steps in reverse; at step t it
- differentiates sum(new_carry * g_carry) + sum(y_t * g_y_t) of the forward body replayed on
  (saved carry c_t, x_t, the captured values) with the ordinary autodiff (passes/autodiff.py)
  with respect to c_t, x_t and the captured values,
- then swaps each forward value the gradient nodes read for the saved one (a time slice of the
  backward scan's xs), so the forward body is not run a second time: no gate GEMMs, no
  transcendentals again. Forward values that depend only on the captured values (the same at
  every step) are not saved: they stay in the backward body, computed from the captured values.
- carries (dL/dc_t, the captured values' gradients summed so far), and emits dL/dx_t.
dL/dinit is the final backward carry, dL/dxs the stacked emitted values, and the captured
values get the final sums. A gradient reaching the saved carries or saved values themselves
(a second derivative differentiates a backward scan, which reads them) flows on: to dL/dc_t,
and, for a saved value, through its replayed forward node (the gradient of the replay).

ops/ may not import passes/, so this module installs the rule on the op (ops/scan.py GRAD_RULE,
RESIDUALS) when it is imported (graphc/api.py imports it).
"""
from graphc.core.graph import Graph, ancestors, user_location
from graphc.ops import scan as scan_op
from graphc.core.region import Param
from graphc.core.types import TensorType
from graphc.ops.base import REGISTRY, as_node, is_float
from graphc.ops.broadcast import broadcast_like
from graphc.ops.reductions import sum

from .autodiff import grad


def zeros_like(x):
    return broadcast_like(as_node(0, like=x), x)


def _replay_all(graph, region, args):
    """Every step's value of the region, as nodes of graph on the nodes args."""
    return scan_op.replay(graph, region, args, range(len(region.steps)))


def _body_grads(graph, region, nc, nx, args, g_out, fc, fx, fp, extra=()):
    """(forward step values, gradients wrt carries fc, xs fx, captured fp) of the region
    replayed on args, for output gradients g_out ({output index: gradient node}) and the
    (step value, gradient) pairs extra."""
    vals = _replay_all(graph, region, args)
    outs = [vals[j] for j in region.outputs]
    terms = [sum(outs[k] * g) for k, g in g_out.items()] + [sum(v * g) for v, g in extra]
    loss = terms[0]
    for t in terms[1:]:
        loss = loss + t
    wrt = [args[k] for k in fc] + [args[nc + k] for k in fx] + [args[nc + nx + k] for k in fp]
    return vals, grad(loss, wrt, unconnected="zero")


def _read_by(vals, grads, per_step):
    """Indices of the forward values (per_step ones only) that the gradient nodes read."""
    fwd = {v: j for j, v in enumerate(vals)}
    need = set()
    for n in ancestors(list(grads)):
        if n in fwd:
            continue
        for i in n.inputs:
            if i in fwd and fwd[i] in per_step:
                need.add(fwd[i])
    need.update(fwd[g] for g in grads if g in fwd and fwd[g] in per_step)
    return need


def _per_step(region, nc, nx):
    """Steps whose value changes from step to step: they read a carry or x_t, or such a step."""
    out = set()
    for j, s in enumerate(region.steps):
        if any(x.index < nc + nx if isinstance(x, Param) else x.index in out for x in s.operands):
            out.add(j)
    return out


def _float_lists(region, nc, nx, types):
    fc = [k for k in range(nc) if is_float(types[k])]
    fx = [k for k in range(nx) if is_float(types[nc + k])]
    fp = [k for k in range(len(types) - nc - nx) if is_float(types[nc + nx + k])]
    return fc, fx, fp


def residuals(region, nc, nx, param_types):
    """The steps of the body whose stacked values a scan saves for its gradient: the per-step
    values the gradient nodes read, found by differentiating the body once on stand-ins (with a
    gradient for every float output; a use with fewer reads a subset). Tensor steps only."""
    fc, fx, fp = _float_lists(region, nc, nx, param_types)
    inner = region.types(param_types)
    outs = [inner[j] for j in region.outputs]
    g_idx = [k for k, t in enumerate(outs) if is_float(t) and (k >= nc or k in fc)]
    if not g_idx or not (fc or fx or fp):
        return ()
    graph = Graph("scan_residuals")       # a scratch graph: the trial leaves nothing in the user's
    args = [scan_op.stand_in(graph, t, "trial") for t in param_types]
    g_out = {k: scan_op.stand_in(graph, outs[k], "trial_g") for k in g_idx}
    vals, grads = _body_grads(graph, region, nc, nx, args, g_out, fc, fx, fp)
    need = _read_by(vals, grads, _per_step(region, nc, nx))
    return tuple(sorted(j for j in need if isinstance(inner[j], TensorType)))


def _substitute(grads, swap):
    """The gradient nodes rebuilt with the forward values in swap read as their stand-ins."""
    memo = dict(swap)

    def copy(n):
        if n in memo:
            return memo[n]
        ins = [copy(i) for i in n.inputs]
        memo[n] = n if all(a is b for a, b in zip(ins, n.inputs)) else \
            n.graph.add(n.op, ins, n.attrs, name=n.name, loc=n.loc)
        return memo[n]

    for n in ancestors(list(grads)):      # topological order: no deep recursion
        copy(n)
    return [copy(g) for g in grads]


def scan_grad(node, gs):
    nc, nx, reverse = node.attrs["n_carry"], node.attrs["n_x"], node.attrs["reverse"]
    region, save = node.attrs["region"], node.attrs["save"]
    ny = len(region.outputs) - nc
    init, xs, static = node.inputs[:nc], node.inputs[nc:nc + nx], node.inputs[nc + nx:]
    g_final, g_ys = gs[:nc], gs[nc:nc + ny]
    g_saved, g_kept = gs[nc + ny:nc + ny + nc], gs[nc + ny + nc:]
    fc, fx, fp = _float_lists(region, nc, nx, [i.type for i in node.inputs])
    gy = [k for k in range(ny) if g_ys[k] is not None]
    gsv = [k for k in fc if g_saved[k] is not None]
    gk = [k for k in range(len(save)) if g_kept[k] is not None]
    if not fc and not gy and not gk:
        return [None] * len(node.inputs)
    graph, loc = node.graph, node.loc
    parts = [graph.add(REGISTRY["output"], (node,), {"index": nc + ny + k}) for k in range(nc + len(save))]
    saved, kept = parts[:nc], parts[nc:]
    per_step = _per_step(region, nc, nx)

    def body(bcarry, bx, bstatic):
        g_c, acc = bcarry[:len(fc)], bcarry[len(fc):]
        x_t, c_t = bx[:nx], bx[nx:nx + nc]
        at = nx + nc
        kept_t, at = bx[at:at + len(save)], at + len(save)
        gy_t, at = bx[at:at + len(gy)], at + len(gy)
        gsv_t, gk_t = bx[at:at + len(gsv)], bx[at + len(gsv):]
        args = list(c_t) + list(x_t) + list(bstatic)
        g_out = dict(zip(fc, g_c))
        g_out.update({nc + k: g for k, g in zip(gy, gy_t)})
        # a gradient reaching saved value k: a term sum(value * g) of the replayed step
        vals = _replay_all(graph, region, args) if gk else None
        extra = [(vals[save[k]], g) for k, g in zip(gk, gk_t)] if gk else []
        vals, grads = _body_grads(graph, region, nc, nx, args, g_out, fc, fx, fp, extra)
        need = _read_by(vals, grads, per_step)
        swap = {vals[j]: kept_t[save.index(j)] for j in need if j in save}
        grads = _substitute(grads, swap)
        new_g_c = list(grads[:len(fc)])
        for j, k in enumerate(fc):
            if k in gsv:
                new_g_c[j] = new_g_c[j] + gsv_t[gsv.index(k)]
        new_acc = [a + g for a, g in zip(acc, grads[len(fc) + len(fx):])]
        return new_g_c + new_acc, list(grads[len(fc):len(fc) + len(fx)])

    binit = [g_final[k] if g_final[k] is not None else zeros_like(init[k]) for k in fc]
    binit += [zeros_like(static[k]) for k in fp]
    bxs = list(xs) + saved + kept + [g_ys[k] for k in gy] + [g_saved[k] for k in gsv] + [g_kept[k] for k in gk]
    _, finals, ys, _ = scan_op.build_scan(graph, body, binit, bxs, list(static), not reverse,
                                          node.attrs["length"], loc or user_location(), name="scan_grad")
    out = [None] * len(node.inputs)
    for j, k in enumerate(fc):
        out[k] = finals[j]
    for j, k in enumerate(fp):
        out[nc + nx + k] = finals[len(fc) + j]
    for j, k in enumerate(fx):
        out[nc + k] = ys[j]
    return out


scan_op.GRAD_RULE[:] = [scan_grad]
scan_op.RESIDUALS[:] = [residuals]
