"""ONNX ModelProto -> graphc graph: check the model, bind its inputs and initializers, convert
each node with the converter table (registry.CONVERTERS), and fold at import whatever is known
(shapes, constants, initializer arithmetic), so that the graph holds only the real work.
"""
from collections import Counter, namedtuple

import numpy as np
import onnx
from onnx import numpy_helper

import graphc as gc
from graphc.core.errors import DTypeError, GraphError

from . import ops_math, ops_nn, ops_resize, ops_shape  # noqa: F401  (they fill CONVERTERS)
from .registry import CONVERTERS, OnnxImportError, is_static, node_of

# ONNX element types graphc holds; every other one is named in the error that refuses it
DTYPES = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64,
          onnx.TensorProto.INT32: np.int32, onnx.TensorProto.INT64: np.int64,
          onnx.TensorProto.BOOL: np.bool_}
SUPPORTED_DTYPES = ("float", "double", "int32", "int64", "bool")
DEFAULT_DOMAINS = ("", "ai.onnx")

ImportedGraph = namedtuple("ImportedGraph", "graph inputs outputs variables")


class StaticValueNeeded(OnnxImportError):
    """A converter needs at import a value the model computes or takes at run time."""


class OnnxDTypeError(OnnxImportError, DTypeError):
    """A tensor of an element type graphc has no dtype for (float16, uint8, string, ...)."""


def type_name(elem_type):
    return onnx.TensorProto.DataType.Name(elem_type).lower()


def read_model(model):
    """A ModelProto from a path, bytes or a ModelProto, checked by onnx.checker."""
    if isinstance(model, onnx.ModelProto):
        proto, what = model, "the model"
    else:
        what = repr(model) if not isinstance(model, bytes) else "the bytes given"
        try:
            proto = onnx.load_model_from_string(model) if isinstance(model, bytes) else onnx.load(model)
        except FileNotFoundError:
            raise
        except Exception as e:   # protobuf's DecodeError on a truncated or foreign file
            raise OnnxImportError(f"cannot read an ONNX model from {what}: {type(e).__name__}: {e} "
                                  "(a truncated or not-ONNX file?)") from e
    try:
        onnx.checker.check_model(proto)
    except Exception as e:
        raise OnnxImportError(f"{what} is not a valid ONNX model (onnx.checker): {e}") from e
    return proto


def evaluate(node, memo):
    """The value of a node built only from constants, by the ops' numpy references."""
    if node in memo:
        return memo[node]
    if node.op.name == "constant":
        value = node.attrs["value"]
    else:
        with np.errstate(all="ignore"):
            value = node.op.ref(*[evaluate(x, memo) for x in node.inputs], **node.attrs)
        if not isinstance(value, tuple):
            value = np.asarray(value, node.dtype)
    memo[node] = value
    return value


def only_constants(node):
    seen, todo = set(), [node]
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        if n.op.kind == "source" and n.op.name != "constant":
            return False
        todo.extend(n.inputs)
    return True


class Importer:
    def __init__(self, proto, weights="constants", shapes=None, constants=None):
        if weights not in ("constants", "variables"):
            raise OnnxImportError(f"weights must be 'constants' or 'variables', got {weights!r}")
        self.proto, self.weights, self.shapes = proto, weights, dict(shapes or {})
        self.opset = next((o.version for o in proto.opset_import if o.domain in DEFAULT_DOMAINS), None)
        newest = onnx.defs.onnx_opset_version()
        if self.opset is None or self.opset > newest:
            raise OnnxImportError(f"the model's default-domain opset is {self.opset}; this onnx knows "
                                  f"opsets up to {newest}")
        self.values, self.variables = {}, []
        self.convs = {}        # Conv output name -> (input, weight, bias, options): for BN folding
        self.uses = Counter(name for n in proto.graph.node for name in n.input)
        self.uses.update(vi.name for vi in proto.graph.output)
        self.constants = {k: np.asarray(v) for k, v in (constants or {}).items()}

    def error(self, node, msg):
        return OnnxImportError(f"ONNX {node.op_type} node {node.name or '(unnamed)'!r} (opset {self.opset}): {msg}")

    def static(self, v, node, what):
        """The value v as a numpy array: a converter input that must be known at import."""
        if not is_static(v):
            shape = f" of shape {v.shape}" if v is not None else ""
            err = StaticValueNeeded(str(self.error(node, f"needs its {what} known when the model is imported "
                                                         f"(got a tensor computed at run time{shape})")))
            err.input_name = v.name if v is not None and v.op.name == "placeholder" else None
            raise err
        return v

    def dtype(self, elem_type, what):
        if elem_type not in DTYPES:
            raise OnnxDTypeError(f"{what} has element type {type_name(elem_type)}, which graphc does not "
                                 f"support; supported: {', '.join(SUPPORTED_DTYPES)}")
        return np.dtype(DTYPES[elem_type])

    def array(self, tensor, what):
        """An initializer or a Constant's tensor as a numpy array of a supported dtype; other
        int types are kept only if their values fit int64 exactly (shapes, indices)."""
        value = numpy_helper.to_array(tensor)
        if tensor.data_type not in DTYPES:
            if value.dtype.kind in "iu":
                return value.astype(np.int64)
            self.dtype(tensor.data_type, what)
        return np.array(value, order="C")      # (ascontiguousarray would make a 0-d array 1-d)

    def bind_inputs(self):
        g = self.proto.graph
        for init in g.initializer:
            value = self.array(init, f"initializer {init.name!r}")
            if self.weights == "variables" and value.dtype.kind == "f":
                var = gc.variable(value, name=init.name)
                self.variables.append(var)
                self.values[init.name] = var
            else:
                self.values[init.name] = value
        inputs = []
        for vi in g.input:
            if vi.name in self.values:        # an initializer listed as an input (IR < 4): a weight
                continue
            if vi.name in self.constants:     # an input whose value the caller gave at import
                self.values[vi.name] = self.constants[vi.name]
                continue
            t = vi.type.tensor_type
            if not vi.type.HasField("tensor_type"):
                raise OnnxImportError(f"graph input {vi.name!r} is not a tensor ({vi.type}); graphc takes tensors")
            dtype = self.dtype(t.elem_type, f"graph input {vi.name!r}")
            shape = self.shapes.get(vi.name)
            if shape is None:
                shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
            p = gc.placeholder(tuple(shape), dtype, name=vi.name)
            self.values[vi.name] = p
            inputs.append(p)
        return inputs

    def attrs(self, node):
        out = {}
        for a in node.attribute:
            v = onnx.helper.get_attribute_value(a)
            if isinstance(v, onnx.TensorProto):
                v = self.array(v, f"attribute {a.name!r} of node {node.name!r}")
            elif isinstance(v, bytes):
                v = v.decode()
            elif isinstance(v, list) and v and isinstance(v[0], bytes):
                v = [s.decode() for s in v]
            out[a.name] = v
        return out

    def convert(self, node):
        if node.domain not in DEFAULT_DOMAINS or node.op_type not in CONVERTERS:
            domain = f" of domain {node.domain!r}" if node.domain not in DEFAULT_DOMAINS else ""
            raise OnnxImportError(f"ONNX op {node.op_type}{domain} (node {node.name or '(unnamed)'!r}, opset "
                                  f"{self.opset}) is not supported by graphc's importer; supported ops: "
                                  f"{', '.join(sorted(CONVERTERS))}")
        try:
            inputs = [self.values[name] if name else None for name in node.input]
        except KeyError as e:
            raise self.error(node, f"reads {e.args[0]!r}, which no earlier node or input defines") from None
        try:
            outs = CONVERTERS[node.op_type](self, node, inputs, self.attrs(node))
        except OnnxImportError:
            raise
        except GraphError as e:
            raise self.error(node, f"{type(e).__name__}: {e}") from e
        for name, v in zip(node.output, outs):
            if name:
                self.values[name] = self.fold(v)
        missing = [name for name in node.output[len(outs):] if name]
        if missing:
            raise self.error(node, f"graphc computes only its first {len(outs)} output(s); the model reads "
                                   f"{missing}")

    def fold(self, v):
        """A node built from constants only becomes its value (so Shape -> Gather -> Reshape and
        initializer arithmetic are done at import)."""
        if isinstance(v, np.generic):          # numpy ops on 0-d arrays give scalars
            return np.asarray(v)
        if is_static(v) or v is None or not only_constants(v):
            return v
        return np.asarray(evaluate(v, {}))

    def run(self):
        inputs = self.bind_inputs()
        for node in self.proto.graph.node:
            self.convert(node)
        outputs = []
        for vi in self.proto.graph.output:
            if vi.name not in self.values:
                raise OnnxImportError(f"graph output {vi.name!r} is computed by no node")
            out = node_of(self.values[vi.name])
            if out in inputs or out.op.kind == "source":
                out = gc.reshape(out, out.shape)       # an output that is an input: a node of its own
            outputs.append(out)
        return inputs, outputs


def import_graph(model, weights="constants", shapes=None, graph=None, constants=None):
    """Build an ONNX model into a graphc graph.

    model: a path, bytes or onnx.ModelProto. weights: "constants" (initializers become
    constants, folded where they meet each other) or "variables" (float initializers become
    trainable gc.variable nodes, named as in the model). shapes: {input name: shape} to fix
    the sizes the model leaves symbolic (needed where the model computes a shape from them).
    graph: the gc.Graph to build into (a new one if None). constants: {input name: array}, inputs
    fixed at import (e.g. the axes or a target shape a model takes as an input); they are then
    not inputs of the graph.
    Returns ImportedGraph(graph, inputs, outputs, variables): the placeholders in the model's
    input order, the output nodes in its output order, the variables (weights="variables").
    """
    proto = read_model(model)
    g = graph if graph is not None else gc.Graph()
    with g:
        importer = Importer(proto, weights, shapes, constants)
        inputs, outputs = importer.run()
    return ImportedGraph(g, inputs, outputs, importer.variables)


def load(model, backend="cpu", weights="constants", shapes=None, constants=None, **options):
    """An ONNX model as a gc.Function: call it with the model's inputs (by position or name),
    get a list of its outputs. Options go to gc.function (e.g. optimize=)."""
    imported = import_graph(model, weights, shapes, constants=constants)
    with imported.graph:
        return gc.function(imported.inputs, imported.outputs, backend=backend, **options)
