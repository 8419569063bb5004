"""backend="cpu": the graph, optimized, as one generated Numba module per shape signature.

A call checks its arguments, finds the compiled step for their shapes
(compiling it the first time: specialize types, generate source, write and
import it through the kernel cache, let Numba compile), then makes one call
to the step with the feeds, the variables, the constants and the buffers of
the memory plan: one call into Numba for a short step, a Python function
calling the kernels for a long one (runtime/codegen.py says why). Variables
are updated in place inside that call.

- Threads: each thread calls the step with buffers of its own, so calls without
  updates run concurrently; calls with updates hold the graph's update lock
  (graphc/function.py); the first call of a signature compiles it once.
- A feed that shares memory with a variable updated in place is copied first.
- A kernel's check ("graphc check k: ...", an integer to a negative power) comes
  back as the GraphError the interpreter raises, naming the node.
- check_numerics: the generated step calls `check(k, value)` (made here) after
  each float value it computes.
- Numba's cache files of the module damaged: discarded and compiled again.

For a reader: `fn.source` is the generated module (commented: which node each
line computes, where the user built it, what each buffer holds), `fn.kernel_map`
links each node to its kernel and line there. The kernel cache stores that text
without the users' file:line comments (runtime/codegen.py says why).
"""
import threading
import time
from threading import get_ident

import numpy as np

from graphc.core.errors import ArgumentError
from graphc.function import Function, feed_array, negative_power_error, numerics_error
from graphc.runtime.memory import kshape

from . import cache
from .codegen import generate
from .config import blas_step, configure_once
from .lower_scan import calls_blas


class Compiled:
    """One shape signature's compiled step and the arguments it needs besides the feeds.

    The constants are shared (the step only reads them); the buffers are per thread (`fixed`
    for the thread that compiled it, `local.fixed` for others), so that concurrent calls never
    write each other's scratch memory. (A thread id is reused only once its thread has ended.)"""

    def __init__(self, program, module, path, fn, types):
        self.program, self.module, self.path, self.types = program, module, path, types
        self.step = module.step
        self.var_nodes = [p[2] for p in program.params if p[1] == "var"]
        self.var_flat = [n.ndim == 0 for n in self.var_nodes]
        self.var_slots = [n.attrs["slot"] for n in self.var_nodes]
        self.any_flat = any(self.var_flat)
        self.in_place = [self.var_nodes.index(v) for v in program.in_place]
        # the outputs the step writes into arrays it is given: (output index, shape, dtype)
        self.out_specs = [(k, buf.shape, buf.dtype) for _, kind, (k, buf) in
                          ((n, kd, p) for n, kd, p in program.params if kd == "out")]
        self.out_given = [k for k, _, _ in self.out_specs]
        self.parts = []                # after the outputs: (kind, const array | Buffer | shape | None)
        for name, kind, payload in program.params:
            if kind == "const":
                self.parts.append((kind, np.ascontiguousarray(payload).reshape(kshape(payload.shape))))
            elif kind in ("buf", "check", "shape"):
                self.parts.append((kind, payload))
        self.checker = _checker(program.checks)
        self.local = threading.local()
        self.out_scalar = [o.ndim == 0 for o in fn.outputs]
        self.times = {}

    def new_fixed(self, check=None):
        """The step's arguments after the variables: the constants, new buffers, the checker."""
        fixed = []
        for kind, p in self.parts:
            if kind in ("const", "shape"):
                fixed.append(p)
            elif kind == "buf":
                fixed.append(np.empty(p.shape, p.dtype))
            else:
                fixed.append(check or self.checker)
        return fixed

    def new_outs(self):
        return [np.empty(shape, dtype) for _, shape, dtype in self.out_specs]

    def thread_fixed(self):
        """The step's arguments after the variables for this thread (made on its first call)."""
        try:
            return self.local.fixed
        except AttributeError:
            self.local.fixed = self.new_fixed()
            return self.local.fixed

    def check_failed(self, e):
        """The GraphError naming the node whose kernel check raised e ("graphc check k: ...",
        codegen.py); None if e is no such check."""
        text = str(e)
        if not text.startswith("graphc check "):
            return None
        node = self.program.raises[int(text.split()[2].rstrip(":"))]
        return negative_power_error(node, [self.types[x] for x in node.inputs])

    @staticmethod
    def unaliased(feeds, updated):
        """Feeds sharing memory with a variable the step updates in place, copied first: the
        step must read what they held when the call began, as the interpreter does."""
        return [np.array(a) if any(np.may_share_memory(a, v) for v in updated) else a for a in feeds]


def _checker(nodes):
    """check_numerics: the step's check(k, value) for the program's checked nodes."""
    def check(k, value):
        if not np.isfinite(value).all():
            raise numerics_error(nodes[k], value)
    return check


def _no_check(k, value):
    """The checker while warming up: the scratch values (zeros) are no user's data."""


class CpuFunction(Function):
    backend = "cpu"

    def __init__(self, inputs, outputs, updates=None, optimize=None, passes=None, parallel=None,
                 jit_step=None, check_numerics=False):
        configure_once()                  # Numba's threading and vector width, before any compile
        super().__init__(inputs, outputs, updates, optimize=optimize, passes=passes,
                         check_numerics=check_numerics)
        self.jit_step = jit_step          # None: decided by the step's length (runtime/codegen.py)
        has_blas = any(calls_blas(n) for n in self.nodes)
        # parallel loops only where no BLAS call runs in the same step (DESIGN.md section 7)
        self.parallel = (not has_blas) if parallel is None else parallel
        self._compiled = {}
        self._compile_lock = threading.Lock()
        self._dtypes = [x.dtype for x in self.inputs]
        self._scalar_in = [x.ndim == 0 for x in self.inputs]

    def __call__(self, *args, out=None, **kwargs):
        if kwargs or len(args) != len(self.inputs) or not all(
                type(a) is np.ndarray and a.dtype == d and a.flags.c_contiguous
                for a, d in zip(args, self._dtypes)):
            feeds = self._bind(args, kwargs)
            # (not np.ascontiguousarray for all: it makes a 0-d array 1-d)
            args = tuple(a if a.flags.c_contiguous else np.ascontiguousarray(a)
                         for a in (feeds[x] for x in self.inputs))
        sig = tuple(a.shape for a in args)
        c = self._compiled.get(sig)
        if c is None:
            c = self._compile_once(sig, args)
        feeds = [a.reshape(1) if s else a for a, s in zip(args, self._scalar_in)]
        # the buffers: the compiling thread's, else this thread's own (get_ident is the cheapest
        # test: ~20 ns, against ~80 for a threading.local and ~200 for a lock, on a ~25 us call)
        fixed = c.fixed if get_ident() == c.owner else c.thread_fixed()
        if out is None:
            outs = c.new_outs()
        else:                             # the caller's arrays, checked (graphc/function.py)
            given = self._check_out(out, c.types, list(args))
            outs = [np.empty(shape, dtype) if given[k] is None else given[k].reshape(shape)
                    for k, shape, dtype in c.out_specs]
        lock = self._lock
        if lock is not None:              # updates: one call at a time (graphc/function.py)
            lock.acquire()
        try:
            variables = self.graph.store.host_values(c.var_slots)
            if c.any_flat:
                variables = [v.reshape(1) if s else v for v, s in zip(variables, c.var_flat)]
            if c.in_place:
                feeds = c.unaliased(feeds, [variables[k] for k in c.in_place])
            results = c.step(*feeds, *variables, *outs, *fixed)
        except ValueError as e:
            named = c.check_failed(e)
            if named is None:
                raise
            raise named from None
        finally:
            if lock is not None:
                lock.release()
        results = [o.reshape(()) if s else o for o, s in zip(results, c.out_scalar)]
        if out is not None:               # the caller's arrays; those the step did not write
            for k, g in enumerate(given):  # (views, copies) get the result copied in
                if g is not None and k not in c.out_given:
                    np.copyto(g, results[k])
            results = [r if g is None else g for g, r in zip(given, results)]
        return results[0] if self.single else results

    def _compile_once(self, sig, args):
        """The compiled step of this signature; two threads calling first compile it once."""
        with self._compile_lock:
            c = self._compiled.get(sig)
            if c is None:
                for x, a in zip(self.inputs, args):
                    feed_array(x, a)              # shapes: checked once per signature
                c = self._compile(sig)
            return c

    def _compile(self, sig):
        times = {}
        t0 = time.perf_counter()
        types = self._specialize(_Shapes(self.inputs, sig))
        t1 = time.perf_counter()
        program = generate(self.nodes, self.outputs, self.updates, types, self._placeholders,
                           parallel=self.parallel, header=f"# {self!r}", jit_step=self.jit_step,
                           check_numerics=self.check_numerics)
        t2 = time.perf_counter()
        # a module this process imported already has its kernels compiled: a new batch size
        # whose generated code is the same text (runtime/cpu/codegen.py) compiles nothing
        known = cache.loaded(program.cache_source)
        kernels = [cache.load(src)[1] for src in program.kernel_sources]
        module, path, wrote = cache.load(program.cache_source)
        t3 = time.perf_counter()
        store = self.graph.store
        variables = [n for n in self.nodes if n.op.name == "variable"] + list(self.updates)
        for v in dict.fromkeys(variables):           # in-place updates need owned, contiguous arrays
            arr = store[v]
            if not (arr.flags.c_contiguous and arr.flags.writeable and arr.flags.owndata):
                store[v] = np.array(arr, order="C")
        c = Compiled(program, module, path, self, types)
        try:
            if not known:
                self._warm(c, sig)
        except Exception:
            # Numba's own cache files of these modules damaged (garbage in an index *.nbi or
            # a data file *.nbc fails to unpickle, in this process and every later one): discard
            # them, import the modules afresh (new dispatchers) and compile again. Without such
            # files the error is not the cache's: it goes to the caller.
            damaged = [cache.discard_numba_cache(p) for p in kernels + [path]]
            if not any(damaged):
                raise
            for src in program.kernel_sources:
                cache.reload(src)
            module, path, _ = cache.reload(program.cache_source)
            c = Compiled(program, module, path, self, types)
            self._warm(c, sig)
        c.fixed, c.owner = c.new_fixed(), get_ident()
        c.step = blas_step(c.step, self.nodes, types, self.parallel)   # its BLAS threads per call (config.py)
        self._compiled[sig] = c
        times.update(specialize=t1 - t0, codegen=t2 - t1, write_import=t3 - t2, cache_file_written=wrote)
        c.times = times
        times["numba"] = time.perf_counter() - t3
        return c

    def _warm(self, c, sig):
        """Compile (or load from Numba's cache) by calling the step once on scratch copies."""
        scratch = [np.zeros(kshape(s), x.dtype) for x, s in zip(self.inputs, sig)]
        variables = [np.array(self.graph.store[v]).reshape(kshape(v.shape)) for v in c.var_nodes]
        try:
            c.step(*scratch, *variables, *c.new_outs(), *c.new_fixed(_no_check))
        except ValueError as e:           # a kernel's check failed: so it is compiled; the
            if not str(e).startswith("graphc check "):     # call itself will raise it, named
                raise

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
