"""Lowering of the loops (the CPU backend): elementwise groups and reductions.

Elementwise work (a fused group or a single op) becomes one loop nest;
broadcasting is static: an input of size 1 along an axis is indexed with 0
there, so the loop reads it in place. Reductions run their elementwise
prologue inside the reduction loop. Each op's scalar expression comes from
the op itself (`Op.scalar`, `Reduce.combine`), written for the CPU target.

Integers wrap around as in numpy, in one place (`Body.lines`, `_accumulate`): numpy
computes an int32 or int64 result modulo 2**32 or 2**64, while Numba computes
int32 arithmetic in int64 and marks int64 arithmetic as never overflowing (LLVM's
`nsw`), so that `(x + x) > 0` may be folded to `x > 0`. So every integer step's
result is narrowed to its dtype, and the ops that can overflow (MODULAR) compute
in uint64, whose arithmetic LLVM must wrap, then convert back.

An integer to a negative integer power is an error in numpy: a kernel with such a
step counts the negative exponents in its loop (a reduction, so a parallel loop
stays parallel) and raises after it; the runtime turns that into the GraphError
the interpreter raises, naming the node (function.py). Float powers, and integer
powers by a constant >= 0, get no check.
"""
import numpy as np

from graphc.core.region import Param, Region, Step
from graphc.core.types import INTS, TupleType
from graphc.ops.fused import producer
from graphc.runtime.memory import kshape

from .emit import CONTRACT, LOWER, PARALLEL_MIN, axes_name, index, loops, ops_name

# ops whose integer result can overflow: computed in uint64 (wrapping), then converted back
MODULAR = {"add", "subtract", "multiply", "negative", "square", "power"}
UINT = np.dtype("uint64")
# a reduction whose last axis is reduced loops over the kept axes outermost when the reduced
# block after the last kept axis has at least this many elements (shorter blocks would read
# the input in short strided pieces: those accumulate into `out` in the input's order instead)
ROW_BLOCK_MIN = 64


def lower(n, ctx):
    """Emit the step lines (and kernels) computing n; return the expression naming its value."""
    if producer(n) is not None:              # a convolution and its epilogue: lower_conv.py
        return LOWER["fused_producer"](n, ctx)
    if n.op.kind == "elementwise" or n.op.name == "fused" and n.attrs.get("reduce") is None:
        return _elementwise(n, ctx)
    if n.op.name == "fused" or n.op.kind == "reduction" and n.op.identity(n.dtype) is not None:
        return _reduction(n, ctx)
    if n.op.name == "output":
        return ctx.names[n]
    return LOWER[n.op.name](n, ctx)


def single_step(n):
    """The one-step region of a plain elementwise op (or reduction input)."""
    return Step(n.op, tuple(sorted(n.attrs.items())), tuple(Param(k) for k in range(len(n.inputs))))

class Body:
    """The scalar statements of a loop body: loads of inputs, then one line per body op.

    node: the node the loop computes (named by the error a check in the loop raises)."""

    def __init__(self, ctx, inputs, steps, in_types, node=None):
        self.ctx, self.inputs, self.body = ctx, inputs, steps
        self.in_types, self.node = in_types, node
        self.check = None           # the message of the error the loop may raise (a negative power)
        self.inner_types = Region(len(inputs), tuple(steps), ()).types(tuple(in_types))
        self.params, self.arg_exprs, self.arg_nodes, self.operand = [], [], [], {}
        for k, x in enumerate(inputs):
            if ctx.plan.inlined(x):
                self.operand[k] = ctx.t.lit(x.attrs["value"].reshape(-1)[0], x.dtype)
            else:
                self.params.append(f"a{k}")
                self.arg_exprs.append(ctx.value(x))
                self.arg_nodes.append(x)

    def built_types(self):
        """The body's types as the graph was built (None: a dimension fed at call time)."""
        return Region(len(self.inputs), tuple(self.body), ()).types(tuple(x.type for x in self.inputs))

    def const(self, k):
        x = self.inputs[k]
        return x.attrs["value"].reshape(-1)[0].item() if self.ctx.plan.inlined(x) else None

    def lines(self, domain, idx, pad, flat=False, given=None, loads=None):
        """Statements computing every body entry v<j> at the loop index; loads first.

        domain: the loop's (concrete) shape; flat: one index over a C-contiguous domain,
        where an input is either domain-shaped (read through its flat view a<k>f) or a scalar.
        given: {j: expression} for the steps computed outside the loop (a convolution whose
        output the loop reads: `v0 = acc[0, i1, i2, i3]`); their own inputs are not loaded.
        loads: {k: expression} reading input k at the loop index, in place of the default."""
        given, loads = given or {}, loads or {}
        read = {x.index for j, s in enumerate(self.body) if j not in given for x in s.operands
                if isinstance(x, Param)}
        out = []
        for k, x in enumerate(self.inputs):
            if k in self.operand or self.body and k not in read:
                continue
            shape = kshape(self.in_types[k].shape)
            if k in loads:
                load = loads[k]
            elif flat:
                load = f"a{k}f[{idx[0]}]" if shape == tuple(domain) else f"a{k}[{', '.join('0' for _ in shape)}]"
            else:
                load = f"a{k}[{index(shape, domain, idx)}]"
            out.append(pad + f"x{k} = {load}")
            self.operand[("load", k)] = f"x{k}"
        for j, step in enumerate(self.body):
            if j in given:
                out.append(pad + f"v{j} = {given[j]}")
                continue
            args, ins, consts = [], [], []
            for x in step.operands:
                k = x.index
                if isinstance(x, Param):
                    args.append(self.operand.get(k) or self.operand[("load", k)])
                    ins.append(self.in_types[k].dtype)
                    consts.append(self.const(k))
                else:
                    args.append(f"v{k}")
                    ins.append(self.inner_types[k].dtype)
                    consts.append(None)
            dtype = self.inner_types[j].dtype
            if int_power_checked(step, dtype, ins, self.inputs):
                out.append(pad + f"bad += {args[1]} < 0  # int ** negative int: an error in numpy")
                self.check = self.check or self.ctx.raises(self.node, "power")
            out.append(pad + f"v{j} = {step_expr(self.ctx.t, step, args, ins, dtype, consts)}")
        return out

    def opening(self):
        """Lines before the loop nest (the count of negative exponents)."""
        return ["    bad = 0"] if self.check else []

    def closing(self):
        """Lines after the loop nest: raise if a check failed (the runtime names the node)."""
        return ["    if bad:", f"        raise ValueError({self.check!r})"] if self.check else []

    def result(self, j):
        return f"v{j}" if self.body else (self.operand.get(0) or self.operand[("load", 0)])


def int_power_checked(step, dtype, ins, inputs):
    """Is step an integer power whose exponent may be negative (a check in the loop)?
    dtype: its result's; ins: its operands' dtypes; inputs: the nodes its Param operands
    stand for (a constant exponent is known)."""
    if step.op.name != "power" or dtype not in INTS or ins[1] not in INTS:
        return False
    e = step.operands[1]
    return not (isinstance(e, Param) and inputs[e.index].op.name == "constant"
                and bool(np.all(inputs[e.index].attrs["value"] >= 0)))


def step_expr(t, step, args, ins, dtype, consts):
    """One step's expression; an integer result wraps around to its dtype as in numpy."""
    if dtype.kind not in "iu":
        return step.op.scalar(t, args, ins, dtype, consts, **step.kwargs)
    if step.op.name in MODULAR:
        uargs = [f"np.uint64({a})" for a in args]
        expr = step.op.scalar(t, uargs, [UINT] * len(args), UINT, consts, **step.kwargs)
        return f"np.{dtype.name}({expr})"
    expr = step.op.scalar(t, args, ins, dtype, consts, **step.kwargs)
    # Numba computes some int32 results in int64 (abs); int64 ones are int64 already
    return expr if step.op.name == "cast" or dtype == np.int64 else f"np.{dtype.name}({expr})"


def output_dests(n, ctx):
    """(the nodes whose values n's kernel writes, where it writes them): n itself, or, for a
    node with several outputs, its `output` nodes in order (named by their destinations)."""
    if not isinstance(ctx.types[n], TupleType):
        return [n], [ctx.dest(n)]
    users = sorted(ctx.users[n], key=lambda u: u.attrs["index"])
    dests = [ctx.dest(u) for u in users]
    for u, d in zip(users, dests):
        ctx.names[u] = d
    return users, dests


def _elementwise(n, ctx):
    """A fused group or a single elementwise op: one loop nest writing every needed output."""
    if n.op.name == "fused":
        body, outs = n.attrs["region"].steps, n.attrs["region"].outputs
    else:
        body, outs = (single_step(n),), (0,)
    users, dests = output_dests(n, ctx)
    domain_shape = kshape((ctx.types[n].types[0] if isinstance(ctx.types[n], TupleType) else ctx.types[n]).shape)
    b = Body(ctx, n.inputs, body, [ctx.types[x] for x in n.inputs], node=n)
    size = int(np.prod(domain_shape))
    parallel = ctx.mod.parallel and size >= PARALLEL_MIN
    flat = len(domain_shape) > 1 and all(
        ctx.layout.get(x) == "C" and (kshape(ctx.types[x].shape) == tuple(domain_shape)
                                           or all(d == 1 for d in ctx.types[x].shape))
        for k, x in enumerate(n.inputs) if k not in b.operand)
    outs_params = [f"out{k}" for k in range(len(outs))]
    if flat:
        lines = ["    n = out0.size"]
        lines += [f"    a{k}f = a{k}.reshape(n)" for k, x in enumerate(n.inputs)
                  if k not in b.operand and kshape(ctx.types[x].shape) == tuple(domain_shape)]
        lines += [f"    o{k} = out{k}.reshape(n)" for k in range(len(outs))]
        loop, idx, depth = loops(["n"], parallel)
    else:
        dims = [f"n{k}" for k in range(len(domain_shape))]
        lines = [f"    {', '.join(dims)}{',' if len(dims) == 1 else ''} = out0.shape"]
        loop, idx, depth = loops(dims, parallel)
    lines += loop
    pad = "    " * depth
    lines += b.lines(tuple(domain_shape), idx, pad, flat=flat)
    out_idx = ", ".join(idx)
    for k, j in enumerate(outs):
        lines.append(pad + f"{'o' if flat else 'out'}{k}[{out_idx}] = v{j}")
    lines = b.opening() + lines + b.closing()
    name = ctx.mod.kernel(f"fused_{ops_name(body)}" if n.op.name == "fused" else n.op.name,
                          b.params + outs_params, lines, fastmath=CONTRACT, parallel=parallel)
    ctx.mod.call(name, b.arg_exprs + dests, [x.name for x in b.arg_nodes] + [f"-> {u.name}" for u in users])
    return dests[0]

# ---------------------------------------------------------------- reductions


def _reduction(n, ctx):
    if n.op.name == "fused":
        body, outs = n.attrs["region"].steps, n.attrs["region"].outputs
        op, axes, keepdims = n.attrs["reduce"]
    else:
        body, outs = (), (0,)
        op, axes, keepdims = n.op, n.attrs["axis"], n.attrs["keepdims"]
    t = ctx.t
    dest = ctx.dest(n)
    b = Body(ctx, n.inputs, body, [ctx.types[x] for x in n.inputs], node=n)
    src_dtype = b.inner_types[outs[0]].dtype if body else ctx.types[n.inputs[0]].dtype
    domain_shape = kshape(ctx.types[n.inputs[0]].shape if not body else b.inner_types[outs[0]].shape)
    dtype = ctx.types[n].dtype
    nd = len(domain_shape)
    dims = [f"n{k}" for k in range(nd)]
    lines = [f"    {', '.join(dims)}{',' if nd == 1 else ''} = a_shape"]
    v = lambda: t.cast(b.result(outs[0]), src_dtype, dtype)   # noqa: E731
    init = t.lit(op.identity(dtype), dtype)
    trailing = tuple(axes) == tuple(range(nd - len(axes), nd))
    count = " * ".join(dims[a] for a in axes) or "1"
    kept = [k for k in range(nd) if k not in axes]
    size = int(np.prod(domain_shape))
    parallel = ctx.mod.parallel and size >= PARALLEL_MIN and bool(kept)
    # float sums, maxima and minima over a row go through the vectorized row_* helpers
    row_fn = t.ROW.get(op.row)
    vector_sum = row_fn is not None and dtype.kind == "f"
    # the reduced axes after the last kept one: a contiguous block of the input
    block = [a for a in axes if a > max(kept, default=-1)]
    if trailing or block and int(np.prod([domain_shape[a] for a in block])) >= ROW_BLOCK_MIN:
        lines += _rows_inner(t, op, b, outs, domain_shape, dims, axes, kept, block, keepdims,
                             v, init, count, dtype, row_fn if vector_sum else None, parallel)
    else:
        lines.append(f"    out.fill({init})")
        loop, idx, depth = loops(dims, False)
        lines += loop
        pad = "    " * depth
        lines += b.lines(tuple(domain_shape), idx, pad)
        oidx = _out_index(nd, kept, axes, keepdims)
        lines.append(pad + f"out[{oidx}] = {_accumulate(t, op, f'out[{oidx}]', v(), dtype)}")
        if op.name == "mean":
            lines += ["    flat = out.reshape(out.size)", "    for k in range(out.size):",
                      f"        flat[k] = flat[k] / {t.cast(count, np.dtype('int64'), dtype)}"]
    lines = b.opening() + lines + b.closing()
    shape_src = b.arg_exprs[0] if not body else None
    params = b.params + ["out", "a_shape"]
    # sum_rows, max_all, mean_cols_of_sub_mul: the reduction, its axes, then the fused prologue
    what = f"{op.name}_{axes_name(nd, axes)}" + (f"_of_{ops_name(body)}" if body else "")
    name = ctx.mod.kernel(what, params, lines, fastmath=CONTRACT, parallel=parallel)
    built = kshape(b.built_types()[outs[0]].shape) if body else kshape(n.inputs[0].type.shape)
    if shape_src is None:       # a fused prologue: an input of the loop's whole shape, if any
        shape_src = next((e for e, x in zip(b.arg_exprs, b.arg_nodes) if kshape(x.type.shape) == built
                          and kshape(ctx.types[x].shape) == tuple(domain_shape)), None)
    shape_expr = f"{shape_src}.shape" if shape_src else ctx.shape_of(f"{n.name}_loop", domain_shape, built)
    ctx.mod.call(name, b.arg_exprs + [dest, shape_expr],
                 [x.name for x in b.arg_nodes] + [f"-> {n.name}", "the shape looped over"])
    return dest


def _rows_inner(t, op, b, outs, domain_shape, dims, axes, kept, block, keepdims, v, init, count,
                dtype, row_fn, parallel):
    """A reduction whose last axis is reduced: the kept axes loop outermost (the first in
    parallel), each output element is one accumulator. The reduced axes after the last kept
    one are a contiguous block of the input: a float sum, max or min fills a row with that
    block (the prologue computed in place) and `row_fn` takes it in with SIMD lanes; other
    reductions accumulate one scalar (an integer sum wrapping, see `_accumulate`)."""
    nd = len(dims)
    lead = [a for a in axes if a not in block]      # reduced axes before a kept one
    bcount = " * ".join(dims[a] for a in block)
    lines = [f"    row = np.empty({bcount}, np.{dtype.name})"] if row_fn else []
    lines += ["    " * (1 + j) + f"for i{k} in {'prange' if parallel and j == 0 else 'range'}({dims[k]}):"
              for j, k in enumerate(kept)]
    pad = "    " * (1 + len(kept))
    if row_fn and parallel:
        lines.append(pad + f"row = np.empty({bcount}, np.{dtype.name})")     # one per thread
    if not row_fn or lead:
        lines.append(pad + f"acc = {init}")
    lines += [pad + "    " * j + f"for i{a} in range({dims[a]}):" for j, a in enumerate(lead)]
    rpad = pad + "    " * len(lead)
    lines += [rpad + "    " * j + f"for i{a} in range({dims[a]}):" for j, a in enumerate(block)]
    ipad = rpad + "    " * len(block)
    lines += b.lines(tuple(domain_shape), [f"i{k}" for k in range(nd)], ipad)
    if row_fn:
        flat = " + ".join(f"i{a}" + "".join(f" * {dims[c]}" for c in block if c > a) for a in block) or "0"
        lines.append(ipad + f"row[{flat}] = {v()}")
        lines.append(rpad + f"acc = {row_fn}(row, {'acc' if lead else init})")
    else:
        lines.append(ipad + f"acc = {_accumulate(t, op, 'acc', v(), dtype)}")
    if op.name == "mean":
        lines.append(pad + f"acc = acc / {t.cast(count, np.dtype('int64'), dtype)}")
    lines.append(pad + f"out[{_out_index(nd, kept, axes, keepdims)}] = acc")
    return lines


def _accumulate(t, op, acc, v, dtype):
    """The accumulator after taking in v; an integer sum or product wraps as in numpy."""
    if dtype.kind in "iu" and op.name in ("sum", "prod"):
        return f"np.{dtype.name}({op.combine(t, f'np.uint64({acc})', f'np.uint64({v})', UINT)})"
    return op.combine(t, acc, v, dtype)


def _out_index(nd, kept, axes, keepdims):
    if keepdims:
        return ", ".join("0" if k in axes else f"i{k}" for k in range(nd))
    return ", ".join(f"i{k}" for k in kept) or "0"

