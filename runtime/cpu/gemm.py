"""matmul_into: the generated kernels' one way to call BLAS.

One BLAS call per matrix product, into the caller's output, with the operands'
layouts passed as BLAS transposition flags instead of copies. A product with one
row or one column is a matrix-vector product and goes to gemv: OpenBLAS's gemm
with m = 1 took 155 us for (1, 784) @ (784, 256) here, its gemv 16 us (Numba's
own np.dot makes the same switch).
"""
import numpy as np
from numba import njit
from numba.core import types
from numba.core.errors import TypingError
from numba.extending import overload


@njit(cache=True)
def matmul_into(a, b, out, *scale):
    """out = a @ b, or out = alpha * (a @ b) + beta * out with scale = (alpha, beta), with
    numpy's matmul semantics: 1-D operands, the batch axes of `a` folded into its rows when
    `b` is a matrix, else a loop over the (broadcast) batch axes. One BLAS call per
    matrix product: a transposed operand (a transposed view: Numba's F layout) is handed to
    BLAS with its transposition flag, not copied; beta = 1 adds the product into out (an SGD
    update `W - lr * g` folded into the gemm computing g). out: C-contiguous, not overlapping
    a or b; a and b: C or F. (*scale, not defaults alpha=1.0, beta=0.0: a Numba function
    called from Python without its defaults takes a slow path, ~77 us a call here.)"""
    alpha, beta = (scale + (1.0, 0.0))[:2]
    if b.ndim <= 2:
        a2, b2 = _rows(a), _cols(b)
        _gemm(a2, b2, out.reshape((a2.shape[0], b2.shape[1])), alpha, beta)
        return
    m = 1 if a.ndim == 1 else a.shape[-2]
    k, n = b.shape[-2], b.shape[-1]
    batch = out.shape[:-1] if a.ndim == 1 else out.shape[:-2]
    nb = _count(batch)
    # the operands as (batch, rows, cols) stacks, broadcast along their missing batch axes
    a3 = np.ascontiguousarray(np.broadcast_to(a, batch + (m, k))).reshape((nb, m, k))
    b3 = np.ascontiguousarray(np.broadcast_to(b, batch + (k, n))).reshape((nb, k, n))
    out3 = out.reshape((nb, m, n))
    for t in range(nb):
        _gemm(a3[t], b3[t], out3[t], alpha, beta)


@njit(inline="always")
def _count(shape):
    """The number of elements of an array of this shape (also when a size is 0)."""
    c = 1
    for d in shape:
        c *= d
    return c


def _rows(a):
    """a as a matrix: a vector is one row; the batch axes of a C-contiguous array fold into rows."""


def _cols(b):
    """b as a matrix: a vector is one column."""


def _gemm(a, b, out, alpha, beta):
    """out = alpha * a @ b + beta * out for matrices, one BLAS call (typed below)."""


@overload(_rows)
def _rows_impl(a):
    if a.ndim == 2:
        return lambda a: a
    if a.ndim == 1:
        return lambda a: a.reshape((1, a.shape[0]))
    return lambda a: a.reshape((_count(a.shape[:-1]), a.shape[-1]))


@overload(_cols)
def _cols_impl(b):
    if b.ndim == 1:
        return lambda b: b.reshape((b.shape[0], 1))
    return lambda b: b


def _gemv_signature(dtype):
    """numba_xxgemv (Numba's _lapack.c): y = alpha * op(A) @ x + beta * y, unit strides."""
    return types.ExternalFunction("numba_xxgemv", types.intc(
        types.char, types.char, types.intp, types.intp,          # kind, trans, m, n
        types.CPointer(dtype), types.CPointer(dtype), types.intp,  # alpha, a, lda
        types.CPointer(dtype), types.CPointer(dtype), types.CPointer(dtype)))  # x, beta, y


@overload(_gemm)
def _gemm_impl(a, b, out, alpha, beta):
    from numba.np.linalg import _BLAS, get_blas_kind
    if a.layout not in "CF" or b.layout not in "CF" or out.layout != "C" or not a.dtype == b.dtype == out.dtype:
        raise TypingError(f"matmul_into needs C or F operands, a C output, one dtype; got {a}, {b}, {out}")
    dtype = out.dtype
    xxgemm = _BLAS().numba_xxgemm(dtype)
    xxgemv = _gemv_signature(dtype)
    kind = ord(get_blas_kind(dtype, "matmul_into"))
    # BLAS is column-major: to it, a C-contiguous out is out.T, and it computes out.T = b.T @ a.T.
    # A C operand is already its transpose to BLAS ('n'); an F one (a transposed view) is not ('t').
    b_flag, a_flag = ord("n" if b.layout == "C" else "t"), ord("n" if a.layout == "C" else "t")
    b_c, a_c = b.layout == "C", a.layout == "C"
    # One row of out (m = 1): out = b.T @ a[0]. To BLAS a C b is the column-major (n, k)
    # matrix b.T ('n'); an F b is the (k, n) matrix b ('t'). One column (n = 1): out = a @ b[:, 0];
    # a C a is the (k, m) matrix a.T ('t'), an F a the (m, k) matrix a ('n'). A (1, k) or
    # (k, 1) block of a C or F array is contiguous either way, so the vectors have unit stride.
    row_flag, col_flag = ord("n" if b_c else "t"), ord("t" if a_c else "n")

    def impl(a, b, out, alpha, beta):
        m, k = a.shape
        n = b.shape[1]
        if b.shape[0] != k or out.shape[0] != m or out.shape[1] != n:
            raise ValueError("matmul_into: shapes do not match")
        if m == 0 or n == 0:
            return
        if k == 0:                       # BLAS wants k >= 1: the product is 0
            if beta == 0.0:
                out[:] = 0
            else:
                out[:] = out * beta
            return
        scale = np.empty(2, out.dtype)
        scale[0], scale[1] = alpha, beta
        if m == 1:
            if b_c:
                xxgemv(kind, row_flag, n, k, scale[0:].ctypes, b.ctypes, n, a.ctypes, scale[1:].ctypes, out.ctypes)
            else:
                xxgemv(kind, row_flag, k, n, scale[0:].ctypes, b.ctypes, k, a.ctypes, scale[1:].ctypes, out.ctypes)
        elif n == 1:
            if a_c:
                xxgemv(kind, col_flag, k, m, scale[0:].ctypes, a.ctypes, k, b.ctypes, scale[1:].ctypes, out.ctypes)
            else:
                xxgemv(kind, col_flag, m, k, scale[0:].ctypes, a.ctypes, m, b.ctypes, scale[1:].ctypes, out.ctypes)
        else:
            xxgemm(kind, b_flag, a_flag, n, m, k, scale[0:].ctypes, b.ctypes, n if b_c else k,
                   a.ctypes, k if a_c else m, scale[1:].ctypes, out.ctypes, n)
    return impl


def gemm_flat(a, b, b_offset, ldb, out, out_offset, ldc, n, beta):
    """out_M = a (m, k) @ B + beta * out_M: B is the (k, n) matrix of the flat array b whose
    row r starts at b[b_offset + r * ldb], out_M the (m, n) matrix of the flat array out whose
    row r starts at out[out_offset + r * ldc]. B's rows may overlap or leave gaps (a
    convolution's shifted image planes, conv_wide.py); out_M may be a band of columns of a
    larger matrix (conv_im2col.py). a C-contiguous; one BLAS gemm (typed below)."""


@overload(gemm_flat)
def _gemm_flat_impl(a, b, b_offset, ldb, out, out_offset, ldc, n, beta):
    from numba.np.linalg import _BLAS, get_blas_kind
    if a.layout != "C" or b.ndim != 1 or out.ndim != 1 or not a.dtype == b.dtype == out.dtype:
        raise TypingError(f"gemm_flat needs a C matrix, flat arrays b and out, one dtype; got {a}, {b}, {out}")
    dtype = out.dtype
    xxgemm = _BLAS().numba_xxgemm(dtype)
    kind = ord(get_blas_kind(dtype, "gemm_flat"))
    n_flag = ord("n")

    def impl(a, b, b_offset, ldb, out, out_offset, ldc, n, beta):
        m, k = a.shape
        if m == 0 or n == 0:
            return
        if (b_offset < 0 or out_offset < 0 or ldb < n or ldc < n
                or k > 0 and b_offset + (k - 1) * ldb + n > b.shape[0]
                or out_offset + (m - 1) * ldc + n > out.shape[0]):
            raise ValueError("gemm_flat: shapes do not match")
        if k == 0:
            if beta == 0.0:
                for r in range(m):
                    out[out_offset + r * ldc:out_offset + r * ldc + n] = 0
            return
        scale = np.empty(2, out.dtype)
        scale[0], scale[1] = 1.0, beta
        # to column-major BLAS: out_M.T (n, m; ldc) = B.T (n, k; ldb) @ a.T (k, m)
        xxgemm(kind, n_flag, n_flag, n, m, k, scale[0:].ctypes, b[b_offset:].ctypes, ldb,
               a.ctypes, k, scale[1:].ctypes, out[out_offset:].ctypes, ldc)
    return impl
