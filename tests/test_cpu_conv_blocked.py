"""The register-blocked convolution (runtime/cpu/conv_blocked.py) against ops/conv.py's
reference: hand-picked shapes that reach each of its cases (stride phases, dilation,
asymmetric pads, the 1x1 kernel read in place, outputs with and without junk columns, output
channels not a multiple of the 14 a tile holds, positions not a multiple of the 32 it holds,
a batch), random ones (hypothesis), infs and nans; and the lowering: a float32 constant
weight is packed once and the step calls conv2d_by_blocked, anything else keeps the old paths."""
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.ops.conv import conv2d_ref, conv_out
from graphc.runtime.cpu import conv_blocked as cb
from graphc.runtime.cpu import conv_kernels as ck
from graphc.runtime.cpu.config import configure_once

configure_once()        # as a CPU function does before it compiles: the helpers need Numba's threads
rng = np.random.default_rng(0)

CASES = [  # (x shape, w shape, stride, ((t, b), (l, r)), dilation[, groups])
    ((1, 16, 12, 12), (32, 16, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)),      # wide, junk columns
    ((2, 5, 9, 7), (15, 5, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)),          # a batch, 15 = 14 + 1 outputs
    ((1, 8, 6, 6), (13, 8, 1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1)),          # 1x1 read in place, 36 positions
    ((1, 3, 23, 23), (16, 3, 7, 7), (2, 2), ((3, 3), (3, 3)), (1, 1)),        # a stem: 7x7, stride 2
    ((1, 6, 11, 10), (9, 6, 3, 2), (2, 3), ((1, 0), (0, 2)), (1, 1)),         # unequal strides, asymmetric
    ((1, 4, 13, 12), (7, 4, 3, 3), (1, 1), ((2, 1), (0, 2)), (2, 3)),         # dilated
    ((1, 4, 14, 13), (5, 4, 3, 3), (3, 2), ((1, 1), (2, 0)), (2, 1)),         # strided and dilated
    ((1, 10, 8, 8), (20, 10, 1, 1), (2, 2), ((0, 0), (0, 0)), (1, 1)),        # 1x1, stride 2
    ((1, 2, 4, 33), (3, 2, 1, 3), (1, 1), ((0, 0), (1, 1)), (1, 1)),          # one wide row of 35
    ((2, 12, 7, 7), (30, 4, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 3),      # 3 groups of 10 outputs
    ((1, 8, 9, 9), (16, 2, 1, 1), (2, 2), ((0, 0), (0, 0)), (1, 1), 4),       # grouped 1x1, stride 2
    ((1, 6, 11, 11), (4, 3, 5, 5), (4, 4), ((2, 2), (2, 2)), (1, 1), 2),      # AlexNet-like: groups, stride 4
    ((1, 48, 56, 56), (48, 48, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)),      # copies in and out on the threads
    ((1, 16, 100, 90), (8, 16, 3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1)),      # phases on the threads
]


def run_blocked(x, w, stride, pads, dilation, groups=1, rows=None):
    (pt, pb), (pl, pr) = pads
    oh, ow = (conv_out(s, k, st_, d, p) for s, k, st_, d, p in zip(x.shape[2:], w.shape[2:], stride, dilation, pads))
    out = np.full((x.shape[0], w.shape[0], oh, ow), np.nan, np.float32)     # every entry must be written
    cb.blocked_conv2d_into(x, cb.pack_weights(w, groups, rows), out, *stride, pt, pb, pl, pr, *dilation)
    return out


def reference(x, w, stride, pads, dilation, groups=1):
    return conv2d_ref(x, w, stride=stride, padding=pads, dilation=dilation, groups=groups)


def close(got, want):
    """float32 sums in another order than the float64 reference's: errors grow with the terms
    (432 a sum at 48 channels x 3x3), so the tolerance is relative to the largest output."""
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6 * max(1.0, np.abs(want).max()))


@pytest.mark.parametrize("rows", [cb.MR, cb.MR_POINTWISE])      # both tile shapes, any kernel
@pytest.mark.parametrize("case", CASES)
def test_blocked_matches_the_reference(case, rows):
    xs, ws, *attrs = case
    x, w = rng.normal(size=xs).astype(np.float32), rng.normal(size=ws).astype(np.float32)
    want = reference(x, w, *attrs)
    attrs += [1] * (4 - len(attrs))
    close(run_blocked(x, w, *attrs, rows=rows), want)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_blocked_matches_the_reference_on_random_shapes(data):
    ints = lambda lo, hi: data.draw(st.integers(lo, hi))       # noqa: E731
    groups = ints(1, 3)
    n, c, o = ints(1, 2), groups * ints(1, 8), groups * ints(1, 12)
    kh, kw, sh, sw, dh, dw = ints(1, 4), ints(1, 4), ints(1, 3), ints(1, 3), ints(1, 2), ints(1, 2)
    pads = ((ints(0, 2), ints(0, 2)), (ints(0, 2), ints(0, 2)))
    h = ints(max(1, (kh - 1) * dh + 1 - sum(pads[0])), 12)
    wd = ints(max(1, (kw - 1) * dw + 1 - sum(pads[1])), 12)
    x = rng.normal(size=(n, c, h, wd)).astype(np.float32)
    w = rng.normal(size=(o, c // groups, kh, kw)).astype(np.float32)
    want = reference(x, w, (sh, sw), pads, (dh, dw), groups)
    close(run_blocked(x, w, (sh, sw), pads, (dh, dw), groups), want)


def test_blocked_keeps_the_references_infs_and_nans():
    x = rng.normal(size=(1, 5, 9, 8)).astype(np.float32)
    w = rng.normal(size=(6, 5, 3, 3)).astype(np.float32)
    x[0, 1, 2, 3], x[0, 3, 7, 0], w[2, 4, 1, 1] = np.inf, np.nan, -np.inf
    args = ((1, 1), ((1, 1), (1, 1)), (1, 1))
    got, want = run_blocked(x, w, *args), reference(x, w, *args)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-5, atol=1e-5)


def test_pack_weights_puts_each_weight_where_the_micro_kernel_reads_it():
    w = rng.normal(size=(17, 3, 2, 2)).astype(np.float32)
    p = cb.pack_weights(w)
    assert p.shape == (1, 2, 2, 2, 3, cb.MR) and p.dtype == np.float32
    assert p[0, 1, 1, 0, 2, 2] == w[cb.MR + 2, 2, 1, 0] and p[0, 0, 0, 1, 1, 5] == w[5, 1, 0, 1]
    assert not p[0, 1, :, :, :, 17 - cb.MR:].any()        # the missing output channels are zeros
    g = cb.pack_weights(w[:16], groups=2)                 # 2 groups of 8 outputs: one tile each
    assert g.shape == (2, 1, 2, 2, 3, cb.MR) and g[1, 0, 0, 1, 2, 3] == w[8 + 3, 2, 0, 1]
    one = cb.pack_weights(w[:, :, :1, :1])                # a 1x1 kernel: tiles of MR_POINTWISE
    assert one.shape == (1, 3, 1, 1, 3, cb.MR_POINTWISE) and one[0, 2, 0, 0, 1, 0] == w[16, 1, 0, 0]


def test_tile_rows_takes_the_smaller_tiles_for_1x1_kernels_unless_they_waste_more():
    assert cb.tile_rows(3, 3, 64, 3136) == cb.MR and cb.tile_rows(1, 1) == cb.MR_POINTWISE
    assert cb.tile_rows(1, 1, 256, 3136) == cb.MR_POINTWISE     # ResNet's 64 -> 256 at 56x56
    assert cb.tile_rows(1, 1, 512, 49) == cb.MR                 # 2048 -> 512 at 7x7: 49 = 48 + 1


def test_the_path_is_blocked_only_for_a_packable_weight():
    shapes = ((1, 16, 8, 8), (32, 16, 3, 3), (1, 32, 8, 8), (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    assert ck.conv2d_helper(*shapes, blocked=True) == "conv2d_by_blocked"
    assert ck.conv2d_helper(*shapes) != "conv2d_by_blocked"
    grouped = ((1, 32, 8, 8), (32, 16, 3, 3), (1, 32, 8, 8), (1, 1), ((1, 1), (1, 1)), (1, 1), 2)
    assert ck.conv2d_helper(*grouped, blocked=True) == "conv2d_by_blocked"
    depthwise = ((1, 16, 8, 8), (16, 1, 3, 3), (1, 16, 8, 8), (1, 1), ((1, 1), (1, 1)), (1, 1), 16)
    assert ck.conv2d_helper(*depthwise, blocked=True) == "conv2d_by_depthwise"


@pytest.fixture(scope="module")
def nets():
    """conv + bias + relu (fused epilogue) and a plain strided conv, weights constant or variable."""
    w1 = rng.normal(size=(20, 9, 3, 3)).astype(np.float32) * 0.3    # past the direct loops' size
    w2 = rng.normal(size=(9, 20, 1, 1)).astype(np.float32) * 0.3
    b = rng.normal(size=(1, 20, 1, 1)).astype(np.float32)
    fns = {}
    for kind in ("constant", "variable"):
        with gc.Graph():
            x = gc.placeholder((None, 9, 10, 9), gc.float32, name="x")
            make = gc.constant if kind == "constant" else gc.variable
            h = gc.relu(gc.conv2d(x, make(w1), padding="same") + gc.constant(b))
            y = gc.conv2d(h, make(w2), stride=2)
            fns[kind] = (gc.function([x], [h, y], backend="cpu"), gc.function([x], [h, y], backend="interp"))
    return fns


@pytest.mark.parametrize("kind", ["constant", "variable"])
def test_a_network_with_blocked_convolutions_matches_the_interpreter(nets, kind):
    cpu, interp = nets[kind]
    for batch in (1, 3):
        x = rng.normal(size=(batch, 9, 10, 9)).astype(np.float32)
        for u, v in zip(cpu(x), interp(x)):
            np.testing.assert_allclose(u, v, rtol=2e-5, atol=2e-5)
    plain, fused = cpu.source.count("conv2d_by_blocked("), cpu.source.count("conv2d_by_blocked_bias(")
    # a variable's weight would be packed every call; with constants the conv + bias + relu is
    # one call, its bias and relu in the micro-kernel (lower_conv_affine.py)
    assert (plain, fused) == ((1, 1) if kind == "constant" else (0, 0))
    at = cpu.source.index("def step(")
    signature = cpu.source[at:cpu.source.index("):", at)]
    names = re.findall(r"\b(\w+?_(?:packed|scaled\d+|bias\d+)),", signature)   # the step's packed constants
    assert sorted(k.split("_")[-1].rstrip("0123456789") for k in names) == ["bias"] * fused + ["packed"] * plain + \
        ["scaled"] * fused


def test_a_large_image_runs_its_epilogue_pool_and_depthwise_conv_on_the_threads():
    """In a step without BLAS, from PARALLEL_MIN values an image (lower_conv._threaded): the conv
    epilogue's channel loop (a tanh: not folded into the kernel) is a prange, the pool and the depthwise convolution their parallel
    versions (parallel_planes.py); the values stay the interpreter's."""
    with gc.Graph():
        x = gc.placeholder((1, 8, 96, 96), gc.float32, name="x")
        w = gc.constant(rng.normal(size=(16, 8, 3, 3)).astype(np.float32) * 0.3)
        h = gc.tanh(gc.conv2d(x, w, padding="same") + gc.constant(rng.normal(size=(1, 16, 1, 1)).astype(np.float32)))
        d = gc.conv2d(h, gc.constant(rng.normal(size=(16, 1, 3, 3)).astype(np.float32)), padding="same", groups=16)
        y = gc.max_pool2d(d, 2)
        cpu, interp = (gc.function([x], [y], backend=b) for b in ("cpu", "interp"))
    xv = rng.normal(size=(1, 8, 96, 96)).astype(np.float32)
    np.testing.assert_allclose(cpu(xv)[0], interp(xv)[0], rtol=2e-5, atol=2e-5)
    src = cpu.source
    assert cpu.parallel and "for i1 in prange(n1):" in src
    assert "conv2d_by_depthwise_parallel(" in src and "max_pool2d_parallel_into(" in src


def _affine_net(scale, residual=False):
    """conv -> + b -> * scale -> - t -> relu (a batch norm's shape), optionally + a residual."""
    with gc.Graph():
        x = gc.placeholder((2, 12, 9, 8), gc.float32, name="x")
        w = gc.constant(rng.normal(size=(20, 12, 3, 3)).astype(np.float32) * 0.3)
        per = lambda v: gc.constant(np.asarray(v, np.float32).reshape(1, 20, 1, 1))   # noqa: E731
        y = (gc.conv2d(x, w, padding="same") + per(rng.normal(size=20))) * per(scale) - per(rng.normal(size=20))
        if residual:
            y = y + x[:, :1]
        y = gc.relu(y)
        return gc.function([x], [y], backend="cpu"), gc.function([x], [y], backend="interp")


@pytest.mark.parametrize("case", ["affine", "residual", "inf scale"])
def test_a_per_channel_affine_epilogue_and_relu_fold_into_the_kernel(case):
    """lower_conv_affine.py: (conv + b) * s - t, relu'd, is one conv2d_by_blocked_bias call with
    w * s packed and the shift as its bias; a residual add (not per channel) or a non-finite
    scale keeps the generic epilogue. The values are the interpreter's either way."""
    scale = rng.uniform(-2, 2, size=20)
    if case == "inf scale":
        scale[3] = np.inf
    cpu, interp = _affine_net(scale, residual=case == "residual")
    x = rng.normal(size=(2, 12, 9, 8)).astype(np.float32)
    np.testing.assert_allclose(cpu(x)[0], interp(x)[0], rtol=2e-5, atol=2e-5)
    assert ("conv2d_by_blocked_bias(" in cpu.source) == (case == "affine")


def test_a_cached_caller_of_the_parallel_tiles_loads_in_a_fresh_process(tmp_path):
    """A kernel cached by Numba that calls conv2d_by_blocked (as a generated kernel does), loaded
    from that cache in a fresh process (the second run below), links to the threading layer's
    functions, which exist only once config.configure_once has started the layer: without that,
    "LLVM ERROR: Symbol not found: allocate_sched" (or a segfault). configure_once also bounds
    the OpenMP workers' spinning."""
    import os
    import subprocess
    import sys
    (tmp_path / "cached_caller.py").write_text(
        "import numpy as np\n"
        "from numba import njit\n"
        "from graphc.runtime.cpu import conv_kernels as ck\n"
        "@njit(cache=True)\n"
        "def kernel(x, w, out):\n"
        "    ck.conv2d_by_blocked(x, w, out, 1, 1, 0, 0, 0, 0, 1, 1, 1)\n")
    code = ("import os, sys, numpy as np\n"
            "from graphc.runtime.cpu.config import configure_once\n"
            "configure_once()\n"
            "assert os.environ.get('OMP_WAIT_POLICY') or os.environ['GOMP_SPINCOUNT'] == '100000'\n"
            "from graphc.runtime.cpu import conv_blocked as cb\n"
            f"sys.path.insert(0, {str(tmp_path)!r})\n"
            "from cached_caller import kernel\n"
            "x = np.ones((1, 3, 6, 6), np.float32); w = np.ones((4, 3, 3, 3), np.float32)\n"
            "out = np.empty((1, 4, 4, 4), np.float32)\n"
            "kernel(x, cb.pack_weights(w), out)\n"
            "assert (out == 27).all()\n")
    unset = ("NUMBA_THREADING_LAYER", "GOMP_SPINCOUNT", "NUMBA_CACHE_DIR")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=600)
