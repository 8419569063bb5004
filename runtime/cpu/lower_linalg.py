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
    k = ta.shape[-1]
    if ta.ndim == 1:
        A = f"{A}.reshape(1, {k})"
    if tb.ndim == 1:
        B = f"{B}.reshape({k}, 1)"
    m = 1 if ta.ndim == 1 else ta.shape[-2]
    nn = 1 if tb.ndim == 1 else tb.shape[-1]
    batch = to.shape[:-2] if ta.ndim > 1 and tb.ndim > 1 else to.shape[:max(ta.ndim, tb.ndim) - 2]
    nbatch = int(np.prod(batch)) if batch else 1
    notes = [a.name, b.name, f"-> {n.name}"]
    if to.dtype.kind != "f":
        name = _int_matmul_kernel(ctx, to.dtype)
        A, B = _batched(A, ta, batch, m, k, ctx), _batched(B, tb, batch, k, nn, ctx)
        ctx.mod.call(name, [A, B, f"{dest}.reshape({nbatch}, {m}, {nn})"], notes)
    elif tb.ndim <= 2 and ta.ndim >= 2:
        # a's batch axes fold into its rows: one BLAS call
        if ta.ndim > 2:
            A = f"{A}.reshape({nbatch * m}, {k})"
        ctx.mod.call("matmul_into", [A, B, f"{dest}.reshape({nbatch * m}, {nn})"], notes)
    else:
        A3, B3 = _batched(A, ta, batch, m, k, ctx), _batched(B, tb, batch, k, nn, ctx)
        ctx.mod.emit(f"d3 = {dest}.reshape({nbatch}, {m}, {nn})")
        ctx.mod.emit(f"for t in range({nbatch}):")
        ctx.mod.call("matmul_into", [f"{A3}[t]", f"{B3}[t]", "d3[t]"], notes, indent=1)
    return dest


def _blas_operand(x, ctx, dtype):
    """x in a form np.dot accepts: C-contiguous, a 2-D transpose of one, or a contiguous copy."""
    expr = ctx.value(x)
    if ctx.types[x].dtype != dtype:
        return f"{expr}.astype(np.{dtype.name})"
    blas_ok = ctx.layout.get(x) == "C" or (
        x.op.name == "transpose" and x.ndim == 2 and ctx.layout.get(x.inputs[0]) == "C")
    return expr if blas_ok else f"np.ascontiguousarray({expr})"


def _batched(expr, t, batch, rows, cols, ctx):
    """expr as a C-contiguous (prod(batch), rows, cols) array, broadcast along missing batch axes."""
    nb = int(np.prod(batch)) if batch else 1
    full = tuple(batch) + (rows, cols)
    return f"np.ascontiguousarray(np.broadcast_to({expr}.reshape({kshape(t.shape) if t.ndim > 1 else (rows, cols)}), " \
           f"{full})).reshape({nb}, {rows}, {cols})"


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
