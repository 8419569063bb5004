"""graphc: a small computation-graph compiler.

Define a graph (placeholders, constants, variables, numpy-named ops), then
run it with gc.function(inputs, outputs, updates, backend=...).
"""
from . import api as _api
from .api import (as_node, constant, get_value, placeholder, set_value, variable)  # noqa: F401
from .dot import GraphvizNotFound, render, to_dot  # noqa: F401
from .errors import (ArgumentError, AxisError, DTypeError, FeedError, ForeignNodeError,  # noqa: F401
                     GraphError, ShapeError)
from .function import Function, function  # noqa: F401
from graphc.passes.autodiff import grad  # noqa: F401  (after .api: the rules build nodes with it)
from graphc.passes.pipeline import DEFAULT_PIPELINE, optimize  # noqa: F401
from .graph import Graph, Node, get_default_graph, reset_default_graph  # noqa: F401
from . import random  # noqa: F401  (gc.random.uniform/normal/bernoulli)
from . import init, losses, nn, optim, regularizers  # noqa: F401,E402  (training: gc.nn, gc.optim, gc.init)
from .types import DTYPES, TensorType, bool_, float32, float64, int32, int64  # noqa: F401

__version__ = "0.1.0"

# The op functions, by the names users write: gc.exp, gc.sum, gc.where, ...
OP_FUNCTIONS = [name for name in dir(_api) if not name.startswith("_") and callable(getattr(_api, name))
                and getattr(getattr(_api, name), "__module__", "") == "graphc.api"]
for _name in OP_FUNCTIONS:
    globals()[_name] = getattr(_api, _name)
del _name
