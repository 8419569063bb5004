"""Tensor types: dtype + shape, where a shape entry may be None ("known at call time").

Shape arithmetic lives here (broadcasting, axis normalization) because every
op's type inference needs it and it must treat None the same way everywhere.
"""
from dataclasses import dataclass

import numpy as np

from .errors import AxisError, DTypeError, ShapeError

float32 = np.dtype("float32")
float64 = np.dtype("float64")
int32 = np.dtype("int32")
int64 = np.dtype("int64")
bool_ = np.dtype("bool")

DTYPES = (float32, float64, int32, int64, bool_)
FLOATS = (float32, float64)
INTS = (int32, int64)


def as_dtype(d):
    """Turn gc.float32 / np.float32 / 'float32' / float into one of the supported dtypes."""
    try:
        dt = np.dtype(d)
    except TypeError as e:
        raise DTypeError(f"not a dtype: {d!r}") from e
    if dt not in DTYPES:
        names = ", ".join(str(x) for x in DTYPES)
        raise DTypeError(f"dtype {dt} is not supported; use one of {names}")
    return dt


@dataclass(frozen=True)
class TensorType:
    """The static type of a node: its shape (ints or None) and dtype."""

    shape: tuple
    dtype: np.dtype

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(None if s is None else int(s) for s in self.shape))
        object.__setattr__(self, "dtype", as_dtype(self.dtype))

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def is_concrete(self):
        return None not in self.shape

    @property
    def size(self):
        """Number of elements, or None when a dimension is unknown."""
        if not self.is_concrete:
            return None
        return int(np.prod(self.shape, dtype=np.int64))

    def __str__(self):
        dims = ", ".join("?" if s is None else str(s) for s in self.shape)
        return f"{self.dtype}[{dims}]"


def fmt_shape(shape):
    """(None, 3) -> '(?, 3)': how shapes appear in messages and DOT labels."""
    dims = ", ".join("?" if s is None else str(s) for s in shape)
    return f"({dims}{',' if len(shape) == 1 else ''})"


def broadcast_shapes(*shapes):
    """numpy broadcasting, where None means "unknown until call time".

    None against 1 or None stays None; None against n > 1 becomes n (the
    call-time check confirms it). Raises ShapeError on a definite mismatch.
    """
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(ndim):
        dims = [s[len(s) - ndim + i] for s in shapes if len(s) - ndim + i >= 0]
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            raise ShapeError("shapes " + ", ".join(fmt_shape(s) for s in shapes)
                             + " cannot be broadcast together")
        if known:
            out.append(known.pop())
        elif None in dims:
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


def normalize_axis(axis, ndim, op="op"):
    """One axis, possibly negative, to 0..ndim-1."""
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise AxisError(f"axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise AxisError(f"axis {axis} is out of range for a tensor of rank {ndim}")
    return int(axis) % ndim


def normalize_axes(axis, ndim, op="op"):
    """None (all axes), an int, or a sequence of ints -> sorted tuple of distinct axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)):
        axis = (axis,)
    if not isinstance(axis, (tuple, list)):
        raise AxisError(f"axis must be None, an int or a tuple of ints, got {axis!r}")
    axes = tuple(normalize_axis(a, ndim, op) for a in axis)
    if len(set(axes)) != len(axes):
        raise AxisError(f"repeated axis in {tuple(axis)}")
    return tuple(sorted(axes))


@dataclass(frozen=True)
class TupleType:
    """The type of a node with several outputs (a fused group, later a scan): one TensorType each.

    Such a node is read through `output(node, k)` nodes (ops/region.py), which have TensorTypes."""

    types: tuple

    @property
    def is_concrete(self):
        return all(t.is_concrete for t in self.types)

    def __str__(self):
        return "(" + ", ".join(str(t) for t in self.types) + ")"
