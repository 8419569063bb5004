"""backend="cuda": the optimized graph as generated numba.cuda kernels, launched by a host step.

A call binds and checks the feeds (graphc/function.py), finds the compiled step of
their shapes (generating it the first time, runtime/cuda/codegen.py), copies the
feeds to the device, runs the step on device arrays and copies the outputs back.
Nothing else crosses: the values between kernels live in device buffers
(allocated once per shape signature), constants are uploaded once, and variables
live on the device across calls, in the graph's variable store
(graphc/core/store.py): a variable is copied to the device the first time a CUDA
function needs it and back to the host only when someone asks for its value
(`gc.get_value`, the interpreter, the CPU backend).

Kernels are shared by their text: a kernel that two modules (two graphs, two batch
sizes) contain is compiled once per process. Calls of CUDA functions run one at a
time (one GPU, one stream; the reductions' scratch is shared).
"""
import contextlib
import sys
import threading

import numpy as np

from graphc.core.errors import ArgumentError, GraphError
from graphc.function import Function, negative_power_error, numerics_error
from graphc.runtime.memory import kshape

from .launch import SIMULATOR, available

DEVICE = "cuda"
_run_lock = threading.RLock()
_kernels = {}          # kernel text key -> the one compiled kernel object of this process


@contextlib.contextmanager
def _quick_thread_switches():
    """Under the simulator, a block's threads are Python threads meeting at every syncthreads(),
    while the simulator polls them; with Python's default 5 ms between thread switches each
    barrier costs about a switch per thread (a small MLP step took 15 s; with 0.1 ms, 1.5 s).
    On a GPU this does nothing."""
    if not SIMULATOR:
        yield
        return
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


class DeviceValue:
    """A variable's value on the device: a C-contiguous device array and the variable's shape
    (a 0-d variable is a 1-element array there)."""

    def __init__(self, array, shape):
        self.array, self.shape = array, tuple(shape)


def _to_host(value):
    return value.array.copy_to_host().reshape(value.shape)


def _to_device(host):
    from numba import cuda
    host = np.asarray(host, order="C")        # (np.ascontiguousarray makes a 0-d array 1-d)
    return DeviceValue(cuda.to_device(host.reshape(kshape(host.shape))), host.shape)


def load(program):
    """The module of a generated program (filed under the hash of its text, runtime/cpu/cache.py),
    its kernels replaced by the process's one compiled kernel of each text."""
    from graphc.runtime.cpu import cache
    module, _, _ = cache.load(program.source)
    for key, name in program.kernels.items():
        setattr(module, name, _kernels.setdefault(key, getattr(module, name)))
    return module


class Compiled:
    """One shape signature's module (or a scan body's), and the arguments its step takes after
    the feeds."""

    def __init__(self, program):
        from numba import cuda
        from .lower_scan import ScanLoop
        self.program, self.module, self.types = program, load(program), program.types
        self.step = self.module.step
        self.var_nodes = [p[2] for p in program.params if p[1] == "var"]
        self.out_specs = [(k, buf.shape, buf.dtype) for _, kind, (k, buf) in
                          ((n, kd, p) for n, kd, p in program.params if kd == "out")]
        self.fixed, self.scan_loops = [], []
        for name, kind, payload in program.params:
            if kind == "const":
                value = np.ascontiguousarray(payload)
                self.fixed.append(cuda.to_device(value.reshape(kshape(value.shape))))
            elif kind == "buf":
                self.fixed.append(cuda.device_array(payload.shape, payload.dtype))
            elif kind == "shape":
                self.fixed.append(payload)
            elif kind == "check":
                self.fixed.append(self._check)
            elif kind == "fallback":
                self.fixed.append(self._host_op)
            elif kind == "scan":
                self.scan_loops = loops = [ScanLoop(spec, Compiled(spec.body), self.types) for spec in payload]
                self.fixed.append(lambda k, ins, outs: loops[k](ins, outs))

    def _check(self, k, value):
        node = self.program.checks[k]
        host = value.copy_to_host()
        if not np.isfinite(host).all():
            raise numerics_error(node, host.reshape(self.types.get(node, node.type).shape))

    def _host_op(self, k, ins, outs):
        """An op without a CUDA kernel: its numpy reference, on host copies of its inputs."""
        n = self.program.fallbacks[k]
        args = [a.copy_to_host().reshape(self.types[x].shape) for a, x in zip(ins, n.inputs)]
        with np.errstate(all="ignore"):
            result = n.op.ref(*args, **n.attrs)
        for dest, value in zip(outs, result if isinstance(result, tuple) else (result,)):
            if dest is not None:                 # None: a part nothing reads
                dest.copy_to_device(np.ascontiguousarray(value, dest.dtype).reshape(dest.shape))


class CudaFunction(Function):
    backend = "cuda"

    def __init__(self, inputs, outputs, updates=None, optimize=None, passes=None, check_numerics=False):
        why = available()
        if why is not None:
            raise GraphError(f"backend 'cuda' is not available: {why}")
        super().__init__(inputs, outputs, updates, optimize=optimize, passes=passes,
                         check_numerics=check_numerics)
        self._compiled = {}
        self.graph.store.register_device(DEVICE, _to_host, _to_device)

    def _run(self, feeds, types):
        from numba import cuda
        args = [feeds[x] for x in self.inputs]
        sig = tuple(a.shape for a in args)
        with _run_lock, _quick_thread_switches():
            c = self._compiled.get(sig) or self._compile(sig, types)
            dev_feeds = [cuda.to_device(np.asarray(a, order="C").reshape(kshape(a.shape))) for a in args]
            store, variables = self.graph.store, []
            for v in c.var_nodes:
                value = store.get(v, DEVICE)
                if store.where(v) != DEVICE:
                    store.put(v, value, DEVICE)        # it stays there: the next call finds it
                variables.append(value.array)
            outs = [cuda.device_array(shape, dtype) for _, shape, dtype in c.out_specs]
            try:
                results = c.step(*dev_feeds, *variables, *outs, *c.fixed)
            except ValueError as e:
                text = str(e)
                if not text.startswith("graphc check "):
                    raise
                node = c.program.raises[int(text.split()[2].rstrip(":"))]
                raise negative_power_error(node, [c.types[x] for x in node.inputs]) from None
            host = [r.copy_to_host().reshape(types[o].shape) for r, o in zip(results, self.outputs)]
        return host, {}

    def _compile(self, sig, types):
        from .codegen import generate
        program = generate(self.nodes, self.outputs, self.updates, types, self._placeholders,
                           header=f"# {self!r}", check_numerics=self.check_numerics)
        c = self._compiled[sig] = Compiled(program)
        return c

    @property
    def source(self):
        """The generated module of the most recent shape signature (call the function first)."""
        return self._latest("fn.source").program.source

    @property
    def kernel_map(self):
        """{node: (kernel or launcher name, line of fn.source)}, as on the CPU backend."""
        return self._latest("fn.kernel_map").program.node_map

    @property
    def host_ops(self):
        """The nodes of the most recent signature that run on the host (no CUDA kernel yet)."""
        return list(self._latest("fn.host_ops").program.fallbacks)

    def _latest(self, what):
        if not self._compiled:
            raise ArgumentError(f"{what}: call the function once first (its shapes decide the code)")
        return list(self._compiled.values())[-1]
