"""The profile of one call of a CPU function, for the report page: time per statement of
the generated step, and per node the bytes it moves and the arithmetic it does.

Timing replays the step as plain Python: the statements of the step that runs
(`Program.cache_source`, the same calls as `fn.source` without comments), each
top-level statement wrapped in perf_counter (BLAS on one thread), on copies of the variables (the
function's state is left alone, and each call starts from its values) and one set of buffers
made before the first call and reused, as the runtime's are (fresh ones per call had charged a
conv's first touch of its output, page faults, to its statement). Each kernel call then pays
Python's call overhead (~1 us), which a Numba-compiled short step does not: the
times of tiny kernels are upper bounds. Bytes and flops come from the concrete
types, not from counters: bytes = what a node reads plus what it writes (views
move nothing), flops estimated per op kind (a matmul 2*m*n*k, an elementwise op
one per element and op, a reduction one per element read).
"""
import ast
import importlib
import time

import numpy as np

from graphc.core.region import Param
from graphc.core.types import TupleType

ROWS_CHEAP = {"transpose", "reshape", "expand_dims", "squeeze", "getitem", "output", "size"}
PER_ELEMENT = {"softmax": 5, "log_softmax": 5, "sigmoid": 4, "tanh": 4, "exp": 2, "log": 2}
REPEAT = 7                # calls replayed; each statement's time is its fastest


def statements(source):
    """[(first line, last line, kernel name or None, text)] of step's top-level statements."""
    step = next(d for d in ast.parse(source).body if isinstance(d, ast.FunctionDef) and d.name == "step")
    out = []
    for s in step.body:
        if isinstance(s, ast.Return):
            continue
        call = s.value if isinstance(s, ast.Expr) and isinstance(s.value, ast.Call) else None
        kernel = call.func.id if call is not None and isinstance(call.func, ast.Name) else None
        out.append((s.lineno, s.end_lineno, kernel, ast.unparse(s).split("\n")[0][:80]))
    return out


def timed_step(source, namespace):
    """step of `source` as plain Python, each top-level statement timed into the list `_T`."""
    tree = ast.parse(source)
    step = next(d for d in tree.body if isinstance(d, ast.FunctionDef) and d.name == "step")
    step.decorator_list = []
    body = []
    k = 0
    for s in step.body:
        if isinstance(s, ast.Return):
            body.append(s)
            continue
        body += ast.parse("_t = _pc()").body + [s] + ast.parse(f"_T[{k}] = min(_T[{k}], _pc() - _t)").body
        k += 1
    step.body = body
    module = ast.Module([step], type_ignores=[])
    ast.fix_missing_locations(module)
    times = [float("inf")] * k
    scope = dict(namespace, _pc=time.perf_counter, _T=times)
    exec(compile(module, "<graphc profile>", "exec"), scope)
    return scope["step"], times


def step_arguments(fn, c, feeds):
    """What the runtime passes the step (runtime/cpu/function.py), with copies of the variables,
    and a function that puts the variables' values back into those copies (a training step
    updates them in place)."""
    feeds = [np.ascontiguousarray(a).reshape(1) if np.ndim(a) == 0 else np.ascontiguousarray(a) for a in feeds]
    values = [np.array(fn.graph.store[v]).reshape(v.shape or (1,)) for v in c.var_nodes]
    variables = [v.copy() for v in values]

    def restore():
        for copy, value in zip(variables, values):
            np.copyto(copy, value)
    return feeds + variables + c.new_outs() + c.new_fixed(), restore


def sample_feeds(fn, sig):
    """Arrays of the signature's shapes: normal floats, zeros for integers and bools."""
    rng = np.random.default_rng(0)
    out = []
    for x, shape in zip(fn.inputs, sig):
        dt = np.dtype(x.dtype)
        out.append(rng.normal(size=shape).astype(dt) if dt.kind == "f" else np.zeros(shape, dt))
    return out


def profile(fn, c, feeds, repeat=REPEAT):
    """[(first line, last line, kernel, text, seconds)] per statement of fn.source's step, and
    the seconds of one whole call of the real step (the best of `repeat`)."""
    rows = statements(c.program.source)
    runs = statements(c.program.cache_source)
    step, times = timed_step(c.program.cache_source, vars(c.module))
    # by name, as graphc/function.py loads the backend (importing graphc must not import it)
    blas = importlib.import_module("graphc.runtime.cpu.config").numba_blas()
    threads = blas.get() if blas is not None else None
    try:                # GEMMs on one thread, as graphc picks for small ones: on a busy machine
        if blas is not None:          # OpenBLAS's spinning threads would swamp the timings
            blas.set(1)
        args, restore = step_arguments(fn, c, feeds)
        for _ in range(repeat):
            restore()
            step(*args)
    finally:
        if blas is not None:
            blas.set(threads)
    whole = float("inf")
    for _ in range(repeat):
        restore()
        t0 = time.perf_counter()
        c.step(*args)
        whole = min(whole, time.perf_counter() - t0)
    if len(runs) != len(rows):          # both are written from one list of statements (render.py)
        raise RuntimeError("profile: the step that runs and fn.source have different statements")
    return [row + (t,) for row, t in zip(rows, times)], whole


# ---------------------------------------------------------------- bytes and flops per node


def nbytes(t):
    if isinstance(t, TupleType):
        return sum(nbytes(x) for x in t.types)
    return int(np.prod(t.shape, dtype=np.int64)) * np.dtype(t.dtype).itemsize


def size(t):
    if isinstance(t, TupleType):
        return sum(size(x) for x in t.types)
    return int(np.prod(t.shape, dtype=np.int64))


def cost(n, types, is_view):
    """(bytes moved, flops) of node n for these concrete types; (0, 0) for a view or a source."""
    if n.op.kind == "source" or n.op.name in ROWS_CHEAP or is_view(n):
        return 0, 0
    ins = [types.get(x, x.type) for x in n.inputs]
    out = types.get(n, n.type)
    moved = sum(nbytes(t) for t in ins) + nbytes(out)
    name = n.op.name
    if name == "matmul":
        k = ins[0].shape[-1] if ins and ins[0].shape else 1
        return moved, 2 * size(out) * k
    if name == "fused":
        steps = n.attrs["region"].steps
        flops = size(out) * len(steps)
        for s in steps:                # a matmul fused with its epilogue (W - lr * x.T @ g)
            a = s.operands[0] if s.op.name == "matmul" and s.operands else None
            if isinstance(a, Param) and ins[a.index].shape:
                flops += 2 * size(out) * ins[a.index].shape[-1]
            if s.op.name == "conv2d":  # a convolution fused with its epilogue: its weights are input 1
                flops += 2 * size(out) * int(np.prod(ins[1].shape[1:]))
        if n.attrs.get("reduce") is not None:
            flops = max(flops, max((size(t) for t in ins), default=0) * len(n.attrs["region"].steps))
        return moved, flops
    if name == "conv2d":               # a multiply-add per weight of a group, per output element
        return moved, 2 * size(out) * int(np.prod(ins[1].shape[1:]))
    if n.op.kind == "reduction":
        return moved, max((size(t) for t in ins), default=0)
    if n.op.kind == "elementwise":
        return moved, size(out) * PER_ELEMENT.get(name, 1)
    if name in PER_ELEMENT:
        return moved, size(out) * PER_ELEMENT[name]
    if n.op.kind in ("view", "shape") or name.startswith(("copy", "broadcast", "concatenate", "pad", "one_hot")):
        return moved, 0
    return moved, size(out)            # an estimate: one operation per element written
