"""The CUDA kernels of convolution and pooling (runtime/cuda/conv_kernels.py, pool_kernels.py)
against the ops' numpy references (REGISTRY[op].ref, the interpreter's oracle), through the
launchers the code generator calls, with the attrs made by each op's own canonical():

    conv2d, conv2d_grad_input, conv2d_grad_weight   stride, asymmetric padding, "same",
                                                    dilation, groups (depthwise, multiplier 2)
    max_pool2d, _grad, _select, avg_pool2d, _grad    kernel, stride, asymmetric padding,
                                                    ceil_mode, count_include_pad

float64 to ~1e-12, float32 to ~1e-5. Max pooling is also checked on inputs full of ties, nans
and -inf (the arg-max must be the reference's first maximum, the gradient land where it does).
Outputs start as nan, so an element a kernel forgets to write fails the comparison. Shapes are
tiny: the CUDA simulator runs every thread in Python. Run with NUMBA_ENABLE_CUDASIM=1 off a GPU.
"""
import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda")

from graphc.core.types import TensorType              # noqa: E402
from graphc.ops.base import REGISTRY                  # noqa: E402
from graphc.runtime.cuda import conv_kernels, pool_kernels   # noqa: E402

LAUNCH = {**conv_kernels.LAUNCH, **pool_kernels.LAUNCH}
TOL = {np.float64: dict(rtol=1e-12, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-5)}


def build(op, inputs, **kwargs):
    """The node's canonical attrs and output shape, as the graph would store them."""
    types = [TensorType(a.shape, a.dtype) for a in inputs]
    attrs = REGISTRY[op].canonical(types, **kwargs)
    return attrs, REGISTRY[op].infer(types, **attrs).shape


def run_cuda(op, inputs, attrs, shape):
    """Launch op's kernel on device copies of inputs into a nan-filled output; the result."""
    out = cuda.to_device(np.full(shape, np.nan, inputs[0].dtype))
    LAUNCH[op](*[cuda.to_device(np.ascontiguousarray(a)) for a in inputs], out, **attrs)
    return out.copy_to_host()


def check(op, inputs, **kwargs):
    attrs, shape = build(op, inputs, **kwargs)
    got = run_cuda(op, inputs, attrs, shape)
    want = REGISTRY[op].ref(*inputs, **attrs)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, **TOL[inputs[0].dtype.type], err_msg=f"{op} {attrs}")
    return got


def rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def test_every_op_has_a_launcher():
    assert set(LAUNCH) == {"conv2d", "conv2d_grad_input", "conv2d_grad_weight", "max_pool2d",
                           "max_pool2d_grad", "max_pool2d_select", "avg_pool2d", "avg_pool2d_grad"}

# ---------------------------------------------------------------- convolution

CONV_CASES = [   # x shape, w shape, attrs
    ((2, 3, 6, 6), (4, 3, 3, 3), dict()),
    ((2, 2, 7, 6), (3, 2, 3, 2), dict(stride=(2, 1), padding=((1, 0), (2, 1)), dilation=(1, 2))),
    ((2, 4, 7, 5), (4, 2, 3, 2), dict(stride=2, padding=1, dilation=2, groups=2)),
    ((2, 3, 5, 6), (3, 1, 3, 3), dict(padding="same", groups=3)),                        # depthwise
    ((1, 2, 5, 5), (4, 1, 2, 2), dict(stride=2, padding=((0, 1), (1, 0)), groups=2)),    # multiplier 2
    ((2, 3, 5, 5), (2, 3, 1, 1), dict()),                                                # pointwise
    ((2, 2, 6, 7), (2, 2, 2, 3), dict(stride=(1, 3), padding="same")),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("xs, ws, kw", CONV_CASES)
def test_conv2d_and_its_gradients(xs, ws, kw, dtype):
    rng = np.random.default_rng(hash((xs, ws)) % 2**32)
    x, w = rand(rng, xs, dtype), rand(rng, ws, dtype)
    attrs, y_shape = build("conv2d", [x, w], **kw)
    check("conv2d", [x, w], **kw)
    g = rand(rng, y_shape, dtype)
    check("conv2d_grad_input", [g, w], input_size=xs[2:], **kw)
    check("conv2d_grad_weight", [x, g], kernel_size=ws[2:], **kw)


def test_conv2d_grad_input_reaches_only_read_inputs():
    """Stride 3 with a 1x1 kernel skips rows and columns: their gradient must be exactly 0."""
    rng = np.random.default_rng(1)
    g, w = rand(rng, (1, 2, 2, 2), np.float64), rand(rng, (2, 2, 1, 1), np.float64)
    dx = check("conv2d_grad_input", [g, w], input_size=(5, 6), stride=3)
    assert np.all(dx[:, :, [1, 2, 4], :] == 0) and np.all(dx[:, :, :, [1, 2, 4, 5]] == 0)


def test_conv2d_grad_weight_of_an_empty_batch_is_zero():
    x, g = np.zeros((0, 2, 5, 5)), np.zeros((0, 2, 3, 3))
    dw = check("conv2d_grad_weight", [x, g], kernel_size=(3, 3))
    assert dw.shape == (2, 2, 3, 3) and np.all(dw == 0)

# ---------------------------------------------------------------- pooling

POOL_CASES = [   # x shape, attrs
    ((2, 3, 6, 6), dict(kernel=2)),
    ((2, 2, 7, 6), dict(kernel=3, stride=2, padding=1, ceil_mode=True)),
    ((2, 2, 7, 5), dict(kernel=(3, 2), stride=(2, 1), padding=((1, 0), (0, 1)))),
    ((1, 3, 6, 7), dict(kernel=(2, 3), stride=(3, 2), padding=((1, 1), (0, 1)), ceil_mode=True)),
    ((2, 2, 5, 5), dict(kernel=3, stride=1, padding=1)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("xs, kw", POOL_CASES)
def test_max_pool2d_and_its_adjoints(xs, kw, dtype):
    rng = np.random.default_rng(hash(xs) % 2**32)
    x = rng.integers(0, 3, xs).astype(dtype)           # many ties: the first maximum must win
    _, y_shape = build("max_pool2d", [x], **kw)
    check("max_pool2d", [x], **kw)
    check("max_pool2d_grad", [x, rand(rng, y_shape, dtype)], **kw)
    check("max_pool2d_select", [x, rand(rng, xs, dtype)], **kw)


@pytest.mark.parametrize("kw", [POOL_CASES[1][1], POOL_CASES[3][1]])
def test_max_pool2d_nan_and_minus_inf(kw):
    """A nan is the maximum (the first nan); a window that is all -inf has its arg-max where
    np.argmax puts it, possibly in the padding, where its gradient is dropped."""
    rng = np.random.default_rng(7)
    xs = (1, 2, 7, 7)
    x = rng.integers(0, 3, xs).astype(np.float64)
    x[0, 0, rng.integers(0, 7, 6), rng.integers(0, 7, 6)] = np.nan
    x[0, 1] = -np.inf
    x[0, 1, 3, 2] = 1.0
    _, y_shape = build("max_pool2d", [x], **kw)
    y = check("max_pool2d", [x], **kw)
    assert np.isnan(y).any() and np.isneginf(y).any()
    check("max_pool2d_grad", [x, rand(rng, y_shape, np.float64)], **kw)
    check("max_pool2d_select", [x, rand(rng, xs, np.float64)], **kw)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("include_pad", [True, False])
@pytest.mark.parametrize("xs, kw", POOL_CASES[1:4])
def test_avg_pool2d_and_its_gradient(xs, kw, include_pad, dtype):
    rng = np.random.default_rng(hash(xs) % 2**32)
    x = rand(rng, xs, dtype)
    _, y_shape = build("avg_pool2d", [x], count_include_pad=include_pad, **kw)
    check("avg_pool2d", [x], count_include_pad=include_pad, **kw)
    check("avg_pool2d_grad", [rand(rng, y_shape, dtype)], input_size=xs[2:], count_include_pad=include_pad, **kw)


def test_avg_pool2d_plain_windows():
    rng = np.random.default_rng(3)
    x = rand(rng, (2, 3, 6, 6), np.float64)
    check("avg_pool2d", [x], kernel=2)
    check("avg_pool2d_grad", [rand(rng, (2, 3, 3, 3), np.float64)], input_size=(6, 6), kernel=2)
