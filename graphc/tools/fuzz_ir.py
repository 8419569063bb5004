"""The fuzzer's programs: a random graph written down as data, so that one
description can be built many times (into its own graph for the interpreter,
into a shared batch graph for the CPU backend, in float64 for the gradient
check), printed as the Python code that builds it (`graphc fuzz --replay`),
and cut down to what one failing output needs.

A Program is a list of Steps in the order they were built. A step calls one
user function (`gc.add`, `gc.sum`, `x[key]`, `gc.grad`, ...) on earlier
results (`V` references by name), Python scalars, keys and arrays. Sources
(placeholders, variables, constants) are steps too.
"""
import math
from dataclasses import dataclass, field

import numpy as np

import graphc as gc
from graphc.ops.slicing import fmt_key

from .fuzz_scan import build_scan, fmt_scan


@dataclass(frozen=True)
class V:
    """A reference to an earlier step's result, by name."""
    name: str

    def __repr__(self):
        return self.name


@dataclass
class Step:
    outs: tuple          # names of the results (several for split and grad)
    fn: str              # a gc function name, or one of SPECIAL below
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


# fns that are not a plain `gc.<fn>(...)` call
BINOPS = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide", "**": "power", "@": "matmul",
          "<": "less", "<=": "less_equal", ">": "greater", ">=": "greater_equal", "&": "logical_and",
          "|": "logical_or"}
SPECIAL = ("placeholder", "variable", "constant", "getitem", "binop", "neg", "invert", "T", "grad",
           "random.uniform", "random.normal", "scan")     # scan: a body template (fuzz_ops_nn.py)


@dataclass
class Program:
    seed: int
    sizes: tuple                  # the value of every None dimension at the first and the second call
    steps: list = field(default_factory=list)
    outputs: list = field(default_factory=list)       # names
    updates: list = field(default_factory=list)       # (variable name, value name)
    rejected: str = None          # the GraphError message when building a step failed
    crashed: str = None           # any other exception while building (a graphc bug)
    feeds_seed: int = 0
    edges: tuple = ()             # which edge values the feeds may hold (see feeds())
    fixed: dict = field(default_factory=dict)     # placeholder name -> its two feeds (made by fuzz_min)

    @property
    def inputs(self):
        return [s.outs[0] for s in self.steps if s.fn == "placeholder"]

    def step_of(self):
        return {o: s for s in self.steps for o in s.outs}

    def op_of(self, name):
        s = self.step_of()[name]
        return BINOPS.get(s.args[0], s.fn) if s.fn == "binop" else s.fn


# ---------------------------------------------------------------- building


def _resolve(arg, env, dmap):
    if isinstance(arg, V):
        return env[arg.name]
    if isinstance(arg, list):
        return [_resolve(a, env, dmap) for a in arg]
    if isinstance(arg, np.dtype):
        return dmap.get(arg, arg)
    if isinstance(arg, (np.ndarray, np.generic)):
        return np.asarray(arg).astype(dmap.get(arg.dtype, arg.dtype))
    if isinstance(arg, str) and np.dtype(dmap.get(arg, np.bool_)) != np.bool_:   # dtype="float32"
        return dmap[arg].name
    return arg


_BINOP_FNS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
              "/": lambda a, b: a / b, "**": lambda a, b: a ** b, "@": lambda a, b: a @ b,
              "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
              ">=": lambda a, b: a >= b, "&": lambda a, b: a & b, "|": lambda a, b: a | b}


def build_step(step, env, prefix="", dmap=None):
    """Build one step into the current default graph; its results go into env."""
    dmap = dmap or {}
    args = [_resolve(a, env, dmap) for a in step.args]
    kwargs = {k: _resolve(v, env, dmap) for k, v in step.kwargs.items()}
    fn = step.fn
    if fn == "one_hot" and "dtype" not in kwargs and np.dtype(np.float32) in dmap:
        kwargs["dtype"] = dmap[np.dtype(np.float32)]     # its default float32 too (conv2d, scan: one dtype)
    if fn in ("placeholder", "variable"):
        out = getattr(gc, fn)(*args, name=prefix + step.outs[0])
    elif fn == "getitem":
        out = args[0][args[1]]
    elif fn == "binop":
        out = _BINOP_FNS[args[0]](args[1], args[2])
    elif fn == "neg":
        out = -args[0]
    elif fn == "invert":
        out = ~args[0]
    elif fn == "T":
        out = args[0].T
    elif fn.startswith("random."):
        out = getattr(gc.random, fn[7:])(*args, **kwargs)
    elif fn == "scan":
        out = build_scan(args, kwargs)
    else:
        out = getattr(gc, fn)(*args, **kwargs)
    outs = list(out) if len(step.outs) > 1 or isinstance(out, (list, tuple)) else [out]
    if len(outs) != len(step.outs):
        raise AssertionError(f"{fn} gave {len(outs)} results, the program expects {len(step.outs)}")
    env.update(zip(step.outs, outs))


FLOAT64 = {np.dtype(np.float32): np.dtype(np.float64), "float32": np.dtype(np.float64)}


def build(prog, prefix="", float64=False):
    """Build prog into the current default graph: (env {name: node}, inputs, outputs, updates).
    float64: every float32 (placeholders, constants, casts) becomes float64, for finite differences."""
    env = {}
    dmap = FLOAT64 if float64 else {}
    # gc.random numbers its draws per graph in build order: restart the numbering, so a program's
    # draws are the same numbers whether it is built alone or after others in a batch graph
    gc.get_default_graph().random_streams = 0
    for step in prog.steps:
        build_step(step, env, prefix, dmap)
    inputs = [env[n] for n in prog.inputs]
    outputs = [env[n] for n in prog.outputs]
    updates = {env[v]: env[x] for v, x in prog.updates}
    return env, inputs, outputs, updates


# ---------------------------------------------------------------- feeds

WRAP_INTS = {np.dtype(np.int32): [2 ** 31 - 1, -2 ** 31, 46341, -46341, 2 ** 30],
             np.dtype(np.int64): [2 ** 63 - 1, -2 ** 63, 3037000500, 2 ** 62]}


def random_array(rng, shape, dtype, edges=()):
    """Moderate values (floats in [-3, 3], ints in [-5, 5]), with edge values mixed in:
    edges may name "zero" (0, -0.0, 1, -1), "negzero" (-0.0), "wrap" (ints near wrap-around),
    "nonfinite" (nan, inf)."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return np.array(rng.random(shape) < 0.5)
    if dtype.kind == "f":
        a = np.array(rng.uniform(-3, 3, size=shape), dtype)      # an array also when 0-d
        if rng.random() < 0.3:                      # simple values: ties and exact arithmetic
            a = np.array(np.round(a * 2) / 2, dtype)
        pool = [0.0, 1.0, -1.0, 0.5]
        pool += [-0.0] if "negzero" in edges else []
        pool += [np.nan, np.inf, -np.inf] if "nonfinite" in edges and rng.random() < 0.3 else []
    else:
        a = np.array(rng.integers(-5, 6, size=shape), dtype)
        pool = [0, 1, -1, 2]
        pool += WRAP_INTS[dtype] if "wrap" in edges and rng.random() < 0.4 else []
    if a.size and rng.random() < 0.6:
        flat = a.reshape(-1)
        picks = rng.integers(0, a.size, size=max(1, a.size // 3))
        flat[picks] = np.array([pool[k] for k in rng.integers(0, len(pool), size=len(picks))], dtype)
    return np.asarray(a, dtype)        # an array, also when 0-d (np.round gives a scalar)


def feeds(prog, call, float64=False):
    """The arrays fed to prog's placeholders at call 0 or 1 (the None dims take prog.sizes[call])."""
    env_steps = [s for s in prog.steps if s.fn == "placeholder"]
    rng = np.random.default_rng([prog.feeds_seed, call])
    out = []
    for s in env_steps:
        shape = tuple(prog.sizes[call] if d is None else d for d in s.args[0])
        a = prog.fixed[s.outs[0]][call] if s.outs[0] in prog.fixed else random_array(rng, shape, s.args[1],
                                                                                     prog.edges)
        out.append(a.astype(np.float64) if float64 and a.dtype == np.float32 else a)
    return out


# ---------------------------------------------------------------- cutting down


def prune(prog, outputs, updates=None):
    """A copy of prog keeping only what these outputs (and updates) need."""
    steps = prog.step_of()
    keep_updates = [(v, x) for v, x in prog.updates if updates is None or v in updates]
    need, todo = set(), list(outputs) + [n for u in keep_updates for n in u]
    while todo:
        n = todo.pop()
        if n in need:
            continue
        s = steps[n]
        need.update(s.outs)
        todo.extend(refs(s.args) + refs(list(s.kwargs.values())))
    kept = [s for s in prog.steps if need.intersection(s.outs)]
    return Program(prog.seed, prog.sizes, kept, list(outputs), keep_updates,
                   feeds_seed=prog.feeds_seed, edges=prog.edges, fixed=prog.fixed)


def refs(args):
    out = []
    for a in args:
        if isinstance(a, V):
            out.append(a.name)
        elif isinstance(a, (list, tuple)):
            out.extend(refs(a))
    return out


# ---------------------------------------------------------------- as Python


def fmt_value(x):
    if isinstance(x, V):
        return x.name
    if isinstance(x, np.dtype):
        return f"gc.{x.name}" if x != np.bool_ else "gc.bool_"
    if isinstance(x, np.ndarray):
        return fmt_array(x)
    if isinstance(x, float):
        return _fmt_float(x)
    if isinstance(x, slice):
        return f"slice({fmt_value(x.start)}, {fmt_value(x.stop)}, {fmt_value(x.step)})"
    if x is Ellipsis:
        return "..."
    if isinstance(x, list):
        return "[" + ", ".join(fmt_value(a) for a in x) + "]"
    if isinstance(x, tuple):
        return "(" + ", ".join(fmt_value(a) for a in x) + ("," if len(x) == 1 else "") + ")"
    return repr(x)


def _fmt_float(v):
    if math.isnan(v):
        return "np.nan"
    if math.isinf(v):
        return "np.inf" if v > 0 else "-np.inf"
    return repr(float(v))


def fmt_array(a):
    dt = "bool_" if a.dtype == np.bool_ else a.dtype.name
    if a.size == 0:
        return f"np.zeros({a.shape}, np.{dt})"

    def nest(x):
        if isinstance(x, list):
            return "[" + ", ".join(nest(e) for e in x) + "]"
        return _fmt_float(x) if isinstance(x, float) else repr(x)
    return f"np.array({nest(a.tolist())}, np.{dt})"


def fmt_step(s):
    if s.fn == "scan":
        return fmt_scan(s, fmt_value)
    a = [fmt_value(x) for x in s.args]
    kw = ", ".join(f"{k}={fmt_value(v)}" for k, v in s.kwargs.items())
    lhs = ", ".join(s.outs) + ("," if len(s.outs) == 1 and s.fn in ("split", "grad") else "")
    if s.fn in ("placeholder", "variable"):
        rhs = f"gc.{s.fn}({', '.join(a)}, name={s.outs[0]!r})"
    elif s.fn == "getitem":
        key = s.args[1] if isinstance(s.args[1], tuple) else (s.args[1],)
        rhs = f"{a[0]}[{', '.join(fmt_key(k) if k is not Ellipsis else '...' for k in key) or '()'}]"
    elif s.fn == "binop":
        rhs = f"{a[1]} {s.args[0]} {a[2]}"
    elif s.fn == "neg":
        rhs = f"-{a[0]}"
    elif s.fn == "invert":
        rhs = f"~{a[0]}"
    elif s.fn == "T":
        rhs = f"{a[0]}.T"
    else:
        rhs = f"gc.{s.fn}({', '.join(a + ([kw] if kw else []))})"
    return f"{lhs} = {rhs}"


def build_lines(prog, indent="        "):
    """The body of build(): one line per step, then the return of inputs, outputs, updates."""
    lines = [indent + fmt_step(s) for s in prog.steps]
    if prog.rejected or prog.crashed:
        return lines + [f"{indent}# the last step raises: {(prog.rejected or prog.crashed).splitlines()[0]}"]
    return lines + [f"{indent}return ([{', '.join(prog.inputs)}], [{', '.join(prog.outputs)}],",
                    f"{indent}        {{" + ", ".join(f"{v}: {x}" for v, x in prog.updates) + "})"]


def to_python(prog):
    """The program as a runnable script: build it for each backend, call it twice, print."""
    lines = ["import numpy as np", "import graphc as gc", "", "",
             f"def build():   # graphc fuzz --replay {prog.seed}",
             "    with gc.Graph('fuzz'):"] + build_lines(prog)
    if prog.rejected or prog.crashed:
        return "\n".join(lines) + "\n"
    lines += ["", "", f"# the None dimension is {prog.sizes[0]} at the first call, {prog.sizes[1]} at the second"]
    lines.append("calls = [")
    for call in (0, 1):
        lines.append("    [" + ", ".join(fmt_array(a) for a in feeds(prog, call)) + "],")
    lines.append("]")
    lines += ["if __name__ == '__main__':",
              "    for backend in ('interp', 'cpu'):",
              "        inputs, outputs, updates = build()",
              "        f = gc.function(inputs, outputs, updates, backend=backend)",
              "        for args in calls:",
              "            print(backend, f(*args))",
              "        print(backend, 'variables after:', [gc.get_value(v) for v in updates])"]
    return "\n".join(lines) + "\n"
