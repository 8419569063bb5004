"""Every bad input gives a graphc error (a GraphError subclass) whose message
names the op, the shapes or dtypes involved, and the user's own file:line.

The line is captured with `next_line()` right above the offending statement,
so each test checks that the error points at *this* file and that line.
"""
import inspect
import os

import numpy as np
import pytest

import graphc as gc

BASENAME = os.path.basename(__file__)
BACKEND = "interp"


def next_line():
    """The line number just after the caller's line."""
    return inspect.currentframe().f_back.f_lineno + 1


def at(line):
    return f"{BASENAME}:{line}"


def check_message(info, *fragments, lines=()):
    msg = str(info.value)
    assert isinstance(info.value, gc.GraphError), f"raw {type(info.value).__name__}: {msg}"
    for f in fragments:
        assert f in msg, f"{f!r} not in message: {msg}"
    for line in lines:
        assert at(line) in msg, f"{at(line)!r} not in message: {msg}"
    return msg


def f32(*shape):
    return np.ones(shape, np.float32)


# ------------------------------------------------------------ the error classes


def test_error_hierarchy():
    assert issubclass(gc.ShapeError, gc.GraphError) and issubclass(gc.ShapeError, ValueError)
    assert issubclass(gc.DTypeError, gc.GraphError) and issubclass(gc.DTypeError, TypeError)
    assert issubclass(gc.ArgumentError, gc.GraphError) and issubclass(gc.ArgumentError, TypeError)
    assert issubclass(gc.AxisError, gc.GraphError) and issubclass(gc.AxisError, ValueError)
    for cls in (gc.FeedError, gc.ForeignNodeError, gc.GraphvizNotFound):
        assert issubclass(cls, gc.GraphError)


# ------------------------------------------------------------ shapes at build time


def test_binary_op_incompatible_shapes():
    with gc.Graph():
        a = gc.placeholder((2, 3), name="a")
        b = gc.placeholder((4,), name="b")
        with pytest.raises(gc.ShapeError) as info:
            line = next_line()
            a + b
    check_message(info, "add", "(2, 3)", "(4,)", "float32[2, 3]", "float32[4]", lines=[line])


@pytest.mark.parametrize("op", ["subtract", "multiply", "divide", "maximum", "less", "power"])
def test_other_binary_ops_incompatible_shapes(op):
    with gc.Graph():
        a = gc.placeholder((5, 2), name="a")
        b = gc.placeholder((3,), name="b")
        with pytest.raises(gc.ShapeError) as info:
            line = next_line()
            getattr(gc, op)(a, b)
    check_message(info, op, "(5, 2)", "(3,)", lines=[line])


def test_binary_op_shape_error_is_a_value_error():
    with gc.Graph():
        a = gc.placeholder((2, 3))
        with pytest.raises(ValueError):
            a * gc.placeholder((3, 2))


def test_matmul_inner_dims():
    with gc.Graph():
        a = gc.placeholder((2, 3))
        b = gc.placeholder((4, 5))
        with pytest.raises(gc.ShapeError) as info:
            line = next_line()
            a @ b
    check_message(info, "matmul", "(2, 3)", "(4, 5)", "3 != 4", lines=[line])


def test_matmul_scalar_operand():
    with gc.Graph():
        a = gc.placeholder((2, 3))
        s = gc.placeholder(())
        with pytest.raises(gc.ShapeError) as info:
            line = next_line()
            gc.matmul(a, s)
    check_message(info, "matmul", "float32[]", lines=[line])


def test_matmul_batch_dims():
    with gc.Graph():
        a = gc.placeholder((2, 3, 4))
        b = gc.placeholder((5, 4, 6))
        with pytest.raises(gc.ShapeError) as info:
            line = next_line()
            a @ b
    check_message(info, "matmul", "(2,)", "(5,)", lines=[line])


def test_concatenate_mismatch_off_axis():
    with gc.Graph():
        a = gc.placeholder((2, 3))
        b = gc.placeholder((2, 4))
        with pytest.raises(gc.ShapeError) as info:
            line = next_line()
            gc.concatenate([a, b], axis=0)
    check_message(info, "concatenate", "(2, 3)", "(2, 4)", lines=[line])


def test_concatenate_rank_mismatch():
    with gc.Graph():
        a = gc.placeholder((2, 3))
        b = gc.placeholder((3,))
        with pytest.raises(gc.ShapeError) as info:
            line = next_line()
            gc.concatenate([a, b])
    check_message(info, "concatenate", "(2, 3)", "(3,)", "rank", lines=[line])


def test_concatenate_nothing():
    with gc.Graph():
        with pytest.raises(gc.ShapeError) as info:
            line = next_line()
            gc.concatenate([])
    check_message(info, "concatenate", lines=[line])


def test_reshape_wrong_size():
    with gc.Graph():
        a = gc.placeholder((2, 3))
        with pytest.raises(gc.ShapeError) as info:
            line = next_line()
            gc.reshape(a, (4, 2))
    check_message(info, "reshape", "(2, 3)", "(4, 2)", "6 elements", "8 elements", lines=[line])


def test_reshape_minus_one_does_not_divide():
    with gc.Graph():
        a = gc.placeholder((2, 3))
        with pytest.raises(gc.ShapeError) as info:
            line = next_line()
            gc.reshape(a, (4, -1))
    check_message(info, "reshape", "(2, 3)", lines=[line])


def test_reshape_two_minus_ones():
    with gc.Graph():
        a = gc.placeholder((2, 3))
        with pytest.raises(gc.ShapeError) as info:
            line = next_line()
            gc.reshape(a, (-1, -1))
    check_message(info, "reshape", "-1", lines=[line])


def test_broadcast_to_incompatible():
    with gc.Graph():
        a = gc.placeholder((2, 3))
        with pytest.raises(gc.ShapeError) as info:
            line = next_line()
            gc.broadcast_to(a, (3, 3))
    check_message(info, "broadcast_to", "(2, 3)", "(3, 3)", lines=[line])


def test_broadcast_to_fewer_dims():
    with gc.Graph():
        a = gc.placeholder((2, 3))
        with pytest.raises(gc.ShapeError) as info:
            line = next_line()
            gc.broadcast_to(a, (3,))
    check_message(info, "broadcast_to", "(2, 3)", "(3,)", lines=[line])


def test_where_shapes():
    with gc.Graph():
        a = gc.placeholder((2, 3))
        b = gc.placeholder((4,))
        with pytest.raises(gc.ShapeError) as info:
            line = next_line()
            gc.where(a > 0, a, b)
    check_message(info, "where", "(2, 3)", "(4,)", lines=[line])


def test_squeeze_non_unit_axis():
    with gc.Graph():
        a = gc.placeholder((2, 3))
        with pytest.raises(gc.ShapeError) as info:
            line = next_line()
            gc.squeeze(a, 0)
    check_message(info, "squeeze", "(2, 3)", lines=[line])


def test_index_out_of_range():
    with gc.Graph():
        a = gc.placeholder((2, 3))
        with pytest.raises(gc.ShapeError) as info:
            line = next_line()
            a[2]
    check_message(info, "getitem", "index 2", "size 2", lines=[line])


def test_too_many_indices():
    with gc.Graph():
        a = gc.placeholder((2, 3))
        with pytest.raises(gc.ShapeError) as info:
            line = next_line()
            a[0, 0, 0]
    check_message(info, "getitem", "(2, 3)", lines=[line])


# ------------------------------------------------------------ axes


AXIS_CASES = {
    "sum": lambda x: gc.sum(x, axis=2),
    "mean": lambda x: gc.mean(x, axis=-3),
    "max": lambda x: gc.max(x, axis=(0, 5)),
    "argmax": lambda x: gc.argmax(x, axis=2),
    "softmax": lambda x: gc.softmax(x, axis=2),
    "log_softmax": lambda x: gc.log_softmax(x, axis=-3),
    "concatenate": lambda x: gc.concatenate([x, x], axis=2),
    "expand_dims": lambda x: gc.expand_dims(x, 3),
    "transpose": lambda x: gc.transpose(x, (0, 2)),
    "squeeze": lambda x: gc.squeeze(x, 2),
}


@pytest.mark.parametrize("op", sorted(AXIS_CASES))
def test_axis_out_of_range(op):
    build = AXIS_CASES[op]
    with gc.Graph():
        x = gc.placeholder((2, 3))
        with pytest.raises(gc.AxisError) as info:
            build(x)
    # the innermost frame outside graphc is the lambda in AXIS_CASES
    msg = check_message(info, op, "float32[2, 3]", "out of range", lines=[build.__code__.co_firstlineno])
    assert "axis" in msg
    assert isinstance(info.value, ValueError)


def test_axis_not_an_int():
    with gc.Graph():
        x = gc.placeholder((2, 3))
        with pytest.raises(gc.AxisError) as info:
            line = next_line()
            gc.sum(x, axis=1.5)
        check_message(info, "sum", "1.5", lines=[line])
        with pytest.raises(gc.AxisError) as info:
            line = next_line()
            gc.softmax(x, axis=None)
        check_message(info, "softmax", "None", lines=[line])
        with pytest.raises(gc.AxisError) as info:
            line = next_line()
            gc.expand_dims(x, None)
        check_message(info, "expand_dims", lines=[line])


def test_repeated_axis():
    with gc.Graph():
        x = gc.placeholder((2, 3))
        with pytest.raises(gc.AxisError) as info:
            line = next_line()
            gc.sum(x, axis=(1, -1))
    check_message(info, "sum", "repeated", lines=[line])


def test_argmax_over_some_axes():
    with gc.Graph():
        x = gc.placeholder((2, 3, 4))
        with pytest.raises(gc.AxisError) as info:
            line = next_line()
            gc.argmax(x, axis=(0, 1))
    check_message(info, "argmax", "float32[2, 3, 4]", lines=[line])


def test_transpose_wrong_number_of_axes():
    with gc.Graph():
        x = gc.placeholder((2, 3))
        with pytest.raises(gc.ShapeError) as info:
            line = next_line()
            gc.transpose(x, (1, 0, 2))
        check_message(info, "transpose", "rank 2", lines=[line])
        with pytest.raises(gc.ShapeError) as info:
            line = next_line()
            gc.transpose(x, (1, 1))
        check_message(info, "transpose", "permutation", lines=[line])


# ------------------------------------------------------------ dtypes at build time


@pytest.mark.parametrize("op", ["exp", "log", "sqrt", "tanh", "sigmoid", "softplus", "reciprocal",
                                "leaky_relu", "elu", "softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_float_only_ops_on_int_tensors(op, dtype):
    with gc.Graph():
        x = gc.placeholder((3,), dtype, name="x")
        with pytest.raises(gc.DTypeError) as info:
            line = next_line()
            getattr(gc, op)(x)
    check_message(info, op, dtype, f"{dtype}[3]", lines=[line])
    assert isinstance(info.value, TypeError)


def test_where_needs_bool_condition():
    with gc.Graph():
        x = gc.placeholder((3,))
        with pytest.raises(gc.DTypeError) as info:
            line = next_line()
            gc.where(x, x, x)
    check_message(info, "where", "bool", "float32", lines=[line])


def test_bool_arithmetic():
    with gc.Graph():
        b = gc.placeholder((3,), gc.bool_)
        with pytest.raises(gc.DTypeError) as info:
            line = next_line()
            b - b
        check_message(info, "subtract", "bool", lines=[line])
        with pytest.raises(gc.DTypeError) as info:
            line = next_line()
            b @ b
        check_message(info, "matmul", "bool", lines=[line])


def test_one_hot_of_floats():
    with gc.Graph():
        x = gc.placeholder((3,))
        with pytest.raises(gc.DTypeError) as info:
            line = next_line()
            gc.one_hot(x, 4)
    check_message(info, "one_hot", "float32", lines=[line])


def test_unsupported_constant_dtype():
    with gc.Graph():
        x = gc.placeholder((3,))
        with pytest.raises(gc.DTypeError) as info:
            line = next_line()
            x + np.ones(3, np.int8)
        check_message(info, "int8", lines=[line])
        with pytest.raises(gc.DTypeError) as info:
            line = next_line()
            x + "a string"
        check_message(info, "a string", lines=[line])
        with pytest.raises(gc.DTypeError) as info:
            line = next_line()
            gc.variable(np.zeros(3, np.complex64))
        check_message(info, "variable", lines=[line])


def test_scalar_that_does_not_fit():
    with gc.Graph():
        i = gc.placeholder((3,), gc.int32)
        with pytest.raises(gc.DTypeError) as info:
            line = next_line()
            i + 10 ** 30
    check_message(info, "int32", lines=[line])


# ------------------------------------------------------------ placeholders, backends


def test_placeholder_negative_dim():
    with gc.Graph():
        with pytest.raises(gc.ShapeError) as info:
            line = next_line()
            gc.placeholder((None, -3))
    check_message(info, "placeholder", "-3", lines=[line])


@pytest.mark.parametrize("shape", [(2.5,), 2.5, ("a",), object()])
def test_placeholder_non_int_dims(shape):
    with gc.Graph():
        with pytest.raises(gc.ShapeError) as info:
            line = next_line()
            gc.placeholder(shape)
    check_message(info, "placeholder", lines=[line])


def test_placeholder_bad_dtype():
    with gc.Graph():
        with pytest.raises(gc.DTypeError, match="complex64"):
            gc.placeholder((2,), "complex64")
        with pytest.raises(gc.DTypeError, match="not a dtype"):
            gc.placeholder((2,), "no-such-dtype")


def test_unknown_backend():
    with gc.Graph():
        x = gc.placeholder((2,))
        with pytest.raises(gc.GraphError) as info:
            gc.function([x], x + 1, backend="tpu")
    check_message(info, "'tpu'", "interp")
    with pytest.raises(gc.GraphError):
        gc.function([x], x + 1, backend=["interp"])


# ------------------------------------------------------------ truthiness, iteration, indexing


def test_truthiness_raises():
    with gc.Graph():
        x = gc.placeholder((2,), name="x")
        with pytest.raises(gc.GraphError) as info:
            if x:
                pass
        check_message(info, "x", "gc.where")
        with pytest.raises(gc.GraphError):
            if x > 0:
                pass
        with pytest.raises(gc.GraphError):
            bool(x)
        with pytest.raises(gc.GraphError):
            x and x
        with pytest.raises(gc.GraphError):
            not x


def test_iteration_and_len_raise():
    with gc.Graph():
        x = gc.placeholder((2,), name="x")
        with pytest.raises(gc.GraphError):
            list(x)
        with pytest.raises(gc.GraphError):
            a, b = x
        with pytest.raises(gc.GraphError, match="shape"):
            len(x)


@pytest.mark.parametrize("key", [np.array([0, 1]), [0, 1], 1.5, "a", True, (0, [1])],
                         ids=["ndarray", "list", "float", "str", "bool", "tuple-with-list"])
def test_unsupported_indexing(key):
    with gc.Graph():
        x = gc.placeholder((2, 3), name="x")
        with pytest.raises(gc.GraphError) as info:
            line = next_line()
            x[key]
    check_message(info, "getitem", "basic indexing", lines=[line])


def test_indexing_with_a_node():
    with gc.Graph():
        x = gc.placeholder((2, 3))
        i = gc.placeholder((), gc.int64)
        with pytest.raises(gc.GraphError) as info:
            line = next_line()
            x[i]
    check_message(info, "getitem", "basic indexing", lines=[line])


# ------------------------------------------------------------ foreign nodes


def test_node_from_another_graph():
    with gc.Graph("first") as g1:
        line_a = next_line()
        a = gc.placeholder((3,), name="a")
    with gc.Graph("second") as g2:
        line_b = next_line()
        b = gc.placeholder((3,), name="b")
    with g1:
        with pytest.raises(gc.ForeignNodeError) as info:
            line = next_line()
            a + b
    msg = check_message(info, "add", "first", "second", "b", lines=[line_a, line_b, line])
    assert isinstance(info.value, ValueError)
    assert msg.index(at(line_b)) < msg.index("first")   # b's location goes with b's graph
    assert g2.nodes == [b] and len(g1.nodes) == 1         # nothing was added to either graph


def test_foreign_node_in_concatenate_and_where():
    with gc.Graph("g1"):
        a = gc.placeholder((3,))
    with gc.Graph("g2"):
        b = gc.placeholder((3,))
        c = b > 0
    with pytest.raises(gc.ForeignNodeError) as info:
        line = next_line()
        gc.concatenate([a, b])
    check_message(info, "concatenate", "g1", "g2", lines=[line])
    with pytest.raises(gc.ForeignNodeError):
        gc.where(c, a, b)


def test_function_mixing_graphs():
    with gc.Graph("first"):
        line_a = next_line()
        a = gc.placeholder((3,), name="a")
    with gc.Graph("second"):
        b = gc.placeholder((3,), name="b")
        line_out = next_line()
        out = b * 2
    with pytest.raises(gc.ForeignNodeError) as info:
        line = next_line()
        gc.function([a], out, backend=BACKEND)
    check_message(info, "first", "second", "multiply", lines=[line_a, line_out, line])


def test_update_from_another_graph():
    with gc.Graph("first"):
        v = gc.variable(np.zeros(3, np.float32), name="v")
    with gc.Graph("second"):
        w = gc.variable(np.zeros(3, np.float32), name="w")
    with pytest.raises(gc.ForeignNodeError):
        gc.function([], [], updates={v: w}, backend=BACKEND)


# ------------------------------------------------------------ building functions


def test_unfed_placeholder():
    with gc.Graph():
        x = gc.placeholder((3,), name="x")
        line_y = next_line()
        y = gc.placeholder((3,), name="y")
        out = x + y
        with pytest.raises(gc.FeedError) as info:
            line = next_line()
            gc.function([x], out, backend=BACKEND)
    check_message(info, "y", "not inputs", lines=[line_y, line])


def test_unfed_placeholder_needed_only_by_an_update():
    with gc.Graph():
        v = gc.variable(np.zeros(3, np.float32))
        y = gc.placeholder((3,), name="y")
        with pytest.raises(gc.FeedError, match="y"):
            gc.function([], [], updates={v: v + y}, backend=BACKEND)


def test_unused_placeholder_need_not_be_fed():
    with gc.Graph():
        x = gc.placeholder((3,), name="x")
        gc.placeholder((3,), name="unused")
        fn = gc.function([x], x * 2, backend=BACKEND)
        np.testing.assert_array_equal(fn(f32(3)), 2 * f32(3))


def test_input_that_is_not_a_placeholder():
    with gc.Graph():
        x = gc.placeholder((3,))
        line = next_line()
        y = x + 1
        with pytest.raises(gc.FeedError) as info:
            gc.function([y], y, backend=BACKEND)
    check_message(info, "add", "placeholder", lines=[line])


def test_input_listed_twice():
    with gc.Graph():
        x = gc.placeholder((3,))
        with pytest.raises(gc.FeedError) as info:
            line = next_line()
            gc.function([x, x], x, backend=BACKEND)
    check_message(info, "twice", lines=[line])


def test_function_of_non_nodes():
    with gc.Graph():
        x = gc.placeholder((3,))
        with pytest.raises(gc.GraphError) as info:
            line = next_line()
            gc.function([x], [x, 3], backend=BACKEND)
        check_message(info, "3", lines=[line])
        for inputs, outputs in [([x], None), ([x], 3), (None, x)]:
            with pytest.raises(gc.GraphError):
                gc.function(inputs, outputs, backend=BACKEND)
        with pytest.raises(gc.GraphError):
            gc.function([], [], backend=BACKEND)


def test_update_target_not_a_variable():
    with gc.Graph():
        x = gc.placeholder((3,), name="x")
        with pytest.raises(gc.GraphError) as info:
            gc.function([x], [], updates={x: x + 1}, backend=BACKEND)
    check_message(info, "x", "not a variable")


def test_updates_not_a_dict():
    with gc.Graph():
        v = gc.variable(np.zeros(3, np.float32))
        with pytest.raises(gc.GraphError) as info:
            line = next_line()
            gc.function([], [], updates=[v, v + 1], backend=BACKEND)
    check_message(info, "dict", lines=[line])


# ------------------------------------------------------------ updates that do not fit


def test_update_shape_differs():
    with gc.Graph():
        line_v = next_line()
        v = gc.variable(np.zeros(3, np.float32), name="v")
        line_new = next_line()
        new = gc.concatenate([v, v])
        with pytest.raises(gc.ShapeError) as info:
            gc.function([], [], updates={v: new}, backend=BACKEND)
    check_message(info, "v", "float32[3]", "(6,)", lines=[line_v, line_new])


def test_update_dtype_differs():
    with gc.Graph():
        line_v = next_line()
        v = gc.variable(np.zeros(3, np.float32), name="v")
        line_new = next_line()
        new = gc.cast(v, gc.float64) * 2
        with pytest.raises(gc.DTypeError) as info:
            gc.function([], [], updates={v: new}, backend=BACKEND)
    check_message(info, "v", "float32", "float64", lines=[line_v, line_new])


def test_update_scalar_for_vector_variable():
    with gc.Graph():
        v = gc.variable(np.zeros(3, np.float32), name="v")
        with pytest.raises(gc.ShapeError, match=r"\(\)"):
            gc.function([], [], updates={v: 1.0}, backend=BACKEND)


def test_update_with_none_dim_checked_at_call_time():
    with gc.Graph() as g:
        line_v = next_line()
        v = gc.variable(np.zeros(3, np.float32), name="v")
        line_x = next_line()
        x = gc.placeholder((None,), name="x")
        fn = gc.function([x], [], updates={v: x * 2}, backend=BACKEND)
        fn(f32(3))
        np.testing.assert_array_equal(gc.get_value(v), 2 * f32(3))
        with pytest.raises(gc.ShapeError) as info:
            fn(f32(4))
        check_message(info, "v", "float32[3]", "(4,)", lines=[line_v, line_x + 1])
        assert g.values[v].shape == (3,)                  # the variable kept its shape
        np.testing.assert_array_equal(gc.get_value(v), 2 * f32(3))
        with pytest.raises(gc.ShapeError):                # the failure is not cached as a success
            fn(f32(4))


# ------------------------------------------------------------ calling: arguments


def make_adder():
    x = gc.placeholder((None,), name="x")
    y = gc.placeholder((None,), name="y")
    return gc.function([x, y], x + y, backend=BACKEND)


def test_too_many_arguments():
    with gc.Graph():
        fn = make_adder()
        with pytest.raises(gc.ArgumentError) as info:
            fn(f32(2), f32(2), f32(2))
    check_message(info, "2 input(s)", "x, y", "got 3")
    assert isinstance(info.value, TypeError)


def test_missing_argument():
    with gc.Graph():
        fn = make_adder()
        with pytest.raises(gc.ArgumentError) as info:
            fn(f32(2))
        check_message(info, "missing", "y")
        with pytest.raises(gc.ArgumentError, match="x, y"):
            fn()
        with pytest.raises(gc.ArgumentError, match="missing input.*x"):
            fn(y=f32(2))


def test_unknown_keyword():
    with gc.Graph():
        fn = make_adder()
        with pytest.raises(gc.ArgumentError) as info:
            fn(f32(2), z=f32(2))
    check_message(info, "'z'", "x, y")


def test_duplicate_argument():
    with gc.Graph():
        fn = make_adder()
        with pytest.raises(gc.ArgumentError) as info:
            fn(f32(2), f32(2), x=f32(2))
    check_message(info, "'x'", "twice")


def test_feeding_a_node():
    with gc.Graph():
        fn = make_adder()
        x = fn.inputs[0]
        with pytest.raises(gc.FeedError, match="graph node"):
            fn(x, f32(2))


# ------------------------------------------------------------ calling: fed arrays


def test_fed_array_wrong_shape():
    with gc.Graph():
        line = next_line()
        x = gc.placeholder((None, 3), name="x")
        fn = gc.function([x], x * 2, backend=BACKEND)
        with pytest.raises(gc.ShapeError) as info:
            fn(f32(4, 2))
        check_message(info, "x", "(?, 3)", "(4, 2)", lines=[line])
        with pytest.raises(gc.ShapeError) as info:
            fn(f32(3))
        check_message(info, "x", "(?, 3)", "(3,)", lines=[line])
        with pytest.raises(gc.ShapeError):
            fn(1.0)


def test_fed_array_wrong_dtype():
    with gc.Graph():
        line = next_line()
        x = gc.placeholder((3,), gc.float32, name="x")
        fn = gc.function([x], x * 2, backend=BACKEND)
        with pytest.raises(gc.DTypeError) as info:
            fn(np.ones(3, np.float64))
        check_message(info, "x", "float32", "float64", "astype", lines=[line])
        with pytest.raises(gc.DTypeError):
            fn(np.ones(3, np.int32))


def test_fed_int_array_of_other_width():
    with gc.Graph():
        line = next_line()
        i = gc.placeholder((2,), gc.int32, name="i")
        fn = gc.function([i], i + 1, backend=BACKEND)
        with pytest.raises(gc.DTypeError) as info:
            fn(np.array([1, 2], np.int64))
        check_message(info, "int32", "int64", lines=[line])
        out = fn([1, 2])                        # a Python list of ints is cast
        assert out.dtype == np.int32
        np.testing.assert_array_equal(out, [2, 3])


def test_fed_list_that_cannot_be_cast():
    with gc.Graph():
        line = next_line()
        i = gc.placeholder((3,), gc.int64, name="i")
        fi = gc.function([i], i * 2, backend=BACKEND)
        with pytest.raises(gc.DTypeError) as info:
            fi([1.5, 2.0, 3.0])                 # float -> int is not same_kind
        check_message(info, "i", "int64", "float64", lines=[line])
        x = gc.placeholder((2,), gc.float32, name="x")
        fx = gc.function([x], x * 2, backend=BACKEND)
        with pytest.raises(gc.DTypeError, match="complex"):
            fx([1j, 2.0])
        with pytest.raises(gc.DTypeError):
            fx(["a", "b"])
        np.testing.assert_array_equal(fx([1, 2]), np.array([2, 4], np.float32))   # int -> float is fine


def test_fed_ragged_list():
    with gc.Graph():
        line = next_line()
        x = gc.placeholder((None, None), name="x")
        fn = gc.function([x], x * 2, backend=BACKEND)
        with pytest.raises(gc.FeedError) as info:
            fn([[1.0], [1.0, 2.0]])
    check_message(info, "x", lines=[line])


# ------------------------------------------------------------ calling: None dims


def test_none_dims_mismatch_at_call_time():
    with gc.Graph():
        x = gc.placeholder((None,), name="x")
        y = gc.placeholder((None,), name="y")
        line = next_line()
        s = x + y
        fn = gc.function([x, y], s, backend=BACKEND)
        np.testing.assert_array_equal(fn(f32(3), f32(3)), 2 * f32(3))
        with pytest.raises(gc.ShapeError) as info:
            fn(f32(3), f32(4))
    check_message(info, "add", "(3,)", "(4,)", "float32[3]", "float32[4]", "call time", lines=[line])


def test_none_dim_against_a_known_dim_at_call_time():
    with gc.Graph():
        x = gc.placeholder((None,), name="x")
        line = next_line()
        s = x + np.ones(3, np.float32)
        fn = gc.function([x], s, backend=BACKEND)
        np.testing.assert_array_equal(fn(f32(1)), 2 * f32(3))       # 1 broadcasts
        with pytest.raises(gc.ShapeError) as info:
            fn(f32(4))
    check_message(info, "add", "(4,)", "(3,)", lines=[line])


def test_reshape_that_no_longer_fits_at_call_time():
    with gc.Graph():
        x = gc.placeholder((None, 2), name="x")
        line = next_line()
        r = gc.reshape(x, (3, -1))
        fn = gc.function([x], r, backend=BACKEND)
        assert fn(f32(3, 2)).shape == (3, 2)
        with pytest.raises(gc.ShapeError) as info:
            fn(f32(4, 2))
    check_message(info, "reshape", "(4, 2)", lines=[line])


def test_matmul_none_dims_at_call_time():
    with gc.Graph():
        m = gc.placeholder((None, None), name="m")
        line = next_line()
        p = m @ m
        fn = gc.function([m], p, backend=BACKEND)
        with pytest.raises(gc.ShapeError) as info:
            fn(f32(2, 3))
    check_message(info, "matmul", "(2, 3)", lines=[line])


# ------------------------------------------------------------ numpy errors at call time


def test_int_power_negative_int_at_call_time():
    with gc.Graph():
        i = gc.placeholder((3,), gc.int64, name="i")
        j = gc.placeholder((3,), gc.int64, name="j")
        line = next_line()
        p = i ** j
        fn = gc.function([i, j], p, backend=BACKEND)
        np.testing.assert_array_equal(fn(np.array([1, 2, 3]), np.array([2, 2, 2])), [1, 4, 9])
        with pytest.raises(gc.GraphError) as info:
            fn(np.array([1, 2, 3]), np.array([1, -1, 2]))
    msg = check_message(info, "power", "int64", "call time", lines=[line])
    assert "negative" in msg
    assert type(info.value) is gc.GraphError        # not numpy's ValueError


def test_int_power_negative_scalar_at_call_time():
    with gc.Graph():
        i = gc.placeholder((3,), gc.int32, name="i")
        line = next_line()
        p = i ** -1
        assert p.dtype == np.int32
        fn = gc.function([i], p, backend=BACKEND)
        with pytest.raises(gc.GraphError) as info:
            fn(np.array([1, 2, 3], np.int32))
    check_message(info, "power", "int32", lines=[line])


# ------------------------------------------------------------ get_value / set_value


def test_set_value_wrong_shape_and_dtype():
    with gc.Graph():
        line = next_line()
        v = gc.variable(np.zeros((2, 2), np.float32), name="v")
        with pytest.raises(gc.ShapeError) as info:
            gc.set_value(v, np.zeros(3, np.float32))
        check_message(info, "set_value", "v", "float32[2, 2]", "float32[3]", lines=[line])
        with pytest.raises(gc.DTypeError) as info:
            gc.set_value(v, np.zeros((2, 2), np.float64))
        check_message(info, "float32[2, 2]", "float64[2, 2]", lines=[line])
        with pytest.raises(gc.GraphError):
            gc.set_value(v, [[1.0], [1.0, 2.0]])
        with pytest.raises(gc.GraphError):
            gc.set_value(v, v)
        np.testing.assert_array_equal(gc.get_value(v), np.zeros((2, 2)))   # unchanged by the failures


def test_get_and_set_value_need_a_variable():
    with gc.Graph():
        x = gc.placeholder((2,), name="x")
        with pytest.raises(gc.GraphError, match="not a variable"):
            gc.get_value(x)
        with pytest.raises(gc.GraphError, match="not a variable"):
            gc.set_value(x, np.zeros(2, np.float32))
        with pytest.raises(gc.GraphError):
            gc.get_value(3)


# ------------------------------------------------------------ never a raw exception


def _bad_inputs():
    """(label, thunk) pairs; each thunk must raise a GraphError."""
    def fresh():
        g = gc.Graph()
        with g:
            a = gc.placeholder((2, 3), name="a")
            i = gc.placeholder((3,), gc.int64, name="i")
            v = gc.variable(np.zeros(3, np.float32), name="v")
        return g, a, i, v

    def run(build):
        g, a, i, v = fresh()
        with g:
            return build(a, i, v)

    def call(build, *args):
        g, a, i, v = fresh()
        with g:
            fn = build(a, i, v)
        return fn(*args)

    cases = {
        "placeholder-float-shape": lambda: run(lambda a, i, v: gc.placeholder(2.0)),
        "placeholder-dtype": lambda: run(lambda a, i, v: gc.placeholder((2,), "nope")),
        "constant-str": lambda: run(lambda a, i, v: gc.constant("text")),
        "constant-none": lambda: run(lambda a, i, v: gc.constant(None)),
        "constant-complex": lambda: run(lambda a, i, v: gc.constant(1j)),
        "constant-huge-int": lambda: run(lambda a, i, v: gc.constant(10 ** 30)),
        "variable-ragged": lambda: run(lambda a, i, v: gc.variable([[1.0], [1.0, 2.0]])),
        "variable-object": lambda: run(lambda a, i, v: gc.variable(object())),
        "add-none": lambda: run(lambda a, i, v: a + None),
        "matmul-str": lambda: run(lambda a, i, v: a @ "x"),
        "sum-axis-str": lambda: run(lambda a, i, v: gc.sum(a, axis="x")),
        "sum-axis-float": lambda: run(lambda a, i, v: gc.sum(a, axis=1.0)),
        "argmax-axis-float": lambda: run(lambda a, i, v: gc.argmax(a, axis=0.5)),
        "softmax-axis-float": lambda: run(lambda a, i, v: gc.softmax(a, axis=1.0)),
        "concat-axis-none": lambda: run(lambda a, i, v: gc.concatenate([a, a], axis=None)),
        "concat-not-a-list": lambda: run(lambda a, i, v: gc.concatenate(5)),
        "concat-a-node": lambda: run(lambda a, i, v: gc.concatenate(a)),
        "transpose-int-axes": lambda: run(lambda a, i, v: gc.transpose(a, 5)),
        "transpose-float-axes": lambda: run(lambda a, i, v: gc.transpose(a, 1.5)),
        "expand-float": lambda: run(lambda a, i, v: gc.expand_dims(a, 1.5)),
        "squeeze-float": lambda: run(lambda a, i, v: gc.squeeze(a, 1.5)),
        "reshape-none": lambda: run(lambda a, i, v: gc.reshape(a, None)),
        "reshape-float": lambda: run(lambda a, i, v: gc.reshape(a, 6.0)),
        "reshape-str": lambda: run(lambda a, i, v: gc.reshape(a, "ab")),
        "broadcast-none": lambda: run(lambda a, i, v: gc.broadcast_to(a, None)),
        "broadcast-float": lambda: run(lambda a, i, v: gc.broadcast_to(a, 6.0)),
        "broadcast-negative": lambda: run(lambda a, i, v: gc.broadcast_to(a, (-1, 3))),
        "leaky-alpha-str": lambda: run(lambda a, i, v: gc.leaky_relu(a, "x")),
        "elu-alpha-none": lambda: run(lambda a, i, v: gc.elu(a, None)),
        "one-hot-depth-str": lambda: run(lambda a, i, v: gc.one_hot(i, "3")),
        "one-hot-depth-zero": lambda: run(lambda a, i, v: gc.one_hot(i, 0)),
        "one-hot-dtype": lambda: run(lambda a, i, v: gc.one_hot(i, 3, dtype="nope")),
        "cast-dtype": lambda: run(lambda a, i, v: gc.cast(a, "complex64")),
        "pad-width-str": lambda: run(lambda a, i, v: gc.pad(a, "x")),
        "pad-negative": lambda: run(lambda a, i, v: gc.pad(a, -1)),
        "pad-value-str": lambda: run(lambda a, i, v: gc.pad(a, 1, "x")),
        "slice-step-zero": lambda: run(lambda a, i, v: a[::0]),
        "slice-step-str": lambda: run(lambda a, i, v: a[::"x"]),
        "two-ellipses": lambda: run(lambda a, i, v: a[..., ...]),
        "max-of-empty": lambda: run(lambda a, i, v: gc.max(gc.placeholder((0,)))),
        "function-updates-int": lambda: run(lambda a, i, v: gc.function([], [], updates=3)),
        "function-backend-list": lambda: run(lambda a, i, v: gc.function([a], a, backend=[])),
        "function-outputs-none": lambda: run(lambda a, i, v: gc.function([a], None)),
        "call-ragged": lambda: call(lambda a, i, v: gc.function([a], a, backend=BACKEND), [[1.0], [1, 2]]),
        "call-str": lambda: call(lambda a, i, v: gc.function([a], a, backend=BACKEND), "abc"),
        "call-object": lambda: call(lambda a, i, v: gc.function([a], a, backend=BACKEND), object()),
        "call-int-pow": lambda: call(lambda a, i, v: gc.function([i], i ** i, backend=BACKEND), [1, -1, 2]),
        "set-value-ragged": lambda: run(lambda a, i, v: gc.set_value(v, [[1.0], [2.0, 3.0]])),
        "set-value-str": lambda: run(lambda a, i, v: gc.set_value(v, "abc")),
        "get-value-none": lambda: run(lambda a, i, v: gc.get_value(None)),
        "to-dot-int": lambda: gc.to_dot(3),
        "to-dot-empty": lambda: gc.to_dot([]),
        "render-ext": lambda: gc.render(gc.Graph(), "picture.txt"),
    }
    return sorted(cases.items())


@pytest.mark.parametrize("label,thunk", _bad_inputs(), ids=[label for label, _ in _bad_inputs()])
def test_bad_input_is_never_a_raw_exception(label, thunk):
    try:
        thunk()
    except gc.GraphError as e:
        assert str(e), label
    except Exception as e:  # noqa: BLE001 - this is what the test looks for
        pytest.fail(f"{label}: raw {type(e).__name__}: {e}")
    else:
        pytest.fail(f"{label}: no error raised")
