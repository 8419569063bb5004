"""The table of ONNX op converters and what they share.

A converter is `fn(cx, node, inputs, attrs) -> list of outputs`. Each value (an input or an
output) is either a numpy array, when it is known at import (an initializer with
weights="constants", a Constant, a Shape of a statically shaped tensor, anything computed
from those), or a graphc Node. Converters that need a value at import (a Reshape's shape, a
Slice's starts) ask `cx.static(value, what)`, which names the node when it is not known.
`cx.opset` is the model's default-domain opset, for the ops whose inputs and attributes
changed between versions.
"""
import numpy as np

import graphc as gc
from graphc.core.errors import GraphError

CONVERTERS = {}


class OnnxImportError(GraphError):
    """An ONNX model graphc cannot import: an unsupported op, dtype or attribute, a bad file."""


def converts(*op_types):
    """Register fn as the converter of the given ONNX op types."""
    def deco(fn):
        for t in op_types:
            CONVERTERS[t] = fn
        return fn
    return deco


def node_of(v):
    """A graphc node for a value (a numpy array becomes a constant)."""
    return gc.constant(v) if isinstance(v, np.ndarray) else v


def is_static(v):
    return isinstance(v, np.ndarray)


def shape_of(v):
    return tuple(v.shape)


def rank(v):
    return len(v.shape)


def dtype_of(v):
    return np.dtype(v.dtype)


def present(inputs, k):
    """Input k, or None where it is missing or given as the empty name (an optional input)."""
    return inputs[k] if k < len(inputs) else None


def ints(v):
    """A static 1-D int tensor (or attribute list) as a tuple of Python ints."""
    return tuple(int(i) for i in np.asarray(v).reshape(-1))


def norm_axis(axis, n, cx, node):
    a = int(axis)
    if not -n <= a < max(n, 1):
        raise cx.error(node, f"axis {axis} is out of range for rank {n}")
    return a % n if n else 0


def unsupported(cx, node, why):
    return cx.error(node, f"is not supported: {why}")
