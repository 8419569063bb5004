"""matmul with numpy's semantics: 2-D, batched (leading dims broadcast), and 1-D operands."""
import numpy as np

from graphc.core.errors import DTypeError, ShapeError
from graphc.core.types import TensorType, bool_, broadcast_shapes, fmt_shape

from .base import Op, apply, operator, probe_dtype, register
from .shape import expand_dims, squeeze, transpose


def matmul_shape(a, b):
    if len(a) == 0 or len(b) == 0:
        raise ShapeError("matmul needs operands of rank >= 1 (use * for scalars)")
    a2 = (1,) + a if len(a) == 1 else a          # a vector is a row...
    b2 = b + (1,) if len(b) == 1 else b          # ...or a column
    k1, k2 = a2[-1], b2[-2]
    if k1 is not None and k2 is not None and k1 != k2:
        raise ShapeError(f"inner dimensions differ: {fmt_shape(a)} @ {fmt_shape(b)} "
                         f"({k1} != {k2})")
    batch = broadcast_shapes(a2[:-2], b2[:-2])
    out = batch + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


def swap_last(x):
    """x with its last two axes swapped (a batched matrix transpose)."""
    axes = list(range(x.ndim))
    axes[-2:] = axes[:-3:-1]
    return transpose(x, tuple(axes))


@register
class Matmul(Op):
    name = "matmul"
    kind = "opaque"

    def infer(self, types):
        a, b = types
        if a.dtype == bool_ or b.dtype == bool_:
            raise DTypeError("matmul needs numeric tensors, got bool")
        return TensorType(matmul_shape(a.shape, b.shape), probe_dtype(self, [a.dtype, b.dtype]))

    def ref(self, a, b):
        return np.asarray(np.matmul(a, b))

    def grad(self, node, g):
        a, b = node.inputs
        # a vector operand is a one-row (a) or one-column (b) matrix; g gets that axis back
        a2 = expand_dims(a, 0) if a.ndim == 1 else a
        b2 = expand_dims(b, -1) if b.ndim == 1 else b
        g2 = expand_dims(g, -1) if b.ndim == 1 else g     # b's axis first: vector @ vector has g of shape ()
        g2 = expand_dims(g2, -2) if a.ndim == 1 else g2
        ga = matmul(g2, swap_last(b2))       # batch axes that a was broadcast along are summed by gc.grad
        gb = matmul(swap_last(a2), g2)
        ga = squeeze(ga, -2) if a.ndim == 1 else ga
        gb = squeeze(gb, -1) if b.ndim == 1 else gb
        return [ga, gb]


@operator
def matmul(a, b, name=None):
    """a @ b with numpy's rules (batched, 1-D operands)."""
    return apply("matmul", [a, b], name=name)
