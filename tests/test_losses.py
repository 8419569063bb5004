"""graphc.losses against hand-written numpy: values, shapes and dtypes on the
interpreter and the CPU backend, stability at logits of +-1000, gradients
against finite differences (float64), the two label forms of
softmax_cross_entropy, and build-time errors.

All losses are built into one graph per dtype and compiled once per backend
(a CPU compile takes about a second)."""
import functools

import numpy as np
import pytest

import graphc as gc
from graphc import losses as L
from graphc.core.types import fmt_shape

try:
    from .gradcheck import check_grad
except ImportError:
    from gradcheck import check_grad

B, C = 6, 5
LOSSES = ["mse", "root_mse", "rmse", "bce", "bce_logits", "sce_int", "sce_float", "nll"]

# ---------------------------------------------------------------- numpy references (float64)


def log_softmax(x):
    z = x - x.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def reference(x, t, p, y, s, eps=1e-7):
    """Per-example losses computed directly in float64: what each graph loss must give."""
    hi = float(p.dtype.type(1 - eps))       # 1 - eps as the graph sees it: rounded to p's dtype
    x, t, p, s = (a.astype(np.float64) for a in (x, t, p, s))
    pc = np.clip(p, eps, hi)
    lsm = log_softmax(x)
    picked = lsm[np.arange(len(y)), y]
    return {
        "mse": ((x - t) ** 2).mean(axis=1),
        "root_mse": np.sqrt(((x - t) ** 2).mean(axis=1)),
        "rmse": np.sqrt(((x - t) ** 2).mean()),
        "bce": -(t * np.log(pc) + (1 - t) * np.log(1 - pc)).mean(axis=1),
        "bce_logits": (np.logaddexp(0, x) - x * t).mean(axis=1),
        "sce_int": -picked,
        "sce_float": -(s * lsm).sum(axis=1),
        "nll": -picked,
    }


def sample(dtype, seed=0, scale=2.0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(B, C)) * scale).astype(dtype)
    t = rng.uniform(size=(B, C)).astype(dtype)
    p = rng.uniform(0.01, 0.99, size=(B, C)).astype(dtype)
    y = rng.integers(0, C, size=B).astype(np.int64)
    s = rng.dirichlet(np.ones(C), size=B).astype(dtype)
    return x, t, p, y, s

# ---------------------------------------------------------------- one graph with every loss


@functools.lru_cache(maxsize=None)
def all_losses(dtype):
    """(graph placeholders, {name: loss node}, {name: d mean(loss) / d x node}) for one dtype."""
    with gc.Graph(f"losses_{dtype}"):
        x = gc.placeholder((None, C), dtype, name="x")
        t = gc.placeholder((None, C), dtype, name="t")
        p = gc.placeholder((None, C), dtype, name="p")
        y = gc.placeholder((None,), gc.int64, name="y")
        s = gc.placeholder((None, C), dtype, name="s")
        out = {
            "mse": L.mean_squared_error(x, t),
            "root_mse": L.root_mean_squared_error(x, t),
            "rmse": L.rmse(x, t),
            "bce": L.binary_crossentropy(p, t),
            "bce_logits": L.binary_crossentropy_with_logits(x, t),
            "sce_int": L.softmax_cross_entropy(x, y),
            "sce_float": L.softmax_cross_entropy(x, s),
            "nll": L.negative_log_likelihood(gc.log_softmax(x), y),
        }
        grads = {k: gc.grad(gc.mean(v), p if k == "bce" else x) for k, v in out.items()}
    return (x, t, p, y, s), out, grads


@functools.lru_cache(maxsize=None)
def compiled(dtype, backend):
    phs, out, grads = all_losses(dtype)
    return gc.function(list(phs), [out[k] for k in LOSSES] + [grads[k] for k in LOSSES], backend=backend)


def run(dtype, backend, arrays):
    res = compiled(dtype, backend)(*arrays)
    return dict(zip(LOSSES, res[:len(LOSSES)])), dict(zip(LOSSES, res[len(LOSSES):]))


CASES = [pytest.param(np.float32, "interp", id="f32-interp"), pytest.param(np.float64, "interp", id="f64-interp"),
         pytest.param(np.float32, "cpu", id="f32-cpu")]


@pytest.mark.parametrize("dtype, backend", CASES)
def test_values_shapes_dtypes(dtype, backend):
    arrays = sample(dtype)
    got, grads = run(dtype, backend, arrays)
    want = reference(*arrays)
    tol = dict(rtol=2e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for k in LOSSES:
        assert got[k].dtype == dtype, k
        assert got[k].shape == (() if k == "rmse" else (B,)), k
        np.testing.assert_allclose(got[k], want[k], err_msg=k, **tol)
        assert grads[k].dtype == dtype and grads[k].shape == (B, C) and np.isfinite(grads[k]).all(), k


def test_cpu_gradients_match_interpreter():
    arrays = sample(np.float32, seed=3)
    _, g_interp = run(np.float32, "interp", arrays)
    _, g_cpu = run(np.float32, "cpu", arrays)
    for k in LOSSES:
        np.testing.assert_allclose(g_cpu[k], g_interp[k], rtol=1e-5, atol=1e-7, err_msg=k)


@pytest.mark.parametrize("dtype, backend", CASES)
def test_extreme_logits_are_finite(dtype, backend):
    """|logits| = 1000: exp overflows, yet every loss and gradient is finite and exact."""
    x, t, p, y, s = sample(dtype, seed=1)
    x[:, ::2], x[:, 1::2] = 1000, -1000
    x[0] = [-1000, 1000, -1000, 1000, -1000]
    p[0] = [0.0, 1.0, 0.0, 1.0, 0.5]               # probabilities at the bounds: clipped, finite
    t[1] = [1.0, 0.0, 1.0, 0.0, 1.0]               # bce_logits: perfect, loss 0
    got, grads = run(dtype, backend, (x, t, p, y, s))
    want = reference(x, t, p, y, s)
    for k in LOSSES:
        assert np.isfinite(got[k]).all() and np.isfinite(grads[k]).all(), k
        # atol: the CPU row kernel forms x - (max + log(sum)), exact only to ulp(1000) = 6e-5 in float32
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1.5e-4 if dtype == np.float32 else 0,
                                   err_msg=k)
    assert got["bce_logits"][1] == 0
    # d mean(bce_logits) / dx = (sigmoid(x) - t) / (B * C), sigmoid(+-1000) being exactly 1 and 0
    np.testing.assert_allclose(grads["bce_logits"], ((x > 0) - t) / (B * C), atol=1e-7)
    # d mean(sce) / dx = (softmax(x) - onehot(y)) / B
    want_g = (np.exp(log_softmax(x.astype(np.float64))) - np.eye(C)[y]) / B
    np.testing.assert_allclose(grads["sce_int"], want_g, atol=1e-5 if dtype == np.float32 else 1e-15)


# ---------------------------------------------------------------- gradients by finite differences (float64)


def grad_data(seed=0, shape=(3, 4)):
    rng = np.random.default_rng(seed)
    """x (logits), t (targets in [0, 1]), p (probabilities away from the clip), y (labels), s (distributions)."""
    return (rng.normal(size=shape), rng.uniform(size=shape), rng.uniform(0.05, 0.95, size=shape),
            rng.integers(0, shape[-1], size=shape[:-1]), rng.dirichlet(np.ones(shape[-1]), size=shape[:-1]))


@pytest.mark.parametrize("loss", [L.mean_squared_error, L.root_mean_squared_error, L.rmse,
                                  L.binary_crossentropy_with_logits], ids=lambda f: f.__name__)
@pytest.mark.parametrize("shape", [(3, 4), (5,), (2, 3, 2)], ids=str)
def test_grad_regression_and_logits(loss, shape):
    x, t, _, _, _ = grad_data(0, shape)
    check_grad(loss, [x, t])


def test_grad_binary_crossentropy():
    _, t, p, _, _ = grad_data(1)
    check_grad(L.binary_crossentropy, [p, t])


def test_grad_softmax_cross_entropy_both_forms():
    x, _, _, y, s = grad_data(2)
    check_grad(L.softmax_cross_entropy, [x, y])
    check_grad(L.softmax_cross_entropy, [x, s])                 # also d/d targets = -log_softmax(x)
    x3 = np.random.default_rng(3).normal(size=(2, 3, 4))
    check_grad(L.softmax_cross_entropy, [x3, np.array([[0, 3, 1], [2, 2, 0]])])


def test_grad_negative_log_likelihood():
    x, _, _, y, _ = grad_data(4)
    check_grad(L.negative_log_likelihood, [log_softmax(x), y])


def test_grad_at_extreme_logits():
    x = np.array([[1000.0, -1000.0, 3.0], [-1000.0, 0.5, 1000.0]])
    t = np.array([[0.2, 0.9, 1.0], [0.0, 0.5, 1.0]])
    check_grad(L.binary_crossentropy_with_logits, [x, t])
    check_grad(L.softmax_cross_entropy, [x, np.array([1, 0])])

# ---------------------------------------------------------------- forms and corner cases


def evaluate(make, *arrays):
    with gc.Graph():
        phs = [gc.placeholder(a.shape, a.dtype) for a in arrays]
        return gc.function(phs, make(*phs))(*arrays)


def test_integer_and_one_hot_labels_agree():
    x, _, _, y, _ = sample(np.float32, seed=5)
    with gc.Graph():
        xp, yp = gc.placeholder((None, C), name="x"), gc.placeholder((None,), gc.int32, name="y")
        by_index = L.softmax_cross_entropy(xp, yp)
        by_one_hot = L.softmax_cross_entropy(xp, gc.one_hot(yp, C))
        by_nll = L.nll(gc.log_softmax(xp), yp)
        grads = gc.grad(gc.mean(by_index), xp), gc.grad(gc.mean(by_one_hot), xp)
        f = gc.function([xp, yp], [by_index, by_one_hot, by_nll, *grads])
    a, b, c, ga, gb = f(x, y.astype(np.int32))
    np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(a, c, rtol=1e-6)
    np.testing.assert_allclose(ga, gb, rtol=1e-6, atol=1e-8)


def test_reduces_every_non_batch_axis():
    rng = np.random.default_rng(6)
    x, t = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 4))
    np.testing.assert_allclose(evaluate(L.mse, x, t), ((x - t) ** 2).mean(axis=(1, 2)))
    v, w = x[:, 0, 0], t[:, 0, 0]                              # 1-D: one value per element
    np.testing.assert_allclose(evaluate(L.mse, v, w), (v - w) ** 2)
    np.testing.assert_allclose(evaluate(L.root_mean_squared_error, v, w), np.abs(v - w))
    labels = np.array([[0, 3, 1], [2, 2, 0]])                  # per-position classes: mean over positions
    want = -np.take_along_axis(log_softmax(x), labels[..., None], -1)[..., 0].mean(axis=1)
    np.testing.assert_allclose(evaluate(L.softmax_cross_entropy, x, labels), want)


def test_rmse_is_sqrt_of_batch_mse_and_zero_gradient_at_exact_fit():
    x, t = np.array([[1.0, 2.0], [3.0, 5.0]]), np.array([[1.0, 2.0], [0.0, 1.0]])
    with gc.Graph():
        xp, tp = gc.placeholder((2, 2), gc.float64), gc.placeholder((2, 2), gc.float64)
        batch, per = L.rmse(xp, tp), L.root_mean_squared_error(xp, tp)
        f = gc.function([xp, tp], [batch, gc.sqrt(gc.mean(L.mse(xp, tp))), per,
                                   gc.grad(gc.mean(per), xp), gc.grad(batch, xp)])
    b, b2, per_v, g_per, g_b = f(x, t)
    assert b == b2 == np.sqrt(((x - t) ** 2).mean())
    assert per_v[0] == 0 and per_v[1] == np.sqrt(12.5)
    assert np.all(g_per[0] == 0) and np.isfinite(g_per).all()  # exact fit: 0, not nan
    assert np.all(evaluate(lambda a, c: gc.grad(L.rmse(a, c), a), t, t) == 0)
    np.testing.assert_allclose(g_b, (x - t) / x.size / b)
    nan = evaluate(L.root_mean_squared_error, np.array([[np.nan, 1.0], [1.0, 1.0]]), x)
    assert np.isnan(nan[0]) and nan[1] == np.sqrt(10.0)       # a nan is not hidden by the 0 case


def test_bce_clips_and_casts_integer_labels():
    p = np.array([[0.0, 1.0, 0.0, 1.0]], np.float32)
    t = np.array([[0, 0, 1, 1]], np.int32)
    got = evaluate(lambda a, b: L.bce(a, b), p, t)
    clip = np.clip(p.astype(np.float64), 1e-7, 1 - np.float32(1e-7))  # 1 - eps, rounded to float32
    want = -(t * np.log(clip) + (1 - t) * np.log(1 - clip)).mean()
    np.testing.assert_allclose(got, [want], rtol=1e-4)
    assert got[0] <= -np.log(1e-7)


def test_out_of_range_label_gives_zero_and_nll_tolerates_minus_inf():
    x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], np.float32)
    got = evaluate(L.softmax_cross_entropy, x, np.array([-1, 3]))
    assert np.all(got == 0)
    log_probs = np.array([[-np.inf, np.log(0.5), np.log(0.5)]], np.float32)
    np.testing.assert_allclose(evaluate(L.nll, log_probs, np.array([1])), [np.log(2)], rtol=1e-6)


def test_numpy_targets_become_constants():
    x = np.array([[1.0, 2.0]], np.float32)
    with gc.Graph():
        xp = gc.placeholder((None, 2))
        f = gc.function([xp], [L.mse(xp, [[0.0, 0.0]]), L.cross_entropy(xp, [1])])
    a, b = f(x)
    assert a.dtype == np.float32 and a[0] == 2.5
    np.testing.assert_allclose(b, -log_softmax(x.astype(np.float64))[:, 1], rtol=1e-6)

# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("loss", [L.mean_squared_error, L.root_mean_squared_error, L.rmse, L.binary_crossentropy,
                                  L.binary_crossentropy_with_logits, L.softmax_cross_entropy],
                         ids=lambda f: f.__name__)
def test_mismatched_shapes(loss):
    with gc.Graph():
        for a, b in [((None, 1), (None,)), ((4, 3), (4, 2)), ((3,), (3, 1))]:
            with pytest.raises(gc.ShapeError, match=loss.__name__) as e:
                loss(gc.placeholder(a), gc.placeholder(b))
            assert fmt_shape(a) in str(e.value) and fmt_shape(b) in str(e.value)
        loss(gc.placeholder((None, 3)), gc.placeholder((7, 3)))     # None matches any size


@pytest.mark.parametrize("loss", [L.mean_squared_error, L.rmse, L.binary_crossentropy_with_logits,
                                  L.softmax_cross_entropy], ids=lambda f: f.__name__)
def test_dtype_errors(loss):
    with gc.Graph():
        with pytest.raises(gc.DTypeError, match="float64.*float32|float32.*float64"):
            loss(gc.placeholder((2, 3), gc.float32), gc.placeholder((2, 3), gc.float64))
        with pytest.raises(gc.DTypeError, match=loss.__name__):
            loss(gc.placeholder((2, 3), gc.int32), gc.placeholder((2, 3), gc.float32))


def test_label_errors():
    with gc.Graph():
        x = gc.placeholder((None, 4))
        want = r"softmax_cross_entropy: logits float32\[\?, 4\] need integer labels of shape \(\?,\).*must be floats"
        with pytest.raises(gc.ShapeError, match=want):
            L.softmax_cross_entropy(x, gc.placeholder((None, 4), gc.int64))
        with pytest.raises(gc.DTypeError, match="int32/int64 class indices or float targets"):
            L.softmax_cross_entropy(x, gc.placeholder((None,), gc.bool_))
        with pytest.raises(gc.DTypeError, match="negative_log_likelihood.*int32 or int64"):
            L.negative_log_likelihood(x, gc.placeholder((None,), gc.float32))
        with pytest.raises(gc.ShapeError, match="number of classes"):
            L.softmax_cross_entropy(gc.placeholder((None, None)), gc.placeholder((None,), gc.int64))
        with pytest.raises(gc.ShapeError, match="class axis"):
            L.softmax_cross_entropy(gc.placeholder(()), gc.placeholder((), gc.int64))
        with pytest.raises(gc.GraphError, match="eps"):
            L.binary_crossentropy(x, x, eps=0.0)


def test_error_points_at_the_callers_line():
    with gc.Graph():
        with pytest.raises(gc.ShapeError, match=r"test_losses\.py:\d+"):
            L.mse(gc.placeholder((2, 3)), gc.placeholder((3, 2)))
