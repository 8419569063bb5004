"""The IR: hash-consing, immutable nodes, the default graph, locations, names, order."""
import inspect

import numpy as np
import pytest

import graphc as gc
from graphc.core.graph import ancestors


def next_line():
    return inspect.currentframe().f_back.f_lineno + 1


# ------------------------------------------------------------ hash-consing


def test_same_op_same_inputs_is_same_node():
    with gc.Graph() as g:
        x = gc.placeholder((2, 3))
        y = gc.placeholder((2, 3))
        assert (x + y) is (x + y)
        assert gc.add(x, y) is (x + y)
        assert gc.exp(x) is gc.exp(x)
        assert (x @ gc.transpose(y)) is gc.matmul(x, y.T)
        n = len(g.nodes)
        assert gc.tanh(x * y) is gc.tanh(x * y)
        assert len(g.nodes) == n + 2          # one multiply, one tanh


def test_operand_order_matters():
    with gc.Graph():
        x = gc.placeholder((3,))
        y = gc.placeholder((3,))
        assert (x - y) is not (y - x)
        assert (x + y) is not (y + x)         # no commutative canonicalization is promised...
        assert (x + y).inputs == (x, y)       # ...and inputs keep the user's order


def test_different_ops_differ():
    with gc.Graph():
        x = gc.placeholder((3,))
        assert gc.exp(x) is not gc.log(x)
        assert gc.sum(x) is not gc.mean(x)


def test_different_attrs_differ():
    with gc.Graph():
        x = gc.placeholder((2, 3))
        assert gc.sum(x, axis=0) is not gc.sum(x, axis=1)
        assert gc.sum(x, axis=1) is not gc.sum(x, axis=1, keepdims=True)
        assert gc.leaky_relu(x, 0.1) is not gc.leaky_relu(x, 0.2)
        assert gc.cast(x, gc.float64) is not gc.cast(x, gc.int32)
        assert gc.reshape(x, (3, 2)) is not gc.reshape(x, (6,))
        assert x[0] is not x[1]
        assert x[:, 1:] is not x[:, :1]


def test_equal_attrs_in_other_spellings_are_one_node():
    with gc.Graph():
        x = gc.placeholder((2, 3))
        assert gc.sum(x, axis=-1) is gc.sum(x, axis=1)
        assert gc.sum(x, axis=1) is gc.sum(x, axis=(1,))
        assert gc.sum(x, axis=(1, 0)) is gc.sum(x, axis=[0, -1])
        assert gc.sum(x) is gc.sum(x, axis=(0, 1))
        assert gc.sum(x, axis=np.int64(1)) is gc.sum(x, axis=1)
        assert gc.sum(x, axis=0, keepdims=1) is gc.sum(x, axis=0, keepdims=True)
        assert gc.softmax(x) is gc.softmax(x, axis=1) is gc.softmax(x, axis=-1)
        assert gc.argmax(x, axis=-1) is gc.argmax(x, axis=1)
        assert gc.concatenate([x, x], axis=-1) is gc.concatenate([x, x], axis=1)
        assert gc.expand_dims(x, -1) is gc.expand_dims(x, 2)
        assert gc.transpose(x) is gc.transpose(x, (1, 0)) is gc.transpose(x, (-1, 0)) is x.T
        assert gc.reshape(x, (3, -1)) is gc.reshape(x, [3, -1])
        assert gc.reshape(x, 6) is gc.reshape(x, (6,))
        assert gc.cast(x, "float64") is gc.cast(x, np.float64) is gc.cast(x, gc.float64)
        assert gc.leaky_relu(x, 1) is gc.leaky_relu(x, 1.0)
        assert x[0] is x[0, :] is x[0, ...]


def test_normalized_attrs_are_stored():
    with gc.Graph():
        x = gc.placeholder((2, 3, 4))
        s = gc.sum(x, axis=-1)
        assert s.attrs["axis"] == (2,)
        assert s.shape == (2, 3)
        assert gc.softmax(x, axis=-2).attrs["axis"] == 1


def test_equal_constants_are_one_node():
    with gc.Graph() as g:
        a = gc.constant([1.0, 2.0])
        b = gc.constant(np.array([1.0, 2.0]))
        assert a is b
        assert gc.constant(3, dtype=gc.float32) is gc.constant(np.float32(3))
        n = len(g.nodes)
        x = gc.placeholder((2,), gc.float32)
        assert (x * 1.5) is (x * 1.5)          # the scalar 1.5 becomes one float32 constant
        assert len(g.nodes) == n + 3           # x, const 1.5, multiply


def test_constants_with_different_dtype_shape_or_value_differ():
    with gc.Graph():
        assert gc.constant(1.0, gc.float32) is not gc.constant(1.0, gc.float64)
        assert gc.constant(1, gc.int32) is not gc.constant(1, gc.int64)
        assert gc.constant(1, gc.int64) is not gc.constant(1.0, gc.float64)
        assert gc.constant([1.0, 2.0]) is not gc.constant([[1.0, 2.0]])
        assert gc.constant([1.0, 2.0]) is not gc.constant([2.0, 1.0])
        assert gc.constant(0.0) is not gc.constant(-0.0)
        x = gc.placeholder((2,), gc.float32)
        assert (x * 2) is not (x * 2.5)


def test_constant_values_are_read_only():
    with gc.Graph():
        data = np.array([1.0, 2.0])
        c = gc.constant(data)
        data[0] = 100.0                         # the caller's array is not the node's
        np.testing.assert_array_equal(c.attrs["value"], [1.0, 2.0])
        with pytest.raises(ValueError):
            c.attrs["value"][0] = 5.0


def test_placeholders_are_never_merged():
    with gc.Graph() as g:
        a = gc.placeholder((3,), gc.float32)
        b = gc.placeholder((3,), gc.float32)
        assert a is not b
        assert (a + 1) is not (b + 1)
        assert len(g.placeholders()) == 2


def test_variables_are_never_merged():
    with gc.Graph() as g:
        v = gc.variable(np.zeros(3, np.float32))
        w = gc.variable(np.zeros(3, np.float32))
        assert v is not w
        assert g.variables() == [v, w]
        assert g.values[v] is not g.values[w]


def test_hash_consing_is_per_graph():
    with gc.Graph() as g1:
        c1 = gc.constant(1.0)
    with gc.Graph() as g2:
        c2 = gc.constant(1.0)
    assert c1 is not c2
    assert c1.graph is g1 and c2.graph is g2


# ------------------------------------------------------------ nodes


def test_node_fields():
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), gc.float32, name="x")
        y = gc.sum(x * 2, axis=1)
        assert y.op.name == "sum"
        assert y.inputs[0].op.name == "multiply"
        assert y.attrs == {"axis": (1,), "keepdims": False}
        assert y.type == gc.TensorType((None,), np.float32)
        assert y.shape == (None,) and y.dtype == np.float32 and y.ndim == 1
        assert y.graph is g and y in g and x in g
        assert g.nodes[y.id] is y


def test_node_immutable():
    with gc.Graph():
        x = gc.placeholder((3,), name="x")
        y = x + 1
        for field, value in [("name", "z"), ("op", None), ("inputs", ()), ("type", None),
                             ("attrs", {}), ("loc", None), ("graph", None), ("id", 99), ("new", 1)]:
            with pytest.raises(AttributeError):
                setattr(y, field, value)
        with pytest.raises(AttributeError):
            del y.name
        assert y.name == "add" and y.inputs[0] is x
        assert isinstance(y.inputs, tuple)


def test_node_identity_equality_and_hash():
    with gc.Graph():
        x = gc.placeholder((3,))
        y = gc.placeholder((3,))
        assert x == x and x != y                # identity, not elementwise
        assert len({x, y, x}) == 2
        assert {x: 1}[x] == 1


def test_repr_mentions_name_op_type_and_location():
    with gc.Graph():
        line = next_line()
        x = gc.placeholder((None, 3), gc.int64, name="tokens")
        r = repr(x)
    assert "tokens" in r and "placeholder" in r and "int64[?, 3]" in r
    assert f"test_graph.py:{line}" in r


# ------------------------------------------------------------ the default graph


def test_with_graph_makes_it_the_default():
    g = gc.Graph()
    with g as entered:
        assert entered is g
        assert gc.get_default_graph() is g
        x = gc.placeholder((2,))
        y = gc.exp(x)
    assert x.graph is g and y.graph is g
    assert g.nodes == [x, y]
    assert gc.get_default_graph() is not g


def test_nested_graphs():
    outer, inner = gc.Graph("outer"), gc.Graph("inner")
    with outer:
        a = gc.placeholder((2,))
        with inner:
            assert gc.get_default_graph() is inner
            b = gc.placeholder((2,))
            c = gc.constant(1.0)
            # an op on a's nodes is built in a's graph, whatever the default is
            d = a * 2
        assert gc.get_default_graph() is outer
        e = gc.placeholder((2,))
    assert a.graph is outer and e.graph is outer and d.graph is outer
    assert b.graph is inner and c.graph is inner
    assert inner.nodes == [b, c]


def test_reentering_a_graph():
    g = gc.Graph()
    with g:
        x = gc.placeholder((2,))
    with g:
        y = x + 1
    assert y.graph is g and g.nodes[-1] is y


def test_default_graph_restored_after_an_exception():
    before = gc.get_default_graph()
    g = gc.Graph()
    with pytest.raises(gc.ShapeError):
        with g:
            gc.placeholder((2,)) + gc.placeholder((3,))
    assert gc.get_default_graph() is before


def test_process_wide_default_graph_and_reset():
    gc.reset_default_graph()
    try:
        root = gc.get_default_graph()
        assert gc.get_default_graph() is root
        x = gc.placeholder((2,))
        assert x.graph is root
        gc.reset_default_graph()
        assert gc.get_default_graph() is not root
    finally:
        gc.reset_default_graph()


# ------------------------------------------------------------ locations


def test_loc_points_to_the_users_line():
    with gc.Graph():
        line_x = next_line()
        x = gc.placeholder((2, 3), name="x")
        line_y = next_line()
        y = gc.sum(gc.exp(x) * 2.0, axis=-1)
        line_op = next_line()
        z = -x
    assert x.loc == (__file__, line_x)
    assert y.loc == (__file__, line_y)
    assert y.inputs[0].loc == (__file__, line_y)               # the multiply
    assert y.inputs[0].inputs[0].loc == (__file__, line_y)     # the exp
    assert z.loc == (__file__, line_op)                        # operators too
    assert x.where == f"{__file__}:{line_x}"


def test_loc_through_a_user_helper_is_the_helper_line():
    def helper(t):
        return gc.tanh(t)                  # the innermost frame outside graphc
    helper_line = helper.__code__.co_firstlineno + 1
    with gc.Graph():
        y = helper(gc.placeholder((2,)))
    assert y.loc == (__file__, helper_line)


def test_loc_of_hash_consed_node_is_its_first_build():
    with gc.Graph():
        x = gc.placeholder((2,))
        line = next_line()
        a = gc.exp(x)
        b = gc.exp(x)
    assert a is b and a.loc[1] == line


def test_loc_of_constants_and_variables():
    with gc.Graph():
        line = next_line()
        v = gc.variable(np.zeros(2, np.float32))
        line_c = next_line()
        c = gc.constant(5.0)
    assert v.loc == (__file__, line)
    assert c.loc == (__file__, line_c)


# ------------------------------------------------------------ names


def test_unique_names():
    with gc.Graph():
        a = gc.placeholder((2,), name="x")
        b = gc.placeholder((2,), name="x")
        c = gc.placeholder((2,), name="x")
        assert (a.name, b.name, c.name) == ("x", "x_0", "x_1")
        s1 = a + b
        s2 = a + c
        s3 = b + c
        assert (s1.name, s2.name, s3.name) == ("add", "add_0", "add_1")
        d = gc.placeholder((2,), name="add_2")
        s4 = s1 + s2
        assert d.name == "add_2" and s4.name == "add_3"
        named = gc.exp(a, name="activation")
        assert named.name == "activation"


def test_all_names_in_a_graph_are_distinct():
    with gc.Graph() as g:
        x = gc.placeholder((3,), name="x")
        y = x
        for _ in range(5):
            y = gc.tanh(y * 2 + 1)
        gc.placeholder((3,), name="tanh")
        gc.variable(np.zeros(3, np.float32), name="x")
    names = [n.name for n in g.nodes]
    assert len(names) == len(set(names))


def test_default_names():
    with gc.Graph():
        assert gc.placeholder((2,)).name == "placeholder"
        assert gc.variable(np.zeros(2, np.float32)).name == "variable"
        assert gc.constant(1.0).name == "const"


# ------------------------------------------------------------ order


def test_creation_order_is_topological():
    with gc.Graph() as g:
        x = gc.placeholder((4, 3), name="x")
        w = gc.variable(np.ones((3, 2), np.float32), name="w")
        h = gc.relu(x @ w + 1.0)
        loss = gc.mean(gc.square(h - gc.constant(np.zeros((4, 2), np.float32))))
        gc.softmax(h)
    position = {n: i for i, n in enumerate(g.nodes)}
    assert [n.id for n in g.nodes] == list(range(len(g.nodes)))
    for n in g.nodes:
        for i in n.inputs:
            assert position[i] < position[n], (i, n)
    assert position[loss] > position[h] > position[w]


def test_ancestors_in_topological_order():
    with gc.Graph() as g:
        x = gc.placeholder((3,))
        y = gc.placeholder((3,))
        unrelated = gc.exp(y)
        a = gc.exp(x)
        b = a * x
    anc = ancestors([b])
    assert anc == [x, a, b]
    assert unrelated not in anc
    assert set(ancestors([b, unrelated])) == {x, y, a, b, unrelated}
    assert ancestors([b, unrelated]) == [n for n in g.nodes if n in {x, y, a, b, unrelated}]


def test_failed_build_adds_nothing():
    with gc.Graph() as g:
        x = gc.placeholder((2,))
        y = gc.placeholder((3,))
        before = list(g.nodes)
        with pytest.raises(gc.ShapeError):
            x + y
        assert g.nodes == before
