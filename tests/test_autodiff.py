"""Reverse-mode autodiff (gc.grad) beyond one op at a time.

1. Random composite graphs (hypothesis): small DAGs of differentiable ops over
   1-3 float64 placeholders, intermediates reused so that several paths reach
   the same node, checked against central finite differences (check_grad).
2. Second derivatives: grad of grad against analytic formulas, a Hessian-vector
   product of a 2-layer MLP against finite differences of its gradient, and
   check_grad of gradient graphs (the gradient graph is differentiable again).
3. Behavior: errors (non-scalar y, int y, unconnected xs, foreign nodes),
   zeros for unconnected and no-grad paths, single node vs list, broadcasting
   summed back with None batch sizes, dtypes, DOT and compilation of the
   gradient graph, SGD with variables, and the documented tie rules.

The per-op table is tests/test_grad_registry.py; this file does not repeat it.
"""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.ops.linalg import matmul_shape
from graphc.core.types import broadcast_shapes

try:
    from .gradcheck import check_grad, numeric_grad
except ImportError:
    from gradcheck import check_grad, numeric_grad

# ====================================================================== 1. random composite graphs
#
# A graph is drawn as a program: a list of Steps, each an op applied to
# earlier entries of a pool that starts with the placeholders. The program is
# drawn against a scratch graph (so graphc itself says which shapes fit) and
# replayed by make_y on check_grad's placeholders. Each pool entry carries a
# bound on |value|; a step whose result could exceed MAX_BOUND is not drawn,
# which keeps the finite differences accurate at check_grad's tolerances.

INPUT_SHAPES = [(), (4,), (3, 1), (1, 4), (3, 4), (2, 3, 4), (2, 1, 4)]
INPUT_BOUND = 1.5
MAX_BOUND = 30.0
MAX_SIZE = 48
MAX_NDIM = 3


class Step:
    """One op of a program: pool.append(BUILD[op](*[pool[i] for i in args], **params))."""

    def __init__(self, op, args, **params):
        self.op, self.args, self.params = op, tuple(args), params

    def build(self, pool):
        return BUILD[self.op](*[pool[i] for i in self.args], **self.params)

    def __repr__(self):
        params = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"{self.op}({', '.join(f'v{i}' for i in self.args)}{params})"


def _positive(x):
    return gc.softplus(x) + 0.1                     # >= 0.1: safe for log, sqrt and dividing by


BUILD = {
    "tanh": gc.tanh,
    "sigmoid": gc.sigmoid,
    "exp": lambda x: gc.exp(gc.tanh(x)),            # exp of a bounded value
    "softplus": gc.softplus,
    "square": gc.square,
    "negative": gc.negative,
    "abs": lambda x, shift: gc.abs(x + shift),      # |shift| > |x|: never near the kink at 0
    "log": lambda x: gc.log(_positive(x)),
    "sqrt": lambda x: gc.sqrt(_positive(x)),
    "add": gc.add,
    "subtract": gc.subtract,
    "multiply": gc.multiply,
    "divide": lambda a, b: a / _positive(b),
    "maximum": gc.maximum,
    "minimum": gc.minimum,
    "sum": gc.sum,
    "mean": gc.mean,
    "max": gc.max,
    "min": gc.min,
    "matmul": gc.matmul,
    "matmul_t": lambda a, b: gc.matmul(a, gc.transpose(b)),     # a @ b.T, e.g. x @ x.T
    "reshape": gc.reshape,
    "transpose": gc.transpose,
    "getitem": gc.getitem,
    "concatenate": lambda a, b, axis: gc.concatenate([a, b], axis=axis),
    "softmax": gc.softmax,
    "log_softmax": gc.log_softmax,
}

UNARY_BOUND = {
    "tanh": lambda b: 1.0,
    "sigmoid": lambda b: 1.0,
    "exp": lambda b: math.e,
    "softplus": lambda b: b + 1.0,
    "square": lambda b: b * b,
    "negative": lambda b: b,
    "log": lambda b: max(-math.log(0.1), math.log(b + 1.1)),
    "sqrt": lambda b: math.sqrt(b + 1.1),
}
BINARY_BOUND = {
    "add": lambda a, b: a + b,
    "subtract": lambda a, b: a + b,
    "multiply": lambda a, b: a * b,
    "divide": lambda a, b: a * 10.0,
    "maximum": max,
    "minimum": max,
}
REDUCTIONS = ["sum", "mean", "max", "min"]
OTHERS = ["abs", "matmul", "matmul_t", "reshape", "transpose", "getitem", "concatenate",
          "softmax", "log_softmax"]
# hypothesis draws the first entry most often: make it one that joins two paths
ALL_OPS = ["multiply"] + sorted(set(UNARY_BOUND) | set(BINARY_BOUND) - {"multiply"}) + REDUCTIONS + OTHERS


def _fits(shape):
    return len(shape) <= MAX_NDIM and math.prod(shape) <= MAX_SIZE


def _broadcasts(a, b):
    try:
        return _fits(broadcast_shapes(a, b))
    except gc.ShapeError:
        return False


def _matmul_ok(a, b):
    try:
        return _fits(matmul_shape(a, b))
    except gc.ShapeError:
        return False


@st.composite
def _slice_key(draw, shape):
    """A basic index that keeps at least one element: ints, slices (any step sign), None, ..."""
    key = []
    for d in shape:
        kind = draw(st.sampled_from(["all", "int", "slice", "slice", "new"] if d > 1 else ["all", "int", "new"]))
        if kind == "new":
            key.append(None)
            kind = "all"
        if kind == "all":
            key.append(slice(None))
        elif kind == "int":
            key.append(draw(st.integers(-d, d - 1)))
        else:
            start = draw(st.none() | st.integers(-d, d - 1))
            stop = draw(st.none() | st.integers(-d, d))
            step = draw(st.sampled_from([None, 1, 2, -1, -2]))
            s = slice(start, stop, step)
            key.append(s if len(range(*s.indices(d))) else slice(None, None, step))
    if key[0] == slice(None) and draw(st.booleans()):
        key[0] = Ellipsis
    return tuple(key)


def _reshape_targets(shape):
    n = math.prod(shape)
    targets = {(n,), (1, n), tuple(reversed(shape)), (n, 1)}
    targets |= {(a, n // a) for a in range(2, n) if n % a == 0}
    targets |= {(a, b, n // (a * b)) for a in (1, 2, 3) for b in (2, 3, 4) if n % (a * b) == 0}
    return sorted(t for t in targets if _fits(t))


@st.composite
def _step(draw, pool, bounds):
    """One Step that fits the pool, with its result's bound; None if the drawn op does not fit."""
    op = draw(st.sampled_from(ALL_OPS))
    index = st.integers(0, len(pool) - 1)
    i = draw(index)
    x, b = pool[i], bounds[i]
    if op in UNARY_BOUND:
        return Step(op, [i]), UNARY_BOUND[op](b)
    if op == "abs":
        shift = (b + 0.5) * draw(st.sampled_from([1, -1]))
        return Step(op, [i], shift=shift), 2 * b + 0.5
    if op in BINARY_BOUND:
        fit = [j for j, y in enumerate(pool) if _broadcasts(x.shape, y.shape)]
        j = draw(st.sampled_from(fit))
        if draw(st.booleans()):
            i, j = j, i
        return Step(op, [i, j]), BINARY_BOUND[op](bounds[i], bounds[j])
    if op in REDUCTIONS:
        if x.ndim == 0:
            return None
        axes = draw(st.none() | st.lists(st.integers(0, x.ndim - 1), min_size=1, unique=True))
        if axes is not None:
            axes = tuple(a - x.ndim if draw(st.booleans()) else a for a in axes)   # negative axes too
            if len(axes) == 1 and draw(st.booleans()):
                axes = axes[0]
        keepdims = draw(st.booleans())
        n = math.prod(x.shape) // max(1, math.prod(_reduced(x.shape, axes)))
        return Step(op, [i], axis=axes, keepdims=keepdims), b * n if op == "sum" else b
    if op in ("matmul", "matmul_t"):
        if x.ndim == 0:
            return None
        if op == "matmul":
            fit = [j for j, y in enumerate(pool) if y.ndim and _matmul_ok(x.shape, y.shape)]
        else:
            fit = [j for j, y in enumerate(pool) if y.ndim == 2 and _matmul_ok(x.shape, y.shape[::-1])]
        if not fit:
            return None
        j = draw(st.sampled_from(fit))
        k = x.shape[-1]
        return Step(op, [i, j]), b * bounds[j] * k
    if op == "reshape":
        target = draw(st.sampled_from(_reshape_targets(x.shape)))
        if target and draw(st.booleans()):
            unknown = draw(st.integers(0, len(target) - 1))
            target = tuple(-1 if a == unknown else d for a, d in enumerate(target))
        return Step(op, [i], shape=target), b
    if op == "transpose":
        if x.ndim < 2:
            return None
        axes = draw(st.none() | st.permutations(range(x.ndim)).map(tuple))
        return Step(op, [i], axes=axes), b
    if op == "getitem":
        if x.ndim == 0:
            return None
        key = draw(_slice_key(x.shape))
        return Step(op, [i], key=key), b
    if op == "concatenate":
        if x.ndim == 0:
            return None
        axis = draw(st.integers(0, x.ndim - 1))
        fit = [j for j, y in enumerate(pool)
               if y.ndim == x.ndim and all(p == q for a, (p, q) in enumerate(zip(x.shape, y.shape)) if a != axis)
               and _fits(x.shape[:axis] + (x.shape[axis] + y.shape[axis],) + x.shape[axis + 1:])]
        if not fit:
            return None
        j = draw(st.sampled_from(fit))
        return Step(op, [i, j], axis=axis), max(b, bounds[j])
    if op in ("softmax", "log_softmax"):
        if x.ndim == 0:
            return None
        axis = draw(st.integers(-x.ndim, x.ndim - 1))
        return Step(op, [i], axis=axis), 1.0 if op == "softmax" else 2 * b + math.log(x.shape[axis])
    raise AssertionError(op)


def _reduced(shape, axes):
    if axes is None:
        return ()
    axes = {a % len(shape) for a in ((axes,) if isinstance(axes, int) else axes)}
    return tuple(d for a, d in enumerate(shape) if a not in axes)


@st.composite
def programs(draw, max_steps=10):
    """(input shapes, steps): a random DAG over 1-3 placeholders."""
    shapes = draw(st.lists(st.sampled_from(INPUT_SHAPES), min_size=1, max_size=3))
    steps = []
    with gc.Graph():
        pool = [gc.placeholder(s, gc.float64) for s in shapes]
        bounds = [INPUT_BOUND] * len(pool)
        n_steps = draw(st.integers(1, max_steps))
        attempts = 0
        while len(steps) < n_steps and attempts < 4 * max_steps:
            attempts += 1
            drawn = draw(_step(pool, bounds))
            if drawn is None or drawn[1] > MAX_BOUND:
                continue
            step, bound = drawn
            node = step.build(pool)
            if not _fits(node.shape):
                continue
            steps.append(step)
            pool.append(node)
            bounds.append(bound)
    return shapes, steps


def replay(steps, inputs):
    """The program's output: its last node, plus the mean of every other node no step used,
    so that every op contributes to the gradient."""
    pool = list(inputs)
    used = set()
    for step in steps:
        pool.append(step.build(pool))
        used.update(step.args)
    y = pool[-1]
    for k in range(len(inputs), len(pool) - 1):
        if k not in used:
            y = y + gc.mean(pool[k])
    return y


def listing(shapes, steps):
    lines = [f"v{i} = placeholder({s})" for i, s in enumerate(shapes)]
    lines += [f"v{len(shapes) + k} = {step!r}" for k, step in enumerate(steps)]
    return "\n".join(lines)


def _arrays(shapes, seed):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-INPUT_BOUND, INPUT_BOUND, size=s) for s in shapes]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prog=programs(), seed=st.integers(0, 2**32 - 1))
def test_random_graph_gradients_match_finite_differences(prog, seed):
    shapes, steps = prog
    note(listing(shapes, steps))
    check_grad(lambda *xs: replay(steps, xs), _arrays(shapes, seed))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prog=programs(max_steps=6), seed=st.integers(0, 2**32 - 1))
def test_random_graph_second_derivatives_match_finite_differences(prog, seed):
    """The gradient graph of a random program, differentiated again (a Hessian applied to
    check_grad's weights), against finite differences of the gradient graph."""
    shapes, steps = prog
    note(listing(shapes, steps))

    def first_grads(*xs):
        gs = gc.grad(gc.sum(gc.tanh(replay(steps, xs))), list(xs), unconnected="zero")
        return gc.concatenate([gc.reshape(g, (-1,)) for g in gs])
    check_grad(first_grads, _arrays(shapes, seed), rtol=1e-4, atol=1e-5)


def test_shared_intermediate_sums_contributions_from_every_path():
    """h = tanh(x) feeds four uses; dy/dx = sum of the four paths, checked analytically too."""
    x0 = np.linspace(-1, 1, 5)

    def make_y(x):
        h = gc.tanh(x)
        return h * h + gc.sigmoid(h) - h / (gc.softplus(h) + 0.1) + gc.sum(h, keepdims=True)
    check_grad(make_y, [x0])
    with gc.Graph():
        x = gc.placeholder((5,), gc.float64)
        h = gc.tanh(x)
        y = gc.sum(h * h + h + h)
        got = gc.function([x], gc.grad(y, x))(x0)
    t = np.tanh(x0)
    np.testing.assert_allclose(got, (2 * t + 2) * (1 - t * t), rtol=1e-12)


@pytest.mark.parametrize("a_shape,b_shape", [
    ((3, 4), (4, 2)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)),
    ((2, 3, 4), (4, 2)), ((3, 4), (2, 4, 2)), ((2, 1, 3, 4), (3, 4, 2)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,)),
], ids=str)
def test_matmul_gradients_for_every_operand_rank(a_shape, b_shape):
    rng = np.random.default_rng(1)
    check_grad(gc.matmul, [rng.normal(size=a_shape), rng.normal(size=b_shape)])
    check_grad(lambda a, b: gc.tanh(gc.matmul(a, b)) * gc.sum(a), [rng.normal(size=a_shape),
                                                                   rng.normal(size=b_shape)])


# ====================================================================== 2. second derivatives


def _run(inputs, outputs, *arrays):
    return gc.function(inputs, outputs)(*arrays)


def test_second_derivative_of_tanh_cubed():
    x0 = np.linspace(-2, 2, 9)
    with gc.Graph():
        x = gc.placeholder((9,), gc.float64)
        y = gc.sum(gc.tanh(x) ** 3)
        g = gc.grad(y, x)
        h = gc.grad(gc.sum(g), x)        # elementwise y: the Hessian is diagonal, this is its diagonal
        gv, hv = _run([x], [g, h], x0)
    t = np.tanh(x0)
    np.testing.assert_allclose(gv, 3 * t**2 * (1 - t**2), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hv, 6 * t * (1 - t**2) * (1 - 2 * t**2), rtol=1e-12, atol=1e-14)


def test_first_and_second_derivative_of_x_exp_minus_x_squared():
    x0 = np.linspace(-2.5, 2.5, 11)
    with gc.Graph():
        x = gc.placeholder((11,), gc.float64)
        y = gc.sum(x * gc.exp(-x ** 2))
        g = gc.grad(y, x)
        h = gc.grad(gc.sum(g), x)
        h3 = gc.grad(gc.sum(h), x)
        gv, hv, h3v = _run([x], [g, h, h3], x0)
    e = np.exp(-x0**2)
    np.testing.assert_allclose(gv, e * (1 - 2 * x0**2), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hv, e * (4 * x0**3 - 6 * x0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h3v, e * (-8 * x0**4 + 24 * x0**2 - 6), rtol=1e-12, atol=1e-13)


def test_second_derivative_of_a_scalar_placeholder():
    with gc.Graph():
        x = gc.placeholder((), gc.float64)
        y = x ** 3 + gc.sigmoid(x)
        d1 = gc.grad(y, x)
        d2 = gc.grad(d1, x)
        assert d1.shape == d2.shape == ()
        v1, v2 = _run([x], [d1, d2], 0.7)
    s = 1 / (1 + np.exp(-0.7))
    np.testing.assert_allclose(v1, 3 * 0.49 + s * (1 - s), rtol=1e-12)
    np.testing.assert_allclose(v2, 6 * 0.7 + s * (1 - s) * (1 - 2 * s), rtol=1e-12)


def test_power_derivatives_stay_finite_at_zero():
    """d/dx x**0 is 0 (numpy: 0**0 == 1), so repeated derivatives of x**2, x**3 at 0 end in 0,
    not in 0 * 0**-1 = nan; x**b's mixed derivative d2/dxdb is 1/x at b == 0."""
    with gc.Graph():
        x = gc.placeholder((3,), gc.float64, name="x")
        b = gc.placeholder((3,), gc.float64, name="b")
        chains = []
        for y in (gc.sum(x ** 2.0), gc.sum(x ** 3.0), gc.sum(x ** 0.0)):
            d = [y]
            for _ in range(4):
                d.append(gc.grad(gc.sum(d[-1]), x))
            chains.append(d[1:])
        run = gc.function([x], [n for d in chains for n in d])
        out = run(np.array([0.0, 1.0, -2.0]))
        gx = gc.grad(gc.sum(x ** b), x)
        gxb = gc.grad(gc.sum(gx), b)
        mixed = gc.function([x, b], [gx, gxb])(np.array([0.5, 2.0, 0.0]), np.array([0.0, 0.0, 2.0]))
    x0 = np.array([0.0, 1.0, -2.0])
    want = [2 * x0, 2 + 0 * x0, 0 * x0, 0 * x0,                   # x**2
            3 * x0**2, 6 * x0, 6 + 0 * x0, 0 * x0,                # x**3
            0 * x0, 0 * x0, 0 * x0, 0 * x0]                       # x**0
    for k, (got, w) in enumerate(zip(out, want)):
        np.testing.assert_array_equal(got, w, err_msg=f"derivative {k % 4 + 1} of chain {k // 4}")
    np.testing.assert_array_equal(mixed[0], [0, 0, 0])                  # b * x**(b-1)
    np.testing.assert_allclose(mixed[1], [2.0, 0.5, 0.0], rtol=1e-15)  # x**(b-1) * (1 + b log x)


SECOND_ORDER = {
    "tanh": (gc.tanh, [(3, 4)]),
    "sigmoid": (gc.sigmoid, [(3, 4)]),
    "softplus": (gc.softplus, [(3, 4)]),
    "exp": (gc.exp, [(3, 4)]),
    "log": (lambda x: gc.log(gc.softplus(x) + 0.1), [(3, 4)]),
    "sqrt": (lambda x: gc.sqrt(gc.softplus(x) + 0.1), [(3, 4)]),
    "square": (gc.square, [(3, 4)]),
    "multiply": (lambda a, b: a * b * a, [(3, 1), (4,)]),
    "divide": (lambda a, b: a / (gc.softplus(b) + 0.1), [(3, 1), (4,)]),
    "power": (lambda a: (gc.softplus(a) + 0.1) ** 2.5, [(3, 4)]),
    "reciprocal": (lambda a: gc.reciprocal(gc.softplus(a) + 0.1), [(3, 4)]),
    "softmax": (lambda x: gc.softmax(x, axis=0), [(3, 4)]),
    "log_softmax": (gc.log_softmax, [(3, 4)]),
    "matmul": (lambda a, b: gc.tanh(a @ b), [(3, 4), (4, 2)]),
    "mean-sum": (lambda x: gc.square(gc.mean(x, axis=0)) * gc.sum(x, axis=1, keepdims=True), [(3, 4)]),
    "max": (lambda x: gc.square(gc.max(x, axis=1)), [(3, 4)]),
    "maximum": (lambda a, b: gc.square(gc.maximum(a, b)), [(3, 1), (4,)]),
    "slice-reshape": (lambda x: gc.square(gc.reshape(x[:, 1:], (3, 3)).T), [(3, 4)]),
}


@pytest.mark.parametrize("name", sorted(SECOND_ORDER))
def test_gradient_graph_is_differentiable(name):
    """check_grad of make_y = gc.grad(sum(f(x)), x): the second derivative, against finite
    differences of the first (the gradient graph run by the interpreter)."""
    f, shapes = SECOND_ORDER[name]
    rng = np.random.default_rng(7)
    arrays = [rng.uniform(-1.5, 1.5, size=s) for s in shapes]

    def make_grads(*xs):
        gs = gc.grad(gc.sum(gc.constant(rng.uniform(0.5, 1.5, f(*xs).shape)) * f(*xs)), list(xs))
        return gc.concatenate([gc.reshape(g, (-1,)) for g in gs])
    check_grad(make_grads, arrays, rtol=1e-4, atol=1e-6)


def _mlp(X, labels, W1, b1, W2, b2, loss, n_classes):
    logits = gc.tanh(X @ W1 + b1) @ W2 + b2
    if loss == "xent":
        onehot = gc.one_hot(labels, n_classes, dtype=gc.float64)
        return -gc.mean(gc.sum(onehot * gc.log_softmax(logits), axis=1))
    return gc.mean(gc.square(logits - gc.one_hot(labels, n_classes, dtype=gc.float64)))


@pytest.mark.parametrize("loss", ["xent", "squared"])
def test_mlp_hessian_vector_product_matches_finite_differences_of_the_gradient(loss):
    rng = np.random.default_rng(3)
    n, d, hidden, k = 6, 3, 5, 4
    params0 = [rng.normal(size=(d, hidden)), rng.normal(size=hidden) * 0.1,
               rng.normal(size=(hidden, k)), rng.normal(size=k) * 0.1]
    vs0 = [rng.normal(size=p.shape) for p in params0]
    X0, labels0 = rng.normal(size=(n, d)), rng.integers(0, k, size=n)
    with gc.Graph():
        X = gc.placeholder((None, d), gc.float64, name="X")
        labels = gc.placeholder((None,), gc.int64, name="labels")
        params = [gc.placeholder(p.shape, gc.float64, name=nm) for p, nm in zip(params0, ["W1", "b1", "W2", "b2"])]
        vs = [gc.placeholder(p.shape, gc.float64, name="v" + nm) for p, nm in zip(params0, ["W1", "b1", "W2", "b2"])]
        L = _mlp(X, labels, *params, loss, k)
        grads = gc.grad(L, params)
        W1, v1 = params[0], vs[0]
        hv_w1 = gc.grad(gc.sum(grads[0] * v1), W1)                       # H_W1W1 . v, as in the brief
        gv = gc.sum(gc.concatenate([gc.reshape(g * v, (-1,)) for g, v in zip(grads, vs)]))
        hv_all = gc.grad(gv, params)                                    # the full H . v
        grad_fn = gc.function([X, labels] + params, grads)
        hvp_fn = gc.function([X, labels] + params + vs, [hv_w1] + hv_all)

    out = hvp_fn(X0, labels0, *params0, *vs0)
    assert [o.shape for o in out] == [params0[0].shape] + [p.shape for p in params0]
    eps = 1e-5

    def fd(direction):
        hi = grad_fn(X0, labels0, *[p + eps * v for p, v in zip(params0, direction)])
        lo = grad_fn(X0, labels0, *[p - eps * v for p, v in zip(params0, direction)])
        return [(a - b) / (2 * eps) for a, b in zip(hi, lo)]

    only_w1 = [vs0[0]] + [np.zeros_like(p) for p in params0[1:]]
    np.testing.assert_allclose(out[0], fd(only_w1)[0], rtol=1e-5, atol=1e-7)
    for got, want in zip(out[1:], fd(vs0)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    # and the Hessian is symmetric: u . (H v) == v . (H u)
    us0 = [rng.normal(size=p.shape) for p in params0]
    hu = hvp_fn(X0, labels0, *params0, *us0)[1:]
    uhv = sum(np.vdot(u, h) for u, h in zip(us0, out[1:]))
    vhu = sum(np.vdot(v, h) for v, h in zip(vs0, hu))
    np.testing.assert_allclose(uhv, vhu, rtol=1e-10)


# ====================================================================== 3. behavior


def test_non_scalar_y_raises_shape_error_naming_the_shape():
    with gc.Graph():
        x = gc.placeholder((None, 3), gc.float64, name="x")
        with pytest.raises(gc.ShapeError, match=r"scalar.*\(\?, 3\)"):
            gc.grad(gc.tanh(x), x)
        with pytest.raises(gc.ShapeError, match=r"\(3,\)"):
            gc.grad(gc.sum(x, axis=0), x)
        with pytest.raises(gc.ShapeError, match=r"\(1, 1\)"):
            gc.grad(gc.sum(x, keepdims=True), x)


@pytest.mark.parametrize("dtype", [gc.int32, gc.int64, gc.bool_])
def test_non_float_y_raises_graph_error(dtype):
    with gc.Graph():
        x = gc.placeholder((3,), gc.float64, name="x")
        y = gc.cast(gc.sum(x), dtype)
        with pytest.raises(gc.GraphError, match=str(np.dtype(dtype))):
            gc.grad(y, x)


def test_non_float_x_raises_graph_error():
    with gc.Graph():
        i = gc.placeholder((3,), gc.int64, name="idx")
        y = gc.sum(gc.cast(i, gc.float64))
        with pytest.raises(gc.GraphError, match="idx"):
            gc.grad(y, i)


def test_bad_arguments_raise_graph_error():
    with gc.Graph():
        x = gc.placeholder((3,), gc.float64, name="x")
        y = gc.sum(x)
        with pytest.raises(gc.GraphError, match="unconnected"):
            gc.grad(y, x, unconnected="ignore")
        with pytest.raises(gc.GraphError, match="graph node"):
            gc.grad(np.float64(1.0), x)
        with pytest.raises(gc.GraphError, match="not a graph node"):
            gc.grad(y, [x, np.ones(3)])


def test_unconnected_xs_raise_naming_them():
    with gc.Graph():
        x = gc.placeholder((3,), gc.float64, name="x")
        lonely = gc.placeholder((2,), gc.float64, name="lonely")
        alone = gc.variable(np.zeros(4), name="alone")
        y = gc.sum(gc.tanh(x))
        with pytest.raises(gc.GraphError, match="lonely") as info:
            gc.grad(y, [x, lonely, alone])
        assert "alone" in str(info.value) and "unconnected='zero'" in str(info.value)
        named = str(info.value).split("does not depend on")[1].split(";")[0]
        assert named.startswith(" lonely") and named.count("(built at") == 2     # x is connected: not named
        with pytest.raises(gc.GraphError, match="lonely"):
            gc.grad(y, lonely)


def test_unconnected_zero_gives_zeros_of_the_right_shape_and_dtype():
    with gc.Graph():
        x = gc.placeholder((3,), gc.float64, name="x")
        batch = gc.placeholder((None, 3), gc.float32, name="batch")
        var = gc.variable(np.ones((2, 2), np.float32), name="var")
        mid = gc.exp(var)                                   # an intermediate y does not use either
        y = gc.sum(gc.tanh(x))
        gx, gb, gv, gm = gc.grad(y, [x, batch, var, mid], unconnected="zero")
        assert (gb.shape, gb.dtype) == ((None, 3), np.float32)
        assert (gv.shape, gv.dtype) == ((2, 2), np.float32)
        f = gc.function([x, batch], [gx, gb, gv, gm])
        for n in (1, 5):
            ox, ob, ov, om = f(np.ones(3), np.ones((n, 3), np.float32))
            np.testing.assert_allclose(ox, 1 - np.tanh(1.0) ** 2)
            for got, shape in ((ob, (n, 3)), (ov, (2, 2)), (om, (2, 2))):
                assert got.shape == shape and got.dtype == np.float32
                assert not got.any()


NO_GRAD_PATHS = {
    "argmax": lambda x: gc.cast(gc.argmax(x, axis=1), gc.float64),
    "argmin-all": lambda x: gc.cast(gc.argmin(x), gc.float64),
    "greater": lambda x: gc.cast(x > 0.0, gc.float64),
    "equal": lambda x: gc.cast(gc.equal(x, gc.max(x, axis=1, keepdims=True)), gc.float64),
    "sign": gc.sign,
    "cast-to-int": lambda x: gc.cast(gc.cast(x * 3.0, gc.int32), gc.float64),
    "one_hot-of-argmax": lambda x: gc.one_hot(gc.argmax(x, axis=1), 4, dtype=gc.float64),
    "where-on-condition": lambda x: gc.where(x > 0.0, 1.0, -2.0),
    "logical_not": lambda x: gc.cast(~(x > 0.0), gc.float64),
    "size": lambda x: gc.size(x, 0, dtype=gc.float64),
}


@pytest.mark.parametrize("name", sorted(NO_GRAD_PATHS))
def test_x_reached_only_through_no_grad_ops_gets_zeros(name):
    x0 = np.array([[0.5, -1.0, 2.0], [3.0, 0.25, -0.5]])
    with gc.Graph():
        x = gc.placeholder((None, 3), gc.float64, name="x")
        w = gc.placeholder((), gc.float64, name="w")
        y = gc.sum(NO_GRAD_PATHS[name](x)) * w
        gx = gc.grad(y, x)                                  # no error: x is connected, just not smoothly
        gx_zero, gw = gc.grad(y, [x, w], unconnected="zero")
        assert gx.dtype == np.float64
        ox, oz, ow = gc.function([x, w], [gx, gx_zero, gw])(x0, 2.0)
    assert ox.shape == oz.shape == x0.shape and not ox.any() and not oz.any()
    assert np.isfinite(ow)


def test_no_grad_path_next_to_a_smooth_path_keeps_the_smooth_part():
    x0 = np.array([0.5, -1.0, 2.0])
    with gc.Graph():
        x = gc.placeholder((3,), gc.float64)
        y = gc.sum(x * x * gc.cast(x > 0.0, gc.float64) + gc.cast(gc.argmax(x), gc.float64))
        got = gc.function([x], gc.grad(y, x))(x0)
    np.testing.assert_allclose(got, 2 * x0 * (x0 > 0))


def test_single_node_gives_a_node_and_a_list_gives_a_list():
    with gc.Graph():
        a = gc.placeholder((3,), gc.float64, name="a")
        b = gc.placeholder((3,), gc.float64, name="b")
        y = gc.sum(a * b)
        single = gc.grad(y, a)
        assert isinstance(single, gc.Node) and single.shape == (3,)
        one = gc.grad(y, [a])
        assert isinstance(one, list) and len(one) == 1 and isinstance(one[0], gc.Node)
        both = gc.grad(y, [b, a])
        assert isinstance(both, list) and [n.shape for n in both] == [(3,), (3,)]
        from_tuple = gc.grad(y, (a, b))
        assert isinstance(from_tuple, list) and len(from_tuple) == 2
        assert gc.grad(y, []) == []
        gb, ga = gc.function([a, b], both)(np.array([1.0, 2, 3]), np.array([4.0, 5, 6]))
    np.testing.assert_array_equal(gb, [1, 2, 3])
    np.testing.assert_array_equal(ga, [4, 5, 6])


def test_grad_with_respect_to_y_itself_and_to_intermediates():
    x0 = np.array([0.3, -0.2])
    with gc.Graph():
        x = gc.placeholder((2,), gc.float64)
        h = gc.tanh(x)
        y = gc.sum(h * h)
        gy, gh, gx = gc.grad(y, [y, h, x])
        assert gy.shape == () and gh.shape == (2,)
        oy, oh, ox = gc.function([x], [gy, gh, gx])(x0)
    assert oy == 1.0
    np.testing.assert_allclose(oh, 2 * np.tanh(x0))
    np.testing.assert_allclose(ox, 2 * np.tanh(x0) * (1 - np.tanh(x0) ** 2))


def test_x_from_another_graph_raises_foreign_node_error():
    with gc.Graph(name="first"):
        x = gc.placeholder((3,), gc.float64, name="x")
        y = gc.sum(x)
    with gc.Graph(name="second"):
        other = gc.placeholder((3,), gc.float64, name="other")
    with pytest.raises(gc.ForeignNodeError, match=r"other.*second.*first"):
        gc.grad(y, other)
    with pytest.raises(gc.ForeignNodeError, match="other"):
        gc.grad(y, [x, other], unconnected="zero")


def test_bias_gradient_is_summed_over_a_batch_of_any_size():
    rng = np.random.default_rng(5)
    with gc.Graph():
        x = gc.placeholder((None, 3), gc.float64, name="x")
        bias = gc.placeholder((3,), gc.float64, name="bias")
        col = gc.placeholder((1, 3), gc.float64, name="col")
        s = gc.placeholder((), gc.float64, name="s")
        y = gc.sum(gc.square(x + bias) * col + s)
        gx, gbias, gcol, gs = gc.grad(y, [x, bias, col, s])
        assert gbias.shape == (3,) and gcol.shape == (1, 3) and gs.shape == ()
        assert gx.shape == (None, 3)
        f = gc.function([x, bias, col, s], [gx, gbias, gcol, gs])
        for n in (1, 2, 7):
            x0, b0, c0 = rng.normal(size=(n, 3)), rng.normal(size=3), rng.normal(size=(1, 3))
            ox, ob, oc, os_ = f(x0, b0, c0, 0.5)
            np.testing.assert_allclose(ox, 2 * (x0 + b0) * c0)
            np.testing.assert_allclose(ob, (2 * (x0 + b0) * c0).sum(0))
            np.testing.assert_allclose(oc, ((x0 + b0) ** 2).sum(0, keepdims=True))
            np.testing.assert_allclose(os_, n * 3)


def test_broadcast_against_3_1_and_4_sums_back_both_ways():
    check_grad(lambda a, b: gc.tanh(a * b + a), [np.linspace(-1, 1, 3).reshape(3, 1), np.linspace(-2, 1, 4)])


def test_unknown_batch_size_through_mean_reshape_and_slice():
    rng = np.random.default_rng(11)
    with gc.Graph():
        x = gc.placeholder((None, 4), gc.float64, name="x")
        h = gc.reshape(x, (-1, 2, 2))[:, ::-1, :1] * gc.reshape(gc.mean(x, axis=0)[:2], (2, 1))
        y = gc.mean(gc.softmax(x, axis=0) * gc.max(x)) + gc.sum(gc.tanh(h))
        gx = gc.grad(y, x)
        f, g = gc.function([x], y), gc.function([x], gx)
        for n in (1, 3, 6):
            x0 = rng.normal(size=(n, 4))
            np.testing.assert_allclose(g(x0), numeric_grad(f, [x0], 0), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dx,dw", [(np.float32, np.float64), (np.float64, np.float32)])
def test_mixed_float32_float64_gives_each_gradient_in_its_inputs_dtype(dx, dw):
    x0, w0 = np.array([0.5, -1.0, 2.0], dx), np.array([1.5, 2.0, -0.5], dw)
    with gc.Graph():
        x = gc.placeholder((3,), dx, name="x")
        w = gc.placeholder((3,), dw, name="w")
        y = gc.sum(gc.tanh(x) * w)
        assert y.dtype == np.float64
        gx, gw = gc.grad(y, [x, w])
        assert (gx.dtype, gw.dtype) == (np.dtype(dx), np.dtype(dw))
        ox, ow = gc.function([x, w], [gx, gw])(x0, w0)
    assert (ox.dtype, ow.dtype) == (np.dtype(dx), np.dtype(dw))
    xs, ws = x0.astype(np.float64), w0.astype(np.float64)
    np.testing.assert_allclose(ox, (1 - np.tanh(xs) ** 2) * ws, rtol=1e-6)
    np.testing.assert_allclose(ow, np.tanh(xs), rtol=1e-6)


def test_float32_y_from_a_float64_input_through_a_cast():
    with gc.Graph():
        x = gc.placeholder((3,), gc.float64, name="x")
        v = gc.variable(np.ones(3, np.float32), name="v")
        y = gc.sum(gc.cast(x, gc.float32) * v * v)
        assert y.dtype == np.float32
        gx, gv = gc.grad(y, [x, v])
        assert (gx.dtype, gv.dtype) == (np.float64, np.float32)
        ox, ov = gc.function([x], [gx, gv])(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(ox, [1, 1, 1])
    np.testing.assert_array_equal(ov, [2, 4, 6])


def test_gradient_graph_draws_with_to_dot_and_compiles():
    with gc.Graph(name="mlp"):
        x = gc.placeholder((None, 3), gc.float64, name="x")
        W = gc.variable(np.full((3, 2), 0.1), name="W")
        b = gc.variable(np.zeros(2), name="b")
        loss = gc.mean(gc.square(gc.tanh(x @ W + b)))
        gW, gb = gc.grad(loss, [W, b])
        dot = gc.to_dot([gW, gb])
        assert dot.startswith('digraph "mlp"')
        for label in ("W\\nvariable", "b\\nvariable", "x\\nplaceholder", "matmul", "tanh", "transpose"):
            assert label in dot
        assert gc.to_dot(gc.grad(gc.sum(gW), W)).count("->") > dot.count("->")   # grad of grad draws too
        f = gc.function([x], [loss, gW, gb], backend="interp")
        assert "digraph" in gc.to_dot(f)
        l0, oW, ob = f(np.ones((4, 3)))
    h = np.tanh(np.full((4, 2), 0.3))
    np.testing.assert_allclose(l0, np.mean(h * h))
    dz = 2 * h * (1 - h * h) / h.size
    np.testing.assert_allclose(ob, dz.sum(0))
    np.testing.assert_allclose(oW, np.ones((4, 3)).T @ dz)


def test_sgd_steps_with_variables_reduce_a_least_squares_loss():
    rng = np.random.default_rng(0)
    X0 = rng.normal(size=(32, 3))
    W_true, b_true = np.array([[1.0], [-2.0], [0.5]]), np.array([0.3])
    Y0 = X0 @ W_true + b_true
    with gc.Graph():
        X = gc.placeholder((None, 3), gc.float64, name="X")
        Y = gc.placeholder((None, 1), gc.float64, name="Y")
        W = gc.variable(np.zeros((3, 1)), name="W")
        b = gc.variable(np.zeros(1), name="b")
        loss = gc.mean(gc.square(X @ W + b - Y))
        gW, gb = gc.grad(loss, [W, b])
        lr = 0.1
        step = gc.function([X, Y], [loss, gW], updates={W: W - lr * gW, b: b - lr * gb})
        evaluate = gc.function([X, Y], loss)
        losses = []
        for k in range(25):
            batch = slice(8 * (k % 4), 8 * (k % 4) + 8)            # batches of 8, then the full set
            xb, yb = X0[batch], Y0[batch]
            w_before, b_before = gc.get_value(W), gc.get_value(b)
            _, g = step(xb, yb)
            np.testing.assert_allclose(g, 2 * xb.T @ (xb @ w_before + b_before - yb) / len(xb))
            np.testing.assert_allclose(gc.get_value(W), w_before - lr * g)      # the update used it
            losses.append(evaluate(X0, Y0))
    assert losses[-1] < 0.05 * np.mean(Y0 ** 2)
    assert all(b_ < a for a, b_ in zip(losses[:5], losses[1:6]))
    np.testing.assert_allclose(gc.get_value(W), W_true, atol=0.2)


def test_sgd_gradient_matches_the_closed_form():
    rng = np.random.default_rng(2)
    X0, Y0 = rng.normal(size=(10, 3)), rng.normal(size=(10, 1))
    W0, b0 = rng.normal(size=(3, 1)), rng.normal(size=1)
    with gc.Graph():
        X = gc.placeholder((None, 3), gc.float64)
        Y = gc.placeholder((None, 1), gc.float64)
        W = gc.variable(W0)
        b = gc.variable(b0)
        loss = gc.mean(gc.square(X @ W + b - Y))
        gW, gb = gc.function([X, Y], gc.grad(loss, [W, b]))(X0, Y0)
    r = X0 @ W0 + b0 - Y0
    np.testing.assert_allclose(gW, 2 * X0.T @ r / 10)
    np.testing.assert_allclose(gb, 2 * r.sum(0) / 10)


def test_maximum_and_minimum_ties_go_to_the_first_argument():
    a0 = np.array([1.0, 2.0, 3.0, -1.0])
    b0 = np.array([1.0, 1.0, 4.0, -1.0])
    with gc.Graph():
        a = gc.placeholder((4,), gc.float64, name="a")
        b = gc.placeholder((4,), gc.float64, name="b")
        ga_max, gb_max = gc.grad(gc.sum(gc.maximum(a, b)), [a, b])
        ga_min, gb_min = gc.grad(gc.sum(gc.minimum(a, b)), [a, b])
        gb_swapped, ga_swapped = gc.grad(gc.sum(gc.maximum(b, a)), [b, a])
        out = gc.function([a, b], [ga_max, gb_max, ga_min, gb_min, gb_swapped, ga_swapped])(a0, b0)
    np.testing.assert_array_equal(out[0], [1, 1, 0, 1])      # max: ties (0 and 3) go to a
    np.testing.assert_array_equal(out[1], [0, 0, 1, 0])
    np.testing.assert_array_equal(out[2], [1, 0, 1, 1])      # min: ties go to a
    np.testing.assert_array_equal(out[3], [0, 1, 0, 0])
    np.testing.assert_array_equal(out[4], [1, 0, 1, 1])      # maximum(b, a): now ties go to b
    np.testing.assert_array_equal(out[5], [0, 1, 0, 0])


def test_maximum_of_a_node_with_itself_passes_the_whole_gradient():
    with gc.Graph():
        x = gc.placeholder((3,), gc.float64)
        gmax = gc.grad(gc.sum(gc.maximum(x, x) * 2.0), x)
        gmin = gc.grad(gc.sum(gc.minimum(x, x) * 3.0), x)
        omax, omin = gc.function([x], [gmax, gmin])(np.array([1.0, -2.0, 0.0]))
    np.testing.assert_array_equal(omax, [2, 2, 2])
    np.testing.assert_array_equal(omin, [3, 3, 3])


def test_broadcast_maximum_tie_goes_to_the_first_argument_and_sums_back():
    with gc.Graph():
        a = gc.placeholder((2, 1), gc.float64)
        b = gc.placeholder((3,), gc.float64)
        ga, gb = gc.grad(gc.sum(gc.maximum(a, b)), [a, b])
        oa, ob = gc.function([a, b], [ga, gb])(np.array([[1.0], [0.0]]), np.array([1.0, 0.5, 2.0]))
    # row a=1: [tie->a, a, b]; row a=0: [b, b, b]
    np.testing.assert_array_equal(oa, [[2], [0]])
    np.testing.assert_array_equal(ob, [1, 1, 2])


@pytest.mark.parametrize("op", [gc.max, gc.min])
def test_reduction_ties_split_the_gradient_evenly(op):
    m0 = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [-1.0, 5.0, 0.0, 2.0]])
    if op is gc.min:
        m0 = -m0                                              # the same ties, now minima
    with gc.Graph():
        m = gc.placeholder((None, 4), gc.float64)
        w = gc.constant(np.array([1.0, 10.0, 100.0]))
        by_row = gc.grad(gc.sum(op(m, axis=1) * w), m)
        by_row_keep = gc.grad(gc.sum(op(m, axis=-1, keepdims=True) * gc.reshape(w, (3, 1))), m)
        overall = gc.grad(op(m), m)
        by_col = gc.grad(gc.sum(op(m, axis=0)), m)
        out = gc.function([m], [by_row, by_row_keep, overall, by_col])(m0)
    want_row = [[0, 0.5, 0.5, 0], [2.5, 2.5, 2.5, 2.5], [0, 100, 0, 0]]    # w = 1, 10, 100 per row
    np.testing.assert_allclose(out[0], want_row)
    np.testing.assert_allclose(out[1], want_row)
    np.testing.assert_allclose(out[2], [[0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0]])
    np.testing.assert_allclose(out[3], [[0, 0, 1, 0], [1, 0, 0, 0.5], [0, 1, 0, 0.5]])
    # every reduced slice gets exactly its output's gradient in total
    np.testing.assert_allclose(out[0].sum(1), [1, 10, 100])
    np.testing.assert_allclose(out[2].sum(), 1)
    np.testing.assert_allclose(out[3].sum(0), [1, 1, 1, 1])
