"""backend="cpu": the graph, optimized, as one generated Numba module per shape signature.

A call checks its arguments, finds the compiled step for their shapes
(compiling it the first time: specialize types, generate source, write and
import it through the kernel cache, let Numba compile), then makes one call
to the step with the feeds, the variables, the constants and the buffers of
the memory plan: one call into Numba for a short step, a Python function
calling the kernels for a long one (runtime/codegen.py says why). Variables
are updated in place inside that call.

For a reader: `fn.source` is the generated module (commented: which node each
line computes, where the user built it, what each buffer holds), `fn.kernel_map`
links each node to its kernel and line there. The kernel cache stores that text
without the users' file:line comments (runtime/codegen.py says why).
"""
import time

import numpy as np

from graphc.core.errors import ArgumentError
from graphc.function import Function, feed_array
from graphc.runtime.memory import kshape

from . import cache
from .codegen import generate
from .config import configure_once


class Compiled:
    """One shape signature's compiled step and the arguments it needs besides the feeds."""

    def __init__(self, program, module, path, fn):
        self.program, self.module, self.path = program, module, path
        self.step = module.step
        self.var_nodes = [p[2] for p in program.params if p[1] == "var"]
        self.var_flat = [n.ndim == 0 for n in self.var_nodes]
        self.var_slots = [n.attrs["slot"] for n in self.var_nodes]
        self.any_flat = any(self.var_flat)
        fixed = []
        for name, kind, payload in program.params:
            if kind == "const":
                fixed.append(np.ascontiguousarray(payload).reshape(kshape(payload.shape)))
            elif kind == "buf":
                fixed.append(np.empty(payload.shape, payload.dtype))
        self.fixed = fixed
        self.out_scalar = [o.ndim == 0 for o in fn.outputs]
        self.times = {}


class CpuFunction(Function):
    backend = "cpu"

    def __init__(self, inputs, outputs, updates=None, optimize=None, passes=None, parallel=None,
                 jit_step=None):
        configure_once()                  # Numba's threading and vector width, before any compile
        super().__init__(inputs, outputs, updates, optimize=optimize, passes=passes)
        self.jit_step = jit_step          # None: decided by the step's length (runtime/codegen.py)
        has_blas = any(n.op.name == "matmul" for n in self.nodes)
        # parallel loops only where no BLAS call runs in the same step (DESIGN.md section 7)
        self.parallel = (not has_blas) if parallel is None else parallel
        self._compiled = {}
        self._dtypes = [x.dtype for x in self.inputs]
        self._scalar_in = [x.ndim == 0 for x in self.inputs]

    def __call__(self, *args, **kwargs):
        if kwargs or len(args) != len(self.inputs) or not all(
                type(a) is np.ndarray and a.dtype == d and a.flags.c_contiguous
                for a, d in zip(args, self._dtypes)):
            feeds = self._bind(args, kwargs)
            args = tuple(np.ascontiguousarray(feeds[x]) for x in self.inputs)
        sig = tuple(a.shape for a in args)
        c = self._compiled.get(sig)
        if c is None:
            for x, a in zip(self.inputs, args):
                feed_array(x, a)              # shapes: checked once per signature
            c = self._compile(sig)
        feeds = [a.reshape(1) if s else a for a, s in zip(args, self._scalar_in)]
        variables = self.graph.store.host_values(c.var_slots)
        if c.any_flat:
            variables = [v.reshape(1) if s else v for v, s in zip(variables, c.var_flat)]
        out = c.step(*feeds, *variables, *c.fixed)
        out = [o.reshape(()) if s else o for o, s in zip(out, c.out_scalar)]
        return out[0] if self.single else out

    def _compile(self, sig):
        times = {}
        t0 = time.perf_counter()
        types = self._specialize(_Shapes(self.inputs, sig))
        t1 = time.perf_counter()
        program = generate(self.nodes, self.outputs, self.updates, types, self._placeholders,
                           parallel=self.parallel, header=f"# {self!r}", jit_step=self.jit_step)
        t2 = time.perf_counter()
        module, path, wrote = cache.load(program.cache_source)
        t3 = time.perf_counter()
        store = self.graph.store
        for v in self.nodes:                         # in-place updates need owned, contiguous arrays
            if v.op.name == "variable":
                arr = store[v]
                if not (arr.flags.c_contiguous and arr.flags.writeable and arr.flags.owndata):
                    store[v] = np.array(arr, order="C")
        c = Compiled(program, module, path, self)
        self._compiled[sig] = c
        times.update(specialize=t1 - t0, codegen=t2 - t1, write_import=t3 - t2, cache_file_written=wrote)
        c.times = times
        self._warm(c, sig)
        times["numba"] = time.perf_counter() - t3
        return c

    def _warm(self, c, sig):
        """Compile (or load from Numba's cache) by calling the step once on scratch copies."""
        scratch = [np.zeros(kshape(s), x.dtype) for x, s in zip(self.inputs, sig)]
        variables = [np.array(self.graph.store[v]).reshape(kshape(v.shape)) for v in c.var_nodes]
        c.step(*scratch, *variables, *c.fixed)

    @property
    def source(self):
        """The generated module of the most recent shape signature (compile it by calling first)."""
        return self._latest("fn.source").program.source

    @property
    def kernel_map(self):
        """{node of fn.nodes: (kernel name or None, line of fn.source)} for the most recent shape
        signature: every node that runs (not the sources), with the kernel computing it and the
        1-based line of its statement in `fn.source`. A fused node stands for all the ops of its
        region (and its `output` nodes map to its kernel); a view or a size, which has no line of
        its own, maps to None and the first line that uses it (runtime/codegen.py, Program)."""
        return self._latest("fn.kernel_map").program.node_map

    def _latest(self, what):
        if not self._compiled:
            raise ArgumentError(f"{what}: call the function once first (its shapes decide the code)")
        return list(self._compiled.values())[-1]

    def sources(self):
        return {sig: c.program.source for sig, c in self._compiled.items()}

    @property
    def compile_times(self):
        return {sig: c.times for sig, c in self._compiled.items()}

    def _run(self, feeds, types):   # pragma: no cover - __call__ does everything
        raise NotImplementedError


class _Shapes(dict):
    """{placeholder: array-like with .shape} for Function._specialize, built from a signature."""

    def __init__(self, inputs, sig):
        super().__init__((x, _Shaped(s)) for x, s in zip(inputs, sig))


class _Shaped:
    def __init__(self, shape):
        self.shape = shape
