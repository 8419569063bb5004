"""Layers, random numbers, the training loop, early stopping and saving."""
import numpy as np
import pytest

import graphc as gc
from graphc.ops.random import counter


def test_random_numbers_are_the_same_on_every_backend_and_new_on_every_call():
    with gc.Graph() as g:
        x = gc.placeholder((None, 6), gc.float32)
        outs = [gc.random.uniform(x, seed=3), gc.random.normal(x, seed=3, dtype="float64"),
                gc.random.bernoulli(x, 0.3, seed=4), gc.random.uniform((2, 3), -1.0, 1.0, seed=5)]
        fi = gc.function([x], outs, backend="interp")
        fc = gc.function([x], outs, backend="cpu")
    xv = np.zeros((50, 6), np.float32)
    first = fi(xv)
    gc.set_value(counter(g), np.int64(0))
    same = fc(xv)
    np.testing.assert_array_equal(first[0], same[0])              # uniform: bit for bit
    np.testing.assert_array_equal(first[2], same[2])              # dropout masks: bit for bit
    np.testing.assert_allclose(first[1], same[1], rtol=1e-12)     # normal: libm vs numpy, float64
    np.testing.assert_array_equal(first[3], same[3])
    later = fc(xv)
    assert not np.array_equal(later[0], same[0])                  # every call draws anew
    assert gc.get_value(counter(g)) == 2
    u, z, m = fc(np.zeros((4000, 6), np.float32))[:3]
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03
    assert abs(m.mean() - 0.3) < 0.01


def test_uniform_numbers_are_splitmix64_of_the_element_index():
    """An independent check of ops/random.py in Python integers: element i of a draw is the top
    24 bits of splitmix64(i + counter * C + key(seed, stream)), scaled to [0, 1)."""
    mask = (1 << 64) - 1

    def mix(z):
        z = (z + 0x9E3779B97F4A7C15) & mask
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    with gc.Graph():
        u = gc.random.uniform((7,), seed=11)
        f = gc.function([], u)
    for call in range(2):
        key = mix((11 * 0x100000001B3 + u.attrs["stream"]) & mask)
        want = [(mix((i + call * 0xD1B54A32D192ED03 + key) & mask) >> 40) / 2 ** 24 for i in range(7)]
        np.testing.assert_array_equal(f(), np.array(want, np.float32))


def test_dense_layers_share_weights_between_train_and_eval():
    with gc.Graph():
        x = gc.placeholder((None, 4), gc.float32)
        model = gc.nn.Sequential([gc.nn.Dense(3, "tanh", seed=1), gc.nn.Dense(2, seed=2)])
        train_out, eval_out = model(x, training=True), model(x)
        f = gc.function([x], [train_out, eval_out])
    assert [p.shape for p in model.params] == [(4, 3), (3,), (3, 2), (2,)]
    a, b = f(np.ones((5, 4), np.float32))
    np.testing.assert_array_equal(a, b)
    W1, b1, W2, b2 = (gc.get_value(p) for p in model.params)
    np.testing.assert_allclose(a, np.tanh(np.ones((5, 4)) @ W1 + b1) @ W2 + b2, rtol=1e-5)


@pytest.mark.parametrize("backend", ["interp", "cpu"])
def test_batch_norm_uses_batch_statistics_in_training_and_running_ones_in_evaluation(backend):
    rng = np.random.default_rng(0)
    xv = (rng.normal(size=(64, 3)) * [1, 2, 3] + [5, -1, 0]).astype(np.float32)
    with gc.Graph():
        x = gc.placeholder((None, 3), gc.float32)
        bn = gc.nn.BatchNorm(momentum=0.5)
        train = gc.function([x], bn(x, training=True), bn.state_updates, backend=backend)
        evaluate = gc.function([x], bn(x), backend=backend)
    y = train(xv)
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=0), 1, rtol=1e-3)
    np.testing.assert_allclose(gc.get_value(bn.mean), 0.5 * xv.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(gc.get_value(bn.var), 0.5 + 0.5 * xv.var(axis=0), rtol=1e-5)
    running_mean, running_var = gc.get_value(bn.mean), gc.get_value(bn.var)
    np.testing.assert_allclose(evaluate(xv), (xv - running_mean) / np.sqrt(running_var + 1e-5), rtol=1e-4)


def test_dropout_scales_kept_units_and_is_the_identity_in_evaluation():
    with gc.Graph():
        x = gc.placeholder((None, 100), gc.float32)
        drop = gc.nn.Dropout(0.25, seed=7)
        f = gc.function([x], [drop(x, training=True), drop(x)], backend="cpu")
    train, same = f(np.ones((200, 100), np.float32))
    assert set(np.unique(train)) == {0.0, np.float32(1 / 0.75)}
    assert abs((train == 0).mean() - 0.25) < 0.01
    np.testing.assert_array_equal(same, 1.0)


def _regression(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]]) + 0.1 * rng.normal(size=(n, 1))).astype(np.float32)
    return x, y


@pytest.mark.parametrize("backend", ["interp", "cpu"])
def test_training_reduces_the_loss(backend):
    x, y = _regression()
    with gc.Graph():
        model = gc.nn.Sequential([gc.nn.Dense(8, "relu", seed=0), gc.nn.BatchNorm(),
                                  gc.nn.Dropout(0.1, seed=1), gc.nn.Dense(1, seed=2)])
    history, trainer = gc.nn.fit(model, gc.nn.mean_squared_error, gc.optim.SGD(lr=0.05, momentum=0.9),
                                 x, y, epochs=8, batch_size=64, backend=backend, verbose=False)
    losses = history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert trainer.evaluate(x, y)["loss"] < losses[0]
    assert trainer.predict(x).shape == (256, 1)


def test_early_stopping_restores_the_best_weights():
    x, y = _regression()

    def run(epochs, stop):
        with gc.Graph():
            model = gc.nn.Sequential([gc.nn.Dense(1, seed=3)])
        history, _ = gc.nn.fit(model, gc.nn.mean_squared_error, gc.optim.SGD(lr=0.01), x, y, epochs=epochs,
                               batch_size=32, backend="interp", early_stopping=stop, verbose=False)
        return model, history

    # "max" on a falling loss: epoch 0 stays the best, so training stops after `patience` more
    stopper = gc.nn.EarlyStopping(monitor="loss", patience=2, mode="max")
    stopped, history = run(10, stopper)
    assert history.best_epoch == 0 and history.stopped_epoch == 2 and len(history["loss"]) == 3
    one_epoch, _ = run(1, None)
    for a, b in zip(stopped.params, one_epoch.params):
        np.testing.assert_allclose(gc.get_value(a), gc.get_value(b), rtol=1e-6)


def test_save_and_load(tmp_path):
    with gc.Graph():
        x = gc.placeholder((None, 3), gc.float32)
        model = gc.nn.Sequential([gc.nn.Dense(4, seed=0), gc.nn.BatchNorm()])
        model(x)
        other = gc.nn.Sequential([gc.nn.Dense(4, seed=9), gc.nn.BatchNorm()])
        other(x)
    path = tmp_path / "model.npz"
    gc.nn.save(model, path)
    with pytest.raises(gc.GraphError, match="differ"):
        gc.nn.load(other, path)                      # other names (dense_2/..., batchnorm_2/...)
    with gc.Graph():
        y = gc.placeholder((None, 3), gc.float32)
        again = gc.nn.Sequential([gc.nn.Dense(4, seed=5), gc.nn.BatchNorm()])
        again(y)
    gc.nn.load(again, path)
    for a, b in zip(model.variables, again.variables):
        np.testing.assert_array_equal(gc.get_value(a), gc.get_value(b))
    with gc.Graph():
        z = gc.placeholder((None, 5), gc.float32)
        wrong = gc.nn.Sequential([gc.nn.Dense(4), gc.nn.BatchNorm()])
        wrong(z)
    with pytest.raises(gc.ShapeError, match="dense_1/W"):
        gc.nn.load(wrong, path)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(gc.GraphError, match="not a readable"):
        gc.nn.load(again, bad)
