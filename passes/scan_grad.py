"""The gradient of a scan: backpropagation through time, as a scan run the other way.

The forward scan (ops/scan.py) also outputs the carry each step started from, stacked (T, ...).
The backward scan walks the steps in reverse; at step t it
- replays the forward body on (saved carry c_t, x_t, the captured values): ordinary nodes,
- differentiates sum(new_carry * g_carry) + sum(y_t * g_y_t) with the ordinary autodiff
  (passes/autodiff.py) with respect to c_t, x_t and the captured values,
- carries (dL/dc_t, the captured values' gradients summed so far), and emits dL/dx_t.
dL/dinit is the final backward carry, dL/dxs the stacked emitted values, and the captured
values get the final sums. A gradient reaching the saved carries themselves (a second
derivative differentiates a backward scan, which reads them) is added to dL/dc_t.

ops/ may not import passes/, so this module installs the rule on the op (ops/scan.py GRAD_RULE)
when it is imported (graphc/api.py imports it).
"""
from graphc.core.graph import user_location
from graphc.ops import scan as scan_op
from graphc.ops.base import REGISTRY, as_node, is_float
from graphc.ops.broadcast import broadcast_like
from graphc.ops.reductions import sum

from .autodiff import grad


def zeros_like(x):
    return broadcast_like(as_node(0, like=x), x)


def scan_grad(node, gs):
    nc, nx, reverse = node.attrs["n_carry"], node.attrs["n_x"], node.attrs["reverse"]
    region = node.attrs["region"]
    ny = len(region.outputs) - nc
    init, xs, static = node.inputs[:nc], node.inputs[nc:nc + nx], node.inputs[nc + nx:]
    g_final, g_ys, g_saved = gs[:nc], gs[nc:nc + ny], gs[nc + ny:]
    fc = [k for k in range(nc) if is_float(init[k])]          # carries, xs, captured values with gradients
    fx = [k for k in range(nx) if is_float(xs[k])]
    fp = [k for k in range(len(static)) if is_float(static[k])]
    gy = [k for k in range(ny) if g_ys[k] is not None]
    gsv = [k for k in fc if g_saved[k] is not None]
    if not fc and not gy:
        return [None] * len(node.inputs)
    graph, loc = node.graph, node.loc
    saved = [graph.add(REGISTRY["output"], (node,), {"index": nc + ny + k})
             for k in range(nc)]

    def body(bcarry, bx, bstatic):
        g_c, acc = bcarry[:len(fc)], bcarry[len(fc):]
        x_t, c_t = bx[:nx], bx[nx:nx + nc]
        gy_t, gsv_t = bx[nx + nc:nx + nc + len(gy)], bx[nx + nc + len(gy):]
        outs = scan_op.replay(graph, region, list(c_t) + list(x_t) + list(bstatic))
        terms = [sum(outs[k] * g) for k, g in zip(fc, g_c)] + [sum(outs[nc + k] * g) for k, g in zip(gy, gy_t)]
        loss = terms[0]
        for t in terms[1:]:
            loss = loss + t
        wrt = [c_t[k] for k in fc] + [x_t[k] for k in fx] + [bstatic[k] for k in fp]
        grads = grad(loss, wrt, unconnected="zero")
        new_g_c = list(grads[:len(fc)])
        for j, k in enumerate(fc):
            if k in gsv:
                new_g_c[j] = new_g_c[j] + gsv_t[gsv.index(k)]
        new_acc = [a + g for a, g in zip(acc, grads[len(fc) + len(fx):])]
        return new_g_c + new_acc, list(grads[len(fc):len(fc) + len(fx)])

    binit = [g_final[k] if g_final[k] is not None else zeros_like(init[k]) for k in fc]
    binit += [zeros_like(static[k]) for k in fp]
    bxs = list(xs) + saved + [g_ys[k] for k in gy] + [g_saved[k] for k in gsv]
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
