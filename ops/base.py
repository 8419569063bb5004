"""The Op base class and the registry of every op.

An op is a stateless singleton. Everything graphc knows about it sits on its
class: `infer` (types in, type out; raises ShapeError/DTypeError on bad
input), `ref` (the numpy reference: the interpreter, constant folding and the
test oracle all use it), `kind` (tells the passes what they may do with it).
"""
import numpy as np

from graphc.errors import DTypeError
from graphc.types import DTYPES, FLOATS

REGISTRY = {}


def register(cls):
    """Class decorator: put one instance of the op in the registry under cls.name."""
    assert cls.name and cls.name not in REGISTRY, cls.name
    REGISTRY[cls.name] = cls()
    return cls


def get(name):
    return REGISTRY[name]


class Op:
    name = None
    kind = "opaque"   # "source" | "elementwise" | "reduction" | "shape" | "opaque"
    no_grad = False   # True: the output does not vary smoothly with the inputs (argmax, x > y, ...)

    def infer(self, types, **attrs):
        raise NotImplementedError

    def ref(self, *arrays, **attrs):
        raise NotImplementedError

    def grad(self, node, g):
        """Gradient nodes [dL/d input_i] given g = dL/d node (None: no gradient to that input).

        A rule may return a gradient of the output's (broadcast) shape or of
        a wider dtype: gc.grad sums it back to the input's shape and casts it.
        """
        raise NotImplementedError(f"op {self.name} has no gradient rule")

    def canonical(self, types, **attrs):
        """Attrs in one canonical form (e.g. axis -1 -> ndim-1), so equal nodes hash-cons."""
        return attrs

    def key(self, attrs):
        """Hashable summary of attrs for hash-consing (values must be hashable)."""
        return tuple(sorted(attrs.items()))

    def __repr__(self):
        return f"<op {self.name}>"


_probe_cache = {}


def probe_dtype(op, dtypes, **attrs):
    """The dtype numpy gives for `op.ref` on these input dtypes, checked to be supported.

    Running the reference on one-element arrays is how the inferred dtype stays
    exactly numpy's (e.g. int32 / int32 -> float64, sum(int32) -> int64).
    """
    key = (op.name, tuple(dtypes), tuple(sorted(attrs.items())))
    if key not in _probe_cache:
        names = ", ".join(str(d) for d in dtypes)
        try:
            with np.errstate(all="ignore"):
                out = op.ref(*[np.ones(1, d) for d in dtypes], **attrs)
            dt = np.asarray(out).dtype
        except (TypeError, np.exceptions.DTypePromotionError, ValueError):
            raise DTypeError(f"{op.name} is not defined for dtypes ({names})") from None
        if dt not in DTYPES:
            raise DTypeError(f"{op.name} on ({names}) would give {dt}, which graphc does not support; "
                             "cast the inputs first (gc.cast)")
        _probe_cache[key] = dt
    return _probe_cache[key]


def is_float(node_or_type):
    return node_or_type.dtype in FLOATS

