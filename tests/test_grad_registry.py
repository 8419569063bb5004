"""Every op's gradient rule against central finite differences, in float64.

One row per op in the registry: how to build it and on which inputs (shapes
chosen so that broadcasting is exercised). An op added to the registry
without a row here, or without a gradient rule, fails `test_every_op_has_a_row`.
"""
import numpy as np
import pytest

import graphc as gc
from graphc.ops import REGISTRY

from gradcheck import check_grad

rng = np.random.default_rng(42)


def normal(*shape):
    return rng.normal(size=shape)


def positive(*shape):
    return rng.uniform(0.5, 2.0, size=shape)


def away_from_zero(*shape):
    return rng.uniform(0.3, 1.5, size=shape) * rng.choice([-1, 1], size=shape)


# op name -> (build y from placeholders, input arrays)
CASES = {
    "negative": (gc.negative, [normal(3, 4)]),
    "abs": (gc.abs, [away_from_zero(3, 4)]),
    "square": (gc.square, [normal(3, 4)]),
    "exp": (gc.exp, [normal(3, 4)]),
    "log": (gc.log, [positive(3, 4)]),
    "sqrt": (gc.sqrt, [positive(3, 4)]),
    "reciprocal": (gc.reciprocal, [away_from_zero(3, 4)]),
    "tanh": (gc.tanh, [normal(3, 4)]),
    "sigmoid": (gc.sigmoid, [normal(3, 4) * 3]),
    "relu": (gc.relu, [away_from_zero(3, 4)]),
    "leaky_relu": (lambda x: gc.leaky_relu(x, 0.2), [away_from_zero(3, 4)]),
    "elu": (lambda x: gc.elu(x, 0.7), [away_from_zero(3, 4)]),
    "softplus": (gc.softplus, [normal(3, 4) * 3]),
    "erf": (gc.erf, [normal(3, 4)]),
    # piecewise constant (zero gradient, so times x): points 0.1-0.4 past an integer, far from the steps and halves
    "floor": (lambda x: gc.floor(x) * x, [np.round(normal(3, 4) * 3) + rng.uniform(0.1, 0.4, (3, 4))]),
    "ceil": (lambda x: gc.ceil(x) * x, [np.round(normal(3, 4) * 3) + rng.uniform(0.1, 0.4, (3, 4))]),
    "round": (lambda x: gc.round(x) * x, [np.round(normal(3, 4) * 3) + rng.uniform(0.1, 0.4, (3, 4))]),
    "mod": (gc.mod, [normal(3, 1) * 3, away_from_zero(4)]),
    "fmod": (gc.fmod, [normal(3, 1) * 3, away_from_zero(4)]),
    # float32 in, float64 out: a coarser step, since x +- eps is rounded to float32
    "cast": (lambda x: gc.cast(x, gc.float64) ** 2, [normal(3).astype(np.float32)], {"eps": 1e-2, "rtol": 1e-3}),
    "add": (gc.add, [normal(3, 1), normal(4)]),
    "subtract": (gc.subtract, [normal(3, 1), normal(4)]),
    "multiply": (gc.multiply, [normal(3, 1), normal(4)]),
    "divide": (gc.divide, [normal(3, 1), away_from_zero(4)]),
    "power": (gc.power, [positive(3, 1), normal(4)]),
    "maximum": (gc.maximum, [normal(3, 1), normal(4)]),
    "minimum": (gc.minimum, [normal(3, 1), normal(4)]),
    "where": (lambda a, b: gc.where(a > b, a * 2.0, b), [normal(3, 1), normal(4)]),
    "sum": (lambda x: gc.sum(x, axis=(0, 2)), [normal(2, 3, 4)]),
    "mean": (lambda x: gc.mean(x, axis=-1, keepdims=True), [normal(2, 3, 4)]),
    "prod": (lambda x: gc.prod(x, axis=1), [away_from_zero(3, 4)]),
    "max": (lambda x: gc.max(x, axis=0), [normal(3, 4)]),
    "min": (lambda x: gc.min(x, axis=None, keepdims=True), [normal(3, 4)]),
    "matmul": (gc.matmul, [normal(2, 3, 4), normal(4, 5)]),
    "reshape": (lambda x: gc.reshape(x, (4, -1)), [normal(2, 3, 2)]),
    "transpose": (lambda x: gc.transpose(x, (1, 2, 0)), [normal(2, 3, 4)]),
    "expand_dims": (lambda x: gc.expand_dims(x, (0, -1)), [normal(2, 3)]),
    "squeeze": (lambda x: gc.squeeze(x, 1), [normal(2, 1, 3)]),
    "broadcast_to": (lambda x: gc.broadcast_to(x, (2, 3, 4)), [normal(3, 1)]),
    "concatenate": (lambda a, b: gc.concatenate([a, b, a], axis=1), [normal(2, 3), normal(2, 1)]),
    "split": (lambda a: gc.split(a, [1, 3], axis=1)[2] * gc.split(a, [1, 3], axis=1)[0], [normal(2, 4)]),
    "getitem": (lambda x: x[1:, None, ::-2] * x[0, 1], [normal(3, 5)]),
    "pad": (lambda x: gc.pad(x, ((1, 0), (2, 3)), constant_values=1.5), [normal(2, 3)]),
    "softmax": (lambda x: gc.softmax(x, axis=0), [normal(4, 3)]),
    "log_softmax": (lambda x: gc.log_softmax(x, axis=-1), [normal(3, 4) * 5]),
    # the ops gradient rules build when a size is known only at call time: fed with None shapes
    "broadcast_like": (lambda x, like: gc.broadcast_like(x, like), [normal(3, 1), normal(3, 4)],
                       {"shapes": [(3, 1), (None, 4)]}),
    "reshape_like": (lambda x, like: gc.reshape_like(x, like), [normal(2, 6), normal(3, 4)],
                     {"shapes": [(2, 6), (None, None)]}),
    "unslice": (lambda g, like: gc.unslice(g, like, (slice(1, None), 2)), [normal(2), normal(3, 4)]),
    # an RNN step over 3 steps: gradients wrt the initial carry, the xs and a captured weight
    "scan": (lambda h, xs, w: gc.multiply(*gc.scan(lambda c, x: (gc.tanh(c @ w + x), c * x), h, xs)),
             [normal(2, 3), normal(3, 2, 3), normal(3, 3)]),
    # convolution and pooling (ops/conv.py, ops/pool.py): strided, padded asymmetrically, grouped
    "conv2d": (lambda x, w: gc.conv2d(x, w, stride=(2, 1), padding=((1, 0), (0, 1)), dilation=(1, 2), groups=3),
               [normal(2, 3, 5, 5), normal(6, 1, 2, 2)]),
    "conv2d_grad_input": (lambda g, w: gc.conv2d_grad_input(g, w, (5, 5), stride=2, padding=1),
                          [normal(2, 4, 3, 3), normal(4, 3, 3, 3)]),
    "conv2d_grad_weight": (lambda x, g: gc.conv2d_grad_weight(x, g, (3, 3), stride=2, padding=1),
                           [normal(2, 3, 5, 5), normal(2, 4, 3, 3)]),
    "max_pool2d": (lambda x: gc.max_pool2d(x, 2, padding=1, ceil_mode=True), [normal(2, 3, 5, 5)]),
    "max_pool2d_grad": (lambda x, g: gc.max_pool2d_grad(x, g, 3, 2, padding=1), [normal(2, 3, 5, 5), normal(2, 3, 3, 3)]),
    "max_pool2d_select": (lambda x, G: gc.max_pool2d_select(x, G, 2, 1), [normal(2, 3, 5, 5), normal(2, 3, 5, 5)]),
    "avg_pool2d": (lambda x: gc.avg_pool2d(x, 3, 2, padding=1, ceil_mode=True, count_include_pad=False),
                   [normal(2, 3, 5, 5)]),
    "avg_pool2d_grad": (lambda g: gc.avg_pool2d_grad(g, (5, 5), (2, 3), (2, 1), padding=1), [normal(2, 3, 3, 5)]),
}

# ops whose output does not vary smoothly with their inputs: no gradient flows through them
NO_GRAD = {
    "sign": lambda x: gc.sign(x),
    "logical_not": lambda x: gc.cast(gc.logical_not(x > 0), gc.float64),
    "equal": lambda x: gc.cast(gc.equal(x, 0.5), gc.float64),
    "not_equal": lambda x: gc.cast(gc.not_equal(x, 0.5), gc.float64),
    "less": lambda x: gc.cast(x < 0.5, gc.float64),
    "less_equal": lambda x: gc.cast(x <= 0.5, gc.float64),
    "greater": lambda x: gc.cast(x > 0.5, gc.float64),
    "greater_equal": lambda x: gc.cast(x >= 0.5, gc.float64),
    "logical_and": lambda x: gc.cast((x > 0) & (x < 1), gc.float64),
    "logical_or": lambda x: gc.cast((x > 0) | (x < -1), gc.float64),
    "argmax": lambda x: gc.cast(gc.argmax(x, axis=0), gc.float64),
    "argmin": lambda x: gc.cast(gc.argmin(x), gc.float64),
    "one_hot": lambda x: gc.one_hot(gc.argmax(x, axis=1), 4, gc.float64),
    "size": lambda x: gc.cast(gc.size(x), gc.float64) * 1.0,
    "isnan": lambda x: gc.cast(gc.isnan(gc.where(x > 0, x, float("nan"))), gc.float64),
    "isinf": lambda x: gc.cast(gc.isinf(gc.where(x > 0, x, -float("inf"))), gc.float64),
}

SOURCES = {"placeholder", "constant", "variable"}
PASS_OPS = {"fused", "output"}   # built after autodiff, by the fusion passes
RANDOM_OPS = {"random_uniform", "random_normal"}   # no_grad; tested in tests/test_nn.py


def test_every_op_has_a_row():
    ops = set(REGISTRY) - SOURCES - PASS_OPS - RANDOM_OPS
    assert all(REGISTRY[name].no_grad for name in RANDOM_OPS)
    assert ops - set(CASES) - set(NO_GRAD) == set(), "ops with no gradient test"
    for name in CASES:
        assert not REGISTRY[name].no_grad
        assert type(REGISTRY[name]).grad is not gc.ops.Op.grad, f"{name} has no gradient rule"
    for name in NO_GRAD:
        assert REGISTRY[name].no_grad, f"{name} is tested as no-gradient but does not say so"


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradient_matches_finite_differences(name):
    build, arrays, *options = CASES[name]
    check_grad(build, arrays, **(options[0] if options else {}))


def test_rows_build_the_op_they_name():
    for name, (build, arrays, *options) in CASES.items():
        shapes = options[0].get("shapes") if options else None
        with gc.Graph() as g:
            build(*[gc.placeholder(s, a.dtype) for s, a in zip(shapes or [a.shape for a in arrays], arrays)])
        assert name in {n.op.name for n in g.nodes}, name


@pytest.mark.parametrize("name", sorted(NO_GRAD))
def test_no_grad_ops_contribute_zero(name):
    x = rng.normal(size=(3, 4))
    with gc.Graph() as g:
        p = gc.placeholder((None, 4), gc.float64)
        y = gc.sum(NO_GRAD[name](p) * p)      # the op's output times x: the gradient is the op's output
        (dx,) = gc.grad(y, [p])
        out, grad = gc.function([p], [NO_GRAD[name](p), dx])(x)
    assert name in {n.op.name for n in g.nodes}
    np.testing.assert_allclose(grad, np.broadcast_to(out, x.shape))


def test_gradients_with_unknown_batch_size():
    """None dims: the rules use broadcast_like/reshape_like/size, checked on two batch sizes."""
    with gc.Graph():
        x = gc.placeholder((None, None, 3), gc.float64)
        b = gc.placeholder((3,), gc.float64)
        y = gc.mean(gc.reshape(gc.tanh(x + b), (-1, 3)) ** 2) + gc.sum(x[:, 1:] * 0.5)
        gx, gb = gc.grad(y, [x, b])
        f = gc.function([x, b], [y, gx, gb])
    for shape in [(2, 2, 3), (4, 3, 3)]:
        xv, bv = rng.normal(size=shape), rng.normal(size=3)
        _, gxv, gbv = f(xv, bv)
        t = np.tanh(xv + bv)
        want_x = 2 * t * (1 - t ** 2) / t.size
        want_x[:, 1:] += 0.5
        np.testing.assert_allclose(gxv, want_x, rtol=1e-10)
        np.testing.assert_allclose(gbv, (2 * t * (1 - t ** 2) / t.size).sum(axis=(0, 1)), rtol=1e-10)
