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
from graphc.core.errors import GraphError
from graphc.core.graph import Graph, ancestors, user_location
from graphc.core.region import Param
from graphc.core.types import TensorType
from graphc.ops import scan as scan_op
from graphc.ops.base import REGISTRY, as_node, is_float
from graphc.ops.broadcast import broadcast_like
from graphc.ops.linalg import matmul
from graphc.ops.reductions import sum
from graphc.ops.shape import reshape, transpose

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
    try:
        vals, grads = _body_grads(graph, region, nc, nx, args, g_out, fc, fx, fp)
    except GraphError:        # a body autodiff cannot differentiate: its scan saves nothing, and
        return ()             # gc.grad through it, if asked for, says why
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


def _terms(g):
    """g as a list of addends: an `add` of two values of g's own shape and dtype is split."""
    if g.op.name == "add" and all(i.shape == g.shape and i.dtype == g.dtype for i in g.inputs):
        return _terms(g.inputs[0]) + _terms(g.inputs[1])
    return [g]


def _hoistable(term):
    """('mm', P, Q) for a term P^T @ Q of matrices, ('sum', Q) for sum(Q, axis=0) of a matrix;
    None for any other. Summed over the steps, the first is one GEMM of the stacked P and Q
    (T*B rows), the second one column sum: no per-step accumulation in the loop."""
    ok = lambda x: x.ndim == 2 and x.shape[1] is not None     # noqa: E731
    if term.op.name == "matmul" and term.ndim == 2 and term.inputs[0].op.name == "transpose" \
            and term.inputs[0].attrs["axes"] == (1, 0) and all(ok(x) for x in term.inputs):
        return ("mm", term.inputs[0].inputs[0], term.inputs[1])
    if term.op.name == "sum" and term.attrs["axis"] == (0,) and not term.attrs["keepdims"] and ok(term.inputs[0]):
        return ("sum", term.inputs[0])
    return None


def _split_sums(grads):
    """For each captured value's per-step gradient: (hoisted terms, the rest summed or None)."""
    out = []
    for g in grads:
        hoist, rest = [], None
        for t in _terms(g):
            h = _hoistable(t)
            if h is None:
                rest = t if rest is None else rest + t
            else:
                hoist.append(h)
        out.append((hoist, rest))
    return out


def _stacked_sum(kind, parts):
    """The sum over the steps of a hoisted term, from its stacked (T, ...) factors."""
    flat = [reshape(p, (-1, p.shape[-1])) for p in parts]
    return matmul(transpose(flat[0], (1, 0)), flat[1]) if kind == "mm" else sum(flat[0], axis=0)


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

    def body(bcarry, bx, bstatic, accumulate, plan):
        """One backward step; plan collects, per captured value, its hoisted terms (factors as
        ("x", k): the backward xs k, or ("y", k): the emitted ys k)."""
        g_c, acc = bcarry[:len(fc)], list(bcarry[len(fc):])
        x_t, c_t = bx[:nx], bx[nx:nx + nc]
        at = nx + nc
        kept_t, at = bx[at:at + len(save)], at + len(save)
        gy_t, at = bx[at:at + len(gy)], at + len(gy)
        gsv_t, gk_t = bx[at:at + len(gsv)], bx[at + len(gsv):]
        args = list(c_t) + list(x_t) + list(bstatic)
        here = (list(bcarry) + list(bx) + list(bstatic))[0].graph
        g_out = dict(zip(fc, g_c))
        g_out.update({nc + k: g for k, g in zip(gy, gy_t)})
        # a gradient reaching saved value k: a term sum(value * g) of the replayed step
        vals = _replay_all(here, region, args) if gk else None
        extra = [(vals[save[k]], g) for k, g in zip(gk, gk_t)] if gk else []
        vals, grads = _body_grads(here, region, nc, nx, args, g_out, fc, fx, fp, extra)
        need = _read_by(vals, grads, per_step)
        swap = {vals[j]: kept_t[save.index(j)] for j in need if j in save}
        grads = _substitute(grads, swap)
        new_g_c = list(grads[:len(fc)])
        for j, k in enumerate(fc):
            if k in gsv:
                new_g_c[j] = new_g_c[j] + gsv_t[gsv.index(k)]
        ys = list(grads[len(fc):len(fc) + len(fx)])
        new_acc = []
        for j, (hoist, rest) in enumerate(_split_sums(grads[len(fc) + len(fx):])):
            if j in accumulate:
                a = acc.pop(0)
                new_acc.append(a + rest if rest is not None else a + zeros_like(a))
            elif rest is not None:
                raise GraphError("scan gradient: a captured value's gradient changed between two traces")
            factors = []
            for kind, *ps in hoist:
                where = []
                for p in ps:
                    if any(p is b for b in bx):       # a slice of the backward xs: read them
                        where.append(("x", next(k for k, b in enumerate(bx) if p is b)))
                    else:                             # emitted once, however many terms read it
                        if not any(p is y for y in ys):
                            ys.append(p)
                        where.append(("y", next(k for k, y in enumerate(ys) if p is y)))
                factors.append((kind, where))
            plan.append((factors, rest is not None))
        return new_g_c + new_acc, ys

    # a trial on stand-ins of a scratch graph: which captured values keep a per-step sum
    trial = Graph("scan_grad_trial")

    def stand(types):
        return [scan_op.stand_in(trial, t, "trial") for t in types]

    bxs = list(xs) + saved + kept + [g_ys[k] for k in gy] + [g_saved[k] for k in gsv] + [g_kept[k] for k in gk]
    slices = [TensorType(x.shape[1:], x.dtype) for x in bxs]
    every, trial_plan = list(range(len(fp))), []
    body(stand([init[k].type for k in fc] + [static[k].type for k in fp]), stand(slices),
         stand([x.type for x in static]), every, trial_plan)
    accumulate = [j for j, (_, rest) in enumerate(trial_plan) if rest]
    plan = []
    binit = [g_final[k] if g_final[k] is not None else zeros_like(init[k]) for k in fc]
    binit += [zeros_like(static[fp[j]]) for j in accumulate]
    _, finals, ys, _ = scan_op.build_scan(graph, lambda c, x, s: body(c, x, s, accumulate, plan), binit, bxs,
                                          list(static), not reverse, node.attrs["length"],
                                          loc or user_location(), name="scan_grad")
    out = [None] * len(node.inputs)
    for j, k in enumerate(fc):
        out[k] = finals[j]
    for j, k in enumerate(fx):
        out[nc + k] = ys[j]
    for j, k in enumerate(fp):
        sums = [finals[len(fc) + accumulate.index(j)]] if j in accumulate else []
        for kind, where in plan[j][0]:
            sums.append(_stacked_sum(kind, [bxs[i] if src == "x" else ys[i] for src, i in where]))
        out[nc + nx + k] = _total(sums) if sums else zeros_like(static[k])
    return out


def _total(terms):
    s = terms[0]
    for t in terms[1:]:
        s = s + t
    return s


scan_op.GRAD_RULE[:] = [scan_grad]
scan_op.RESIDUALS[:] = [residuals]
