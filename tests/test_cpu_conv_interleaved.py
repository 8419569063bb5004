"""The channel-interleaved convolution (runtime/cpu/conv_interleaved.py) against ops/conv.py's
reference: hand-picked shapes that reach each of its cases (stride phases, dilation, asymmetric
pads, groups, channels that do not fill the blocks of 16 inputs and 32 outputs, planes whose
positions are not a multiple of a tile's 12 or 14, a batch), random ones (hypothesis), its bias,
residual and relu, infs and nans; its input copy; the residual in conv_blocked's 1x1 kernel and
that kernel's tiles in runs; and the lowering: which kernel a convolution gets, and a residual
block's conv + batch norm + add + relu as one call of either."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.ops.conv import conv2d_ref, conv_out
from graphc.runtime.cpu import conv_blocked as cb
from graphc.runtime.cpu import conv_interleaved as ci
from graphc.runtime.cpu import conv_kernels as ck
from graphc.runtime.cpu.config import configure_once

configure_once()        # as a CPU function does before it compiles: the helpers need Numba's threads
rng = np.random.default_rng(1)

CASES = [  # (x shape, w shape, stride, ((t, b), (l, r)), dilation[, groups])
    ((1, 16, 12, 12), (32, 16, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)),      # one block each way
    ((2, 32, 9, 7), (64, 32, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)),        # a batch, 2 x 2 blocks
    ((1, 20, 11, 10), (40, 20, 3, 2), (2, 3), ((1, 0), (0, 2)), (1, 1)),      # unequal strides; 20, 40 pad blocks
    ((1, 16, 13, 12), (32, 16, 3, 3), (1, 1), ((2, 1), (0, 2)), (2, 3)),      # dilated
    ((1, 17, 14, 13), (33, 17, 3, 3), (3, 2), ((1, 1), (2, 0)), (2, 1)),      # strided and dilated, 17 and 33
    ((1, 64, 7, 7), (64, 32, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 2),     # 2 groups, a 7x7 plane (tiles of 14)
    ((1, 96, 27, 27), (256, 48, 5, 5), (1, 1), ((2, 2), (2, 2)), (1, 1), 2),  # AlexNet's conv2
    ((1, 64, 56, 56), (64, 64, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)),      # copies on the threads
    ((1, 32, 30, 30), (32, 32, 3, 3), (2, 2), ((0, 1), (0, 1)), (1, 1)),      # stride 2 on the threads
]


def run(x, w, stride, pads, dilation, groups=1, bias=None, relu=False, res=None):
    (pt, pb), (pl, pr) = pads
    oh, ow = (conv_out(s, k, st_, d, p) for s, k, st_, d, p in zip(x.shape[2:], w.shape[2:], stride, dilation, pads))
    out = np.full((x.shape[0], w.shape[0], oh, ow), np.nan, np.float32)     # every entry must be written
    b = np.zeros(w.shape[0], np.float32) if bias is None else bias
    ci.interleaved_conv2d_into(x, ci.pack_weights(w, groups), ci.pack_bias(b, groups), int(relu),
                               out if res is None else res, int(res is not None), out, *stride, pt, pb, pl, pr, *dilation)
    return out


def reference(x, w, stride, pads, dilation, groups=1):
    return conv2d_ref(x, w, stride=stride, padding=pads, dilation=dilation, groups=groups)


def close(got, want):
    """float32 sums in another order than the float64 reference's (1200 terms at 48 channels of
    5x5): the tolerance is relative to the largest output."""
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6 * max(1.0, np.abs(want).max()))


@pytest.mark.parametrize("case", CASES)
def test_interleaved_matches_the_reference(case):
    xs, ws, *attrs = case
    x, w = rng.normal(size=xs).astype(np.float32), rng.normal(size=ws).astype(np.float32)
    attrs += [1] * (4 - len(attrs))
    close(run(x, w, *attrs), reference(x, w, *attrs))


@pytest.mark.parametrize("case", CASES[:3] + CASES[5:6])
def test_its_bias_residual_and_relu_are_the_epilogues(case):
    xs, ws, *attrs = case
    attrs += [1] * (4 - len(attrs))
    x, w = rng.normal(size=xs).astype(np.float32), rng.normal(size=ws).astype(np.float32)
    want = reference(x, w, *attrs)
    bias, res = rng.normal(size=ws[0]).astype(np.float32), rng.normal(size=want.shape).astype(np.float32)
    close(run(x, w, *attrs, bias=bias, relu=True), np.maximum(want + bias.reshape(1, -1, 1, 1), 0))
    close(run(x, w, *attrs, bias=bias, relu=True, res=res.copy()), np.maximum(want + bias.reshape(1, -1, 1, 1) + res, 0))
    close(run(x, w, *attrs, res=res.copy()), want + res)


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_interleaved_matches_the_reference_on_random_shapes(data):
    ints = lambda lo, hi: data.draw(st.integers(lo, hi))       # noqa: E731
    groups = ints(1, 2)
    n, c, o = ints(1, 2), groups * ints(16, 36), groups * ints(32, 70)
    kh, kw, sh, sw, dh, dw = ints(1, 4), ints(2, 4), ints(1, 3), ints(1, 3), ints(1, 2), ints(1, 2)
    pads = ((ints(0, 2), ints(0, 2)), (ints(0, 2), ints(0, 2)))
    h = ints(max(1, (kh - 1) * dh + 1 - sum(pads[0])), 11)
    wd = ints(max(1, (kw - 1) * dw + 1 - sum(pads[1])), 11)
    x = rng.normal(size=(n, c, h, wd)).astype(np.float32)
    w = rng.normal(size=(o, c // groups, kh, kw)).astype(np.float32)
    close(run(x, w, (sh, sw), pads, (dh, dw), groups), reference(x, w, (sh, sw), pads, (dh, dw), groups))


def test_interleaved_keeps_the_references_infs_and_nans():
    x = rng.normal(size=(1, 16, 9, 8)).astype(np.float32)
    w = rng.normal(size=(32, 16, 3, 3)).astype(np.float32)
    x[0, 1, 2, 3], x[0, 13, 7, 0], w[2, 4, 1, 1] = np.inf, np.nan, -np.inf
    args = ((1, 1), ((1, 1), (1, 1)), (1, 1))
    got, want = run(x, w, *args, relu=True), np.maximum(reference(x, w, *args), 0)   # relu keeps a nan
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-5, atol=1e-5)


def test_pack_weights_puts_each_weight_where_the_micro_kernel_reads_it():
    w = rng.normal(size=(40, 20, 2, 3)).astype(np.float32)
    p = ci.pack_weights(w)                                # (groups, OB, CB, kh, kw, 16, 32)
    assert p.shape == (1, 2, 2, 2, 3, 16, 32) and p.dtype == np.float32
    assert p[0, 1, 1, 0, 2, 3, 5] == w[32 + 5, 16 + 3, 0, 2] and p[0, 0, 0, 1, 1, 7, 31] == w[31, 7, 1, 1]
    assert not p[0, 1, :, :, :, :, 8:].any() and not p[0, :, 1, :, :, 4:].any()   # missing channels: zeros
    g = ci.pack_weights(w[:, :10], groups=2)              # 2 groups of 20 outputs from 10 inputs
    assert g.shape == (2, 1, 1, 2, 3, 16, 32) and g[1, 0, 0, 1, 0, 9, 19] == w[20 + 19, 9, 1, 0]
    assert list(ci.pack_bias(np.arange(40), 2)[[0, 19, 20, 32, 51]]) == [0, 19, 0, 20, 39]


@pytest.mark.parametrize("c, groups, h, w, sh, sw, pt, pb, pl, pr", [
    (16, 1, 5, 7, 1, 1, 1, 1, 1, 1), (40, 2, 6, 9, 2, 2, 1, 0, 1, 2), (33, 1, 7, 8, 3, 2, 0, 2, 2, 0),
    (64, 1, 30, 30, 2, 2, 0, 1, 0, 1),      # on the threads (from COPY_PARALLEL_MIN entries)
    (32, 1, 8, 5, 1, 3, 0, 0, 4, 1)])       # a left pad wider than the stride
def test_the_input_copy_is_the_padded_phases_in_blocks_of_16(c, groups, h, w, sh, sw, pt, pb, pl, pr):
    """_interleave's entry (g, b, a, e, y, z, lane) = padded x[g * C / groups + b * 16 + lane,
    y * sh + a, z * sw + e], zeros past a group's channels and the planes, then the slack."""
    x = rng.normal(size=(c, h, w)).astype(np.float32)
    cg, cb_n = c // groups, -(-(c // groups) // 16)
    hq, wq = -(-(h + pt + pb) // sh), -(-(w + pl + pr) // sw)
    padded = np.zeros((groups, cb_n * 16, hq * sh, wq * sw), np.float32)
    padded[:, :cg, pt:pt + h, pl:pl + w] = x.reshape(groups, cg, h, w)
    want = padded.reshape(groups, cb_n, 16, hq, sh, wq, sw).transpose(0, 1, 4, 6, 3, 5, 2)
    got = ci._interleave(x, cb_n, groups, sh, sw, pt, pl, hq, wq, 7)
    assert got.size == want.size + 7 and not got[want.size:].any()
    np.testing.assert_array_equal(got[:want.size].reshape(want.shape), want)


def test_which_convolutions_it_takes():
    assert ci.fits(64, 64, 3, 3, 56 * 56) and ci.fits(128, 32, 3, 3, 7 * 7) and ci.fits(48, 128, 5, 5, 27 * 27)
    assert not ci.fits(64, 256, 1, 1, 56 * 56)            # 1x1: conv_blocked reads its input in place
    assert not ci.fits(3, 64, 7, 7, 112 * 112)            # a stem's 3 channels would be 16
    assert not ci.fits(20, 64, 3, 3, 100) and not ci.fits(64, 40, 3, 3, 100)   # blocks 1/4-1/3 padding
    assert not ci.fits(64, 64, 3, 3, 224 * 224) and not ci.fits(64, 64, 3, 3)  # a large or unknown plane


def test_the_tiles_are_split_into_chunks_none_of_them_empty():
    """conv_blocked.split_strips, both kernels' split of an image's tiles over the threads: 19
    strips of one channel block in chunks of 2 had left 6 of 16 chunks empty (a thread idle)."""
    for strips in range(1, 60):
        for ob in (1, 2, 5, 37):
            per, chunks = cb.split_strips(strips, ob)
            assert (chunks - 1) * per < strips <= chunks * per        # every chunk has strips
            assert ob * chunks >= min(cb.JOBS, ob * strips) // 2       # and enough jobs to share
    assert cb.split_strips(19, 1) == (2, 10)


def test_conv_blocked_1x1_tiles_split_into_runs_cover_each_tile_once():
    """A 1x1 kernel's tiles run strip by strip in JOBS runs (conv_blocked._tiles): 5 blocks of 8
    channels x 7 strips of 48 = 35 tiles (14 x 32: 3 blocks x 11 strips = 33) in 16 runs."""
    x = rng.normal(size=(1, 24, 17, 19)).astype(np.float32)
    w = rng.normal(size=(40, 24, 1, 1)).astype(np.float32)
    for rows in (cb.MR, cb.MR_POINTWISE):
        out = np.full((1, 40, 17, 19), np.nan, np.float32)          # a tile left out stays nan
        cb.blocked_conv2d_bias_into(x, cb.pack_weights(w, 1, rows), cb.pack_bias(np.zeros(40), 1, rows), 0, out, 0,
                                    out, 1, 1, 0, 0, 0, 0, 1, 1)
        close(out, reference(x, w, (1, 1), ((0, 0), (0, 0)), (1, 1)))


def test_conv_blocked_adds_a_residual_where_it_writes_in_place():
    x = rng.normal(size=(2, 24, 7, 9)).astype(np.float32)
    w = rng.normal(size=(30, 24, 1, 1)).astype(np.float32)
    res = rng.normal(size=(2, 30, 7, 9)).astype(np.float32)
    bias = rng.normal(size=30).astype(np.float32)
    for rows in (cb.MR, cb.MR_POINTWISE):
        wpk = cb.pack_weights(w, 1, rows)
        out = np.full(res.shape, np.nan, np.float32)
        cb.blocked_conv2d_bias_into(x, wpk, cb.pack_bias(bias, 1, rows), 1, res, 1, out, 1, 1, 0, 0, 0, 0, 1, 1)
        want = np.maximum(reference(x, w, (1, 1), ((0, 0), (0, 0)), (1, 1)) + bias.reshape(1, -1, 1, 1) + res, 0)
        close(out, want)
    w3 = cb.pack_weights(rng.normal(size=(30, 24, 3, 3)).astype(np.float32))
    with pytest.raises(ValueError, match="residual"):     # a 3x3 kernel: computed at a wider pitch, no residual
        cb.blocked_conv2d_bias_into(x, w3, cb.pack_bias(bias, 1, cb.MR), 1, res, 1, out, 1, 1, 1, 1, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="residual's shape"):
        ck.conv2d_by_interleaved_residual(x, ci.pack_weights(rng.normal(size=(32, 24, 3, 3)).astype(np.float32)),
                                          np.zeros(32, np.float32), 0, res, np.empty((2, 32, 7, 9), np.float32),
                                          1, 1, 1, 1, 1, 1, 1, 1, 1)


def _residual_block(shortcut_bn):
    """ResNet's block end as imported (batch norms folded into the weights and a bias):
    relu(conv(h) + b + s), s the block's input or conv'(x) + b' (then one of the two convs is
    the kernel's, the other and its bias the residual)."""
    per = lambda: gc.constant(rng.normal(size=(1, 32, 1, 1)).astype(np.float32))   # noqa: E731
    with gc.Graph():
        x = gc.placeholder((1, 32, 10, 9), gc.float32, name="x")
        w3 = gc.constant(rng.normal(size=(32, 32, 3, 3)).astype(np.float32) * 0.1)
        w1 = gc.constant(rng.normal(size=(32, 32, 1, 1)).astype(np.float32) * 0.2)
        h = gc.relu(gc.conv2d(x, w3, padding="same") * per() + per())              # interleaved
        s = gc.conv2d(x, gc.constant(rng.normal(size=(32, 32, 1, 1)).astype(np.float32))) + per() \
            if shortcut_bn else x                                                   # (a batch norm folded at import)
        a = gc.relu((gc.conv2d(h, w1) + per()) + s)                                # blocked 1x1 + residual
        b = gc.relu(gc.conv2d(a, w3, padding="same") * per() + per() + a)          # interleaved + residual
        return gc.function([x], [a, b], backend="cpu"), gc.function([x], [a, b], backend="interp")


@pytest.mark.parametrize("shortcut_bn", [False, True])
def test_a_residual_blocks_conv_batch_norm_add_and_relu_are_one_call(shortcut_bn):
    cpu, interp = _residual_block(shortcut_bn)
    x = rng.normal(size=(1, 32, 10, 9)).astype(np.float32)
    for u, v in zip(cpu(x), interp(x)):
        np.testing.assert_allclose(u, v, rtol=2e-5, atol=2e-5)
    src = cpu.source
    assert src.count("conv2d_by_blocked_residual(") == 1 and src.count("conv2d_by_interleaved_residual(") == 1
    assert src.count("conv2d_by_interleaved_bias(") == 1 and "def conv2d_" not in src   # no generic epilogue
