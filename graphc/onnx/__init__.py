"""gc.onnx: import ONNX models into graphc graphs.

    fn = gc.onnx.load("model.onnx", backend="cpu")      # a gc.Function: fn(x) -> [outputs]
    g, inputs, outputs, variables = gc.onnx.import_graph(model, weights="variables")

Each ONNX node becomes graphc ops (converters by op family in ops_math, ops_nn, ops_shape; the
table in registry); shapes and constants are computed at import. backend.GraphcBackend runs
ONNX's own backend test suite. Needs the optional `onnx` package: pip install 'graphc[onnx]'.

May import: onnx, numpy and graphc's public API (graphc, graphc.core); never graphc.runtime or
graphc.passes directly (an imported graph is an ordinary graph; gc.function compiles it).
"""
try:
    import onnx  # noqa: F401
except ImportError as e:                      # the optional extra is not installed
    raise ImportError("gc.onnx needs the onnx package: pip install 'graphc[onnx]'") from e

from .importer import SUPPORTED_DTYPES, ImportedGraph, OnnxDTypeError, import_graph, load  # noqa: F401,E402
from .registry import CONVERTERS, OnnxImportError  # noqa: E402

SUPPORTED_OPS = tuple(sorted(CONVERTERS))

__all__ = ["load", "import_graph", "ImportedGraph", "OnnxImportError", "OnnxDTypeError", "SUPPORTED_OPS",
           "SUPPORTED_DTYPES"]
