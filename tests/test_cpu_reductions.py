"""CPU reductions over axes that are not the trailing ones, against the interpreter.

runtime/cpu/loops.py lowers them two ways: when the last axis is reduced and the reduced block
after the last kept axis is long (ROW_BLOCK_MIN), the kept axes loop outermost and each output
element is one accumulator (row_sum / row_max over each block for floats, a scalar otherwise,
with reduced axes before a kept one looping around the block); else the loop runs in the
input's order, accumulating into `out`. Each path is checked here with keepdims, mean, nan in
max/min, integer wrap-around, a fused prologue and a parallel loop. One compiled function per
dtype holds all the cases (compiles are the slow part).
"""
import numpy as np
import pytest

import graphc as gc
from graphc.runtime.cpu.loops import ROW_BLOCK_MIN

rng = np.random.default_rng(0)
S4, S3, S3_SHORT, S2 = (4, 5, 6, 70), (6, 7, 80), (6, 7, 5), (9, 70)
assert 70 >= ROW_BLOCK_MIN > 5          # the shapes reach both lowerings

CASES = [  # (name, input, reduction, axes, keepdims)
    ("sum_0_2_3", "x4", gc.sum, (0, 2, 3), False),
    ("sum_0_2_3_keep", "x4", gc.sum, (0, 2, 3), True),
    ("max_0_2_3", "x4", gc.max, (0, 2, 3), False),
    ("min_0_2_3_keep", "x4", gc.min, (0, 2, 3), True),
    ("mean_0_2_3_keep", "x4", gc.mean, (0, 2, 3), True),
    ("sum_1_3", "x4", gc.sum, (1, 3), False),            # a reduced axis before a kept one
    ("max_1_3_keep", "x4", gc.max, (1, 3), True),
    ("sum_0_2_of_4d", "x4", gc.sum, (0, 2), False),       # last axis kept: in the input's order
    ("mean_0_2_of_4d", "x4", gc.mean, (0, 2), True),
    ("sum_0_2", "x3", gc.sum, (0, 2), False),
    ("max_0_2", "x3", gc.max, (0, 2), False),
    ("sum_1", "x3", gc.sum, (1,), False),
    ("min_0_keep", "x3", gc.min, (0,), True),
    ("sum_0_2_short", "x3s", gc.sum, (0, 2), False),      # a short block: in the input's order
    ("max_0_2_short", "x3s", gc.max, (0, 2), True),
    ("sum_0", "x2", gc.sum, (0,), False),
    ("max_0", "x2", gc.max, (0,), False),
    ("mean_0", "x2", gc.mean, (0,), False),
]
SHAPES = {"x4": S4, "x3": S3, "x3s": S3_SHORT, "x2": S2}


def build(dtype):
    """interp and cpu functions of every case, plus a fused prologue (sum of x4 * b + 1)."""
    with gc.Graph():
        ph = {k: gc.placeholder(s, dtype, name=k) for k, s in SHAPES.items()}
        b = gc.placeholder((1, 5, 1, 1), dtype, name="b")
        outs = [red(ph[src], axis=axes, keepdims=keep) for _, src, red, axes, keep in CASES]
        outs.append(gc.sum(ph["x4"] * b + gc.constant(np.ones((), dtype)), axis=(0, 2, 3)))
        inputs = list(ph.values()) + [b]
        return gc.function(inputs, outs, backend="interp"), gc.function(inputs, outs, backend="cpu")


def feeds(dtype, nans):
    arrays = [rng.normal(size=s).astype(dtype) for s in SHAPES.values()]
    if nans:        # a nan in one output element of each max/min: it must win there only
        arrays[0][1, 2, 3, 4] = arrays[1][2, 3, 4] = arrays[2][5, 6, 0] = arrays[3][4, 5] = np.nan
    return arrays + [rng.normal(size=(1, 5, 1, 1)).astype(dtype)]


@pytest.fixture(scope="module")
def float_fns():
    return build(np.float64)


@pytest.mark.parametrize("nans", [False, True])
def test_float_reductions_match_the_interpreter(float_fns, nans):
    interp, cpu = float_fns
    arrays = feeds(np.float64, nans)
    want, got = interp(*arrays), cpu(*arrays)
    for (name, *_), w, g in zip(CASES + [("fused_prologue",)], want, got):
        assert w.shape == g.shape and w.dtype == g.dtype, name
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12, err_msg=name)
        if nans and name.startswith(("max", "min")):
            assert 0 < np.isnan(g).sum() < g.size, name      # nan only where a nan was reduced
    src = cpu.source
    assert "row_sum(row, acc)" in src and "row_max(row, acc)" in src     # blocks after a lead axis
    assert "out.fill(" in src                                             # the input-order path


def test_integer_sums_and_products_wrap_around_as_in_numpy():
    """int32 sums are int64 (as numpy's): an int32 prologue (x * x) wraps at 2**32, an int64
    sum or any product at 2**64, on both lowerings (and max and mean beside them)."""
    big = np.full(S4, 2**30 + 7, np.int32)
    big[0, 0, 0, :3] = [-5, 2**31 - 1, -(2**31)]
    huge = np.full(S4, 2**62 + 3, np.int64)
    with gc.Graph():
        x, y = gc.placeholder(S4, gc.int32), gc.placeholder(S4, gc.int64)
        outs = [gc.sum(x * x, axis=(0, 2, 3)), gc.sum(x, axis=(1, 3), keepdims=True), gc.sum(x * x, axis=(0, 2)),
                gc.prod(x, axis=(0, 2, 3)), gc.max(x, axis=(0, 2, 3)), gc.mean(x, axis=(0, 2, 3)),
                gc.sum(y, axis=(0, 2, 3)), gc.sum(y, axis=(0, 2)), gc.prod(y, axis=(1, 3))]
        want = gc.function([x, y], outs)(big, huge)
        got = gc.function([x, y], outs, backend="cpu")(big, huge)
    for w, g in zip(want, got):
        assert w.dtype == g.dtype and w.shape == g.shape
        np.testing.assert_array_equal(g, w)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(want[0], (big * big).sum(axis=(0, 2, 3)))
        np.testing.assert_array_equal(want[6], huge.sum(axis=(0, 2, 3)))
    assert (want[6] == 3 * 4 * 6 * 70).all()        # wrapped: 4 * 6 * 70 * 2**62 is 0 mod 2**64


def test_parallel_reduction_over_non_trailing_axes():
    """Large enough for a parallel loop over the kept axis (emit.PARALLEL_MIN elements)."""
    shape = (8, 4, 64, 64)
    x = rng.normal(size=shape).astype(np.float32)
    x[3, 2, 10, 10] = np.nan
    with gc.Graph():
        p = gc.placeholder(shape, gc.float32)
        outs = [gc.sum(p, axis=(0, 2, 3)), gc.max(p, axis=(0, 2, 3), keepdims=True), gc.mean(p, axis=(0, 3))]
        want = gc.function([p], outs)(x)
        cpu = gc.function([p], outs, backend="cpu")
        got = cpu(x)
    assert "prange" in cpu.source
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-5)
    assert np.isnan(got[1][0, 2, 0, 0]) and not np.isnan(np.delete(got[1].ravel(), 2)).any()
