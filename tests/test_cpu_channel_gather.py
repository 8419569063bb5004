"""A channel shuffle read by depthwise convolutions is never copied (runtime/cpu/channel_gather.py):
the convolution reads the source's planes in the shuffled order. Checked against the
interpreter, with the fallbacks (a reader that needs the whole value, an output)."""
import numpy as np
import pytest

import graphc as gc
from graphc.ops.conv import conv2d_ref

rng = np.random.default_rng(7)


def _shuffled(x, groups):
    n, c, h, w = x.type.shape
    return gc.reshape(gc.transpose(gc.reshape(x, (n, groups, c // groups, h, w)), (0, 2, 1, 3, 4)), (n, c, h, w))


def _check(cpu, interp, xv):
    got, want = cpu(xv), interp(xv)
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("hw, stride", [(6, 1), (24, 2)])     # serial; on the threads (24 x 24 x 32)
def test_a_shuffle_before_a_depthwise_conv_is_read_in_place(hw, stride):
    with gc.Graph():
        x = gc.placeholder((1, 32, hw, hw), gc.float32, name="x")
        w = gc.constant(rng.normal(size=(32, 1, 3, 3)).astype(np.float32))
        s = gc.constant(rng.normal(size=(1, 32, 1, 1)).astype(np.float32))
        y = gc.conv2d(_shuffled(gc.relu(x), 4), w, stride=stride, padding="same", groups=32) * s + s
        cpu, interp = gc.function([x], [y], backend="cpu"), gc.function([x], [y], backend="interp")
    _check(cpu, interp, rng.normal(size=(1, 32, hw, hw)).astype(np.float32))
    assert ("conv2d_by_shuffled_depthwise_parallel(" if stride == 2 else "conv2d_by_shuffled_depthwise(") in cpu.source
    assert ".transpose(" not in cpu.source and "gather_planes(" not in cpu.source


def test_readers_that_need_the_whole_value_get_a_copy():
    """A depthwise conv with a variable weight (no folded kernel) reads the gather whole; a
    shuffle that is also an output, or also read by an add, is made as before."""
    with gc.Graph():
        x = gc.placeholder((2, 8, 5, 5), gc.float32, name="x")
        wv = gc.variable(rng.normal(size=(8, 1, 3, 3)).astype(np.float32), name="w")
        wc = gc.constant(rng.normal(size=(8, 1, 3, 3)).astype(np.float32))
        t = _shuffled(x * 2.0, 2)
        plain = gc.conv2d(t, wv, padding="same", groups=8)
        both = gc.conv2d(t, wc, padding="same", groups=8)
        cpu = gc.function([x], [plain, both], backend="cpu")
        interp = gc.function([x], [plain, both], backend="interp")
        u = _shuffled(x + 1.0, 4)
        out_too = gc.function([x], [gc.conv2d(u, wc, groups=8), u], backend="cpu")
        out_ref = gc.function([x], [gc.conv2d(u, wc, groups=8), u], backend="interp")
    xv = rng.normal(size=(2, 8, 5, 5)).astype(np.float32)
    _check(cpu, interp, xv)
    assert cpu.source.count("gather_planes(") == 1            # once, for both readers
    _check(out_too, out_ref, xv)
    assert "gather_planes(" not in out_too.source and "shuffled_depthwise(" not in out_too.source


def test_only_whole_channel_gathers_are_found():
    """A reshape/transpose/reshape that moves values inside planes (H and W swapped) or that
    feeds a dense conv is left alone."""
    with gc.Graph():
        x = gc.placeholder((1, 4, 6, 6), gc.float32, name="x")
        w = gc.constant(rng.normal(size=(4, 1, 3, 3)).astype(np.float32))
        mixed = gc.reshape(gc.transpose(gc.reshape(x, (1, 4, 6, 6, 1)), (0, 1, 3, 2, 4)), (1, 4, 6, 6))
        dense = gc.conv2d(_shuffled(x, 2), gc.constant(rng.normal(size=(4, 4, 3, 3)).astype(np.float32)))
        outs = [gc.conv2d(mixed * 1.5, w, groups=4) * 2.0, dense]
        cpu, interp = gc.function([x], outs, backend="cpu"), gc.function([x], outs, backend="interp")
    _check(cpu, interp, rng.normal(size=(1, 4, 6, 6)).astype(np.float32))
    assert "shuffled_depthwise(" not in cpu.source and "gather_planes(" not in cpu.source


def test_the_shuffled_kernel_reads_the_planes_it_is_given():
    """conv_depthwise.shuffled_depthwise_into = the reference on x[:, planes] (planes repeated,
    out of order), with a bias and relu; the parallel version gives the same values."""
    from graphc.runtime.cpu.config import configure_once
    from graphc.runtime.cpu.conv_kernels import conv2d_by_shuffled_depthwise
    from graphc.runtime.cpu.parallel_planes import conv2d_by_shuffled_depthwise_parallel
    configure_once()
    x = rng.normal(size=(2, 5, 7, 6)).astype(np.float32)
    planes = np.array([4, 0, 0, 3, 1, 2, 4], np.int64)
    w = rng.normal(size=(14, 1, 3, 3)).astype(np.float32)            # channel multiplier 2
    bias = rng.normal(size=14).astype(np.float32)
    attrs = dict(stride=(2, 1), padding=((1, 1), (0, 1)), dilation=(1, 1), groups=7)
    want = np.maximum(conv2d_ref(x[:, planes], w, **attrs) + bias[None, :, None, None], 0)
    args = (2, 1, 1, 1, 0, 1, 1, 1, 7)
    got, par = np.empty_like(want), np.empty_like(want)
    conv2d_by_shuffled_depthwise(x, planes, w, bias, 1, got, *args)
    conv2d_by_shuffled_depthwise_parallel(x, planes, w, bias, 1, par, *args)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(par, got)
