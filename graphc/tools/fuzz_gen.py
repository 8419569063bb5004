"""The fuzzer's random program generator: seed -> Program (graphc/tools/fuzz_ir.py).

A program grows from a pool that starts with a few placeholders. Each step
draws a kind of op (graphc/tools/fuzz_ops.py), picks operands from the pool
(recent ones more often, so chains get deep and results are reused), or makes
fresh ones (a constant, variable or placeholder of the shape the op needs),
and builds the node at once in a scratch graph: graphc's own type inference
tells the generator every result's shape and dtype, and a step graphc refuses
(a GraphError) makes the program "rejected". The generator aims at valid
programs -- it asks graphc which dtypes each op takes (`accepts`) -- but one
step in ~30 picks its operands blindly, so the checks that reject bad graphs
are fuzzed too.

Shapes are small (a few elements), of rank 0 to 3, with size-1 and
occasionally size-0 axes. A program may use one symbolic size N: placeholders
with a None axis, fed N = prog.sizes[0] at the first call and prog.sizes[1]
at the second. N is only broadcast against N or 1 (a None axis fed 1 and
broadcast against 3 is a documented limit of fused kernels).

`avoid` names known defects (KNOWN_DEFECTS) whose triggers the generator
leaves out, so a test can run clean while they are being fixed.
"""
import math
import random

import numpy as np

import graphc as gc
from graphc.core.graph import ancestors
from graphc.core.types import TensorType
from graphc.runtime.specialize import concrete_types

from . import fuzz_ops
from .fuzz_check import DOCUMENTED_GRAD_LIMITS
from .fuzz_ir import V, Program, Step, build_step, random_array

# The defects the fuzzer was written to find or found, all fixed now and each with a regression test.
# Kept so that a regression is named by its old class, and `avoid` (--avoid-known) takes these names.
KNOWN_DEFECTS = {
    "int_wrap": "integer wrap-around in fused cpu kernels (int32 x*x near 2**31)",
    "int_pow_neg": "int ** negative int: cpu returns 1/0, interp raises",
    "zero_d_index": "indexing a 0-d tensor (x[None], x[...]) on cpu",
    "zero_d_feed": "0-d placeholders fed on cpu",
    "unread_var_update": "updating a variable that nothing reads",
    "softmax_size0": "softmax/log_softmax over a size-0 axis",
    "neg_zero": "x + 0.0 simplified away at x = -0.0 (the sign of zero)",
    "grad_int_pow_float": "the gradient of int ** float",
    # found by this fuzzer (reported to the lead):
    "argreduce_size1": "argmax/argmin of an int64 tensor over size-1 axes (or 0-d) simplified to the tensor",
    "split_of_constant": "constant_fold crashes on split of a constant ('TupleType' object has no attribute "
                         "'size')",
    "neg_literal_pow": "cpu: a negative scalar base of ** is written -2.0 ** x, which Python reads -(2.0 ** x)",
    "grad_split_none": "gc.grad through split of a tensor with a None axis, a piece unused: broadcast_to(None)",
    "sign_neg_zero": "cpu: sign(-0.0) is -0.0 (numpy, the interpreter: 0.0)",
}

DTYPES = [np.dtype(d) for d in ("float32", "float64", "int32", "int64", "bool")]
DTYPE_WEIGHTS = [4, 2, 2, 2, 1]
MAX_SIZE = 48          # elements of a tensor (None counted as 5)
WILD = 0.03            # chance that a step picks its operands without checking they fit


class Dropped(Exception):
    """The step just built would fail at call time: the kind of step drawn gives up."""


class BuildError(Exception):
    """Building a step raised: .error is the exception (a GraphError: rejected; else a crash)."""

    def __init__(self, error, refused=False):
        super().__init__(str(error))
        self.error = error
        self.refused = refused    # a step graphc must accept (gc.grad of a valid graph) raised


_accepts = {}


def accepts(fn, *dtypes, **kwargs):
    """Does graphc build fn on tensors of these dtypes? (asked once per combination)"""
    key = (fn, dtypes, tuple(sorted(kwargs.items())))
    if key not in _accepts:
        with gc.Graph("probe"):
            xs = [gc.placeholder((2,), d) for d in dtypes]
            try:
                getattr(gc, fn)(*xs, **kwargs)
                _accepts[key] = True
            except gc.GraphError:
                _accepts[key] = False
    return _accepts[key]


def nelems(shape):
    return math.prod(5 if d is None else d for d in shape)


class Gen:
    def __init__(self, seed, avoid=()):
        self.r = random.Random(seed)
        self.rng = np.random.default_rng(seed)
        self.avoid = set(avoid)
        r = self.r
        self.uses_n = r.random() < 0.4
        sizes = r.sample([1, 2, 3, 5] + [0] * (r.random() < 0.15), 2)
        edges = ["zero"] + [e for e, d in (("negzero", "neg_zero"), ("wrap", "int_wrap"))
                            if d not in self.avoid and r.random() < 0.5]
        edges += ["nonfinite"] if "nonfinite" not in self.avoid and r.random() < 0.05 else []
        self.prog = Program(seed, tuple(sizes), feeds_seed=seed, edges=tuple(edges))
        self.env = {}        # name -> node in the scratch graph (for the types)
        self.pool = []       # names of tensors the next steps may use
        self.counts = {}
        self.concrete = {}   # name -> [shape at call 1, shape at call 2]
        self.wild = False

    # ------------------------------------------------------------ steps

    def name(self, prefix):
        k = self.counts.get(prefix, 0)
        self.counts[prefix] = k + 1
        return f"{prefix}{k}"

    def emit(self, fn, *args, n=1, optional=None, pool=True, **kwargs):
        """Append a step and build it; return its result name (or names when n > 1).
        optional(error): True when this GraphError drops the step (returns None) instead of
        rejecting the program."""
        prefix = {"placeholder": "x", "variable": "w", "constant": "c"}.get(fn, "t")
        step = Step(tuple(self.name(prefix) for _ in range(n)), fn, args, kwargs)
        self.prog.steps.append(step)
        try:
            build_step(step, self.env)
        except Exception as e:       # noqa: BLE001 -- every exception of graphc is a finding
            if optional and isinstance(e, gc.GraphError) and optional(e):
                self.prog.steps.pop()
                return None
            raise BuildError(e, refused=optional is not None) from e
        if not self.track(step) and not self.wild:
            self.prog.steps.pop()    # fits when built, not at call time: the generator's own mistake
            raise Dropped()
        if pool:
            self.pool.extend(o for o in step.outs if self.env[o].dtype in DTYPES)
        return step.outs if n > 1 else step.outs[0]

    def node(self, name):
        return self.env[name]

    def track(self, step):
        """Record the shapes step's results have at the two calls (False: it fails at call time)."""
        nodes = [self.env[o] for o in step.outs]
        for call, n in enumerate(self.prog.sizes):
            fed = {x: tuple(n if d is None else d for d in x.shape)
                   for x in ancestors(nodes) if x.op.name == "placeholder"}
            try:
                types = concrete_types(ancestors(nodes), fed)
            except gc.GraphError:            # (kept in a wild step: its shapes as if None were N)
                for o, node in zip(step.outs, nodes):
                    if isinstance(node.type, TensorType):
                        self.concrete[o] = [tuple(n if d is None else d for d in node.shape)
                                            for n in self.prog.sizes]
                return False
            for o, node in zip(step.outs, nodes):
                if isinstance(types[node], TensorType):
                    self.concrete.setdefault(o, [None, None])[call] = types[node].shape
        return True

    def sym(self, name):
        """name's shape with each None axis as "N" (the fed size) or ("?", size 1, size 2)."""
        shape, (s1, s2) = self.node(name).shape, self.concrete[name]
        return tuple(d if d is not None else "N" if (a, b) == self.prog.sizes else ("?", a, b)
                     for d, a, b in zip(shape, s1, s2))

    def low(self, name, axis):
        """The smallest size axis has at the two calls."""
        return min(self.concrete[name][0][axis], self.concrete[name][1][axis])

    def accepts(self, fn, *dtypes):
        return accepts(fn, *dtypes)

    # ------------------------------------------------------------ choices

    def dtype(self):
        return self.r.choices(DTYPES, DTYPE_WEIGHTS)[0]

    def shape(self, ndim=None, n_axis=None):
        """A random small shape; its first axis is None (the size N) when n_axis says so."""
        r = self.r
        ndim = r.choices([0, 1, 2, 3], [1, 3, 3, 2])[0] if ndim is None else ndim
        dims = [r.choices([1, 2, 3, 4, 0], [3, 3, 3, 2, 0.15])[0] for _ in range(ndim)]
        if ndim and (self.uses_n and r.random() < 0.5 if n_axis is None else n_axis):
            dims[0] = "N"
        return tuple(dims)

    def pick(self, pred=None, recent=0.35):
        """A pool entry satisfying pred (the latest more often), or None."""
        names = [n for n in self.pool if pred is None or pred(self.node(n))]
        if not names:
            return None
        if self.r.random() < recent:
            return names[-1]
        return self.r.choice(names)

    def pick_name(self, pred, recent=0.35):
        """Like pick, with a predicate on the pool entry's name (for its sym shape)."""
        names = [n for n in self.pool if pred(n)]
        if not names:
            return None
        return names[-1] if self.r.random() < recent else self.r.choice(names)

    def value(self, shape, dtype):
        return random_array(self.rng, shape, dtype, self.prog.edges)

    def fresh(self, shape, dtype, kinds=("constant", "constant", "placeholder", "variable")):
        """A new source of this shape (None axes: a placeholder)."""
        # "N" is the fed size (a None axis); an axis of another call-time size cannot be made fresh
        shape = tuple(None if d == "N" else 1 if isinstance(d, tuple) else d for d in shape)
        dtype = np.dtype(dtype)
        kind = "placeholder" if None in shape else self.r.choice(kinds)
        if kind == "placeholder" and shape == () and "zero_d_feed" in self.avoid:
            kind = "constant"
        if kind == "placeholder":
            return self.emit("placeholder", shape, dtype)
        return self.emit(kind, self.value(shape, dtype))

    def scalar(self, dtype):
        """A Python scalar of dtype's kind (sometimes another kind: weak-scalar promotion)."""
        r = self.r
        kind = np.dtype(dtype).kind if r.random() < 0.85 else r.choice("fib")
        if kind == "f":
            return r.choice([0.0, 1.0, 2.0, 0.5, -1.5, 3.0] + [-0.0] * ("neg_zero" not in self.avoid))
        if kind == "b":
            return r.choice([True, False])
        return r.choice([0, 1, 2, -1, 3])

    # ------------------------------------------------------------ shapes that fit

    def fits(self, a, b):
        """Shapes a and b (sym shapes) broadcast, and a call-time axis only meets its equal or 1."""
        for x, y in zip(reversed(a), reversed(b)):
            if x == y or 1 in (x, y):
                continue
            return False
        return nelems(np.broadcast_shapes(*[tuple(d if isinstance(d, int) else 5 for d in s)
                                            for s in (a, b)])) <= MAX_SIZE

    def fits_into(self, a, b):
        """Sym shape a broadcasts to exactly b."""
        return len(a) <= len(b) and all(x == y or x == 1 for x, y in zip(reversed(a), reversed(b)))

    def partner(self, shape):
        """A shape that broadcasts with shape: a suffix of it, some axes 1, maybe a new leading axis."""
        r = self.r
        k = r.randint(0, len(shape))
        out = [1 if r.random() < 0.3 else d for d in shape[len(shape) - k:]]
        if k == len(shape) and len(out) < 3 and r.random() < 0.2:     # (a new axis must not meet N)
            out.insert(0, r.choice([1, 2]))
        return tuple(out)

    def operand_like(self, shape, dtype, same_dtype=0.8):
        """A pool entry that broadcasts with shape, or a fresh source of a partner shape."""
        r = self.r
        if r.random() < 0.55:
            y = self.pick_name(lambda k: self.fits(shape, self.sym(k)) and (
                self.node(k).dtype == dtype or r.random() > same_dtype), recent=0.1)
            if y is not None:
                return y
        return self.fresh(self.partner(shape), dtype if r.random() < same_dtype else self.dtype())

    # ------------------------------------------------------------ the program

    def run(self):
        r = self.r
        main = self.dtype()
        for _ in range(r.randint(1, 3)):
            shape = self.shape()
            if shape == () and "zero_d_feed" in self.avoid:
                shape = (r.randint(1, 4),)
            self.fresh(shape, main if r.random() < 0.8 else self.dtype(), kinds=("placeholder",))
        kinds = list(fuzz_ops.KINDS.values())
        weights = [w for _, w in kinds]
        # mostly small programs (each distinct kernel costs a compile), some up to a dozen steps
        for _ in range(min(12, 1 + int(r.expovariate(1 / 3)))):
            self.wild = r.random() < WILD
            step, _ = r.choices(kinds, weights)[0]
            try:
                step(self)
            except Dropped:
                pass
        self.choose_outputs()
        for finish in [self.choose_updates] + [self.add_gradient] * (r.random() < 0.3):
            try:
                finish()
            except Dropped:
                pass
        return self.prog

    def made(self):
        return [n for n in self.pool if self.prog.step_of()[n].fn not in ("placeholder", "variable", "constant")]

    def choose_outputs(self):
        made = self.made() or [self.emit("binop", "+", V(self.pool[0]), V(self.pool[0]))]
        outs = [made[-1]]
        for _ in range(self.r.randint(0, 3)):      # intermediates (of other outputs) too
            extra = self.r.choice(made)
            if extra not in outs:
                outs.append(extra)
        self.prog.outputs = outs

    def choose_updates(self):
        r = self.r
        variables = [s.outs[0] for s in self.prog.steps if s.fn == "variable"]
        if "unread_var_update" not in self.avoid and r.random() < 0.1:
            variables.append(self.emit("variable", self.value(self.shape(n_axis=False), self.dtype()), pool=False))
        made = self.made() or self.pool
        for w in variables:
            if r.random() < 0.3:
                continue
            t = self.node(w).type
            same = [n for n in made if self.node(n).type == t]
            if same and r.random() < 0.5 and "unread_var_update" not in self.avoid:
                new = r.choice(same)
            else:                                  # w + (a scalar made of some result), always w's type
                s = self.emit("sum", V(r.choice(made)), pool=False)
                c = self.emit("cast", V(s), t.dtype, pool=False)
                read = w if "unread_var_update" in self.avoid or w in self.used() else None
                new = self.emit("binop", "+", V(read), V(c), pool=False) if read else \
                    self.emit("broadcast_to", V(c), t.shape, pool=False)
            self.prog.updates.append((w, new))

    def from_inputs(self, name):
        """Does name depend on a placeholder or variable (so constant folding cannot take it)?"""
        return any(n.op.name in ("placeholder", "variable") for n in ancestors([self.node(name)]))

    def used(self):
        """Names some step reads."""
        from .fuzz_ir import refs
        return {n for s in self.prog.steps for n in refs(s.args)}

    def add_gradient(self):
        """gc.grad of a weighted sum of a float output, w.r.t. the float sources it needs: outputs too."""
        floats = [o for o in self.prog.outputs if self.node(o).dtype.kind == "f"]
        if not floats:
            return
        o = self.r.choice(floats)
        node = self.node(o)
        wrt = [n for n in ancestors([node]) if n.op.name in ("placeholder", "variable") and n.dtype.kind == "f"]
        names = {id(v): k for k, v in self.env.items()}
        xs = [names[id(n)] for n in wrt if id(n) in names]
        if not xs:
            return
        weights = self.emit("constant", self.value(tuple(1 if d is None else d for d in node.shape),
                                                   node.dtype), pool=False)
        y = self.emit("sum", V(self.emit("binop", "*", V(o), V(weights), pool=False)), pool=False)
        grads = self.emit("grad", V(y), [V(x) for x in xs], n=len(xs), pool=False, unconnected="zero",
                          optional=lambda e: any(limit in str(e) for limit in DOCUMENTED_GRAD_LIMITS))
        if grads is not None:
            self.prog.outputs += list(grads) if len(xs) > 1 else [grads]


def generate(seed, avoid=()):
    """The program of this seed. Its .rejected / .crashed say when building it failed."""
    g = Gen(seed, avoid)
    try:
        g.run()
    except BuildError as e:
        err = e.error
        text = f"{type(err).__name__}: {err}"
        if isinstance(err, gc.GraphError) and not e.refused:
            g.prog.rejected = text
        else:
            import traceback
            g.prog.crashed = text + "\n" + "".join(traceback.format_exception(err)[-6:])
    return g.prog
