"""Initializers: `init(shape, dtype=np.float32) -> numpy array`, for gc.variable.

    w = gc.variable(gc.init.GlorotUniform(seed=1)((784, 256)), name="W1")

Seeds are explicit. Each random initializer owns a numpy Generator made from
its seed, and every call *advances* it: two layers built with one initializer
object get different weights (as they must, or the layers would start out
identical), while re-creating the initializer with the same seed reproduces
the whole sequence. Values are drawn in float64 and then converted, so one
seed gives the same numbers (up to rounding) in float32 and float64.

Fans (how many inputs and outputs each weight connects) follow one convention:
  - dense kernels (fan_in, fan_out), as used by x @ W;
  - conv kernels (out_channels, in_channels, *kernel) (PyTorch's OIHW):
    fan_in = in_channels * prod(kernel), fan_out = out_channels * prod(kernel);
  - a vector (n,) (biases): fan_in = fan_out = n; a scalar: 1 and 1.
Variance scaling, with U(-a, a) having variance a**2 / 3:
  - Glorot/Xavier: var = 2 / (fan_in + fan_out), keeps activations and
    gradients at the same scale through tanh-like layers (Glorot & Bengio 2010);
  - He/Kaiming: var = 2 / fan_in, makes up for ReLU zeroing half of its
    inputs (He et al. 2015).
The *Normal variants are plain (untruncated) normals by default, so their
variance is exactly the formula; truncated=True redraws values beyond two
standard deviations and widens the normal to keep the same variance (Keras'
convention), for those who want no outliers.
"""
import math

import numpy as np

from graphc.core.errors import DTypeError, GraphError, ShapeError
from graphc.core.types import FLOATS, as_dtype

__all__ = ["Initializer", "Zeros", "Ones", "Constant", "Uniform", "Normal", "GlorotUniform",
           "GlorotNormal", "HeUniform", "HeNormal", "compute_fans", "get", "InitializerError"]

# std of a standard normal truncated to [-2, 2]: dividing by it restores unit variance
_TRUNCATED_STD = 0.87962566103423978


class InitializerError(GraphError, ValueError):
    """An unknown initializer name or a bad initializer argument."""


def _check_shape(shape):
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        shape = tuple(shape)
    except TypeError:
        raise ShapeError(f"initializer shape must be an int or a tuple of ints, got {shape!r}") from None
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ShapeError(f"initializer shape must hold non-negative ints (no None: a variable's "
                         f"shape is fixed), got {shape!r}")
    return tuple(int(d) for d in shape)


def compute_fans(shape):
    """(fan_in, fan_out) of a weight of `shape`, by the convention in the module docstring."""
    shape = _check_shape(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


class Initializer:
    """Base class: subclasses implement `_draw(shape) -> float64 array` (shape already checked)."""

    floats_only = True   # random values make no sense as ints

    def __call__(self, shape, dtype=np.float32):
        shape = _check_shape(shape)
        dtype = as_dtype(dtype)
        if self.floats_only and dtype not in FLOATS:
            raise DTypeError(f"{self!r} draws random floats; dtype must be float32 or float64, got {dtype}")
        return np.asarray(self._draw(shape)).astype(dtype)

    def _draw(self, shape):
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class Constant(Initializer):
    """Every element `value` (any supported dtype, e.g. a bias of 0.1 or an int counter)."""

    floats_only = False

    def __init__(self, value=0.0):
        if not np.isscalar(value) or isinstance(value, str):
            raise InitializerError(f"Constant: value must be a number, got {value!r}")
        self.value = value

    def _draw(self, shape):
        return np.full(shape, self.value)


class Zeros(Constant):
    """All zeros: biases, and weights that must start at 0 (e.g. a final residual layer)."""

    def __init__(self):
        super().__init__(0.0)

    def __repr__(self):
        return "Zeros()"


class Ones(Constant):
    """All ones: e.g. the scale of a normalization layer."""

    def __init__(self):
        super().__init__(1.0)

    def __repr__(self):
        return "Ones()"


class _Random(Initializer):
    """Owns `self._rng`, a numpy Generator seeded with `seed`, advanced by every call."""

    def __init__(self, seed=0):
        if seed is not None and not (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)
                                     and seed >= 0):
            raise InitializerError(f"{type(self).__name__}: seed must be a non-negative int, got {seed!r}")
        self.seed = seed
        self._rng = np.random.default_rng(seed)


class Uniform(_Random):
    """U(low, high): fixed bounds, independent of the shape."""

    def __init__(self, low=-0.05, high=0.05, seed=0):
        if not low < high:
            raise InitializerError(f"Uniform: need low < high, got low={low!r}, high={high!r}")
        self.low, self.high = low, high
        super().__init__(seed)

    def _draw(self, shape):
        return self._rng.uniform(self.low, self.high, size=shape)


class Normal(_Random):
    """N(mean, std**2): fixed scale, independent of the shape."""

    def __init__(self, mean=0.0, std=0.05, seed=0):
        if not std >= 0:
            raise InitializerError(f"Normal: std must be >= 0, got {std!r}")
        self.mean, self.std = mean, std
        super().__init__(seed)

    def _draw(self, shape):
        return self._rng.normal(self.mean, self.std, size=shape)


class _VarianceScaling(_Random):
    """Zero-mean values of variance scale / fan, fan from `compute_fans`.

    uniform: U(-a, a) with a = sqrt(3 * var). normal: N(0, var), or with
    truncated=True a normal cut at +-2 std and widened by 1/0.8796 so the
    variance is still var.
    """

    scale = 1.0
    fan = "avg"                     # "in": fan_in, "avg": (fan_in + fan_out) / 2
    distribution = "uniform"

    def __init__(self, seed=0, truncated=False):
        if truncated and self.distribution != "normal":
            raise InitializerError(f"{type(self).__name__}: truncated applies to the normal variants only")
        if self.distribution == "normal":
            self.truncated = truncated
        super().__init__(seed)

    def variance(self, shape):
        fan_in, fan_out = compute_fans(shape)
        fan = fan_in if self.fan == "in" else (fan_in + fan_out) / 2
        return self.scale / max(fan, 1)     # an empty weight (fan 0): any finite scale will do

    def _draw(self, shape):
        std = math.sqrt(self.variance(shape))
        if self.distribution == "uniform":
            limit = math.sqrt(3.0) * std
            return self._rng.uniform(-limit, limit, size=shape)
        if not self.truncated:
            return self._rng.normal(0.0, std, size=shape)
        z = self._rng.standard_normal(size=shape)
        bad = np.abs(z) > 2
        while bad.any():                    # redraw the tails: deterministic for a given seed
            z[bad] = self._rng.standard_normal(size=int(bad.sum()))
            bad = np.abs(z) > 2
        return z * (std / _TRUNCATED_STD)


class GlorotUniform(_VarianceScaling):
    """U(-a, a), a = sqrt(6 / (fan_in + fan_out)): variance 2 / (fan_in + fan_out)."""
    scale, fan, distribution = 1.0, "avg", "uniform"


class GlorotNormal(_VarianceScaling):
    """N(0, 2 / (fan_in + fan_out)); truncated=True: cut at 2 std, same variance."""
    scale, fan, distribution = 1.0, "avg", "normal"


class HeUniform(_VarianceScaling):
    """U(-a, a), a = sqrt(6 / fan_in): variance 2 / fan_in."""
    scale, fan, distribution = 2.0, "in", "uniform"


class HeNormal(_VarianceScaling):
    """N(0, 2 / fan_in); truncated=True: cut at 2 std, same variance."""
    scale, fan, distribution = 2.0, "in", "normal"


XavierUniform, XavierNormal, KaimingUniform, KaimingNormal = GlorotUniform, GlorotNormal, HeUniform, HeNormal

_BY_NAME = {
    "zeros": Zeros, "ones": Ones, "uniform": Uniform, "normal": Normal,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal,
    "xavier_uniform": GlorotUniform, "xavier_normal": GlorotNormal,
    "he_uniform": HeUniform, "he_normal": HeNormal,
    "kaiming_uniform": HeUniform, "kaiming_normal": HeNormal,
}


def get(name_or_init, seed=0):
    """An initializer from a name ("glorot_uniform", "he_normal", "zeros", ...) or as given.

    A name gives a fresh initializer with `seed` (ignored by zeros/ones): two
    layers that each call get("he_normal") with the same seed and shape start
    out equal, so give layers different seeds (or share one initializer
    object, which advances). Names are case-insensitive and "-" may stand for
    "_"; xavier_* and kaiming_* are accepted for glorot_* and he_*. An
    Initializer or any other callable `(shape, dtype) -> array` is returned
    unchanged.
    """
    if isinstance(name_or_init, str):
        key = name_or_init.strip().lower().replace("-", "_")
        cls = _BY_NAME.get(key)
        if cls is None:
            raise InitializerError(f"unknown initializer {name_or_init!r}; choose one of "
                                   f"{', '.join(sorted(_BY_NAME))}, or pass an initializer object")
        return cls() if cls in (Zeros, Ones) else cls(seed=seed)
    if callable(name_or_init):
        return name_or_init
    raise InitializerError(f"get: expected an initializer name or a callable (shape, dtype) -> array, "
                           f"got {name_or_init!r}")


def __getattr__(name):
    # gc.init.uniform: the initializers are classes (gc.init.Uniform); their lowercase names are
    # what get() and Dense(kernel_init=...) take. Say so instead of a bare AttributeError.
    cls = _BY_NAME.get(name) or (Constant if name == "constant" else None)
    if cls is not None:
        by_name = f"; the name {name!r} is for gc.init.get and Dense(kernel_init=...)" if name in _BY_NAME else ""
        raise AttributeError(f"module 'graphc.nn.init' has no attribute {name!r}: initializers are classes, "
                             f"gc.init.{cls.__name__}(...){by_name}")
    raise AttributeError(f"module 'graphc.nn.init' has no attribute {name!r}")
