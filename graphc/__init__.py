"""graphc: a small computation-graph compiler.

Define a graph (placeholders, constants, variables, numpy-named ops), then
run it with gc.function(inputs, outputs, updates, backend=...).

The package, by folder (each folder's __init__ says what it may import):
  core/    the IR: errors, types, graph and nodes, regions, the variable store
  api.py   the op functions (defined beside their ops in graphc.ops)
  function.py  gc.function: what every backend shares
  nn/      the training library: layers, losses, optimizers, initializers, training loop
  view/    pictures of graphs (DOT)
  tools/   the command line: demo, bench, workloads, peers
graphc.ops, graphc.passes and graphc.runtime live in the top-level ops/, passes/, runtime/.
"""
from . import api as _api
from .api import OP_FUNCTIONS, as_node  # noqa: F401
from .core.errors import (ArgumentError, AxisError, DTypeError, FeedError, ForeignNodeError,  # noqa: F401
                          GraphError, NumericsError, NumpyOnNodeError, ShapeError)
from .core.graph import Graph, Node, get_default_graph, reset_default_graph  # noqa: F401
from .core.types import DTYPES, TensorType, bool_, float32, float64, int32, int64  # noqa: F401
from .function import Function, function  # noqa: F401
from .passes.autodiff import grad  # noqa: F401
from .passes.pipeline import DEFAULT_PIPELINE, optimize  # noqa: F401
from .view.dot import GraphvizNotFound, render, to_dot  # noqa: F401
from .view.report import report  # noqa: F401  (gc.report: the HTML page of a compiled function)
from .ops import random  # noqa: F401  (gc.random.uniform/normal/bernoulli)
from . import nn  # noqa: F401,E402  (gc.nn: layers, losses, fit)
from .nn import init, losses, optim, regularizers  # noqa: F401,E402  (gc.optim, gc.init, ...)

__version__ = "0.1.0"

for _name in OP_FUNCTIONS:            # gc.exp, gc.sum, gc.where, ...
    globals()[_name] = getattr(_api, _name)
del _name


def __getattr__(name):
    """gc.dask and gc.onnx load on first use, so `import graphc` never imports dask or onnx
    (optional extras)."""
    if name in ("dask", "onnx"):
        import importlib
        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'graphc' has no attribute {name!r}")
