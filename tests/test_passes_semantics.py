"""The optimization passes keep what a program computes.

(a) Random graphs (hypothesis): DAGs of elementwise ops, broadcasting,
    reductions, matmul, reshapes and slicing, with constants 0, 1 and 2
    sprinkled in so that the simplification rules fire, constant-only
    subexpressions to fold, a + b next to b + a for CSE, and intermediates
    reused (and returned) so that fusion builds groups with several outputs.
    The interpreter runs each graph unoptimized (the oracle) and optimized
    (the default pipeline, and a random selection of its passes); Verify
    runs after every pass.
(b) The W3 training step (and the other workloads): optimized and
    unoptimized give the same losses and variable values, step after step.
(c) The instruments (Timing, DumpDot, Verify), gc.optimize, gc.to_dot of an
    optimized function, and the `graphc passes` command.
"""
import math
import os
import random
import re

import numpy as np
import pydot
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.tools.cli import main as cli_main
from graphc.core.graph import Node, ancestors
from graphc.ops import REGISTRY
from graphc.ops.linalg import matmul_shape
from graphc.passes.cleanup import cse, dce
from graphc.passes.fusion import fuse_elementwise
from graphc.passes.pipeline import DEFAULT_PIPELINE, DumpDot, Pass, Timing, Verify, optimize, run_pipeline
from graphc.core.types import broadcast_shapes
from graphc.tools.workloads import WORKLOADS, w1_elementwise, w2_softmax, w3_train_step, w4_forward

# pydot's parser uses deprecated pyparsing names; that is not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

HIGHLIGHT = "#fff3bf"

# ====================================================================== (a) random graphs
#
# A graph is built step by step from a pool that starts with the
# placeholders; each step applies an op to pool entries (so entries are
# reused) and adds its result. Every entry carries a bound on |value|, and a
# step whose result could exceed MAX_BOUND is not taken, so float32 stays far
# from overflow and no op sees a value outside its domain: no inf, no nan.

SHAPES = [(), (4,), (3, 1), (1, 4), (3, 4), (2, 3, 4), (2, 1, 4)]
INPUT_BOUND = 2.0
MAX_BOUND = 1e4
MAX_SIZE = 48
MAX_NDIM = 3


class HypothesisChooser:
    def __init__(self, data):
        self.data = data

    def int(self, lo, hi):
        return self.data.draw(st.integers(lo, hi))

    def pick(self, seq):
        return self.data.draw(st.sampled_from(list(seq)))

    def bool(self):
        return self.data.draw(st.booleans())

    def perm(self, n):
        return tuple(self.data.draw(st.permutations(range(n))))


class RandomChooser:
    """The same choices from a seeded random.Random (for the coverage check)."""

    def __init__(self, seed):
        self.r = random.Random(seed)

    def int(self, lo, hi):
        return self.r.randint(lo, hi)

    def pick(self, seq):
        return self.r.choice(list(seq))

    def bool(self):
        return self.r.random() < 0.5

    def perm(self, n):
        p = list(range(n))
        self.r.shuffle(p)
        return tuple(p)


def _fits(shape):
    return len(shape) <= MAX_NDIM and math.prod(shape) <= MAX_SIZE


def _broadcast(a, b):
    try:
        s = broadcast_shapes(a, b)
    except gc.ShapeError:
        return None
    return s if _fits(s) else None


def _wider(shape):
    """A shape that x broadcasts to, bigger than x's when there is one: x * ones(it) is not x."""
    wider = [s for s in SHAPES if _broadcast(shape, s) == s and s != shape]
    return max(wider, key=math.prod) if wider else shape


def _reshape_targets(shape):
    n = math.prod(shape)
    targets = {(n,), (1, n), (n, 1), tuple(reversed(shape)), tuple(shape)}
    targets |= {(a, n // a) for a in range(2, n) if n % a == 0}
    targets |= {(a, b, n // (a * b)) for a in (1, 2) for b in (2, 3, 4) if n % (a * b) == 0}
    return sorted(t for t in targets if _fits(t))


UNARY = {   # name: (build, bound of the result given the input's bound)
    "tanh": (gc.tanh, lambda b: 1.0),
    "sigmoid": (gc.sigmoid, lambda b: 1.0),
    "exp_tanh": (lambda x: gc.exp(gc.tanh(x)), lambda b: math.e),
    "negative": (gc.negative, lambda b: b),
    "negneg": (lambda x: -(-x), lambda b: b),                      # --x
    "abs": (gc.abs, lambda b: b),
    "relu": (gc.relu, lambda b: b),
    "square": (gc.square, lambda b: b * b),
    "softplus": (gc.softplus, lambda b: b + 1.0),
    "sqrt_abs": (lambda x: gc.sqrt(gc.abs(x)), lambda b: math.sqrt(b)),
    "log1p_abs": (lambda x: gc.log(gc.abs(x) + 1), lambda b: math.log1p(b)),
    "leaky_relu": (lambda x: gc.leaky_relu(x, 0.1), lambda b: b),
    "elu": (gc.elu, lambda b: b + 1.0),
}
BINARY = {
    "add": (gc.add, lambda a, b: a + b),
    "subtract": (gc.subtract, lambda a, b: a + b),
    "multiply": (gc.multiply, lambda a, b: a * b),
    "maximum": (gc.maximum, max),
    "minimum": (gc.minimum, max),
    "divide": (lambda x, y: x / (gc.abs(y) + 1), lambda a, b: a),
}
CONST = {   # x op constant: the simplification rules' food
    "x*1": (lambda x: x * 1, lambda b: b),
    "1*x": (lambda x: 1 * x, lambda b: b),
    "x+0": (lambda x: x + 0, lambda b: b),
    "0+x": (lambda x: 0 + x, lambda b: b),
    "x-0": (lambda x: x - 0, lambda b: b),
    "x/1": (lambda x: x / 1, lambda b: b),
    "x**1": (lambda x: x ** 1, lambda b: b),
    "x**2": (lambda x: x ** 2, lambda b: b * b),
    "x*0": (lambda x: x * 0, lambda b: 0.0),
    "x*2": (lambda x: x * 2, lambda b: 2 * b),
    "2-x": (lambda x: 2 - x, lambda b: b + 2),
    "x*ones": (lambda x: x * gc.constant(np.ones(x.shape, np.float32)), lambda b: b),
    "x+zeros": (lambda x: x + gc.broadcast_to(gc.constant(np.float32(0)), x.shape), lambda b: b),
    "x*ones_wider": (lambda x: x * gc.constant(np.ones(_wider(x.shape), np.float32)), lambda b: b),   # stays
    "ones_row*x": (lambda x: gc.broadcast_to(gc.expand_dims(gc.constant(np.float32(1)), 0),
                                             (1,) * x.ndim) * x if x.ndim else x * 1, lambda b: b),
    "cast_same": (lambda x: gc.cast(x, gc.float32), lambda b: b),
    "cast_roundtrip": (lambda x: gc.cast(gc.cast(x, gc.float64), gc.float32), lambda b: b),
    "reshape_same": (lambda x: gc.reshape(x, x.shape), lambda b: b),
    "broadcast_same": (lambda x: gc.broadcast_to(x, x.shape), lambda b: b),
    "transpose_twice": (lambda x: gc.transpose(gc.transpose(x)), lambda b: b),
}
REDUCTIONS = {"sum": gc.sum, "mean": gc.mean, "max": gc.max, "min": gc.min, "prod": gc.prod}
KINDS = ["unary", "binary", "binary", "commuted", "const", "const", "fold", "reduce", "reduce",
         "reduce_elementwise", "cross", "matmul", "reshape", "transpose", "slice", "broadcast", "where",
         "softmax", "concat"]


def _step(ch, pool):
    """Apply one drawn op to pool entries; return the new [(node, bound)] (maybe none)."""
    kind = ch.pick(KINDS)
    x, b = pool[ch.int(0, len(pool) - 1)]
    if kind == "unary":
        f, bound = UNARY[ch.pick(sorted(UNARY))]
        return [(f(x), bound(b))]
    if kind in ("binary", "commuted", "where"):
        fits = [(y, c) for y, c in pool if _broadcast(x.shape, y.shape) is not None]
        y, c = ch.pick(fits) if fits else (x, b)
        if ch.bool():
            x, b, y, c = y, c, x, b
        if kind == "where":
            xy = _broadcast(x.shape, y.shape)
            z, d = ch.pick([(z, d) for z, d in pool if _broadcast(xy, z.shape)] or [(x, b)])
            return [(gc.where(x > y, x, z), max(b, d))]
        if kind == "commuted":                  # f(x, y) and f(y, x): one node after CSE
            name = ch.pick(["add", "multiply", "maximum", "minimum"])
            f, bound = BINARY[name]
            xy, yx, d = f(x, y), f(y, x), bound(b, c)
            return [(xy, d), (yx, d), (xy - yx, 2 * d)]
        f, bound = BINARY[ch.pick(sorted(BINARY))]
        return [(f(x, y), bound(b, c))]
    if kind == "const":
        f, bound = CONST[ch.pick(sorted(CONST))]
        return [(f(x), bound(b))]
    if kind == "fold":                          # x combined with an all-constant expression
        shape = x.shape if ch.bool() else ()
        size = math.prod(shape)
        c = gc.constant(np.linspace(-1, 1, size, dtype=np.float32).reshape(shape))
        folded = ch.pick(["c*2+1", "exp(c)", "c-c", "c/c2", "sum(c)"])
        if folded == "c*2+1":
            e, d = c * 2 + 1, 3.0
        elif folded == "exp(c)":
            e, d = gc.exp(c), math.e
        elif folded == "c-c":
            e, d = c - c, 0.0                   # folds to 0: then x + 0 simplifies
        elif folded == "c/c2":
            e, d = c / gc.constant(np.float32(2)), 0.5
        else:
            e, d = gc.sum(c), float(size)
        return [(x * e, b * d) if ch.bool() else (x + e, b + d)]
    if kind == "cross":     # u(x) * max(v(y)) next to v(y) * max(u(x)), as normalizations do:
        y, c = pool[ch.int(0, len(pool) - 1)]   # fusing both pairs would make each group need the other
        (f, fb), (g, gb) = UNARY[ch.pick(sorted(UNARY))], UNARY[ch.pick(sorted(UNARY))]
        u, v = f(x), g(y)
        d = fb(b) * gb(c)
        if d > MAX_BOUND:
            return []
        return [(u * gc.max(v), d), (v * gc.max(u), d)]
    if kind == "reduce_elementwise":           # sum(x * y), mean((x - y) ** 2), ...: a fused reduction
        fits = [(y, c) for y, c in pool if _broadcast(x.shape, y.shape) is not None]
        y, c = ch.pick(fits) if fits else (x, b)
        f, bound = BINARY[ch.pick(sorted(BINARY))]
        e = f(x, y)
        if ch.bool():
            e, bound = e ** 2, lambda a, b, inner=bound: inner(a, b) ** 2
        x, b = e, bound(b, c)
        kind = "reduce"
    if kind == "reduce":
        name = ch.pick(sorted(REDUCTIONS))
        axes = None
        if x.ndim and ch.bool():
            axes = tuple(sorted({ch.int(0, x.ndim - 1) for _ in range(ch.int(1, x.ndim))}))
            if ch.bool():
                axes = tuple(a - x.ndim for a in axes)        # negative axes too
        keepdims = ch.bool()
        reduced = range(x.ndim) if axes is None else [a % x.ndim for a in axes]
        n = math.prod(x.shape[a] for a in reduced)
        bound = {"sum": b * n, "prod": b ** n if b > 1 else 1.0}.get(name, b)
        if bound > MAX_BOUND:
            return []
        return [(REDUCTIONS[name](x, axis=axes, keepdims=keepdims), bound)]
    if kind == "matmul":
        fits = []
        for y, c in pool:
            if x.ndim and y.ndim:
                try:
                    s = matmul_shape(x.shape, y.shape)
                except gc.ShapeError:
                    continue
                if _fits(s):
                    fits.append((y, c))
        if not fits:
            return []
        y, c = ch.pick(fits)
        k = x.shape[-1]
        if b * c * k > MAX_BOUND:
            return []
        return [(x @ y, b * c * k)]
    if kind == "reshape":
        return [(gc.reshape(x, ch.pick(_reshape_targets(x.shape))), b)]
    if kind == "transpose":
        if x.ndim < 2:
            return []
        return [(gc.transpose(x, ch.perm(x.ndim)), b)]
    if kind == "slice":
        if not x.ndim:
            return []
        key = []
        for d in x.shape:
            form = ch.pick(["all", "int", "slice"] if d > 1 else ["all", "int"])
            if form == "all":
                key.append(slice(None))
            elif form == "int":
                key.append(ch.int(-d, d - 1))
            else:
                start = ch.int(0, d - 1)
                key.append(slice(start, ch.int(start + 1, d), ch.pick([None, 1, 2])) if ch.bool()
                           else slice(None, None, -1))
        return [(x[tuple(key)], b)]
    if kind == "broadcast":
        targets = [s for s in SHAPES if _broadcast(x.shape, s) == s and s != x.shape]
        if not targets:
            return [(gc.expand_dims(x, 0), b)] if x.ndim < MAX_NDIM else []
        return [(gc.broadcast_to(x, ch.pick(targets)), b)]
    if kind == "softmax":
        if not x.ndim:
            return []
        if ch.bool():
            return [(gc.softmax(x, axis=-1), 1.0)]
        return [(gc.log_softmax(x, axis=-1), 2 * b + math.log(max(x.shape[-1], 1)) + 1)]
    if kind == "concat":
        if not x.ndim or not _fits((2 * x.shape[0],) + x.shape[1:]):
            return []
        return [(gc.concatenate([x, -x], axis=0), b)]
    raise AssertionError(kind)


def random_program(ch):
    """(graph, inputs, outputs, output bounds, feed arrays) of a drawn program."""
    g = gc.Graph("random")
    with g:
        inputs = [gc.placeholder(ch.pick(SHAPES), name=f"x{k}") for k in range(ch.int(1, 3))]
        pool = [(x, INPUT_BOUND) for x in inputs]
        for _ in range(ch.int(1, 20)):
            for node, bound in _step(ch, pool):
                if bound <= MAX_BOUND and node.op.kind != "source" and node.dtype == np.float32:
                    pool.append((node, bound))
        made = pool[len(inputs):]
        if not made:
            x, b = pool[0]
            made = [(gc.tanh(x), 1.0)]
        outputs = [made[-1]]
        for _ in range(ch.int(0, 3)):            # intermediates as outputs too: multi-output groups
            extra = ch.pick(made)
            if all(extra[0] is not o for o, _ in outputs):
                outputs.append(extra)
    rng = np.random.default_rng(ch.int(0, 2 ** 32 - 1))
    feeds = []
    for x in inputs:
        a = rng.uniform(-INPUT_BOUND, INPUT_BOUND, size=x.shape).astype(np.float32)
        if a.size and ch.bool():                 # exact 0, -0, 1 and -1 here and there
            flat = a.reshape(-1)
            picks = rng.integers(0, a.size, size=max(1, a.size // 3))
            flat[picks] = rng.choice(np.array([0.0, -0.0, 1.0, -1.0], np.float32), size=len(picks))
        feeds.append(a)
    return g, inputs, [o for o, _ in outputs], [b for _, b in outputs], feeds


def describe(outputs):
    lines = []
    for n in ancestors(outputs):
        if n.op.kind == "source":
            lines.append(f"{n.name} = {n.op.name} {n.type}")
        else:
            attrs = {k: v for k, v in n.attrs.items() if k != "value"}
            lines.append(f"{n.name} = {n.op.name}({', '.join(i.name for i in n.inputs)}) {attrs} -> {n.type}")
    return "\n".join(lines)


def assert_same(got, want, bounds, what):
    assert len(got) == len(want)
    for k, (a, b, bound) in enumerate(zip(got, want, bounds)):
        assert a.shape == b.shape and a.dtype == b.dtype, (what, k, a.shape, b.shape, a.dtype, b.dtype)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * max(1.0, bound), equal_nan=True,
                                   err_msg=f"{what}: output {k}")


PASS_SELECTIONS = DEFAULT_PIPELINE + DEFAULT_PIPELINE     # a random sub-list of the pipeline, run twice
EXAMPLES = int(os.environ.get("GRAPHC_PASSES_EXAMPLES", "300"))   # more for a long local run


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(st.data())
def test_random_graphs_optimized_match_the_interpreter(data):
    ch = HypothesisChooser(data)
    g, inputs, outputs, bounds, feeds = random_program(ch)
    note(describe(outputs))
    want = gc.function(inputs, outputs, backend="interp", optimize=False)(*feeds)

    full = gc.function(inputs, outputs, backend="interp", optimize=True)   # Verify runs after each pass
    note("optimized:\n" + describe(full.outputs))
    assert [r.type for r in full.outputs] == [o.type for o in outputs]
    assert [row[0] for row in full.pass_timing.rows] == [p.name for p in DEFAULT_PIPELINE]
    assert_same(full(*feeds), want, bounds, "default pipeline")

    chosen = [p for p in PASS_SELECTIONS if ch.bool()]
    note(f"passes: {[p.name for p in chosen]}")
    some = gc.function(inputs, outputs, backend="interp", optimize=True, passes=chosen)
    assert_same(some(*feeds), want, bounds, "selected passes")

    for n in ancestors(full.outputs):           # fused bodies: one domain, types as inferred
        if n.op.name == "fused":
            assert n.op.infer(tuple(i.type for i in n.inputs), **n.attrs) == n.type
            assert len(n.inputs) <= 12


def test_random_graphs_exercise_every_pass():
    """The generator is worth its time only if the rules fire: check it on seeded programs."""
    seen = {"simplify": 0, "fold": 0, "cse": 0, "fused": 0, "multi_output": 0, "fused_reduction": 0}
    for seed in range(150):
        g, inputs, outputs, bounds, feeds = random_program(RandomChooser(seed))
        roots = list(outputs)
        p = DEFAULT_PIPELINE
        after_simplify = p[0](roots)
        seen["simplify"] += after_simplify != roots
        after_fold = p[1](after_simplify)
        seen["fold"] += after_fold != after_simplify
        after_cse = p[2](after_fold)
        seen["cse"] += len(ancestors(after_cse)) < len(ancestors(after_fold))
        final = run_pipeline(roots, instruments=[Verify()])
        fs = [n for n in ancestors(final) if n.op.name == "fused"]
        seen["fused"] += bool(fs)
        seen["multi_output"] += any(len(f.attrs["region"].outputs) > 1 for f in fs)
        seen["fused_reduction"] += any(f.attrs["reduce"] is not None for f in fs)
    assert all(v >= 5 for v in seen.values()), seen


# ====================================================================== (b) workloads


def _w3_step_pairs(steps=3, batch=16):
    wa, wb = w3_train_step(batch=batch), w3_train_step(batch=batch)     # two graphs: two sets of variables
    plain = wa.function(optimize=False)
    opt = wb.function(optimize=True)
    for _ in range(steps):
        yield wa, wb, plain(*wa.data), opt(*wb.data), opt


def test_w3_training_step_optimized_matches_unoptimized():
    losses = []
    for wa, wb, (la,), (lb,), opt in _w3_step_pairs():
        np.testing.assert_allclose(lb, la, rtol=1e-6, atol=1e-7)
        for va, vb in zip(wa.updates, wb.updates):
            assert va.name == vb.name
            np.testing.assert_allclose(gc.get_value(vb), gc.get_value(va), rtol=1e-5, atol=1e-7,
                                       err_msg=f"variable {va.name}")
        losses.append(float(la))
    assert losses[2] < losses[1] < losses[0]          # the steps do train
    fs = [n for n in opt.nodes if n.op.name == "fused"]
    assert fs and any(len(f.attrs["region"].outputs) > 1 for f in fs) and any(f.attrs["reduce"] for f in fs)
    assert len(opt.nodes) < len(ancestors(wa.outputs + list(wa.updates.values())))


def test_w3_matches_its_numpy_version():
    w = w3_train_step(batch=16)
    fn = w.function(optimize=True)
    for _ in range(2):
        (loss,) = fn(*w.data)
        (want,) = w.numpy_fn(*w.data)
        np.testing.assert_allclose(loss, want, rtol=1e-5)


@pytest.mark.parametrize("build", [lambda: w1_elementwise(n=1000), lambda: w2_softmax(rows=8, cols=16),
                                   w4_forward], ids=["W1", "W2", "W4"])
def test_other_workloads_optimized_match(build):
    wa, wb = build(), build()
    want = wa.function(optimize=False)(*wa.data)
    got = wb.function(optimize=True)(*wb.data)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    for a, b in zip(got, wa.numpy_fn(*wa.data)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_unknown_batch_sizes():
    """Fused groups work on None dimensions fed full sizes; a None size fed as 1 and broadcast
    inside a group has no single domain, which the optimized function reports (the documented limit)."""
    with gc.Graph():
        x = gc.placeholder((None, 4), name="x")
        y = gc.placeholder((None, 4), name="y")
        z = gc.exp(x) * 2 + y
        s = gc.sum(gc.abs(y - 1) * 3, axis=1)
        plain = gc.function([x, y], [z, s])
        opt = gc.function([x, y], [z, s], optimize=True)
    assert any(n.op.name == "fused" for n in opt.nodes)
    xv = np.linspace(-1, 1, 20, dtype=np.float32).reshape(5, 4)
    yv = np.arange(20, dtype=np.float32).reshape(5, 4)
    for batch in (5, 2):
        for got, want in zip(opt(xv[:batch], yv[:batch]), plain(xv[:batch], yv[:batch])):
            np.testing.assert_allclose(got, want, rtol=1e-6)
    assert plain(xv[:1], yv)[0].shape == (5, 4)
    with pytest.raises(gc.ShapeError, match="feed full sizes where a dimension is None"):
        opt(xv[:1], yv)


def test_dce_keeps_semantics():
    """Fuse a group with three outputs, then keep only some: dce shrinks it, values stay."""
    with gc.Graph():
        x = gc.placeholder((5,), name="x")
        a = gc.exp(x)
        b = a + 1
        c = b * b
        fa, fb, fc = fuse_elementwise([a, b, c])
        xv = np.linspace(-1, 1, 5).astype(np.float32)
        for keep, plain in (([fa, fc], [a, c]), ([fb], [b]), ([gc.tanh(fc), fa], [gc.tanh(c), a])):
            dce_pass = Pass("dce", dce)
            fn = gc.function([x], keep, optimize=True, passes=[dce_pass])
            assert len(ancestors(fn.outputs)) <= len(ancestors(keep))
            for got, want in zip(fn(xv), gc.function([x], plain)(xv)):
                np.testing.assert_array_equal(got, want)


# ====================================================================== (c) instruments, optimize, DOT, CLI


def _sample_roots():
    """A graph on which every pass of the default pipeline has work to do."""
    x = gc.placeholder((3, 4), name="x")
    y = gc.placeholder((3, 4), name="y")
    c = gc.constant(np.float32(2))
    a = gc.exp(x * 1 - (c - c))
    b = gc.tanh(a * y) + gc.tanh(y * a)
    s = gc.sum(b * b)
    return x, y, [s, a * 2, gc.max(a, axis=1), gc.mean(gc.abs(y) - 1, axis=0)]


def test_timing_rows_have_node_counts():
    with gc.Graph():
        x, y, roots = _sample_roots()
        timing = Timing()
        new = run_pipeline(roots, instruments=[timing])
        assert [r[0] for r in timing.rows] == [p.name for p in DEFAULT_PIPELINE]
        current = roots
        for (name, sec, before, after), p in zip(timing.rows, DEFAULT_PIPELINE):
            assert sec >= 0
            assert before == len(ancestors(current))
            current = p(current)
            assert after == len(ancestors(current))
        assert current == new
        assert timing.rows[0][2] == len(ancestors(roots)) and timing.rows[-1][3] == len(ancestors(new))
        assert timing.rows[0][3] < timing.rows[0][2]             # simplify removed nodes
        text = str(timing)
        assert text.splitlines()[0].split() == ["pass", "ms", "nodes", "->", "nodes"]
        assert len(text.splitlines()) == 1 + len(DEFAULT_PIPELINE)
        assert re.search(r"simplify\s+\d+\.\d\d\s+%d ->\s+%d" % timing.rows[0][2:], text)


def test_function_keeps_its_pass_timing():
    with gc.Graph():
        x, y, roots = _sample_roots()
        fn = gc.function([x, y], roots, optimize=True)
        assert len(fn.pass_timing.rows) == len(DEFAULT_PIPELINE)
        assert fn.pass_timing.rows[-1][3] == len(ancestors(fn.outputs))
        assert gc.function([x, y], roots).pass_timing is None           # interp: not optimized by default


def _parse(path):
    graphs = pydot.graph_from_dot_file(str(path))
    assert graphs is not None and len(graphs) == 1, path
    return graphs[0]


def _all_nodes(d):
    out = {}
    for n in d.get_nodes():
        if n.get_name() not in ("node", "edge", "graph"):
            out[n.get_name()] = {k: v.strip('"') for k, v in n.get_attributes().items()}
    for sub in d.get_subgraphs():
        out.update(_all_nodes(sub))
    return out


def _clusters(d):
    return {s.get_name(): {k: v.strip('"') for k, v in s.get_attributes().items()} for s in d.get_subgraphs()}


def test_dump_dot_writes_before_and_after_files(tmp_path):
    folder = tmp_path / "dots"
    with gc.Graph():
        x, y, roots = _sample_roots()
        steps = [roots]
        for p in DEFAULT_PIPELINE:
            steps.append(p(steps[-1]))
        run_pipeline(roots, instruments=[Verify(), DumpDot(str(folder))])
    names = sorted(os.listdir(folder))
    assert names == sorted(f"{k:02d}_{p.name}.{side}.dot" for k, p in enumerate(DEFAULT_PIPELINE)
                           for side in ("before", "after"))
    for k, p in enumerate(DEFAULT_PIPELINE):
        before_nodes, after_nodes = ancestors(steps[k]), ancestors(steps[k + 1])
        changed = set(after_nodes) - set(before_nodes)
        before = _parse(folder / f"{k:02d}_{p.name}.before.dot")
        after = _parse(folder / f"{k:02d}_{p.name}.after.dot")
        assert HIGHLIGHT not in before.to_string()               # nothing is marked before the pass
        bnodes, anodes = _all_nodes(before), _all_nodes(after)
        clusters = _clusters(after)
        for n in after_nodes:
            if n.op.name == "fused":
                cluster = clusters[f"cluster_n{n.id}"]
                assert (cluster.get("fillcolor") == HIGHLIGHT) == (n in changed), (p.name, n)
            else:
                assert (anodes[f"n{n.id}"].get("fillcolor") == HIGHLIGHT) == (n in changed), (p.name, n)
        assert {f"n{n.id}" for n in before_nodes if n.op.name != "fused"} <= set(bnodes)
        if p.name in ("simplify", "constant_fold", "fuse_elementwise", "fuse_reductions") and k < 6:
            assert HIGHLIGHT in after.to_string(), p.name


def test_dump_dot_marks_nothing_when_a_pass_changes_nothing(tmp_path):
    with gc.Graph():
        x = gc.placeholder((3,), name="x")
        y = gc.exp(x) @ x
        run_pipeline([y], passes=[Pass("cse", cse)], instruments=[DumpDot(str(tmp_path))])
    text = (tmp_path / "00_cse.after.dot").read_text()
    assert HIGHLIGHT not in text
    assert text == (tmp_path / "00_cse.before.dot").read_text()


def test_dump_dot_marks_folded_constants(tmp_path):
    with gc.Graph():
        x = gc.placeholder((3,), name="x")
        c = gc.constant(np.array([1, 2, 3], np.float32))
        y = x * gc.exp(c)
        (new,) = run_pipeline([y], passes=[DEFAULT_PIPELINE[1]], instruments=[DumpDot(str(tmp_path))])
        folded = new.inputs[1]
        assert folded.op.name == "constant"
    nodes = _all_nodes(_parse(tmp_path / "00_constant_fold.after.dot"))
    assert nodes[f"n{folded.id}"]["fillcolor"] == HIGHLIGHT
    assert nodes[f"n{new.id}"]["fillcolor"] == HIGHLIGHT
    assert nodes[f"n{x.id}"]["fillcolor"] != HIGHLIGHT


def _sum_all(roots):
    """A broken pass: every root becomes its sum (another type)."""
    return [gc.sum(r) for r in roots]


def test_verify_rejects_a_pass_that_changes_a_root_type():
    with gc.Graph():
        x = gc.placeholder((3, 4), name="x")
        y = gc.exp(x)
        bad = Pass("sum_everything", _sum_all)
        with pytest.raises(gc.GraphError, match="verify after sum_everything"):
            run_pipeline([y], passes=[bad], instruments=[Verify()])
        with pytest.raises(gc.GraphError, match="verify after sum_everything"):
            gc.function([x], y, optimize=True, passes=[bad])
        with pytest.raises(gc.GraphError, match="verify after sum_everything"):
            optimize(y, passes=[bad])
        assert run_pipeline([y], passes=[bad], instruments=[]) == [gc.sum(y)]     # unchecked without it


def test_verify_rejects_dropped_roots_and_foreign_roots():
    with gc.Graph():
        x = gc.placeholder((3,), name="x")
        roots = [gc.exp(x), gc.tanh(x)]
        with pytest.raises(gc.GraphError, match="2 root"):
            run_pipeline(roots, passes=[Pass("drop", lambda r: r[:1])], instruments=[Verify()])
    with gc.Graph():
        other = gc.exp(gc.placeholder((3,), name="x"))
    with pytest.raises(gc.GraphError, match="not a node of"):
        run_pipeline(roots, passes=[Pass("steal", lambda r: [other, r[1]])], instruments=[Verify()])


def test_verify_rejects_a_node_whose_type_its_op_does_not_give():
    """A sloppy rebuild that copies the old node's type instead of inferring the new one."""
    def sloppy(roots):
        (s,) = roots                                  # s = sum(exp(x))
        e = s.inputs[0]
        x = e.inputs[0]
        g = x.graph
        wide = Node(REGISTRY["cast"], (e,), {"dtype": np.dtype(np.float64)}, e.type, "cast_wide", e.loc, g,
                    len(g.nodes))                     # claims float32, its op says float64
        g.nodes.append(wide)
        return [g.add(REGISTRY["sum"], (wide,), {"axis": s.attrs["axis"], "keepdims": False})]

    with gc.Graph():
        x = gc.placeholder((3,), name="x")
        s = gc.sum(gc.exp(x))
        with pytest.raises(gc.GraphError, match=r"cast_wide \(cast\) has type float32"):
            run_pipeline([s], passes=[Pass("sloppy", sloppy)], instruments=[Verify()])


def test_optimize_a_node_a_list_and_a_graph():
    with gc.Graph() as g:
        x = gc.placeholder((3, 4), name="x")
        y = gc.tanh(x * 1 - 0) * 2
        z = gc.sum(gc.exp(x) * x)
        whole = gc.optimize(g)                             # the graph's unused nodes: y and z
        one = optimize(y)
        assert isinstance(one, Node) and one.op.name == "fused"
        assert one.attrs["region"].op_names() == ["tanh", "multiply"]
        assert gc.optimize(y) is one                       # exported, and deterministic
        both = gc.optimize([y, z])
        assert isinstance(both, list) and both[0] is one
        assert both[1].op.name == "fused" and both[1].attrs["reduce"] == (REGISTRY["sum"], (0, 1), False)
        assert whole == both
        assert optimize([y], passes=[]) == [y]
        assert optimize(y, instruments=()) is one
    with pytest.raises(gc.GraphError, match="optimize needs"):
        gc.optimize([1, 2])
    with pytest.raises(gc.GraphError, match="optimize needs"):
        gc.optimize("y")


def test_optimize_a_graph_skips_unused_sources():
    with gc.Graph() as g:
        gc.placeholder((3,), name="unused")
        x = gc.placeholder((3,), name="x")
        y = gc.exp(x) + 1
        (after,) = gc.optimize(g)
        assert after.op.name == "fused" and after.inputs[0] is x


def test_to_dot_of_an_optimized_function_draws_fused_clusters():
    with gc.Graph():
        x = gc.placeholder((3, 4), name="x")
        w = gc.variable(np.ones((4, 4), np.float32), name="w")
        a = gc.exp(x @ w)
        b = a * 2 + 1
        loss = gc.mean((b - a) ** 2)
        penalty = gc.sum(gc.square(x - 1), axis=1)     # a group of its own, into the reduction
        fn = gc.function([x], [b, loss, a, penalty], {w: w - 0.1 * (a.T @ b)}, optimize=True)
    fs = [n for n in fn.nodes if n.op.name == "fused"]
    assert len(fs) >= 2 and any(f.attrs["reduce"] for f in fs) and any(len(f.attrs["region"].outputs) > 1 for f in fs)
    text = gc.to_dot(fn)
    graphs = pydot.graph_from_dot_data(text)
    assert graphs is not None and len(graphs) == 1
    (d,) = graphs
    clusters = _clusters(d)
    assert set(clusters) == {f"cluster_n{f.id}" for f in fs}
    for f in fs:
        sub = d.get_subgraph(f"cluster_n{f.id}")[0]
        names = {n.get_name() for n in sub.get_nodes() if n.get_name() not in ("node", "edge", "graph")}
        want = {f"n{f.id}_{j}" for j in range(len(f.attrs["region"].steps))}
        if f.attrs["reduce"] is not None:
            want.add(f"n{f.id}_r")
            assert clusters[f"cluster_n{f.id}"]["label"].startswith("fused reduction")
        assert names == want
    declared = set(_all_nodes(d))
    for e in d.get_edges():                               # every edge joins drawn nodes
        assert {e.get_source(), e.get_destination()} <= declared, (e.get_source(), e.get_destination())
    for f in fs:                                          # a fused node is only its cluster and ports
        assert not re.search(rf"(?<!\w)n{f.id}(?!\w)", text), f.id


def test_graphc_passes_cli(capsys):
    cli_main(["passes", "W3"])
    out = capsys.readouterr().out
    w = WORKLOADS["W3"]()
    roots = w.outputs + list(w.updates.values())
    new = run_pipeline(roots)
    before, after = len(ancestors(roots)), len(ancestors(new))
    fused = [n for n in ancestors(new) if n.op.name == "fused"]
    assert out.startswith("W3: MLP train step")
    for p in DEFAULT_PIPELINE:
        assert re.search(rf"^{p.name}\s+\d+\.\d\d\s+\d+ ->\s+\d+$", out, re.M), p.name
    m = re.search(r"^nodes: (\d+) -> (\d+);", out, re.M)
    assert m and (int(m[1]), int(m[2])) == (before, after) and after < before
    m = re.search(r"^fused groups: (\d+) \((\d+) into reductions\), sizes \[([\d, ]*)\]", out, re.M)
    assert m, out
    assert int(m[1]) == len(fused) > 0
    assert int(m[2]) == sum(f.attrs["reduce"] is not None for f in fused)
    assert sorted(map(int, m[3].split(", ")), reverse=True) == sorted((len(f.attrs["region"].steps) for f in fused),
                                                                      reverse=True)


def test_graphc_passes_cli_dot_option(capsys, tmp_path):
    cli_main(["passes", "W1", "--dot", str(tmp_path / "d")])
    out = capsys.readouterr().out
    assert "fused groups: 1 (0 into reductions)" in out
    assert f"in {tmp_path / 'd'}/" in out
    files = sorted(os.listdir(tmp_path / "d"))
    assert len(files) == 2 * len(DEFAULT_PIPELINE)
    after = _parse(tmp_path / "d" / "04_fuse_elementwise.after.dot")
    assert any(c.get("fillcolor") == HIGHLIGHT for c in _clusters(after).values())
