"""The image layers (graphc/nn/conv_layers.py): variables and shapes, BatchNorm2D against numpy
(batch statistics in training, running ones in evaluation), errors, and a small CNN that
trains with gc.nn.fit (the loss goes down)."""
import numpy as np
import pytest

import graphc as gc
from graphc.tools.demo import load_digits

rng = np.random.default_rng(0)


def test_conv2d_layer_variables_and_output():
    x = rng.normal(size=(2, 4, 6, 6)).astype(np.float32)
    with gc.Graph():
        p = gc.placeholder((None, 4, 6, 6), gc.float32)
        layer = gc.nn.Conv2D(6, (3, 2), stride=2, padding="same", groups=2, activation="relu", seed=3)
        y = layer(p)
        assert y.shape == (None, 6, 3, 3)
        W, b = layer.params
        assert gc.get_value(W).shape == (6, 2, 3, 2) and gc.get_value(b).shape == (6,)
        bound = np.sqrt(6 / (2 * 3 * 2 + 6 * 3 * 2))           # glorot_uniform, conv fans
        assert 0 < np.abs(gc.get_value(W)).max() <= bound
        gc.set_value(b, np.arange(6, dtype=np.float32) - 3)
        want = gc.relu(gc.conv2d(p, W, stride=2, padding="same", groups=2) + gc.reshape(b, (1, 6, 1, 1)))
        got, expected = gc.function([p], [y, want])(x)
        assert layer(p) is y                                    # applied again: the same variables and node
    np.testing.assert_allclose(got, expected)


def test_pool_flatten_and_global_layers():
    with gc.Graph():
        p = gc.placeholder((None, 3, 7, 7), gc.float32)
        assert gc.nn.MaxPool2D(2, ceil_mode=True)(p).shape == (None, 3, 4, 4)
        assert gc.nn.AvgPool2D(3, 2, padding=1)(p).shape == (None, 3, 4, 4)
        assert gc.nn.GlobalAvgPool2D()(p).shape == (None, 3)
        assert gc.nn.GlobalAvgPool2D(keepdims=True)(p).shape == (None, 3, 1, 1)
        assert gc.nn.Flatten()(p).shape == (None, 147)
        with pytest.raises(gc.ShapeError, match="Flatten"):
            gc.nn.Flatten()(gc.placeholder((None, 3, None, 7)))
        with pytest.raises(gc.ShapeError, match="groups=2"):
            gc.nn.Conv2D(4, 3, groups=2)(p)
        with pytest.raises(gc.ShapeError, match="NCHW"):
            gc.nn.Conv2D(4, 3)(gc.placeholder((None, 7, 7)))


def test_batchnorm2d_training_and_evaluation():
    x = rng.normal(2.0, 3.0, size=(4, 3, 5, 5)).astype(np.float64)
    with gc.Graph():
        p = gc.placeholder((None, 3, 5, 5), gc.float64)
        bn = gc.nn.BatchNorm2D(momentum=0.8, eps=1e-3)
        train_out = bn(p, training=True)
        updates = dict(bn.state_updates)
        eval_out = bn(p)
        gc.set_value(bn.gamma, np.array([1.0, 2.0, 0.5]))
        gc.set_value(bn.beta, np.array([0.0, 1.0, -1.0]))
        step = gc.function([p], [train_out], updates)
        evaluate = gc.function([p], [eval_out])
        (got,) = step(x)
        mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
        shape = (1, 3, 1, 1)
        want = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + 1e-3) * np.array([1.0, 2.0, 0.5]).reshape(
            shape) + np.array([0.0, 1.0, -1.0]).reshape(shape)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(gc.get_value(bn.mean), 0.2 * mean, rtol=1e-12)
        np.testing.assert_allclose(gc.get_value(bn.var), 0.8 + 0.2 * var, rtol=1e-12)
        (got,) = evaluate(x)
        run_mean, run_var = 0.2 * mean, 0.8 + 0.2 * var
        want = (x - run_mean.reshape(shape)) / np.sqrt(run_var.reshape(shape) + 1e-3) * np.array(
            [1.0, 2.0, 0.5]).reshape(shape) + np.array([0.0, 1.0, -1.0]).reshape(shape)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
        assert set(bn.params) == {bn.gamma, bn.beta} and set(bn.state) == {bn.mean, bn.var}


def test_small_cnn_trains_with_fit():
    x_train, y_train, _, _ = load_digits(0)
    x, y = x_train[:256].reshape(-1, 1, 8, 8), y_train[:256]
    model = gc.nn.Sequential([gc.nn.Conv2D(6, 3, padding="same", activation="relu", kernel_init="he_uniform",
                                           seed=1),
                              gc.nn.BatchNorm2D(),
                              gc.nn.MaxPool2D(2),
                              gc.nn.Flatten(),
                              gc.nn.Dense(10, seed=2)])
    history, trainer = gc.nn.fit(model, gc.nn.softmax_cross_entropy, gc.optim.Adam(lr=1e-2), x, y, epochs=4,
                                 batch_size=64, backend="interp", verbose=False)
    losses = history["loss"]
    assert losses[-1] < 0.6 * losses[0], losses
    assert trainer.evaluate(x, y)["accuracy"] > 0.7
