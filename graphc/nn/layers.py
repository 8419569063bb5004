"""Layers (Dense, Dropout, BatchNorm, Sequential) and the activations by name, all building ordinary graph nodes.

A layer creates its variables the first time it is applied (when it sees
its input's shape) and reuses them afterwards, so one model applied twice --
`model(x, training=True)` for the train step and `model(x)` for prediction --
shares its weights between the two compiled functions.

    model = gc.nn.Sequential([gc.nn.Dense(64, "relu"), gc.nn.Dropout(0.2), gc.nn.Dense(10)])
    logits = model(x, training=True)
    loss = gc.mean(gc.nn.softmax_cross_entropy(logits, y))
"""
import numpy as np

import graphc.api as F
from graphc.core.errors import GraphError, ShapeError, where
from graphc.core.graph import Node, user_location
from graphc.ops.random import bernoulli

ACTIVATIONS = {
    None: lambda x: x, "linear": lambda x: x, "sigmoid": F.sigmoid, "tanh": F.tanh, "relu": F.relu,
    "leaky_relu": F.leaky_relu, "elu": F.elu, "softplus": F.softplus,
    "softmax": lambda x: F.softmax(x, axis=-1),
}
sigmoid, tanh, relu, leaky_relu, elu, softplus, softmax = (
    F.sigmoid, F.tanh, F.relu, F.leaky_relu, F.elu, F.softplus, F.softmax)


def activation(name_or_fn):
    if callable(name_or_fn):
        return name_or_fn
    if name_or_fn not in ACTIVATIONS:
        raise GraphError(f"unknown activation {name_or_fn!r}; choose one of "
                         + ", ".join(repr(k) for k in ACTIVATIONS if k) + " or pass a function")
    return ACTIVATIONS[name_or_fn]


class Layer:
    """Base class: variables made by `build` on the first call, kept for every later call."""

    def __init__(self, name=None):
        self.name = name
        self.built = False
        self.graph = None
        self.params = []            # trainable variables
        self.state = []             # other variables (batch norm's running statistics)
        self.state_updates = {}     # {variable: new value} from the last training=True application

    def __call__(self, x, training=False):
        if not isinstance(x, Node):
            raise GraphError(f"{type(self).__name__} needs a graph node, got {x!r}{where(user_location())}")
        if not self.built:
            self.graph = x.graph
            self.name = self.name or _unique_layer_name(x.graph, type(self).__name__.lower())
            with x.graph:
                self.build(x)
            self.built = True
        elif x.graph is not self.graph:
            raise GraphError(f"layer {self.name} was built in {self.graph.name}, applied to a node of "
                             f"{x.graph.name}{where(user_location())}")
        with x.graph:
            return self.forward(x, training)

    def build(self, x):
        pass

    def forward(self, x, training):
        raise NotImplementedError

    @property
    def variables(self):
        return self.params + self.state

    def variable(self, value, name):
        node = F.variable(value, name=f"{self.name}/{name}")
        return node


def _unique_layer_name(graph, base):
    counts = graph.__dict__.setdefault("layer_counts", {})
    counts[base] = counts.get(base, 0) + 1
    return f"{base}_{counts[base]}"


def _initializer(spec, seed):
    """An initializer from a name ("glorot_uniform", "zeros", ...) seeded with `seed`, or as given."""
    from . import init
    return init.get(spec, seed=seed)


class Dense(Layer):
    """y = activation(x @ W + b) over the last axis."""

    def __init__(self, units, activation=None, use_bias=True, kernel_init="glorot_uniform",
                 bias_init="zeros", seed=None, name=None):
        super().__init__(name)
        self.units, self.use_bias, self.seed = int(units), use_bias, seed
        self.act = globals()["activation"](activation)
        self.kernel_init, self.bias_init = kernel_init, bias_init

    def build(self, x):
        fan_in = x.shape[-1]
        if fan_in is None:
            raise ShapeError(f"Dense {self.name}: the last axis of its input must be known, got "
                             f"{x.type}{where(user_location())}")
        seed = self.seed if self.seed is not None else _graph_seed(x.graph)
        W = _initializer(self.kernel_init, seed)((fan_in, self.units), x.dtype)
        self.W = self.variable(np.asarray(W, x.dtype), "W")
        self.params = [self.W]
        if self.use_bias:
            b = _initializer(self.bias_init, seed + 1)((self.units,), x.dtype)
            self.b = self.variable(np.asarray(b, x.dtype), "b")
            self.params.append(self.b)

    def forward(self, x, training):
        y = x @ self.W
        return self.act(y + self.b if self.use_bias else y)


def _graph_seed(graph):
    """Layers without a seed get 0, 2, 4, ... in the order they are built: reproducible."""
    graph.__dict__["layer_seed"] = graph.__dict__.get("layer_seed", -2) + 2
    return graph.__dict__["layer_seed"]


class Activation(Layer):
    def __init__(self, fn, name=None):
        super().__init__(name)
        self.fn = activation(fn)

    def forward(self, x, training):
        return self.fn(x)


class Dropout(Layer):
    """Inverted dropout: in training each unit is kept with probability 1 - rate and scaled by
    1 / (1 - rate), so evaluation is the identity. Masks come from gc.random: the same on every
    backend for one seed, new on every call."""

    def __init__(self, rate, seed=None, name=None):
        super().__init__(name)
        if not 0 <= rate < 1:
            raise GraphError(f"Dropout rate must be in [0, 1), got {rate}{where(user_location())}")
        self.rate, self.seed = float(rate), seed

    def forward(self, x, training):
        if not training or self.rate == 0:
            return x
        keep = 1.0 - self.rate
        mask = bernoulli(x, keep, seed=self.seed)
        return F.where(mask, x * (1.0 / keep), 0.0)


class BatchNorm(Layer):
    """Normalize each feature (the last axis) by the batch's mean and variance in training, by
    running averages in evaluation; then scale by gamma and shift by beta (both trained).

        running = momentum * running + (1 - momentum) * batch statistic
    The running statistics change through the train step's updates (`state_updates`).
    """

    def __init__(self, momentum=0.9, eps=1e-5, name=None):
        super().__init__(name)
        self.momentum, self.eps = float(momentum), float(eps)

    def build(self, x):
        n = x.shape[-1]
        if n is None:
            raise ShapeError(f"BatchNorm {self.name}: the feature axis must be known, got {x.type}")
        self.gamma = self.variable(np.ones(n, x.dtype), "gamma")
        self.beta = self.variable(np.zeros(n, x.dtype), "beta")
        self.mean = self.variable(np.zeros(n, x.dtype), "running_mean")
        self.var = self.variable(np.ones(n, x.dtype), "running_var")
        self.params, self.state = [self.gamma, self.beta], [self.mean, self.var]

    def forward(self, x, training):
        axes = tuple(range(x.ndim - 1))
        if training:
            mean = F.mean(x, axis=axes)
            centered = x - mean
            var = F.mean(centered * centered, axis=axes)
            m = self.momentum
            self.state_updates = {self.mean: self.mean * m + mean * (1 - m),
                                  self.var: self.var * m + var * (1 - m)}
        else:
            mean, var = self.mean, self.var
            centered = x - mean
        return centered * (self.gamma / F.sqrt(var + self.eps)) + self.beta


class Sequential(Layer):
    """Layers applied in order; its params, state and state updates are theirs together."""

    def __init__(self, layers, name=None):
        super().__init__(name)
        self.layers = list(layers)

    def __call__(self, x, training=False):
        if not self.built:
            self.graph, self.built = x.graph, True
            self.name = self.name or _unique_layer_name(x.graph, "sequential")
        for layer in self.layers:
            x = layer(x, training=training)
        if training:
            self.state_updates = {k: v for layer in self.layers for k, v in layer.state_updates.items()}
        return x

    @property
    def params(self):
        return [p for layer in self.layers for p in layer.params]

    @params.setter
    def params(self, value):
        pass                        # Layer.__init__ sets it; a Sequential's params are its layers'

    @property
    def state(self):
        return [s for layer in self.layers for s in layer.state]

    @state.setter
    def state(self, value):
        pass
