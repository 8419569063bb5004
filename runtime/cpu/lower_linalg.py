"""CPU lowering of matmul: BLAS (np.dot into the destination) for floats, a loop for ints."""
import numpy as np

from graphc.runtime.memory import kshape

from .emit import lowers


@lowers("matmul")
def _matmul(n, ctx):
    a, b = n.inputs
    ta, tb, to = ctx.types[a], ctx.types[b], ctx.types[n]
    dest = ctx.dest(n)
    A, B = _blas_operand(a, ctx, to.dtype), _blas_operand(b, ctx, to.dtype)
    # shapes in the step are read off the operands (-1, .shape) or come in as arguments
    # (ctx.shape_of): one generated step serves every batch size
    if ta.ndim == 1:
        A = f"{A}.reshape(1, -1)"
    if tb.ndim == 1:
        B = f"{B}.reshape(-1, 1)"
    notes = [a.name, b.name, f"-> {n.name}"]
    dims, built = _dims(ta, tb, to), _dims(a.type, b.type, n.type)
    batch, m, k, nn = dims
    if to.dtype.kind != "f":
        name = _int_matmul_kernel(ctx, to.dtype)
        A, B = _batched(A, a, dims, built, "a", ctx), _batched(B, b, dims, built, "b", ctx)
        ctx.mod.call(name, [A, B, f"{dest}.reshape({_shape(n, dims, built, 'out', ctx)})"], notes)
    elif tb.ndim <= 2 and ta.ndim >= 2:
        # a's batch axes fold into its rows: one BLAS call
        if ta.ndim > 2:
            A = _as_rows(A, ta.ndim)
        out = dest if ta.ndim == tb.ndim == 2 else \
            _as_rows(dest, to.ndim) if tb.ndim == 2 else f"{dest}.reshape({dest}.size, 1)"
        ctx.mod.call("matmul_into", [A, B, out], notes)
    else:
        A3, B3 = _batched(A, a, dims, built, "a", ctx), _batched(B, b, dims, built, "b", ctx)
        ctx.mod.emit(f"d3 = {dest}.reshape({_shape(n, dims, built, 'out', ctx)})")
        ctx.mod.emit("for t in range(d3.shape[0]):")
        ctx.mod.call("matmul_into", [f"{A3}[t]", f"{B3}[t]", "d3[t]"], notes, indent=1)
    return dest


def _as_rows(expr, nd):
    """expr (nd >= 2 axes) as a matrix: every axis but the last folded into rows. The sizes
    are spelled out, not -1, which numpy cannot infer when an axis is 0."""
    rows = " * ".join(f"{expr}.shape[{k}]" for k in range(nd - 1))
    return f"{expr}.reshape({rows}, {expr}.shape[{nd - 1}])"


def _dims(ta, tb, to):
    """(batch shape, m, k, n) of a matmul of these types (None where fed at call time)."""
    k = ta.shape[-1]
    m = 1 if ta.ndim == 1 else ta.shape[-2]
    nn = 1 if tb.ndim == 1 else tb.shape[-1]
    batch = to.shape[:-2] if ta.ndim > 1 and tb.ndim > 1 else to.shape[:max(ta.ndim, tb.ndim) - 2]
    return tuple(batch), m, k, nn


def _count(dims):
    return None if None in dims else int(np.prod(dims)) if dims else 1


def _shape(n, dims, built, which, ctx, x=None):
    """The (batch, rows, cols) shape of the output ('out'), or of operand a or b, as step text."""
    def three(d):
        batch, m, k, nn = d
        rows, cols = {"out": (m, nn), "a": (m, k), "b": (k, nn)}[which]
        return (_count(batch), rows, cols)
    return ctx.shape_of(f"{n.name}_{which}", three(dims), three(built))


def _batched(expr, x, dims, built, which, ctx):
    """expr as a C-contiguous (prod(batch), rows, cols) array, broadcast along missing batch axes."""
    t, bt = ctx.types[x], x.type
    batch, m, k, nn = dims
    rows, cols = (m, k) if which == "a" else (k, nn)
    full = ctx.shape_of(f"{x.name}_{which}_full", tuple(batch) + (rows, cols),
                        tuple(built[0]) + ((built[1], built[2]) if which == "a" else (built[2], built[3])))
    own = ctx.shape_of(f"{x.name}_{which}_2d", kshape(t.shape) if t.ndim > 1 else (rows, cols),
                       kshape(bt.shape) if bt.ndim > 1 else ((built[1], built[2]) if which == "a" else (built[2], built[3])))
    three = ctx.shape_of(f"{x.name}_{which}_3d", (_count(batch), rows, cols),
                         (_count(built[0]),) + ((built[1], built[2]) if which == "a" else (built[2], built[3])))
    return f"np.ascontiguousarray(np.broadcast_to({expr}.reshape({own}), {full})).reshape({three})"


def _blas_operand(x, ctx, dtype):
    """x in a form np.dot accepts: C-contiguous, a 2-D transpose of one, or a contiguous copy."""
    expr = ctx.value(x)
    if ctx.types[x].dtype != dtype:
        return f"{expr}.astype(np.{dtype.name})"
    blas_ok = ctx.layout.get(x) == "C" or (
        x.op.name == "transpose" and x.ndim == 2 and ctx.layout.get(x.inputs[0]) == "C")
    return expr if blas_ok else f"np.ascontiguousarray({expr})"


def _int_matmul_kernel(ctx, dtype):
    """Integers wrap around as in numpy: the sum of products is computed in uint64 (whose
    overflow LLVM must wrap, see loops.py) and narrowed to the result's dtype."""
    lines = ["    nb, m, n = out.shape", "    k = a.shape[2]",
             "    for t in range(nb):", "        for i in range(m):", "            for j in range(n):",
             "                acc = np.uint64(0)",
             "                for p in range(k):",
             "                    acc += np.uint64(a[t, i, p]) * np.uint64(b[t, p, j])",
             "                out[t, i, j] = " + ("acc != 0" if dtype.kind == "b" else f"np.{dtype.name}(acc)")]
    return ctx.mod.kernel("matmul_int", ["a", "b", "out"], lines)
