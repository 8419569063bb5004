"""Layers for images in NCHW: Conv2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D, Flatten, BatchNorm2D.

They follow the Layer protocol of layers.py: variables are made on the first call, from the
input's shape, and shared by every later call (the training step and prediction).

    model = gc.nn.Sequential([gc.nn.Conv2D(16, 3, padding="same", activation="relu"),
                              gc.nn.MaxPool2D(2), gc.nn.Flatten(), gc.nn.Dense(10)])
"""
import math

import numpy as np

import graphc.api as F
from graphc.core.errors import ShapeError, where
from graphc.core.graph import user_location

from .layers import Layer, _graph_seed, _initializer, activation

__all__ = ["Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "Flatten", "BatchNorm2D"]


def _channels(layer, x):
    if x.ndim != 4 or x.shape[1] is None:
        raise ShapeError(f"{type(layer).__name__} {layer.name}: needs an NCHW input with a known channel "
                         f"count, got {x.type}{where(user_location())}")
    return x.shape[1]


class Conv2D(Layer):
    """y = activation(conv2d(x, W) + b): W of shape (filters, C // groups, kh, kw) (OIHW), b (filters,).

    kernel_init: as Dense's (fans by the conv convention of init.py: fan_in = C // groups * kh * kw);
    "he_uniform" suits ReLU networks."""

    def __init__(self, filters, kernel_size, stride=1, padding="valid", dilation=1, groups=1, activation=None,
                 use_bias=True, kernel_init="glorot_uniform", bias_init="zeros", seed=None, name=None):
        super().__init__(name)
        self.filters, self.use_bias, self.seed = int(filters), use_bias, seed
        k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        self.kernel_size = k
        self.conv = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        self.act = globals()["activation"](activation)
        self.kernel_init, self.bias_init = kernel_init, bias_init

    def build(self, x):
        c = _channels(self, x)
        groups = self.conv["groups"]
        if c % groups or self.filters % groups:
            raise ShapeError(f"Conv2D {self.name}: groups={groups} must divide the {c} input channels and the "
                             f"{self.filters} filters{where(user_location())}")
        seed = self.seed if self.seed is not None else _graph_seed(x.graph)
        shape = (self.filters, c // groups) + self.kernel_size
        self.W = self.variable(np.asarray(_initializer(self.kernel_init, seed)(shape, x.dtype), x.dtype), "W")
        self.params = [self.W]
        if self.use_bias:
            b = _initializer(self.bias_init, seed + 1)((self.filters,), x.dtype)
            self.b = self.variable(np.asarray(b, x.dtype), "b")
            self.params.append(self.b)

    def forward(self, x, training):
        y = F.conv2d(x, self.W, **self.conv)
        if self.use_bias:
            y = y + F.reshape(self.b, (1, self.filters, 1, 1))
        return self.act(y)


class MaxPool2D(Layer):
    """The max of each kernel window (stride: the kernel's by default)."""

    def __init__(self, kernel=2, stride=None, padding=0, ceil_mode=False, name=None):
        super().__init__(name)
        self.pool = dict(kernel=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)

    def forward(self, x, training):
        return F.max_pool2d(x, **self.pool)


class AvgPool2D(Layer):
    """The mean of each kernel window (stride: the kernel's by default)."""

    def __init__(self, kernel=2, stride=None, padding=0, ceil_mode=False, count_include_pad=True, name=None):
        super().__init__(name)
        self.pool = dict(kernel=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode,
                         count_include_pad=count_include_pad)

    def forward(self, x, training):
        return F.avg_pool2d(x, **self.pool)


class GlobalAvgPool2D(Layer):
    """The mean over H and W: (N, C, H, W) -> (N, C) (keepdims=True: (N, C, 1, 1))."""

    def __init__(self, keepdims=False, name=None):
        super().__init__(name)
        self.keepdims = keepdims

    def forward(self, x, training):
        y = F.global_avg_pool2d(x)
        return y if self.keepdims else F.reshape(y, (-1, _channels(self, x)))


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...): the axes after the batch must be known."""

    def forward(self, x, training):
        if None in x.shape[1:]:
            raise ShapeError(f"Flatten {self.name}: the axes after the first must be known, got "
                             f"{x.type}{where(user_location())}")
        return F.reshape(x, (-1, math.prod(x.shape[1:])))


class BatchNorm2D(Layer):
    """BatchNorm over the channel axis of NCHW: each channel normalized by the mean and variance
    over (N, H, W) in training, by running averages in evaluation; then scaled by gamma and
    shifted by beta (both trained). running = momentum * running + (1 - momentum) * batch statistic,
    through the train step's updates (`state_updates`), as layers.BatchNorm."""

    def __init__(self, momentum=0.9, eps=1e-5, name=None):
        super().__init__(name)
        self.momentum, self.eps = float(momentum), float(eps)

    def build(self, x):
        c = _channels(self, x)
        self.gamma = self.variable(np.ones(c, x.dtype), "gamma")
        self.beta = self.variable(np.zeros(c, x.dtype), "beta")
        self.mean = self.variable(np.zeros(c, x.dtype), "running_mean")
        self.var = self.variable(np.ones(c, x.dtype), "running_var")
        self.params, self.state = [self.gamma, self.beta], [self.mean, self.var]

    def forward(self, x, training):
        shape = (1, x.shape[1], 1, 1)
        if training:
            mean = F.mean(x, axis=(0, 2, 3))
            centered = x - F.reshape(mean, shape)
            var = F.mean(centered * centered, axis=(0, 2, 3))
            m = self.momentum
            self.state_updates = {self.mean: self.mean * m + mean * (1 - m),
                                  self.var: self.var * m + var * (1 - m)}
        else:
            mean, var = self.mean, self.var
            centered = x - F.reshape(mean, shape)
        scale = F.reshape(self.gamma / F.sqrt(var + self.eps), shape)
        return centered * scale + F.reshape(self.beta, shape)
