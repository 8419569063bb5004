"""An onnx.backend Backend over graphc, so ONNX's own test suite (onnx.backend.test.BackendTest)
can run imported models: prepare(model, device) imports and compiles, rep.run(inputs) runs.

The graphc backend ("interp" or "cpu") is the `backend` keyword of prepare, or the class
attribute `graphc_backend` of a subclass (BackendTest passes no keywords of its own).
"""
import numpy as np
import onnx.backend.base as base

from .importer import load


class GraphcRep(base.BackendRep):
    def __init__(self, fn):
        self.fn = fn

    def run(self, inputs, **kwargs):
        if isinstance(inputs, np.ndarray):
            inputs = [inputs]
        elif isinstance(inputs, dict):
            return self.fn(**inputs)
        return self.fn(*inputs)


class GraphcBackend(base.Backend):
    graphc_backend = "interp"

    @classmethod
    def prepare(cls, model, device="CPU", backend=None, **kwargs):
        super().prepare(model, device, **kwargs)
        return GraphcRep(load(model, backend=backend or cls.graphc_backend))

    @classmethod
    def run_model(cls, model, inputs, device="CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def supports_device(cls, device):
        return device == "CPU"


class GraphcCpuBackend(GraphcBackend):
    graphc_backend = "cpu"
