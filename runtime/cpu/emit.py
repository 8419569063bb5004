"""What every CPU lowering shares: the lowering context, loop-nest helpers, and the table
of lowerings (`lowers`), filled by the files that lower each family of ops:

  loops.py        elementwise groups and reductions (one loop nest each)
  lower_linalg.py matmul (BLAS)
  lower_shape.py  views and copies: transpose, reshape, slicing, broadcasting, concatenate, pad
  lower_nn.py     row kernels (softmax, log_softmax, argmax/argmin), one_hot, random numbers
"""
from graphc.runtime.memory import kshape

from .target import CPU

PARALLEL_MIN = 1 << 17     # elements: below this a parallel loop costs more than it saves
CONTRACT = {"contract"}    # FMA contraction only: the inlined math depends on the order of operations
LOWER = {}                 # op name -> lowering(n, ctx) -> expression naming n's value


def lowers(*op_names):
    """Decorator: fn lowers these ops on the CPU."""
    def register(fn):
        for name in op_names:
            LOWER[name] = fn
        return fn
    return register


class Ctx:
    """Everything lowering needs: the module being written, names of values, concrete types,
    the memory plan and the layouts, and the target (math names, literals)."""

    def __init__(self, mod, names, types, plan, layout, nodes):
        self.mod, self.names, self.types, self.plan, self.layout = mod, names, types, plan, layout
        self.t = CPU
        self.users = {n: [] for n in nodes}
        for n in nodes:
            for i in n.inputs:
                self.users[i].append(n)

    def dest(self, n):
        """Where n's result is written: a fresh array, a buffer, or a variable (in place)."""
        target = self.plan.target(n)
        if target == "fresh":
            name = f"out{n.id}"
            shape, dtype = kshape(self.types[n].shape), self.types[n].dtype
            self.mod.emit(f"{name} = np.empty({shape}, np.{dtype.name})")
            return name
        if isinstance(target, str):
            return target
        return self.names[target]          # a variable node: written in place

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
