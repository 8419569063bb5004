"""The CUDA shape kernels (runtime/cuda/shape_kernels.py) against each op's numpy reference.

Each case builds the op's canonical attrs and output types exactly as a graph node would
(op.canonical, op.infer), runs the launcher on device arrays shaped as the backend shapes
them (a 0-d value is a (1,) array), with outputs prefilled with garbage, and requires the
reference's values bit for bit (these are copies) and its dtype. Run under the simulator:
NUMBA_ENABLE_CUDASIM=1 .venv/bin/python -m pytest -q tests/test_cuda_shape.py
"""
import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda")

from graphc.core.types import TensorType, TupleType  # noqa: E402
from graphc.ops.base import REGISTRY  # noqa: E402
from graphc.runtime.cuda import launch  # noqa: E402
from graphc.runtime.cuda import shape_kernels as sk  # noqa: E402
from graphc.runtime.memory import kshape  # noqa: E402

if launch.available() is not None:
    pytest.skip(launch.available(), allow_module_level=True)

DTYPES = ["float32", "float64", "int32", "int64", "bool"]


def data(shape, dtype="float64", seed=0):
    """Distinct values (so a wrong index shows), of dtype."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape, dtype=np.int64))
    if dtype == "bool":
        return rng.integers(0, 2, n).astype(bool).reshape(shape)
    vals = rng.permutation(n) + 1 if n else np.zeros(0)
    return (vals * (0.5 if np.dtype(dtype).kind == "f" else 1)).astype(dtype).reshape(shape)


def garbage(shape, dtype):
    a = np.empty(kshape(shape), dtype)
    a[...] = True if np.dtype(dtype) == bool else 77
    return a


def check(name, arrays, **kwargs):
    """Run op `name` on arrays with the user attrs kwargs; compare with the reference."""
    op = REGISTRY[name]
    types = [TensorType(a.shape, a.dtype) for a in arrays]
    attrs = op.canonical(types, **kwargs)
    t = op.infer(types, **attrs)
    expected = op.ref(*arrays, **attrs)
    outs_t = t.types if isinstance(t, TupleType) else (t,)
    expected = expected if isinstance(expected, tuple) else (expected,)
    ins = [cuda.to_device(np.ascontiguousarray(a).reshape(kshape(a.shape))) for a in arrays]
    outs = [cuda.to_device(garbage(ot.shape, ot.dtype)) for ot in outs_t]
    sk.LAUNCH[name](*ins, *outs, **attrs)
    for ot, dev, want in zip(outs_t, outs, expected):
        got = dev.copy_to_host().reshape(ot.shape)
        want = np.asarray(want)
        assert got.dtype == want.dtype == ot.dtype, (name, got.dtype, want.dtype)
        assert got.shape == want.shape, (name, got.shape, want.shape)
        np.testing.assert_array_equal(got, want, err_msg=f"{name} {attrs}")
    return attrs


def test_every_launcher_is_a_registered_op_and_covers_the_shape_ops():
    assert set(sk.LAUNCH) <= set(REGISTRY)
    assert set(sk.LAUNCH) == {"transpose", "reshape", "expand_dims", "squeeze", "reshape_like",
                              "getitem", "broadcast_like", "concatenate", "pad", "unslice", "split"}


@pytest.mark.parametrize("shape,axes", [
    ((3, 4), None), ((2, 3, 4), (2, 0, 1)), ((2, 1, 3, 2), (-1, 0, 2, 1)),
    ((2, 2, 1, 3, 2, 2), (5, 3, 1, 0, 4, 2)), ((1, 2, 1, 2, 2, 1, 2), (6, 5, 4, 3, 2, 1, 0)),
    ((5,), (0,)), ((), ()),
])
def test_transpose(shape, axes):
    check("transpose", [data(shape)], axes=axes)


@pytest.mark.parametrize("dtype", DTYPES)
def test_transpose_and_reshape_every_dtype(dtype):
    x = data((2, 3, 2), dtype)
    check("transpose", [x], axes=(1, 2, 0))
    check("reshape", [x], shape=(3, -1))


@pytest.mark.parametrize("name,shape,kw", [
    ("reshape", (2, 3, 4), {"shape": (4, -1)}), ("reshape", (6,), {"shape": (1, 2, 1, 3, 1, 1)}),
    ("reshape", (), {"shape": (1, 1)}), ("reshape", (1, 1), {"shape": ()}), ("reshape", (0, 3), {"shape": (3, 0)}),
    ("expand_dims", (2, 3), {"axis": -1}), ("expand_dims", (2, 3), {"axis": (0, 2)}), ("expand_dims", (), {"axis": 0}),
    ("squeeze", (1, 3, 1), {"axis": None}), ("squeeze", (2, 1, 3), {"axis": -2}), ("squeeze", (1,), {"axis": 0}),
])
def test_reshape_family(name, shape, kw):
    check(name, [data(shape, "int64")], **kw)


def test_reshape_like_reads_only_the_shape_of_like():
    check("reshape_like", [data((2, 6), "float32"), data((3, 2, 2), "bool")])
    check("reshape_like", [data((1,), "int32"), data((), "float64")])


@pytest.mark.parametrize("shape,key", [
    ((5,), slice(1, 4)), ((7,), slice(None, None, -1)), ((7,), slice(5, 0, -2)), ((6,), -2),
    ((3, 4), (1, slice(None, None, 2))), ((3, 4), (slice(None), -1)), ((3, 4), (None, Ellipsis, None)),
    ((2, 3, 4), (Ellipsis, slice(3, None, -2))), ((2, 3, 4), (-1, None, slice(-2, None), 0)),
    ((2, 3, 4), (0, 1, 2)), ((4, 3), (slice(10, 20),)), ((4, 3), (slice(-10, 2, 1), slice(None, -10, -1))),
    ((2, 1, 3, 2, 2, 3), (1, slice(None), slice(None, None, -1), None, 0, slice(0, 3, 2))),
    ((), None), ((), (None, None)), ((), ()), ((), Ellipsis),
])
def test_getitem(shape, key):
    check("getitem", [data(shape, "float64")], index=key)


@pytest.mark.parametrize("dtype", DTYPES)
def test_getitem_every_dtype(dtype):
    check("getitem", [data((3, 4), dtype)], index=(slice(None, None, -1), slice(1, None, 2)))


@pytest.mark.parametrize("shape,key,gshape", [
    ((5,), slice(1, 4), (3,)), ((7,), slice(5, 0, -2), (3,)), ((7,), slice(5, 0, -2), ()),
    ((3, 4), (1, slice(None, None, -2)), (2,)), ((3, 4), (slice(None), -1), (1,)),
    ((3, 4), (None, Ellipsis, None), (1, 3, 1, 1)), ((3, 4), (None, Ellipsis, None), (4, 1)),
    ((2, 3, 4), (-1, None, slice(-2, None), 0), (1, 2)), ((2, 3, 4), (0, 1, 2), ()),
    ((4, 3), (slice(10, 20),), (0, 3)), ((), None, (1,)), ((), (), ()),
    ((2, 1, 3, 2, 2, 3), (1, slice(None), slice(None, None, -1), None, 0, slice(0, 3, 2)), (3, 1, 1, 1)),
])
def test_unslice(shape, key, gshape):
    """Zeros (the output starts as garbage) with g, broadcast to the slice, at like[key]."""
    check("unslice", [data(gshape, "float32", seed=1), data(shape, "int32")], index=key)


@pytest.mark.parametrize("dtype", DTYPES)
def test_unslice_every_dtype(dtype):
    check("unslice", [data((2, 2), dtype), data((3, 4), dtype)], index=(slice(None, None, -2), slice(1, None, 2)))


@pytest.mark.parametrize("xshape,like", [
    ((3,), (2, 3)), ((2, 1), (2, 3)), ((), (2, 2)), ((1,), (3,)), ((1, 3, 1), (2, 2, 3, 2)),
    ((2, 1, 2, 1, 1, 2), (2, 3, 2, 2, 1, 2)), ((), ()), ((0, 1), (0, 3)), ((2, 3), (2, 3)),
])
def test_broadcast_like(xshape, like):
    check("broadcast_like", [data(xshape, "int64"), data(like, "bool")])


@pytest.mark.parametrize("dtype", DTYPES)
def test_broadcast_like_every_dtype(dtype):
    check("broadcast_like", [data((3, 1), dtype), data((2, 3, 2), "float32")])


@pytest.mark.parametrize("shapes,axis", [
    ([(2,), (3,), (1,)], 0), ([(2, 3), (2, 1)], -1), ([(1, 3), (2, 3), (1, 3)], 0),
    ([(2, 1, 2), (2, 3, 2)], 1), ([(1, 2, 1, 2, 1, 2), (1, 2, 1, 2, 2, 2)], -2), ([(2, 0), (2, 3)], 1),
    ([(2, 2)], 0),
])
def test_concatenate(shapes, axis):
    check("concatenate", [data(s, "float64", seed=i) for i, s in enumerate(shapes)], axis=axis)


@pytest.mark.parametrize("dtypes", [["float32"] * 2, ["int32", "int32"], ["bool", "bool"], ["int64"] * 3,
                                    ["int32", "float32"], ["bool", "int64"], ["float32", "float64"]])
def test_concatenate_dtypes_including_mixed(dtypes):
    check("concatenate", [data((2, i + 1), d, seed=i) for i, d in enumerate(dtypes)], axis=1)


@pytest.mark.parametrize("shape,bounds,axis", [
    ((6,), ((0, 2), (2, 5), (5, 6)), 0), ((2, 5), ((0, 3), (3, 5)), -1), ((4, 3), ((0, 1), (1, 4)), 0),
    ((2, 4, 3), ((0, 2), (2, 4)), 1), ((1, 2, 1, 3, 1, 4), ((0, 1), (1, 3), (3, 4)), -1), ((3, 2), ((0, 3),), 0),
])
def test_split(shape, bounds, axis):
    check("split", [data(shape, "int32")], bounds=bounds, axis=axis)


@pytest.mark.parametrize("dtype", DTYPES)
def test_split_every_dtype(dtype):
    check("split", [data((2, 4), dtype)], bounds=((0, 1), (1, 4)), axis=1)


@pytest.mark.parametrize("shape,pw,value", [
    ((3,), 1, 0), ((3,), (2, 0), -1.5), ((2, 3), ((1, 0), (0, 2)), 7), ((2, 3), ((0, 0), (0, 0)), 1),
    ((2, 1, 2), (1, 2), 0.25), ((1, 2, 1, 2, 1, 2), ((0, 1), (1, 0), (0, 0), (2, 1), (1, 1), (0, 1)), 3),
    ((0, 2), ((1, 1), (1, 0)), 2), ((0,), 0, 1),
])
def test_pad(shape, pw, value):
    check("pad", [data(shape, "float64")], pad_width=pw, value=value)


@pytest.mark.parametrize("dtype,value", [("float32", -2.5), ("int32", -3), ("int64", 2 ** 40),
                                         ("bool", 1), ("bool", False), ("float64", float("inf"))])
def test_pad_every_dtype(dtype, value):
    check("pad", [data((2, 2), dtype)], pad_width=((1, 0), (1, 2)), value=value)


def test_plans_are_cached_and_simplified():
    """A repeated launch finds its device plan; a reshape is a 1-d copy, a transpose keeps
    only the axes it moves (size-1 axes and contiguous runs merged)."""
    x = data((2, 3, 4), "float64")
    check("transpose", [x], axes=(2, 0, 1))
    before = len(sk._PLANS)
    check("transpose", [x], axes=(2, 0, 1))
    assert len(sk._PLANS) == before
    plan, n = sk.copy_plan((4, 2, 3), (1, 12, 4), (6, 3, 1))
    assert n == 24 and list(plan) == [2, 0, 0, 4, 6, 1, 4, 6, 1]    # axes 1, 2 of the output merge
    plan, n = sk.copy_plan((1, 2, 1, 3), (6, 3, 3, 1), (6, 3, 3, 1))
    assert n == 6 and list(plan) == [1, 0, 0, 6, 1, 1]


def test_a_bigger_launch_than_one_grid_strides_through_every_element():
    """More elements than blocks(n) * THREADS threads: the grid-stride loop covers the rest."""
    n = launch.blocks(10 ** 9) * launch.THREADS + 37
    check("transpose", [data((n // 37 + 1, 37), "float32")], axes=(1, 0))
