"""How the fuzzer decides two results agree, and the gradient check.

Values: same shape and dtype; ints and bools equal; floats close (nan where
nan, inf where inf with its sign, +0.0 and -0.0 told apart unless asked not
to), within a tolerance for the least precise float dtype the value was
computed through (float32 anywhere upstream: float32 rounding). The tolerance
is relative to the largest magnitude upstream: a float32 sum of cancelling
terms of size 100 is only good to ~1e-5 absolute.

A difference is a "mismatch" unless the program is numerically unstable at
these inputs (`unstable`): then any two correct backends may disagree -- a
float comparison of values closer than rounding, argmax of a near-tie, a cast
to int near an integer, a log or a division by a rounding-sized number, an
overflow. The fuzzer counts those separately and does not call them failures.

Gradients: gc.grad of a weighted sum of a float output, in float64 on the
interpreter, against central finite differences; elements where the function
is not smooth (one-sided differences disagree: a kink, a jump) are skipped.
"""
import numpy as np

import graphc as gc
from graphc.core.graph import ancestors
from graphc.core.types import TensorType

RTOL = {np.dtype(np.float32): 2e-4, np.dtype(np.float64): 1e-9}
EXACT_OPS = {"placeholder", "variable", "constant", "negative", "abs", "relu", "maximum", "minimum", "max", "min",
             "where", "sign", "reshape", "transpose", "getitem", "broadcast_to", "broadcast_like", "concatenate",
             "pad", "split", "expand_dims", "squeeze", "reshape_like", "unslice", "one_hot", "size", "cast", "neg",
             "T", "random.uniform", "max_pool2d", "max_pool2d_select"}
SINGULAR = {"divide": 1, "reciprocal": 0, "log": 0, "sqrt": 0, "power": 0}    # op: which input
# ops whose result's sign of zero is the implementation's choice: ties of -0.0 and +0.0 in max/min
# (numpy: min([-0.0, 0.0]) is 0.0), and approximate math (a polynomial's tanh(-0.0) may be +0.0)
SIGN_LOOSE = {"max", "min", "maximum", "minimum", "relu", "leaky_relu", "elu", "tanh", "sigmoid", "softplus",
              "exp", "log", "sqrt", "softmax", "log_softmax", "matmul", "power", "random.normal",
              # sums of products like matmul's (an accumulator that starts at +0.0, or the first term)
              "conv2d", "conv2d_grad_input", "conv2d_grad_weight", "avg_pool2d", "avg_pool2d_grad",
              "max_pool2d_grad"}
# the max pools, whose first input's arg-max per window decides a result: op -> its kernel's argument index
ARGMAX_POOLS = {"max_pool2d_grad": 2, "max_pool2d_select": 2, "max_pool2d": 1}
# what gc.grad may refuse (the README's "Gradients" limits); any other refusal is a failure
DOCUMENTED_GRAD_LIMITS = ("the gradient of concatenate needs the size",)
COMPARISONS = {"equal", "not_equal", "less", "less_equal", "greater", "greater_equal"}


def differ(a, b, rtol, scale=1.0, signed_zeros=True):
    """Why array a (the backend's) is not b (the oracle's), or None when they agree."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return f"got {a.dtype}{list(a.shape)}, want {b.dtype}{list(b.shape)}"
    if a.dtype.kind != "f":
        bad = a != b
        if bad.any():
            k = np.argwhere(bad)[0]
            return f"at {tuple(int(i) for i in k)}: got {a[tuple(k)]!r}, want {b[tuple(k)]!r} ({int(bad.sum())} differ)"
        return None
    with np.errstate(invalid="ignore", over="ignore"):
        nan = np.isnan(a) != np.isnan(b)
        fin = np.isfinite(a) & np.isfinite(b)
        inf = ~fin & ~np.isnan(a) & ~np.isnan(b) & (a != b)
        atol = rtol * max(1.0, scale, float(np.max(np.abs(b[fin]), initial=0.0)))
        far = fin & (np.abs(a - b) > atol + rtol * np.abs(b))
        zero = (a == 0) & (b == 0) & (np.signbit(a) != np.signbit(b)) if signed_zeros else np.zeros_like(fin)
    bad = nan | inf | far | zero
    if bad.any():
        k = tuple(int(i) for i in np.argwhere(bad)[0])
        what = "sign of zero" if zero[k] else "value"
        return f"{what} at {k}: got {a[k]!r}, want {b[k]!r} ({int(bad.sum())} of {a.size} differ)"
    return None


def float_dtypes(prog, types, name):
    """The float dtypes upstream of name (itself included): what its rounding went through.
    A variable's update counts as upstream of it: a later call reads the value the update
    wrote (a float64 variable updated by a float32 sum carries float32 rounding)."""
    steps = prog.step_of()
    update_of = dict(prog.updates)
    seen, todo, out = set(), [name], set()
    from .fuzz_ir import refs
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        if n in types and types[n].kind == "f":
            out.add(types[n])
        s = steps[n]
        todo.extend(refs(s.args) + refs(list(s.kwargs.values())))
        if n in update_of:
            todo.append(update_of[n])
    return out, seen


def tolerance(prog, types, name):
    dts, _ = float_dtypes(prog, types, name)
    return max((RTOL[d] for d in dts), default=0.0)


def upstream_scale(values, names):
    """The largest finite magnitude among these intermediate values (integers too: a mean of
    int64 values near 2**63 that cancel rounds like any float sum)."""
    m = 1.0
    for n in names:
        v = values.get(n)
        if v is not None and v.dtype.kind in "fiu" and v.size:
            v = v.astype(np.float64)
            with np.errstate(invalid="ignore"):
                fin = np.abs(v[np.isfinite(v)])
            m = max(m, float(fin.max(initial=0.0)))
    return m


def exact_names(prog, types):
    """Results every correct backend computes bit for bit: sources, ints, bools, and float
    results of exact ops (negation, max, slicing, casts, ...) on exact inputs."""
    from .fuzz_ir import refs
    exact = set()
    for s in prog.steps:
        fn = prog.op_of(s.outs[0])
        ins = refs(s.args)
        for o in s.outs:
            if types.get(o) is not None and types[o].kind != "f" and s.fn not in ("cast",):
                exact.add(o)
            elif fn in EXACT_OPS and all(i in exact for i in ins):
                exact.add(o)
    return exact


def unstable(prog, types, values, names, rtol):
    """Why the results named are numerically ill-defined at these inputs (None: they are not).
    values: the interpreter's value of every intermediate."""
    from .fuzz_ir import refs
    exact = exact_names(prog, types)
    steps = prog.step_of()
    tol = max(rtol, 1e-12) * 10 * upstream_scale(values, names)
    for n in names:
        s = steps[n]
        ins = [i for i in refs(s.args) if i in values]
        fin = [values[i] for i in ins]
        fn = prog.op_of(n)
        inexact = [i for i in ins if i not in exact and values[i].dtype.kind == "f"]
        if not inexact:
            continue
        with np.errstate(all="ignore"):
            if any(np.any(~np.isfinite(values[i]) | (np.abs(values[i]) > 1e30)) for i in inexact):
                return f"{n} = {fn}(...) reads an overflowed or non-finite inexact value"
            if fn in COMPARISONS and len(fin) == 2:
                gap = np.abs(np.subtract(*np.broadcast_arrays(*[np.asarray(f, np.float64) for f in fin])))
                if gap.size and gap.min() <= tol:
                    return f"{n} = {fn}: operands closer than rounding ({gap.min():.3g})"
            if fn == "sign" or (fn == "cast" and types[n].kind in "iub"):
                x = np.asarray(fin[0], np.float64)
                near = np.abs(x - np.round(x)) if types[n].kind in "iu" else np.abs(x)
                if x.size and (near.min() <= tol * max(1.0, np.abs(x).max()) or np.abs(x).max() >= 2 ** 31):
                    return f"{n} = {fn}: an input within rounding of a step (or out of range)"
            if fn in ("argmax", "argmin"):
                x = np.sort(np.asarray(fin[0], np.float64).reshape(-1))
                if x.size > 1 and np.min(np.diff(x)) <= tol:
                    return f"{n} = {fn}: a near-tie"
            # which element of a max-pool window is its arg-max decides max_pool2d_grad/select, and the
            # gradient of max_pool2d (not its value): a near-tie of an inexact input is a coin toss
            if fn in ARGMAX_POOLS and ins and ins[0] in inexact and (fn != "max_pool2d" or any(
                    steps[m].fn == "grad" for m in names)) and _pool_near_tie(s, values[ins[0]], tol):
                return f"{n} = {fn}: a window's two largest values are within rounding (which is its arg-max?)"
            if fn in SINGULAR:
                k = SINGULAR[fn]
                x = np.asarray(fin[k if k < len(fin) else 0], np.float64)
                if x.size and (np.abs(x).min() <= tol or fn == "power"):
                    return f"{n} = {fn}: an input within rounding of its singularity"
            if fn in ("softmax", "log_softmax", "exp", "softplus", "sigmoid", "tanh", "elu") and fin:
                x = np.asarray(fin[0], np.float64)
                if x.size and np.abs(x).max() > 60:
                    return f"{n} = {fn}: a large input (overflow / saturation)"
    return None


def _pool_near_tie(step, x, tol):
    """Are the two largest values of some window of this max-pool step's input x within tol?"""
    from graphc.ops.pool import pool_attrs, pool_shape, windows
    kw = step.kwargs
    kernel = kw.get("kernel", step.args[ARGMAX_POOLS[step.fn]] if len(step.args) > ARGMAX_POOLS[step.fn] else None)
    attrs = pool_attrs(step.fn, kernel, kw.get("stride"), kw.get("padding", 0), kw.get("ceil_mode", False))
    out_hw = pool_shape(step.fn, x.shape, **attrs)[2:]
    win, _ = windows(np.asarray(x, np.float64), attrs["kernel"], attrs["stride"], attrs["padding"], out_hw, -np.inf)
    if win.shape[-1] < 2 or not win.size:
        return False
    top = np.sort(win, axis=-1)[..., -2:]
    with np.errstate(invalid="ignore"):
        return bool(np.any(top[..., 1] - top[..., 0] <= tol))


# ---------------------------------------------------------------- gradients against finite differences


def check_gradient(prog, out_name, rng, n_points=8, h=1e-5):
    """None, or (kind, why) when gc.grad of sum(w * out) w.r.t. the float sources disagrees with finite
    differences: kind "mismatch", or "unstable" for a nan born of a singularity. Builds prog in
    float64 on the interpreter; raises what building raises."""
    from .fuzz_ir import build, feeds
    with gc.Graph("fuzz_grad"):
        env, inputs, outputs, _ = build(prog, float64=True)
        o = env[out_name]
        w = rng.uniform(0.5, 1.5, size=tuple(1 if d is None else d for d in o.shape))
        y = gc.sum(o * gc.constant(w.astype(o.dtype)))
        wrt = [x for x in inputs + [env[s.outs[0]] for s in prog.steps if s.fn == "variable"]
               if x.dtype.kind == "f" and x in ancestors([y])]
        if not wrt:
            return None
        grads = gc.grad(y, wrt, unconnected="zero")
        f = gc.function(inputs, [y] + grads)
        fy = gc.function(inputs, y)
        forward = [n for n in ancestors([y]) if isinstance(n.type, TensorType) and n.dtype.kind == "f"]
        singular = [(n, n.inputs[SINGULAR[n.op.name]]) for n in forward if n.op.name in SINGULAR
                    and len(n.inputs) > SINGULAR[n.op.name]]
        # comparisons of floats: at a tie (x == c) a where() takes one branch, and so does its
        # gradient, as in any autodiff, even where the two branches meet continuously
        compared = [x for n in ancestors([y]) if n.op.name in COMPARISONS
                    and all(x.dtype.kind == "f" for x in n.inputs[:2]) for x in n.inputs[:2]]
        f_all = gc.function(inputs, [n for n in forward] + [x for _, x in singular] + compared)
    args = feeds(prog, 0, float64=True)
    got = f(*args)
    values = f_all(*args)
    pairs, values = values[len(values) - len(compared):], values[:len(values) - len(compared)]
    ties = any(np.any(np.equal(a, b)) for a, b in zip(pairs[::2], pairs[1::2]))
    # the chain rule's 0 * inf: a nan gradient where the forward pass meets a singularity (sqrt at 0,
    # x / 0, 0 ** y, ...) or a non-finite value, as in any autodiff; finite differences see a constant
    # (a negative base of a power too: d/db a ** b = a ** b * log(a), nan there, as in JAX and
    # PyTorch, even where b's own gradient is 0 and the total is 0)
    touchy = ties or any(not np.all(np.isfinite(v)) for v in values[:len(forward)]) or \
        any(np.any(v == 0) or n.op.name == "power" and np.any(v < 0)
            for (n, _), v in zip(singular, values[len(forward):]))
    y0, grads = float(got[0]), got[1:]
    if not np.isfinite(y0):
        return None

    def at(x, flat_index, delta):
        """y with one element of source x moved by delta."""
        if x.op.name == "placeholder":
            k = inputs.index(x)
            a = np.array(args[k])
            a.flat[flat_index] += delta
            return float(fy(*args[:k], a, *args[k + 1:]))
        old = gc.get_value(x)
        new = np.array(old)
        new.flat[flat_index] += delta
        gc.set_value(x, new)
        try:
            return float(fy(*args))
        finally:
            gc.set_value(x, old)

    for x, g in zip(wrt, grads):
        want = args[inputs.index(x)].shape if x in inputs else np.shape(gc.get_value(x))
        if g.shape != want:
            return "mismatch", f"the gradient of {x.name} has shape {g.shape}, {x.name} has {want}"
    points = [(x, g, k) for x, g in zip(wrt, grads) for k in range(g.size)]
    for j in rng.permutation(len(points))[:n_points]:
        x, g, k = points[j]
        plus, minus = at(x, k, h), at(x, k, -h)
        plus4, minus4 = at(x, k, h / 4), at(x, k, -h / 4)
        if not all(np.isfinite([plus, minus, plus4, minus4])):
            continue
        central, central4 = (plus - minus) / (2 * h), (plus4 - minus4) / (h / 2)
        fwd, bwd = (plus - y0) / h, (y0 - minus) / h
        noise = 1e-13 * max(1.0, abs(y0)) / h
        tol = 1e-3 * max(1.0, abs(central)) + 40 * noise
        if abs(fwd - bwd) > tol or abs(central - central4) > tol:
            continue                                  # not smooth here: a kink (one-sided slopes differ)
                                                      # or a jump (the difference grows as h shrinks)
        analytic = float(g.reshape(-1)[k])
        if not np.isfinite(analytic) and any(s.fn == "prod" for s in prog.steps):
            continue                                  # documented: prod's rule divides by x (nan at 0)
        if not np.isfinite(analytic) or abs(analytic - central) > 1e-4 * max(1.0, abs(central)) + 40 * noise:
            index = tuple(int(i) for i in np.unravel_index(k, g.shape))
            why = (f"d sum(w * {out_name}) / d {x.name}{list(index)}: gc.grad gives "
                   f"{analytic!r}, finite differences {central!r}")
            return ("unstable" if touchy and (ties or not np.isfinite(analytic)) else "mismatch"), why
    return None
