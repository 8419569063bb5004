"""fuse_conv_epilogue (passes/epilogue.py): Before/Expected on graphs, then the fused node on
every backend against the unoptimized interpreter, with several images, a residual add, a
multi-output epilogue (relu and its mask, as a training step has them), float64 and a conv
whose output is also needed elsewhere (not fused)."""
import numpy as np
import pytest

import graphc as gc
from graphc.core.graph import ancestors
from graphc.core.region import Param, Ref
from graphc.ops.fused import producer
from graphc.passes.epilogue import fuse_conv_epilogue
from graphc.passes.fusion import fuse_elementwise
from graphc.passes.pipeline import run_pipeline

RNG = np.random.default_rng(0)


def arr(*shape, dtype=np.float32):
    return RNG.normal(size=shape).astype(dtype)


def convs_and_groups(roots):
    nodes = ancestors(list(roots))
    return [n for n in nodes if n.op.name == "conv2d"], [n for n in nodes if producer(n) is not None]


def test_conv_joins_its_bias_relu_group():
    with gc.Graph():
        x = gc.placeholder((2, 3, 6, 6), name="x")
        w, b = gc.constant(arr(4, 3, 3, 3)), gc.constant(arr(1, 4, 1, 1))
        c = gc.conv2d(x, w, padding=1)
        grouped = fuse_elementwise([gc.relu(c + b)])
        (after,) = fuse_conv_epilogue(grouped)
        assert after.op.name == "fused" and after.inputs == (x, w, b)
        steps = after.attrs["region"].steps
        assert [s.op.name for s in steps] == ["conv2d", "add", "relu"]
        assert steps[0].operands == (Param(0), Param(1)) and steps[0].kwargs == dict(c.attrs)
        assert steps[1].operands == (Ref(0), Param(2)) and steps[2].operands == (Ref(1),)
        assert after.attrs["region"].outputs == (2,) and after.type == grouped[0].type


def test_a_single_elementwise_reader_and_a_residual_that_is_the_conv_input():
    with gc.Graph():
        x = gc.placeholder((1, 4, 5, 5), name="x")
        w = gc.constant(arr(4, 4, 3, 3))
        (after,) = fuse_conv_epilogue([gc.conv2d(x, w, padding="same") + x])
        assert after.inputs == (x, w)         # x is read by the conv and by the add: one param
        steps = after.attrs["region"].steps
        assert steps[1].operands == (Ref(0), Param(0))


def test_not_fused_when_the_conv_is_read_twice_is_a_root_or_broadcast():
    with gc.Graph():
        x = gc.placeholder((1, 3, 6, 6), name="x")
        w = gc.constant(arr(2, 3, 3, 3))
        c = gc.conv2d(x, w)
        two = [gc.relu(c), gc.exp(c)]
        assert fuse_conv_epilogue(two) == two
        root = [c, gc.relu(c)]
        assert fuse_conv_epilogue(root) == root
        wide = [gc.conv2d(x, w) + gc.placeholder((3, 2, 4, 4), name="z")]  # broadcast to a larger domain
        assert fuse_conv_epilogue(wide) == wide
        grad = [gc.relu(gc.conv2d_grad_input(gc.placeholder((1, 2, 4, 4), name="g"), w, input_size=(6, 6)))]
        assert fuse_conv_epilogue(grad) == grad


def test_a_group_with_a_producer_takes_no_second_one_and_reductions_do_not_take_it():
    with gc.Graph():
        x = gc.placeholder((1, 3, 6, 6), name="x")
        w1, w2 = gc.constant(arr(3, 3, 1, 1)), gc.constant(arr(3, 3, 1, 1))
        after = run_pipeline([gc.relu(gc.conv2d(gc.conv2d(x, w1), w2))])
        convs, groups = convs_and_groups(after)
        assert len(groups) == 1 and len(convs) == 1     # the inner conv stays a conv of its own
        assert groups[0].inputs[0] is convs[0]
        assert run_pipeline(after) == after             # running the pipeline again changes nothing
        summed = run_pipeline([gc.sum(gc.relu(gc.conv2d(x, w1)))])
        convs, groups = convs_and_groups(summed)
        assert not groups and len(convs) == 1           # relu went into the sum's loop instead
        assert summed[0].attrs.get("reduce") is not None


def _program(dtype):
    x = gc.placeholder((None, 3, 7, 7), dtype, name="x")
    w1, b1 = gc.constant(arr(4, 3, 3, 3, dtype=dtype)), gc.constant(arr(1, 4, 1, 1, dtype=dtype))
    w2 = gc.constant(arr(4, 2, 3, 3, dtype=dtype))
    h = gc.relu(gc.conv2d(x, w1, padding="same") + b1)
    r = gc.conv2d(h, w2, padding=((1, 0), (0, 1)), stride=2, groups=2)   # strided, grouped, asymmetric
    mask = r > 0                                       # a second output of the epilogue, of another dtype
    y = gc.tanh(gc.conv2d(h, gc.constant(arr(4, 4, 1, 1, dtype=dtype))) + h)   # a 1x1 conv, a residual add
    return x, [y, gc.where(mask, r, 0.1 * r), gc.cast(mask, "int32")]


@pytest.fixture(scope="module", params=["float32", "float64"])
def programs(request):
    with gc.Graph():
        x, outs = _program(request.param)
        return request.param, x, outs, {b: gc.function([x], outs, backend=b) for b in ("interp", "cpu", "cuda")}


@pytest.mark.parametrize("backend", ["cpu", "cuda"])
@pytest.mark.parametrize("batch", [1, 3])
def test_fused_conv_epilogues_match_the_interpreter(programs, backend, batch):
    dtype, x, outs, fns = programs
    fn = fns[backend]
    groups = [n for n in fn.nodes if producer(n) is not None]
    assert len(groups) == 3, [n.op.name for n in fn.nodes]
    xv = arr(batch, 3, 7, 7, dtype=dtype)
    want = fns["interp"](xv)
    got = fn(xv)
    tol = 2e-5 if dtype == "float32" else 1e-12
    for g, e in zip(got, want):
        assert g.dtype == e.dtype and g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=tol, atol=tol)


def test_the_cpu_kernel_runs_the_epilogue_per_image():
    with gc.Graph():
        x, outs = _program("float32")
        fn = gc.function([x], outs[:1], backend="cpu")
    fn(arr(2, 3, 7, 7))
    src = fn.source
    # 3 -> 4 channels, 3x3, a constant weight: the blocked kernel (conv_kernels.py), weight packed
    assert "conv2d_by_blocked(a0[i0:i0 + 1], w_packed, acc," in src and "fused[conv2d, add, relu]" in src
    assert "conv2d_by_blocked(in0" not in src  # no convolution of the whole batch is stored apart


def test_the_profile_counts_a_fused_convolutions_multiply_adds():
    """gc.report's flops of a convolution, alone or fused with its epilogue: 2 per weight of a
    group per output element (graphc/view/profile.py cost)."""
    from graphc.view.profile import cost
    with gc.Graph():
        x, outs = _program("float32")
        fn = gc.function([x], outs[:1], backend="cpu")
    types = fn._specialize({x: np.zeros((2, 3, 7, 7), np.float32)})
    flops = {n.attrs["region"].op_names()[-1]: cost(n, types, lambda m: False)[1]
             for n in fn.nodes if producer(n) is not None}
    assert flops["relu"] >= 2 * (2 * 4 * 7 * 7) * (3 * 3 * 3)      # conv 3 -> 4, 3x3, on 2 images
    assert flops["tanh"] >= 2 * (2 * 4 * 7 * 7) * 4               # the 1x1 conv 4 -> 4
