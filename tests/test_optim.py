"""Optimizers, learning-rate schedules and regularizers (graphc.optim, graphc.regularizers).

1. Every optimizer against a hand-written numpy version of its rule, 5 steps
   on a least-squares problem with two params of different shapes (W (3, 2),
   b (2,)), float32 and float64, interpreter and CPU backend; params, state
   and losses compared at every step, with the lr halved before step 4.
   All configurations live in one "bank" graph per dtype (each with its own
   W and b), so the CPU backend compiles twice rather than 18 times.
2. The learning rate is a variable: changing it, by hand or by a schedule,
   changes the next step of the same compiled function.
3. Schedules' lr sequences, ReduceLROnPlateau's patience; regularizers'
   values and gradients; errors; a training loop per optimizer.
"""
import numpy as np
import pytest

import graphc as gc
from graphc import optim, regularizers
from graphc.core.errors import ForeignNodeError, GraphError

STEPS, HALVE_LR_AT = 5, 3
TOL = {np.float32: dict(rtol=1e-5, atol=1e-7), np.float64: dict(rtol=1e-10, atol=1e-13)}
BACKENDS = ["interp", "cpu"]

# ====================================================================== numpy references
# Written from the textbook rules; s is the param's state dict, named like the optimizer's.


def ref_sgd(p, g, s, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    g = g + weight_decay * p
    if momentum == 0:
        return p - lr * g
    s["velocity"] = momentum * s.get("velocity", 0) + g
    return p - lr * (g + momentum * s["velocity"] if nesterov else s["velocity"])


def ref_adagrad(p, g, s, lr, eps=1e-7, initial_accumulator=0.0):
    s["accumulator"] = s.get("accumulator", np.full_like(p, initial_accumulator)) + g ** 2
    return p - lr * g / (np.sqrt(s["accumulator"]) + eps)


def ref_rmsprop(p, g, s, lr, rho=0.9, eps=1e-7):
    s["square_avg"] = rho * s.get("square_avg", 0) + (1 - rho) * g ** 2
    return p - lr * g / (np.sqrt(s["square_avg"]) + eps)


def ref_adadelta(p, g, s, lr, rho=0.95, eps=1e-6):
    s["square_avg"] = rho * s.get("square_avg", 0) + (1 - rho) * g ** 2
    rms_dx, rms_g = np.sqrt(s.get("delta_avg", np.zeros_like(p)) + eps), np.sqrt(s["square_avg"] + eps)
    delta = rms_dx / rms_g * g
    s["delta_avg"] = rho * s.get("delta_avg", 0) + (1 - rho) * delta ** 2
    return p - lr * delta


def ref_adam(p, g, s, lr, beta1=0.9, beta2=0.999, eps=1e-7, weight_decay=0.0):
    """PyTorch's arrangement (step size lr / bc1, denominator sqrt(v) / sqrt(bc2) + eps)."""
    t = s["t"] = s.get("t", 0) + 1
    s["m"] = beta1 * s.get("m", 0) + (1 - beta1) * g
    s["v"] = beta2 * s.get("v", 0) + (1 - beta2) * g ** 2
    dt = p.dtype.type
    bc1, bc2 = 1 - dt(beta1) ** dt(t), 1 - dt(beta2) ** dt(t)
    p = p * (1 - lr * weight_decay)                      # AdamW's decoupled decay; 1 for Adam
    return p - (lr / bc1) * s["m"] / (np.sqrt(s["v"]) / np.sqrt(bc2) + eps)


def ref_adamw(p, g, s, lr, weight_decay=0.01, **adam):
    return ref_adam(p, g, s, lr, weight_decay=weight_decay, **adam)


CONFIGS = {
    "sgd": (optim.SGD, ref_sgd, dict(lr=0.1)),
    "momentum": (optim.SGD, ref_sgd, dict(lr=0.05, momentum=0.9)),
    "nesterov_wd": (optim.SGD, ref_sgd, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    "adagrad": (optim.Adagrad, ref_adagrad, dict(lr=0.1)),
    "adagrad_init": (optim.Adagrad, ref_adagrad, dict(lr=0.1, eps=1e-3, initial_accumulator=0.1)),
    "rmsprop": (optim.RMSprop, ref_rmsprop, dict(lr=0.01, rho=0.8)),
    "adadelta": (optim.Adadelta, ref_adadelta, dict(lr=1.0)),
    "adam": (optim.Adam, ref_adam, dict(lr=0.05, beta1=0.8, beta2=0.99)),
    "adamw": (optim.AdamW, ref_adamw, dict(lr=0.05, weight_decay=0.1)),
}

# ====================================================================== the bank of optimizers

RNG = np.random.default_rng(7)
W0, B0 = RNG.normal(size=(3, 2)), RNG.normal(size=2)
BATCHES = [(RNG.normal(size=(4, 3)), RNG.normal(size=(4, 2))) for _ in range(STEPS)]


def ls_grads(W, b, X, Y):
    """Loss mean((X W + b - Y)^2) and its gradients, by hand."""
    r = X @ W + b - Y
    dr = 2 * r / r.size
    return np.mean(r ** 2), X.T @ dr, dr.sum(axis=0)


class Bank:
    """One graph holding every configuration, each with its own W, b, loss and optimizer."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.graph = gc.Graph(f"bank_{dtype.__name__}")
        self.opts, self.params, updates, losses = {}, {}, {}, []
        with self.graph:
            self.X, self.Y = gc.placeholder((4, 3), dtype, name="x"), gc.placeholder((4, 2), dtype, name="y")
            for name, (cls, _, kwargs) in CONFIGS.items():
                W = gc.variable(W0.astype(dtype), name=f"{name}/W")
                b = gc.variable(B0.astype(dtype), name=f"{name}/b")
                loss = gc.mean((self.X @ W + b - self.Y) ** 2)
                self.opts[name], self.params[name] = cls(**kwargs), (W, b)
                updates.update(self.opts[name].updates(loss, [W, b]))
                losses.append(loss)
            self.fns = {be: gc.function([self.X, self.Y], losses, updates, backend=be) for be in BACKENDS}
        self.initial = {v: gc.get_value(v) for v in self.graph.variables()}

    def reset(self):
        for v, a in self.initial.items():
            gc.set_value(v, a)
        for name, opt in self.opts.items():
            opt.lr = CONFIGS[name][2]["lr"]

    def run(self, backend):
        """STEPS steps from a reset; per step the losses and {name: {var name: value}} after it."""
        self.reset()
        fn, record = self.fns[backend], []
        for k, (X, Y) in enumerate(BATCHES):
            if k == HALVE_LR_AT:
                for opt in self.opts.values():
                    opt.lr = opt.lr * 0.5
            losses = fn(X.astype(self.dtype), Y.astype(self.dtype))
            values = {name: {v.name: gc.get_value(v) for v in self.vars_of(name)} for name in CONFIGS}
            record.append((losses, values))
        return record

    def vars_of(self, name):
        W, b = self.params[name]
        opt = self.opts[name]
        return [W, b] + [v for p in (W, b) for v in opt.state.get(p, {}).values()]


@pytest.fixture(scope="module")
def banks():
    return {dt: Bank(dt) for dt in (np.float32, np.float64)}


@pytest.fixture(scope="module")
def runs(banks):
    """{(dtype, backend): the bank's STEPS-step record}; the cpu function must compile once."""
    out = {}
    for dt, bank in banks.items():
        for be in BACKENDS:
            out[dt, be] = bank.run(be)
        assert len(bank.fns["cpu"]._compiled) == 1
    return out


def reference_run(name, dtype):
    _, ref, kwargs = CONFIGS[name]
    W, b, sW, sb = W0.astype(dtype), B0.astype(dtype), {}, {}
    lr, record = kwargs["lr"], []
    for k, (X, Y) in enumerate(BATCHES):
        lr = lr * 0.5 if k == HALVE_LR_AT else lr
        loss, gW, gb = ls_grads(W, b, X.astype(dtype), Y.astype(dtype))
        hyper = {**kwargs, "lr": dtype(lr)}
        W, b = ref(W, gW, sW, **hyper), ref(b, gb, sb, **hyper)
        values = {f"{name}/W": W, f"{name}/b": b}
        values.update({f"{name}/W/{s}": v for s, v in sW.items() if s != "t"})
        values.update({f"{name}/b/{s}": v for s, v in sb.items() if s != "t"})
        record.append((loss, values))
    return record


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_optimizer_matches_numpy_reference(runs, name, dtype, backend):
    got, want = runs[dtype, backend], reference_run(name, dtype)
    index = list(CONFIGS).index(name)
    for step, ((losses, values), (loss, ref_values)) in enumerate(zip(got, want)):
        np.testing.assert_allclose(losses[index], loss, **TOL[dtype], err_msg=f"loss before step {step + 1}")
        assert set(values[name]) == set(ref_values), (sorted(values[name]), sorted(ref_values))
        for var_name, ref_value in ref_values.items():
            value = values[name][var_name]
            assert value.dtype == dtype and value.shape == ref_value.shape
            np.testing.assert_allclose(value, ref_value, **TOL[dtype], err_msg=f"{var_name} after step {step + 1}")
    assert not np.allclose(got[-1][1][name][f"{name}/W"], W0, rtol=1e-3)       # it did move


# ====================================================================== the learning rate is a variable


@pytest.mark.parametrize("backend", BACKENDS)
def test_changing_lr_changes_the_next_step_without_recompiling(banks, backend):
    bank = banks[np.float64]
    bank.reset()
    fn, opt, (W, b) = bank.fns[backend], bank.opts["sgd"], bank.params["sgd"]
    schedule = optim.StepDecay(opt, step_size=1, gamma=0.1)      # remembers the lr after reset, 0.1
    for lr in [0.1, 0.025, "schedule", 0.5]:
        if lr == "schedule":
            lr = schedule.step()
            assert lr == pytest.approx(0.01, rel=1e-12)
        else:
            opt.lr = lr
        X, Y = BATCHES[0]
        _, gW, gb = ls_grads(gc.get_value(W), gc.get_value(b), X, Y)
        before = gc.get_value(W), gc.get_value(b)
        fn(X, Y)
        np.testing.assert_allclose(gc.get_value(W) - before[0], -lr * gW, rtol=1e-9)
        np.testing.assert_allclose(gc.get_value(b) - before[1], -lr * gb, rtol=1e-9)
        assert gc.get_value(opt.lr_var) == lr
    if backend == "cpu":
        assert len(fn._compiled) == 1                 # one shape signature, compiled once


def test_lr_property_and_variable():
    opt = optim.Adam(lr=0.1)
    assert opt.lr == 0.1 and opt.lr_var is None         # no graph yet
    opt.lr = 0.3
    with gc.Graph() as g:
        W = gc.variable(np.ones((2, 2), np.float32), name="W")
        updates = opt.updates(gc.sum(W * W), [W])
    assert opt.lr_var.graph is g and opt.lr_var.shape == () and opt.lr_var.dtype == np.float32
    assert opt.lr == 0.3 and gc.get_value(opt.lr_var) == np.float32(0.3)   # the float given, not float32's
    opt.lr = 0.01
    assert gc.get_value(opt.lr_var) == np.float32(0.01)
    gc.set_value(opt.lr_var, 0.5)                      # set behind the property's back: the variable wins
    assert opt.lr == 0.5
    assert opt.lr_var not in updates                   # lr changes only when you change it
    assert set(opt.variables()) == {opt.lr_var, opt.step_var, *opt.state[W].values()}
    with pytest.raises(GraphError, match="lr must be"):
        opt.lr = -1.0


# ====================================================================== state, dtypes, errors


def test_state_variables_are_named_zero_and_shaped_like_their_param():
    with gc.Graph():
        W = gc.variable(np.ones((3, 2)), name="W")
        b = gc.variable(np.ones(2), name="b")
        loss = gc.sum(W @ b)
        ups = optim.Adadelta().updates(loss, [W, b, W])    # W twice: updated once
        adam = optim.Adam()
        adam_ups = adam.updates(loss, [W, b])
    assert sorted(v.name for v in ups) == ["W", "W/delta_avg", "W/square_avg", "b", "b/delta_avg", "b/square_avg"]
    for v in ups:
        assert v.shape == (W if v.name.startswith("W") else b).shape and v.dtype == np.float64
        if v not in (W, b):
            assert not gc.get_value(v).any()
    assert adam.step_var in adam_ups and adam.step_var.dtype == np.int64
    with gc.Graph():
        W = gc.variable(np.ones(2, np.float32), name="W")
        ups = optim.Adagrad(initial_accumulator=0.25).updates(gc.sum(W), W)
    np.testing.assert_array_equal(gc.get_value(next(v for v in ups if v.name == "W/accumulator")), [0.25, 0.25])


def test_adam_step_count_and_mixed_dtypes():
    """A float32 and a float64 param: the lr variable is float64 and each param keeps its dtype."""
    opt = optim.Adam(lr=0.1)
    with gc.Graph():
        a = gc.variable(np.array([1.0, -2.0], np.float32), name="a")
        c = gc.variable(np.array(3.0), name="c")
        loss = gc.sum(gc.cast(a, gc.float64) ** 2) + c ** 2
        fn = gc.function([], loss, opt.updates(loss, [a, c]))
    for _ in range(3):
        fn()
    assert opt.lr_var.dtype == np.float64 and gc.get_value(opt.step_var) == 3
    sa, sc = {}, {}
    ra, rc = np.array([1.0, -2.0], np.float32), np.array(3.0)
    for _ in range(3):
        ra, rc = ref_adam(ra, 2 * ra, sa, np.float32(0.1)), ref_adam(rc, 2 * rc, sc, 0.1)
    assert gc.get_value(a).dtype == np.float32
    np.testing.assert_allclose(gc.get_value(a), ra, rtol=1e-6)
    np.testing.assert_allclose(gc.get_value(c), rc, rtol=1e-12)


def test_defaults():
    for opt, want in [(optim.SGD(), dict(lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0)),
                      (optim.Adagrad(), dict(lr=0.01, eps=1e-7, initial_accumulator=0.0)),
                      (optim.RMSprop(), dict(lr=0.001, rho=0.9, eps=1e-7)),
                      (optim.Adadelta(), dict(lr=1.0, rho=0.95, eps=1e-6)),
                      (optim.Adam(), dict(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-7)),
                      (optim.AdamW(), dict(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-7, weight_decay=0.01))]:
        assert {k: getattr(opt, k) for k in want} == want, type(opt).__name__


def test_errors():
    with gc.Graph():
        W = gc.variable(np.ones(2), name="W")
        n = gc.variable(np.ones(2, np.int64), name="n")
        loss = gc.sum(W * W)
        with pytest.raises(GraphError, match="not a variable"):
            optim.SGD().updates(loss, [W * 2])
        with pytest.raises(GraphError, match="int64"):
            optim.SGD().updates(loss, [n])
        with pytest.raises(GraphError, match="no params"):
            optim.SGD().updates(loss, [])
        opt = optim.SGD()
        opt.updates(loss, W)
    with gc.Graph():
        V = gc.variable(np.ones(2), name="V")
        with pytest.raises(ForeignNodeError, match="one optimizer per graph"):
            opt.updates(gc.sum(V), [V])
    bad = [(optim.SGD, dict(lr=-0.1)), (optim.SGD, dict(momentum=-1)), (optim.SGD, dict(nesterov=True)),
           (optim.Adam, dict(beta1=1.0)), (optim.RMSprop, dict(rho=1.5)), (optim.Adagrad, dict(eps=float("nan"))),
           (optim.StepDecay, dict(opt=optim.SGD(), step_size=0)),
           (optim.ReduceLROnPlateau, dict(opt=optim.SGD(), mode="up")),
           (optim.ReduceLROnPlateau, dict(opt=optim.SGD(), factor=1.0))]
    for cls, kwargs in bad:
        with pytest.raises(GraphError):
            cls(**kwargs)


# ====================================================================== schedules


def lrs(schedule, n, **step_args):
    return [schedule.step(**step_args) for _ in range(n)]


def test_step_decay_sequence():
    opt = optim.SGD(lr=1.0)
    sched = optim.StepDecay(opt, step_size=2, gamma=0.5)
    assert sched.initial_lr == 1.0
    assert lrs(sched, 6) == pytest.approx([1.0, 0.5, 0.5, 0.25, 0.25, 0.125], rel=1e-12)
    assert opt.lr == pytest.approx(0.125, rel=1e-12)
    assert sched.step(epoch=1) == pytest.approx(0.5, rel=1e-12)   # epoch 1 ended: the lr of epoch 2
    assert sched.step(epoch=8) == pytest.approx(1 / 16, rel=1e-12)   # epoch 9: 0.5 ** (9 // 2)


def test_exponential_decay_sequence_on_a_bound_optimizer():
    opt = optim.RMSprop(lr=0.2)
    with gc.Graph():
        W = gc.variable(np.ones(3, np.float32), name="W")
        opt.updates(gc.sum(W * W), [W])
    sched = optim.ExponentialDecay(opt, gamma=0.9)
    got = lrs(sched, 4)
    assert got == pytest.approx([0.2 * 0.9 ** k for k in range(1, 5)], rel=1e-12)
    assert gc.get_value(opt.lr_var) == np.float32(got[-1])


def test_reduce_on_plateau_waits_patience_epochs():
    opt = optim.SGD(lr=1.0)
    sched = optim.ReduceLROnPlateau(opt, factor=0.5, patience=2)
    metrics = [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.5, 0.6]
    #          best  best  bad1  bad2  bad3  bad1  bad2  bad3  best bad1
    want = [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]
    assert [sched.step(metric=m) for m in metrics] == want
    with pytest.raises(GraphError, match="metric"):
        sched.step()


def test_reduce_on_plateau_threshold_mode_and_floor():
    opt = optim.SGD(lr=1.0)
    sched = optim.ReduceLROnPlateau(opt, factor=0.1, patience=0, threshold=0.01, min_lr=0.05)
    assert sched.step(metric=-10.0) == 1.0
    assert sched.step(metric=-10.05) == pytest.approx(0.1)     # better by 0.5% < 1% of |best|: no improvement
    assert sched.step(metric=-10.2) == pytest.approx(0.1)      # better by 2%
    assert sched.step(metric=float("nan")) == 0.05            # nan never improves; floored at min_lr
    assert sched.step(metric=5.0) == 0.05
    opt = optim.SGD(lr=1.0)
    sched = optim.ReduceLROnPlateau(opt, factor=0.5, patience=1, mode="max")
    assert [sched.step(metric=m) for m in [0.5, 0.6, 0.55, 0.6, 0.7, 0.7, 0.7]] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]


# ====================================================================== regularizers


def test_l1_l2_values_and_gradients():
    w = np.array([[1.5, -2.0], [0.0, 0.5]], np.float32)
    c = np.array([-3.0, 0.25])
    with gc.Graph():
        W = gc.variable(w, name="W")
        C = gc.variable(c, name="C")
        pen = [regularizers.l1([W, C], 0.1), regularizers.l2([W, C], 0.3), regularizers.l2(W, 2.0)]
        grads = gc.grad(pen[0], [W, C]) + gc.grad(pen[1], [W, C]) + gc.grad(pen[2], [W])
        out = gc.function([], pen + grads)()
    assert [p.shape for p in pen] == [(), (), ()] and pen[0].dtype == np.float64 and pen[2].dtype == np.float32
    np.testing.assert_allclose(out[0], 0.1 * (4.0 + 3.25), rtol=1e-12)
    np.testing.assert_allclose(out[1], 0.3 * (1.5 ** 2 + 4 + 0.25 + 9 + 0.0625), rtol=1e-7)
    np.testing.assert_allclose(out[2], 2.0 * (1.5 ** 2 + 4 + 0.25), rtol=1e-6)
    np.testing.assert_allclose(out[3], 0.1 * np.sign(w), rtol=1e-7)              # 0 at 0
    np.testing.assert_allclose(out[4], 0.1 * np.sign(c), rtol=1e-12)
    np.testing.assert_allclose(out[5], 2 * 0.3 * w, rtol=1e-6)
    np.testing.assert_allclose(out[6], 2 * 0.3 * c, rtol=1e-12)
    np.testing.assert_allclose(out[7], 2 * 2.0 * w, rtol=1e-6)
    with gc.Graph():
        n = gc.variable(np.ones(2, np.int32), name="n")
        for bad in [lambda: regularizers.l2([], 0.1), lambda: regularizers.l1(n, 0.1),
                    lambda: regularizers.l2([np.ones(2)], 0.1), lambda: regularizers.l1(gc.cast(n, gc.float32), -1)]:
            with pytest.raises(GraphError):
                bad()


def test_sgd_weight_decay_is_l2_with_half_the_scale():
    """SGD(weight_decay=wd) on loss == SGD on loss + l2(params, wd / 2), step for step."""
    results = []
    for use_l2 in (False, True):
        with gc.Graph():
            W = gc.variable(W0, name="W")
            b = gc.variable(B0, name="b")
            X, Y = BATCHES[0]
            loss = gc.mean((gc.constant(X) @ W + b - Y) ** 2)
            opt = optim.SGD(lr=0.1, momentum=0.5, weight_decay=0.0 if use_l2 else 0.2)
            total = loss + regularizers.l2([W, b], 0.1) if use_l2 else loss
            fn = gc.function([], loss, opt.updates(total, [W, b]))
            for _ in range(3):
                fn()
            results.append((gc.get_value(W), gc.get_value(b)))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert not np.allclose(results[0][0], W0)


# ====================================================================== training


TRAIN_LR = {"sgd": 0.1, "momentum": 0.05, "nesterov_wd": 0.05, "adagrad": 0.3, "adagrad_init": 0.3,
            "rmsprop": 0.02, "adadelta": 1.0, "adam": 0.05, "adamw": 0.05}


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_reduces_the_loss_with_every_optimizer(banks, backend):
    """200 full-batch steps on a realizable least-squares problem (with a new lr each: lr is a variable)."""
    bank = banks[np.float32]
    bank.reset()
    rng = np.random.default_rng(3)
    X = rng.normal(size=(4, 3)).astype(np.float32)
    Y = (X @ rng.normal(size=(3, 2)) + rng.normal(size=2)).astype(np.float32)
    for name, lr in TRAIN_LR.items():
        bank.opts[name].lr = lr
    losses = np.array([bank.fns[backend](X, Y) for _ in range(200)])    # (steps, optimizers)
    final = dict(zip(CONFIGS, losses[-1] / losses[0]))
    slow = {"adadelta": 0.25}                 # Adadelta's first steps are ~sqrt(eps) long (measured 0.1)
    for name, ratio in final.items():
        assert ratio < slow.get(name, 0.01), (name, ratio, losses[[0, 50, 100, -1], list(CONFIGS).index(name)])
    if backend == "cpu":
        assert len(bank.fns["cpu"]._compiled) == 1
