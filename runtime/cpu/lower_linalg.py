"""CPU lowering of matmul: BLAS (fastmath.matmul_into: numpy's matmul semantics, one gemm call
per matrix product) for floats, a loop for ints.

The step's line is `matmul_into(a, b, out)` whatever the ranks: matmul_into reads the sizes
from its arguments, so the line is the same for every batch size. A transposed operand is
passed as the transposed view (`var_W2.T`): BLAS reads it with its transposition flag.

An SGD-style update of a variable by the product, `W - lr * (a @ b)`, written in place into
W, is folded into the gemm (`matmul_into(a, b, var_W, -lr, 1.0)`: W += -lr * a @ b): the
product is never stored, and the update's pass over W and the product goes away.
"""
from graphc.core.region import Param, Ref

from .emit import lowers


@lowers("matmul")
def _matmul(n, ctx):
    a, b = n.inputs
    ta, tb, to = ctx.types[a], ctx.types[b], ctx.types[n]
    A, B = _blas_operand(a, ctx, to.dtype), _blas_operand(b, ctx, to.dtype)
    notes = [a.name, b.name, f"-> {n.name}"]
    if to.dtype.kind != "f":
        dest = ctx.dest(n)
        ctx.mod.call(_int_matmul_kernel(ctx, ta.ndim, tb.ndim, to.dtype), [A, B, dest], notes)
        return dest
    fold = _update_by(n, ctx) if ta.ndim == tb.ndim == 2 else None
    if fold is not None:
        update, alpha = fold
        dest = ctx.dest(update)            # the variable, updated in place
        ctx.mod.at(update)                 # this line computes the update (the product is inside it)
        ctx.mod.call("matmul_into", [A, B, dest, alpha, "1.0"], [a.name, b.name, f"-> {update.name}",
                                                                 "alpha", "beta: add into it"])
        ctx.mod.at(n)
        ctx.names[update] = dest           # lowered: the step skips it
        return dest
    dest = ctx.dest(n)
    ctx.mod.call("matmul_into", [A, B, dest], notes)
    return dest


def _blas_operand(x, ctx, dtype):
    """x in a form BLAS takes: C-contiguous, a 2-D transpose of one, or a contiguous copy."""
    expr = ctx.value(x)
    if ctx.types[x].dtype != dtype:
        return f"{expr}.astype(np.{dtype.name})"
    blas_ok = ctx.layout.get(x) == "C" or (
        x.op.name == "transpose" and x.ndim == 2 and ctx.layout.get(x.inputs[0]) == "C")
    return expr if blas_ok else f"np.ascontiguousarray({expr})"


# ---------------------------------------------------------------- W - lr * (a @ b) in the gemm


def _update_by(n, ctx):
    """(update, alpha) if n's only use is an update `V + alpha * n` of a variable V that the
    memory plan writes in place, alpha a constant, and folding it into n's gemm is safe: n reads
    no memory of V, and every other reader of V has run already (the fold writes V at n's line,
    not at the update's); else None."""
    users = set(ctx.users[n])
    if len(users) != 1:
        return None
    (u,) = users
    var = ctx.plan.target(u)
    if var is None or isinstance(var, str) or var.op.name != "variable":
        return None                          # not written in place into a variable
    if ctx.types[u] != ctx.types[n]:
        return None
    alpha = _coefficient(u, n, var, ctx)
    if alpha is None:
        return None
    root = ctx.plan.root
    if any(root.get(i) is var for i in n.inputs):
        return None                          # gemm must not read the memory it writes
    for m in ctx.users:                      # V and its views
        if root.get(m) is var:
            for r in ctx.users[m]:
                if r is not u and root.get(r) is not var and r not in ctx.names:
                    return None              # it reads V's old value, and runs after n
    return u, str(ctx.types[n].dtype.type(alpha))       # the shortest text of that float32 or float64


def _coefficient(u, n, var, ctx):
    """alpha if u computes var + alpha * n, alpha made of literal constants; else None."""
    if u.op.name == "fused":
        region = u.attrs["region"]
        if u.attrs.get("reduce") is not None or len(region.outputs) != 1:
            return None
        steps, top = [(s.op, s.operands) for s in region.steps], Ref(region.outputs[0])
    else:
        steps, top = [(u.op, tuple(Param(k) for k in range(len(u.inputs))))], Ref(0)

    def form(x):
        """What operand x of u is: ("var", 1), ("n", c) for c * n, ("const", c), or
        ("update", c) for var + c * n; None for anything else."""
        if isinstance(x, Param):
            node = u.inputs[x.index]
            if node is var or node is n:
                return ("var" if node is var else "n"), 1.0
            if ctx.plan.inlined(node):
                return "const", float(node.attrs["value"].reshape(-1)[0])
            return None
        op, operands = steps[x.index]
        parts = [form(y) for y in operands]
        if None in parts:
            return None
        kinds, c = [p[0] for p in parts], [p[1] for p in parts]
        if op.name == "multiply" and sorted(kinds) == ["const", "n"]:
            return "n", c[0] * c[1]
        if op.name == "divide" and kinds == ["n", "const"] and c[1] != 0:
            return "n", c[0] / c[1]
        if op.name == "negative" and kinds == ["n"]:
            return "n", -c[0]
        if op.name == "add" and sorted(kinds) == ["n", "var"]:
            return "update", c[kinds.index("n")]
        if op.name == "subtract" and kinds == ["var", "n"]:
            return "update", -c[1]
        return None

    result = form(top)
    return result[1] if result is not None and result[0] == "update" else None


# ---------------------------------------------------------------- integers


def _int_matmul_kernel(ctx, nda, ndb, dtype):
    """Integers wrap around as in numpy: the sum of products is computed in uint64 (whose
    overflow LLVM must wrap, see loops.py) and narrowed to the result's dtype. The operands
    become (batch, rows, cols) stacks, broadcast along out's batch axes as numpy's matmul does."""
    nbatch = max(nda, ndb, 2) - 2           # out's batch axes: those of the operands of 3 axes or more
    a2 = "a.reshape((1, a.shape[0]))" if nda == 1 else "a"
    b2 = "b.reshape((b.shape[0], 1))" if ndb == 1 else "b"
    lines = [f"    a2, b2 = {a2}, {b2}", "    m, k, n = a2.shape[-2], a2.shape[-1], b2.shape[-1]"]
    if nbatch:
        lines += [f"    batch = out.shape[:{nbatch}]",
                  "    nb = 1",
                  "    for d in batch:",
                  "        nb *= d",
                  "    a3 = np.ascontiguousarray(np.broadcast_to(a2, batch + (m, k))).reshape((nb, m, k))",
                  "    b3 = np.ascontiguousarray(np.broadcast_to(b2, batch + (k, n))).reshape((nb, k, n))"]
    else:
        lines += ["    nb = 1",
                  "    a3 = np.ascontiguousarray(a2).reshape((1, m, k))",
                  "    b3 = np.ascontiguousarray(b2).reshape((1, k, n))"]
    lines += ["    out3 = out.reshape((nb, m, n))",
              "    for t in range(nb):",
              "        for i in range(m):",
              "            for j in range(n):",
              "                acc = np.uint64(0)",
              "                for p in range(k):",
              "                    acc += np.uint64(a3[t, i, p]) * np.uint64(b3[t, p, j])",
              "                out3[t, i, j] = " + ("acc != 0" if dtype.kind == "b" else f"np.{dtype.name}(acc)")]
    return ctx.mod.kernel("matmul_int", ["a", "b", "out"], lines)
