"""What every CPU lowering shares: the module being written (its kernels and the statements
of `step`), the lowering context, loop-nest helpers, the names of kernels, and the table of
lowerings (`lowers`), filled by the files that lower each family:

  loops.py        elementwise groups and reductions (one loop nest each)
  lower_linalg.py matmul (BLAS)
  lower_shape.py  views and copies: transpose, reshape, slicing, broadcasting, concatenate, pad
  lower_nn.py     row kernels (softmax, log_softmax, argmax/argmin), one_hot, random numbers
  lower_multi.py  ops with several outputs other than fused groups (split)

A kernel is named for what it does (`fused_mul_add_tanh`, `sum_rows_of_mul`,
`softmax_rows`, `copy_broadcast`), so a reader of the generated module can find the
graph's work in it; the names come from the ops alone, never from counters or node
ids; Module adds a suffix only when two different kernels get one name. A statement records
which node it computes and which kernel it calls, so codegen.py can comment it and map nodes
to lines.
"""
import builtins
import keyword

from graphc.runtime.memory import kshape

from .target import CPU, FAST

PARALLEL_MIN = 1 << 17     # elements: below this a parallel loop costs more than it saves
CONTRACT = {"contract"}    # FMA contraction only: the inlined math depends on the order of operations
LOWER = {}                 # op name -> lowering(n, ctx) -> expression naming n's value

# How kernel names and the step's comments write an op (the rest keep their own name).
SHORT = {"multiply": "mul", "subtract": "sub", "divide": "div", "negative": "neg", "power": "pow",
         "maximum": "max", "minimum": "min", "greater": "gt", "greater_equal": "ge", "less": "lt",
         "less_equal": "le", "equal": "eq", "not_equal": "ne", "logical_and": "and", "logical_or": "or",
         "logical_not": "not", "reciprocal": "recip", "broadcast_to": "bcast", "leaky_relu": "lrelu"}
NAME_OPS = 4               # a kernel name lists at most this many of its ops
MAX_NAME = 40              # and is cut (at an underscore) to this length
# names a kernel must not take: they would shadow what the module and its kernels call
RESERVED = set(dir(builtins)) | set(keyword.kwlist) | set(FAST) | {"math", "np", "njit", "prange", "step"}


def lowers(*op_names):
    """Decorator: fn lowers these ops on the CPU."""
    def register(fn):
        for name in op_names:
            LOWER[name] = fn
        return fn
    return register


def short(op_name):
    return SHORT.get(op_name, op_name)


def ops_name(steps):
    """The ops of a region's steps in the order they run, each once: "mul_add_tanh".

    A broadcast_to step is only a load in the loop, so it is left out unless it is all there is."""
    names = [short(s.op.name) for s in steps if s.op.name != "broadcast_to"] or ["bcast"]
    return "_".join(list(dict.fromkeys(names))[:NAME_OPS])


def axes_name(nd, axes):
    """Which axes a reduction or row kernel runs along, in a word: rows (the last axis),
    cols (axis 0 of a matrix), all, or axis0_2."""
    axes = tuple(sorted(axes))
    if not axes or len(axes) == nd:
        return "all"
    if axes == (nd - 1,):
        return "rows"
    if nd == 2 and axes == (0,):
        return "cols"
    return "axis" + "_".join(str(a) for a in axes)


class Call(str):
    """A step line calling a kernel: the text `kernel(arg, ...)`, plus the kernel's name, the
    arguments and a note for each (what value it holds), so that the step can say which
    kernel computes a node and lay a long call out one argument per line."""

    def __new__(cls, kernel, args, notes=None, indent=0, head=None):
        head = head or kernel      # what comes before "(": the kernel, or a CUDA launch kernel[grid, block]
        self = super().__new__(cls, "    " * indent + f"{head}({', '.join(args)})")
        self.kernel, self.head, self.args, self.indent = kernel, head, list(args), indent
        self.notes = list(notes or []) + [None] * (len(args) - len(notes or []))
        return self


class Stmt:
    """One statement of `step`: its text (a Call when it calls a kernel), the node it is
    for, and its role: compute (lowering node), alloc (a fresh array for `about`), output
    (the copy returned as output `about`), old (a saved old value), update (`about`'s update)."""

    def __init__(self, text, node, role, about):
        self.text, self.node, self.role, self.about = text, node, role, about
        self.kernel = getattr(text, "kernel", None)


class Module:
    """Collects kernels (one definition per distinct text) and the statements of `step`."""

    def __init__(self, parallel):
        self.parallel = parallel
        self.kernels = {}          # (params, text, fastmath, parallel) -> name
        self.base = {}             # the same key -> the name the kernel has in its own module
        self.stmts = []
        self.node, self.role = None, "compute"      # what the next statements are for

    def kernel(self, name, params, body_lines, fastmath=None, parallel=False):
        """Add (or find) a kernel; return its name: `name` unless another kernel has it."""
        key = (tuple(params), "\n".join(body_lines), frozenset(fastmath or ()), parallel)
        if key not in self.kernels:
            self.kernels[key] = self._unique(name)
            self.base[key] = self._unique(name, taken=())
        return self.kernels[key]

    def _unique(self, name, taken=None):
        name = ident(name)
        if len(name) > MAX_NAME:
            name = name[:MAX_NAME].rsplit("_", 1)[0]
        base = name + "_kernel" if name in RESERVED else name
        taken = set(self.kernels.values()) if taken is None else taken
        name, k = base, 2
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        return name

    def at(self, node, role="compute"):
        self.node, self.role = node, role

    def emit(self, line, role=None, about=None):
        self.stmts.append(Stmt(line, self.node, role or self.role, about))

    def call(self, kernel, args, notes=None, indent=0, head=None):
        self.emit(Call(kernel, args, notes, indent, head))


class Ctx:
    """Everything lowering needs: the module being written, names of values, concrete types,
    the memory plan and the layouts, and the target (math names, literals)."""

    def __init__(self, mod, names, types, plan, layout, nodes, param=None, outs=None):
        self.mod, self.names, self.types, self.plan, self.layout = mod, names, types, plan, layout
        self.param = param         # param(name, kind, payload, note) -> name: a new argument of step
        self.outs = outs or {}     # output node -> the step argument it is written into
        self.shapes = {}           # node name -> the step argument holding its shape
        self.t = CPU
        self.checked = []          # nodes whose kernel may raise: the k-th raises "graphc check k: ..."
        self.users = {n: [] for n in nodes}
        for n in nodes:
            for i in n.inputs:
                self.users[i].append(n)

    def raises(self, node, what):
        """The message of an error node's kernel raises (the runtime reads k back, names the node)."""
        self.checked.append(node)
        return f"graphc check {len(self.checked) - 1}: {what}"

    def dest(self, n):
        """Where n's result is written: a fresh array, a buffer, or a variable (in place)."""
        target = self.plan.target(n)
        if target == "fresh":              # an argument: a new array per call, or the caller's out=
            return self.outs[n]
        if isinstance(target, str):
            return target
        return self.names[target]          # a variable node: written in place

    def shape(self, n, reshape=False):
        """Text for the shape n has in the step (0-d: (1,)). The step's text, and so the module
        and its compiled kernels, must not depend on the sizes fed for None dimensions: a shape
        the graph fixes when it is built is a literal; one with a single None dimension, for a
        reshape, a literal with -1 there (`x.reshape(-1, 6)`); any other a step argument
        `shape_<node>` that the runtime fills for each shape signature."""
        return self.shape_of(n.name, kshape(self.types[n].shape), kshape(n.type.shape), reshape)

    def shape_of(self, name, concrete, built, reshape=False):
        """Ctx.shape for a shape that is no node's: `concrete` in this call, `built` (None
        where unknown) as the graph was built; `name` names the step argument if one is needed."""
        if None not in built:
            return repr(tuple(concrete))
        fixed = [d for d in built if d is not None]
        if reshape and built.count(None) == 1 and 0 not in fixed:
            return "(" + ", ".join("-1" if d is None else str(d) for d in built) + ("," if len(built) == 1 else "") + ")"
        if name not in self.shapes:
            self.shapes[name] = self.param(f"shape_{ident(name)}", "shape", tuple(concrete),
                                           f"the shape of {name} in this call")
        return self.shapes[name]

    def value(self, x):
        """A step expression for x that Numba can hand to a kernel (a literal constant becomes an array)."""
        if self.plan.inlined(x):
            v = x.attrs["value"].reshape(-1)[0]
            return f"np.full(1, {self.t.lit(v, x.dtype)})"
        return self.names[x]


def loops(dims, parallel, indent=1):
    """Lines opening a loop nest over dims (names of sizes); returns (lines, index names, body indent)."""
    lines, idx = [], []
    for k, d in enumerate(dims):
        rng = "prange" if parallel and k == 0 else "range"
        lines.append("    " * (indent + k) + f"for i{k} in {rng}({d}):")
        idx.append(f"i{k}")
    return lines, idx, indent + len(dims)


def index(shape, domain, idx):
    """Index of an input of `shape` inside a loop over `domain` (right-aligned broadcasting)."""
    off = len(domain) - len(shape)
    parts = ["0" if s == 1 and domain[off + j] != 1 else idx[off + j] for j, s in enumerate(shape)]
    return ", ".join(parts)


def unpack(dims, source):
    """`n0, n1 = source`: the sizes of a loop nest read off an array's shape."""
    return f"    {', '.join(dims)}{',' if len(dims) == 1 else ''} = {source}"


def ident(name):
    """name as a Python identifier."""
    s = "".join(c if c.isalnum() else "_" for c in name)
    return s if s and not s[0].isdigit() else "v" + s
