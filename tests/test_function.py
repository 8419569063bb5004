"""gc.function on the interpreter: calling conventions, variable state, updates, copies."""
import numpy as np
import pytest

import graphc as gc

BACKEND = "interp"


def fn(inputs, outputs, updates=None):
    return gc.function(inputs, outputs, updates=updates, backend=BACKEND)


def f32(values):
    return np.asarray(values, np.float32)


# ------------------------------------------------------------ outputs and arguments


def test_single_output_returns_an_array():
    with gc.Graph():
        x = gc.placeholder((3,), name="x")
        f = fn([x], x * 2 + 1)
        out = f(f32([1, 2, 3]))
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [3, 5, 7])


def test_list_of_outputs_returns_a_list():
    with gc.Graph():
        x = gc.placeholder((3,), name="x")
        f = fn([x], [x + 1, gc.sum(x)])
        out = f(f32([1, 2, 3]))
        single_list = fn([x], [x * 3])(f32([1, 2, 3]))
    assert isinstance(out, list) and len(out) == 2
    np.testing.assert_array_equal(out[0], [2, 3, 4])
    assert out[1].shape == () and out[1] == 6
    assert isinstance(single_list, list) and len(single_list) == 1
    np.testing.assert_array_equal(single_list[0], [3, 6, 9])


def test_tuple_of_outputs_returns_a_list():
    with gc.Graph():
        x = gc.placeholder((2,), name="x")
        out = fn([x], (x, -x))(f32([1, 2]))
    assert isinstance(out, list)
    np.testing.assert_array_equal(out[1], [-1, -2])


def test_single_input_node_is_accepted():
    with gc.Graph():
        x = gc.placeholder((2,), name="x")
        f = fn(x, x * 2)
    assert f.inputs == [x]
    np.testing.assert_array_equal(f(f32([1, 2])), [2, 4])


def test_keyword_arguments_by_placeholder_name():
    with gc.Graph():
        a = gc.placeholder((2,), name="a")
        b = gc.placeholder((2,), name="b")
        f = fn([a, b], a - b)
        expected = [-2, -2]
        np.testing.assert_array_equal(f(f32([1, 2]), f32([3, 4])), expected)
        np.testing.assert_array_equal(f(a=f32([1, 2]), b=f32([3, 4])), expected)
        np.testing.assert_array_equal(f(b=f32([3, 4]), a=f32([1, 2])), expected)
        np.testing.assert_array_equal(f(f32([1, 2]), b=f32([3, 4])), expected)


def test_keyword_argument_by_uniquified_name():
    with gc.Graph():
        a = gc.placeholder((2,), name="x")
        b = gc.placeholder((2,), name="x")
        assert b.name == "x_0"
        f = fn([a, b], a * b)
        np.testing.assert_array_equal(f(x=f32([1, 2]), x_0=f32([3, 4])), [3, 8])


def test_python_lists_and_scalars_are_fed_cast_to_the_placeholder_dtype():
    with gc.Graph():
        x = gc.placeholder((3,), gc.float32, name="x")
        s = gc.placeholder((), gc.float64, name="s")
        f = fn([x, s], x * gc.cast(s, gc.float32))
        out = f([1, 2, 3], 2)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [2, 4, 6])


def test_no_inputs():
    with gc.Graph():
        c = gc.constant(np.arange(3, dtype=np.float32))
        f = fn([], c * 2)
        np.testing.assert_array_equal(f(), [0, 2, 4])


def test_unused_input_is_still_checked():
    with gc.Graph():
        x = gc.placeholder((2,), name="x")
        unused = gc.placeholder((3,), name="unused")
        f = fn([x, unused], x + 1)
        np.testing.assert_array_equal(f(f32([1, 2]), f32([0, 0, 0])), [2, 3])
        with pytest.raises(gc.ShapeError):
            f(f32([1, 2]), f32([0, 0]))


# ------------------------------------------------------------ the function object


def test_function_exposes_graph_inputs_outputs_updates():
    with gc.Graph() as g:
        x = gc.placeholder((2,), name="x")
        v = gc.variable(np.zeros(2, np.float32), name="v")
        out = x + v
        f = fn([x], out, updates={v: out})
        multi = fn([x], [out, v])
    assert f.graph is g
    assert f.inputs == [x]
    # outputs and updates are the program's nodes, copies in a scratch graph; origin leads back
    assert f.program_graph is not g and all(n.graph is f.program_graph for n in f.nodes)
    assert [f.origin[o] for o in f.outputs] == [out]
    assert {f.origin[k]: f.origin[v] for k, v in f.updates.items()} == {v: out}
    assert [multi.origin[o] for o in multi.outputs] == [out, v] and multi.updates == {}
    assert f.backend == BACKEND
    assert "x" in repr(f) and "1 update" in repr(f)


def test_scalar_update_value_becomes_a_node():
    with gc.Graph():
        v = gc.variable(np.zeros(2, np.float32), name="v")
        f = fn([], [], updates={v: v + 0.5})
        (new,) = f.updates.values()
        assert isinstance(new, gc.Node) and new.dtype == np.float32
        s = gc.variable(np.float32(1.0), name="s")
        g = fn([], [], updates={s: 7})              # a Python scalar takes the variable's dtype
        (new,) = g.updates.values()
        assert g.origin[next(iter(g.updates))] is s and new.dtype == np.float32
        g()
        assert gc.get_value(s) == 7 and gc.get_value(s).dtype == np.float32


# ------------------------------------------------------------ variables and updates


def test_variables_keep_values_across_calls():
    with gc.Graph():
        count = gc.variable(np.int64(0), name="count")
        total = gc.variable(np.zeros(2, np.float32), name="total")
        x = gc.placeholder((2,), name="x")
        step = fn([x], [count, total], updates={count: count + 1, total: total + x})
        c0, t0 = step(f32([1, 2]))
        c1, t1 = step(f32([10, 20]))
        c2, t2 = step(f32([100, 200]))
    # outputs are computed before the updates are assigned
    assert (c0, c1, c2) == (0, 1, 2)
    np.testing.assert_array_equal(t0, [0, 0])
    np.testing.assert_array_equal(t1, [1, 2])
    np.testing.assert_array_equal(t2, [11, 22])
    assert gc.get_value(count) == 3
    np.testing.assert_array_equal(gc.get_value(total), [111, 222])


def test_updates_use_old_values_swap():
    with gc.Graph():
        a = gc.variable(f32([1, 2]), name="a")
        b = gc.variable(f32([3, 4]), name="b")
        swap = fn([], [], updates={a: b, b: a})
        swap()
        np.testing.assert_array_equal(gc.get_value(a), [3, 4])
        np.testing.assert_array_equal(gc.get_value(b), [1, 2])
        swap()
        np.testing.assert_array_equal(gc.get_value(a), [1, 2])
        np.testing.assert_array_equal(gc.get_value(b), [3, 4])


def test_updates_use_old_values_chain():
    with gc.Graph():
        a = gc.variable(np.float64(1.0), name="a")
        b = gc.variable(np.float64(10.0), name="b")
        # b's new value reads a: it must see a's old value, whatever the dict order
        f = fn([], [], updates={a: a * 2, b: a + b})
        g = fn([], [], updates={b: a + b, a: a * 2})
        f()
        assert gc.get_value(a) == 2.0 and gc.get_value(b) == 11.0
        g()
        assert gc.get_value(a) == 4.0 and gc.get_value(b) == 13.0


def test_rotate_three_variables():
    with gc.Graph():
        vs = [gc.variable(np.int32(i), name=f"v{i}") for i in range(3)]
        rotate = fn([], [], updates={vs[0]: vs[1], vs[1]: vs[2], vs[2]: vs[0]})
        rotate()
        assert [int(gc.get_value(v)) for v in vs] == [1, 2, 0]


def test_updates_only_function_returns_empty_list():
    with gc.Graph():
        v = gc.variable(np.zeros(3, np.float32), name="v")
        x = gc.placeholder((3,), name="x")
        f = fn([x], [], updates={v: v + x})
        assert f.outputs == []
        assert f(f32([1, 2, 3])) == []
        assert f(f32([1, 1, 1])) == []
        np.testing.assert_array_equal(gc.get_value(v), [2, 3, 4])


def test_outputs_see_old_values_and_updates_see_outputs_graph():
    with gc.Graph():
        v = gc.variable(f32([1, 2]), name="v")
        new = v * 10
        f = fn([], [v, new], updates={v: new})
        old_v, out = f()
        np.testing.assert_array_equal(old_v, [1, 2])
        np.testing.assert_array_equal(out, [10, 20])
        np.testing.assert_array_equal(gc.get_value(v), [10, 20])


def test_two_functions_on_one_graph_share_state():
    with gc.Graph():
        v = gc.variable(np.float32(0.0), name="v")
        inc = fn([], [], updates={v: v + 1})
        double = fn([], [], updates={v: v * 2})
        read = fn([], v)
        inc()
        double()
        inc()
        assert read() == 3.0
        gc.set_value(v, np.float32(10))
        assert read() == 10.0
        inc()
        assert gc.get_value(v) == 11.0


def test_variables_of_different_graphs_are_independent():
    with gc.Graph():
        v1 = gc.variable(np.float32(1.0))
        f1 = fn([], [], updates={v1: v1 + 1})
    with gc.Graph():
        v2 = gc.variable(np.float32(1.0))
        f2 = fn([], v2)
    f1()
    f1()
    assert gc.get_value(v1) == 3.0
    assert f2() == 1.0


def test_update_keeps_variable_dtype_and_shape():
    with gc.Graph():
        v = gc.variable(np.zeros((2, 2), np.float32), name="v")
        f = fn([], [], updates={v: v + 1.5})
        f()
        value = gc.get_value(v)
    assert value.dtype == np.float32 and value.shape == (2, 2)
    np.testing.assert_array_equal(value, np.full((2, 2), 1.5))


# ------------------------------------------------------------ returned arrays are fresh


def test_mutating_an_output_does_not_change_later_results():
    with gc.Graph():
        c = gc.constant(f32([1, 2, 3]))
        x = gc.placeholder((3,), name="x")
        f = fn([x], [c, x + c, gc.reshape(c, (3, 1))])
        a, b, r = f(f32([0, 0, 0]))
        for arr in (a, b, r):
            arr[...] = -1                      # must not raise (writeable) nor leak
        a, b, r = f(f32([0, 0, 0]))
    np.testing.assert_array_equal(a, [1, 2, 3])
    np.testing.assert_array_equal(b, [1, 2, 3])
    np.testing.assert_array_equal(r[:, 0], [1, 2, 3])


def test_returned_variable_is_a_copy():
    with gc.Graph():
        v = gc.variable(f32([1, 2, 3]), name="v")
        f = fn([], v)
        out = f()
        out[0] = 100
        np.testing.assert_array_equal(gc.get_value(v), [1, 2, 3])
        np.testing.assert_array_equal(f(), [1, 2, 3])
        view = fn([], [v[1:], gc.reshape(v, (3, 1))])()
        view[0][0] = 100
        view[1][0, 0] = 100
        np.testing.assert_array_equal(gc.get_value(v), [1, 2, 3])


def test_returned_placeholder_is_a_copy_of_the_fed_array():
    with gc.Graph():
        x = gc.placeholder((3,), name="x")
        f = fn([x], [x, x[::-1], gc.transpose(x)])
        fed = f32([1, 2, 3])
        same, rev, tr = f(fed)
    for arr in (same, rev, tr):
        assert not np.shares_memory(arr, fed)
        arr[0] = 99
    np.testing.assert_array_equal(fed, [1, 2, 3])


def test_mutating_the_fed_array_does_not_change_state():
    with gc.Graph():
        v = gc.variable(np.zeros(3, np.float32), name="v")
        x = gc.placeholder((3,), name="x")
        f = fn([x], [], updates={v: x})
        fed = f32([1, 2, 3])
        f(fed)
        fed[:] = -5
        np.testing.assert_array_equal(gc.get_value(v), [1, 2, 3])


def test_output_that_is_also_an_update_is_not_aliased():
    with gc.Graph():
        v = gc.variable(np.zeros(3, np.float32), name="v")
        new = v + 1
        f = fn([], new, updates={v: new})
        out = f()
        np.testing.assert_array_equal(out, [1, 1, 1])
        out[:] = 100                           # the caller owns what it got back
        np.testing.assert_array_equal(gc.get_value(v), [1, 1, 1])
        np.testing.assert_array_equal(f(), [2, 2, 2])


def test_repeated_outputs_are_distinct_arrays():
    with gc.Graph():
        x = gc.placeholder((2,), name="x")
        y = x * 2
        a, b = fn([x], [y, y])(f32([1, 2]))
    assert a is not b and not np.shares_memory(a, b)
    a[:] = 0
    np.testing.assert_array_equal(b, [2, 4])


def test_two_variables_updated_with_the_same_node_do_not_share_memory():
    with gc.Graph() as g:
        v = gc.variable(np.zeros(2, np.float32), name="v")
        w = gc.variable(np.zeros(2, np.float32), name="w")
        x = gc.placeholder((2,), name="x")
        fn([x], [], updates={v: x * 2, w: x * 2})(f32([1, 2]))
        assert not np.shares_memory(g.values[v], g.values[w])
        out = fn([], [v, w])()
    out[0][:] = 7
    np.testing.assert_array_equal(gc.get_value(w), [2, 4])


# ------------------------------------------------------------ get_value / set_value


def test_get_value_returns_a_copy():
    with gc.Graph():
        v = gc.variable(f32([1, 2]), name="v")
        got = gc.get_value(v)
        got[0] = 50
        np.testing.assert_array_equal(gc.get_value(v), [1, 2])


def test_set_value_copies_and_is_seen_by_functions():
    with gc.Graph():
        v = gc.variable(f32([1, 2]), name="v")
        f = fn([], v * 2)
        new = f32([5, 6])
        gc.set_value(v, new)
        new[0] = -1                            # set_value took a copy
        np.testing.assert_array_equal(f(), [10, 12])
        np.testing.assert_array_equal(gc.get_value(v), [5, 6])


def test_set_value_accepts_python_values_of_the_same_kind():
    with gc.Graph():
        v = gc.variable(f32([1, 2]), name="v")
        gc.set_value(v, [3, 4])
        value = gc.get_value(v)
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, [3, 4])
        s = gc.variable(np.int64(0), name="s")
        gc.set_value(s, 5)
        assert gc.get_value(s) == 5 and gc.get_value(s).dtype == np.int64
        with pytest.raises(gc.DTypeError):
            gc.set_value(s, 1.5)               # float -> int is not same_kind


def test_set_value_wrong_shape_raises_and_keeps_value():
    with gc.Graph():
        v = gc.variable(f32([1, 2]), name="v")
        with pytest.raises(gc.ShapeError, match=r"float32\[2\].*float32\[3\]"):
            gc.set_value(v, f32([1, 2, 3]))
        with pytest.raises(gc.DTypeError):
            gc.set_value(v, np.array([1, 2], np.int64))
        np.testing.assert_array_equal(gc.get_value(v), [1, 2])


def test_variable_initial_value_is_copied():
    with gc.Graph():
        init = f32([1, 2])
        v = gc.variable(init, name="v")
        init[0] = 100
        np.testing.assert_array_equal(gc.get_value(v), [1, 2])
        assert gc.variable([1, 2]).dtype == np.int64
        assert gc.variable([1.0], dtype=gc.float32).dtype == np.float32


# ------------------------------------------------------------ None dimensions


def test_none_dim_placeholder_fed_different_batch_sizes():
    with gc.Graph():
        x = gc.placeholder((None, 3), name="x")
        w = gc.variable(np.ones((3, 2), np.float32), name="w")
        y = gc.sum(x @ w, axis=1)
        f = fn([x], [y, gc.max(x, axis=1)])
        for batch in (1, 4, 2, 4, 0):
            data = np.arange(batch * 3, dtype=np.float32).reshape(batch, 3)
            out, m = f(data)
            assert out.shape == (batch,) and m.shape == (batch,)
            np.testing.assert_allclose(out, 2 * data.sum(axis=1))
            np.testing.assert_array_equal(m, data.max(axis=1))
    assert len(f._types) == 4                  # one specialization per distinct shape


def test_none_dims_fed_equal_sizes_on_two_placeholders():
    with gc.Graph():
        x = gc.placeholder((None,), name="x")
        y = gc.placeholder((None,), name="y")
        f = fn([x, y], x * y)
        np.testing.assert_array_equal(f(f32([1, 2, 3]), f32([4, 5, 6])), [4, 10, 18])
        np.testing.assert_array_equal(f(f32([2]), f32([4])), [8])
        np.testing.assert_array_equal(f(f32([2]), f32([1, 2, 3])), [2, 4, 6])   # 1 broadcasts


def test_none_dim_reshape_resolves_per_call():
    with gc.Graph():
        x = gc.placeholder((None, 4), name="x")
        r = gc.reshape(x, (-1, 2))
        assert r.shape == (None, 2)
        f = fn([x], r)
        assert f(np.zeros((1, 4), np.float32)).shape == (2, 2)
        assert f(np.zeros((3, 4), np.float32)).shape == (6, 2)


def test_none_dim_update_matching_the_variable():
    with gc.Graph():
        v = gc.variable(np.zeros(3, np.float32), name="v")
        x = gc.placeholder((None,), name="x")
        f = fn([x], [], updates={v: v + x})
        f(f32([1, 2, 3]))
        f(f32([1]))                           # (1,) broadcasts against (3,): still (3,)
        np.testing.assert_array_equal(gc.get_value(v), [2, 3, 4])


# ------------------------------------------------------------ values match numpy


def test_results_match_numpy():
    rng = np.random.default_rng(0)
    xv = rng.standard_normal((4, 3)).astype(np.float32)
    wv = rng.standard_normal((3, 5)).astype(np.float32)
    with gc.Graph():
        x = gc.placeholder((None, 3), name="x")
        w = gc.variable(wv, name="w")
        h = gc.tanh(x @ w + 0.5)
        p = gc.softmax(h, axis=-1)
        out = fn([x], [h, p, gc.argmax(p, axis=1)])(xv)
    h_ref = np.tanh(xv @ wv + np.float32(0.5))
    e = np.exp(h_ref - h_ref.max(axis=1, keepdims=True))
    p_ref = e / e.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out[0], h_ref, rtol=1e-6)
    np.testing.assert_allclose(out[1], p_ref, rtol=1e-5)
    np.testing.assert_array_equal(out[2], p_ref.argmax(axis=1))
    assert out[0].dtype == np.float32 and out[2].dtype == np.int64


def test_gradient_descent_step_on_a_quadratic():
    with gc.Graph():
        w = gc.variable(np.float64(0.0), name="w")
        target = gc.placeholder((), gc.float64, name="target")
        loss = gc.square(w - target)
        grad = 2 * (w - target)                 # by hand: gc.grad is tested elsewhere
        step = fn([target], loss, updates={w: w - 0.25 * grad})
        losses = [float(step(np.float64(4.0))) for _ in range(20)]
    assert losses[0] == 16.0
    assert losses == sorted(losses, reverse=True)
    assert abs(gc.get_value(w) - 4.0) < 1e-4
