"""An onnx.backend Backend over graphc, so ONNX's own test suite (onnx.backend.test.BackendTest)
can run imported models: prepare(model, device) imports and compiles, rep.run(inputs) runs.

The graphc backend ("interp" or "cpu") is the `backend` keyword of prepare, or the class
attribute `graphc_backend` of a subclass (BackendTest passes no keywords of its own).

graphc compiles static graphs: where a model takes as a run-time input what graphc needs at
import (ONNX's node tests feed Reshape's shape, ReduceSum's axes, Gather's indices as inputs),
the rep imports it at the first run with its integer, bool and 0-d inputs fixed as
constants (and any other input the import then names as needed), and keeps one
compiled function per distinct value of those inputs.
"""
import numpy as np
import onnx
import onnx.backend.base as base

from .importer import StaticValueNeeded, load


class GraphcRep(base.BackendRep):
    def __init__(self, model, backend, fn):
        self.model, self.backend, self.fn = model, backend, fn
        self.names = [vi.name for vi in model.graph.input
                      if vi.name not in {init.name for init in model.graph.initializer}]
        self.specialized = {}

    def run(self, inputs, **kwargs):
        if isinstance(inputs, np.ndarray):
            inputs = [inputs]
        elif isinstance(inputs, dict):
            inputs = [inputs[n] for n in self.names]
        inputs = [np.asarray(x) for x in inputs]
        if self.fn is not None:
            return self.fn(*inputs)
        values = dict(zip(self.names, inputs))
        fixed = {n: x for n, x in values.items() if x.dtype.kind in "iub" or x.ndim == 0}
        while True:
            key = tuple((n, x.dtype.str, x.shape, x.tobytes()) for n, x in fixed.items())
            if key in self.specialized:
                break
            try:
                self.specialized[key] = load(self.model, backend=self.backend, constants=fixed)
            except StaticValueNeeded as e:        # a float input needed at import (Resize's scales)
                if e.input_name is None or e.input_name in fixed:
                    raise
                fixed[e.input_name] = values[e.input_name]
        return self.specialized[key](*[x for n, x in values.items() if n not in fixed])


class GraphcBackend(base.Backend):
    graphc_backend = "interp"

    @classmethod
    def prepare(cls, model, device="CPU", backend=None, **kwargs):
        super().prepare(model, device, **kwargs)
        backend = backend or cls.graphc_backend
        if not isinstance(model, onnx.ModelProto):
            model = onnx.load_model_from_string(model) if isinstance(model, bytes) else onnx.load(model)
        try:
            fn = load(model, backend=backend)
        except StaticValueNeeded:
            fn = None             # imported at the first run, its integer inputs fixed
        return GraphcRep(model, backend, fn)

    @classmethod
    def run_model(cls, model, inputs, device="CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def supports_device(cls, device):
        return device == "CPU"


class GraphcCpuBackend(GraphcBackend):
    graphc_backend = "cpu"
