"""The fuzzer's structured steps: conv2d, the pools, their gradient ops called directly, and scan.
See graphc/tools/fuzz_ops.py for the conventions (g.pick / g.fresh / g.emit).

Images are small NCHW float tensors (N <= 2 or the size N, C <= 4, H, W <= 6), made fresh, or
taken from the pool (a rank-4 entry, or a rank-2/3 one given leading axes). Every attribute is
drawn in all its spellings (an int or a pair; padding "valid", "same", p, (ph, pw) or
((top, bottom), (left, right)); defaults sometimes left out), and only configurations whose
output is positive are kept, except in a wild step. The gradient ops are fed the forward op's
result or a fresh tensor of the shape their infer wants.

scan takes a Python function, which a Step cannot hold: a scan step names a body template
(SCAN_BODIES: a lambda's source, with {0}, {1} for the captured values) and lists the carries,
the xs and the captured values as V references, so pruning and printing see them like any
operand. fuzz_ir.build_step builds the function from the source (fuzz_scan.py), and fmt_step
prints the same source: the printed program is the program.
"""
import numpy as np

import graphc as gc
from graphc.core.errors import ShapeError
from graphc.ops.conv import conv_attrs, conv_out
from graphc.ops.pool import pool_attrs, pool_shape

from .fuzz_ir import V
from .fuzz_scan import SCAN_BODIES

FLOAT = (np.dtype(np.float32), np.dtype(np.float64))

# ---------------------------------------------------------------- images


def _known(g, name, axes):
    return all(isinstance(g.sym(name)[a], int) and g.sym(name)[a] >= 1 for a in axes)


def _image(g):
    """A float NCHW tensor with known C, H, W >= 1: from the pool or fresh."""
    r = g.r
    if r.random() < 0.5:
        x = g.pick_name(lambda n: g.node(n).ndim == 4 and g.node(n).dtype in FLOAT and _known(g, n, (1, 2, 3)))
        if x is not None:
            return x
    if r.random() < 0.3:        # a pool entry as an image: x[None, None] or x[None]
        x = g.pick_name(lambda n: g.node(n).ndim in (2, 3) and g.node(n).dtype in FLOAT
                        and _known(g, n, range(g.node(n).ndim)))
        if x is not None:
            return g.emit("getitem", V(x), (None,) * (4 - g.node(x).ndim))
    n = r.choice(["N", 1, 2]) if g.uses_n else r.choice([1, 1, 2])
    shape = (n, r.randint(1, 4), r.randint(1, 6), r.randint(1, 6))
    return g.fresh(shape, r.choice(FLOAT))


def _some(g, shape, dtype):
    """A tensor of this sym shape: a pool entry that has it, else fresh (None when it cannot be made)."""
    same = g.pick_name(lambda n: g.sym(n) == shape and g.node(n).dtype == dtype, recent=0)
    if same is not None and g.r.random() < 0.5:
        return same
    if any(isinstance(d, tuple) for d in shape):
        return None
    return g.fresh(shape, dtype)


def _pair(g, lo, hi):
    a = g.r.randint(lo, hi)
    return a if g.r.random() < 0.6 else (a, g.r.randint(lo, hi))


def _both(v):
    return v if isinstance(v, tuple) else (v, v)


# ---------------------------------------------------------------- conv2d


def _conv_config(g, hw, c):
    """(kernel (kh, kw), groups, kwargs) of a conv2d over an input of spatial size hw with c
    channels whose output is positive, or None."""
    r = g.r
    groups = r.choice([d for d in range(1, c + 1) if c % d == 0])
    for _ in range(6):
        k = (r.randint(1, 3), r.randint(1, 3))
        kw = {"stride": _pair(g, 1, 3) if r.random() < 0.5 else 1,
              "padding": r.choice(["valid", "same", "same", 1, (1, 0), ((0, 1), (2, 0)), ((1, 1), (0, 1))]),
              "dilation": _pair(g, 1, 2) if r.random() < 0.3 else 1, "groups": groups}
        attrs = conv_attrs("conv2d", hw, k, kw["stride"], kw["padding"], kw["dilation"], groups)
        out = [conv_out(s, kk, st, d, p) for s, kk, st, d, p in
               zip(hw, k, attrs["stride"], attrs["dilation"], attrs["padding"])]
        if min(out) >= 1 or g.wild:
            kw = {a: v for a, v in kw.items() if v not in (1, "valid") or r.random() < 0.3}
            return k, groups, kw
    return None


def conv2d(g):
    """conv2d(x, w) and, sometimes, conv2d_grad_input / conv2d_grad_weight of its result."""
    r = g.r
    x = _image(g)
    _, c, h, w = g.sym(x)
    dt = g.node(x).dtype
    config = _conv_config(g, (h, w), c)
    if config is None:
        return
    (kh, kw_), groups, kw = config
    o = groups * r.randint(1, 2)
    wt = g.fresh((o, c // groups, kh, kw_) if not g.wild else (r.randint(1, 3), c, kh, kw_), dt)
    y = g.emit("conv2d", V(x), V(wt), **kw)
    form = r.random()
    if form < 0.2:              # dL/dx for g = the result (or a fresh tensor of its shape)
        gy = y if r.random() < 0.5 else _some(g, g.sym(y), dt)
        if gy is not None:
            g.emit("conv2d_grad_input", V(gy), V(wt), (h, w), **kw)
    elif form < 0.4:            # dL/dw
        gy = y if r.random() < 0.5 else _some(g, g.sym(y), dt)
        if gy is not None:
            g.emit("conv2d_grad_weight", V(x), V(gy), (kh, kw_) if r.random() < 0.7 else [kh, kw_], **kw)


# ---------------------------------------------------------------- pools


def _pool_config(g, hw, avg):
    """(kernel, kwargs) of a pool over spatial size hw with a positive output, or None."""
    r = g.r
    for _ in range(6):
        kernel = _pair(g, 1, 3)
        kh, kw = _both(kernel)
        kwargs = {}
        if r.random() < 0.6:
            kwargs["stride"] = r.choice([None, 1, 2, (1, 2), (2, 1), 3])
        if r.random() < 0.5:
            ph, pw = r.randint(0, kh // 2), r.randint(0, kw // 2)
            kwargs["padding"] = r.choice([ph, (ph, pw), ((r.randint(0, kh // 2), ph), (pw, r.randint(0, kw // 2)))])
        if r.random() < 0.4:
            kwargs["ceil_mode"] = r.random() < 0.7
        if avg and r.random() < 0.5:
            kwargs["count_include_pad"] = r.random() < 0.5
        try:
            a = pool_attrs("pool", kernel, kwargs.get("stride"), kwargs.get("padding", 0),
                           kwargs.get("ceil_mode", False))
            pool_shape("pool", (1, 1) + tuple(hw), **a)
            return kernel, kwargs
        except ShapeError:
            if g.wild:
                return kernel, kwargs
    return None


def pool(g):
    """max_pool2d / avg_pool2d / global_avg_pool2d and, sometimes, the ops of their gradients."""
    r = g.r
    x = _image(g)
    n, c, h, w = g.sym(x)
    dt = g.node(x).dtype
    op = r.choice(["max_pool2d", "max_pool2d", "max_pool2d", "avg_pool2d", "avg_pool2d", "global_avg_pool2d"])
    if op == "global_avg_pool2d":
        g.emit(op, V(x))
        return
    config = _pool_config(g, (h, w), op == "avg_pool2d")
    if config is None:
        return
    kernel, kw = config
    y = g.emit(op, V(x), kernel, **kw)
    if r.random() > 0.5:
        return
    if op == "avg_pool2d":     # dL/dx of the average for g = the result, or a fresh one
        gy = y if r.random() < 0.5 else _some(g, g.sym(y), dt)
        if gy is not None:
            g.emit("avg_pool2d_grad", V(gy), (h, w), kernel, **kw)
    elif r.random() < 0.5:      # g at each window's arg-max
        gy = y if r.random() < 0.4 else _some(g, g.sym(y), dt)
        if gy is not None:
            g.emit("max_pool2d_grad", V(x), V(gy), kernel, **kw)
    else:                       # G (x's shape) read at each window's arg-max
        big = _some(g, g.sym(x), dt) if r.random() < 0.6 else g.emit("binop", "*", V(x), -2.0)
        if big is not None:
            g.emit("max_pool2d_select", V(x), V(big), kernel, **kw)


# ---------------------------------------------------------------- scan


def _sequence(g, kinds, ndim=None):
    """xs for a scan: a pool entry (T, ...) whose non-time axes are known or N, or a fresh one."""
    r = g.r
    if r.random() < 0.5:
        xs = g.pick_name(lambda n: g.node(n).ndim >= 1 and g.node(n).dtype.kind in kinds
                         and (ndim is None or g.node(n).ndim in ndim)
                         and all(not isinstance(d, tuple) for d in g.sym(n)[1:]), recent=0.5)
        if xs is not None:
            return xs
    nd = r.choice(ndim or (1, 2, 3))
    t = r.choice(["N", 1, 2, 3, 4]) if g.uses_n else r.choice([0, 1, 2, 3, 4])
    shape = (t,) + tuple(r.randint(1, 3) for _ in range(nd - 1))
    dts = [d for d in (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int32), np.dtype(np.int64))
           if d.kind in kinds]
    return g.fresh(shape, r.choice(dts))


def scan(g):
    """gc.scan of a body drawn from SCAN_BODIES, sometimes in reverse."""
    r = g.r
    template = r.choice(["cumsum", "cumsum", "rnn", "rnn", "pair", "decay"])
    _, is_tuple, n_y, kinds = SCAN_BODIES[template]
    captured = []
    if template == "rnn":          # h (B, H) or (H,); xs (T, B, D) or (T, D); captured W (H, H), U (D, H)
        xs = _sequence(g, kinds, ndim=(2, 3))
        sym, dt = g.sym(xs), g.node(xs).dtype
        hidden = r.randint(1, 3)
        h0 = _some(g, sym[1:-1] + (hidden,), dt)
        captured = [g.fresh((hidden, hidden), dt, kinds=("variable", "constant")),
                    g.fresh((sym[-1], hidden), dt, kinds=("variable", "constant", "placeholder"))]
        init = [h0]
    else:
        xs = _sequence(g, kinds)
        sym, dt = g.sym(xs), g.node(xs).dtype
        init = [_some(g, sym[1:], dt) for _ in range(2 if is_tuple else 1)]
    if any(i is None for i in init):
        return
    kw = {"reverse": True} if r.random() < 0.35 else {}
    n_c = len(init)
    g.emit("scan", template, [V(i) for i in init], [V(xs)], [V(c) for c in captured], n=n_c + n_y, **kw)
