"""gc.to_dot and gc.render: the DOT text parses, mirrors the graph, and styles node kinds."""
import collections
import shutil

import numpy as np
import pydot
import pytest

import graphc as gc
from graphc.core.graph import ancestors

BACKEND = "interp"

# pydot's parser uses deprecated pyparsing names; that is not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def parse(text):
    """(pydot graph, {node name: attrs with quotes stripped}, [(src, dst, attrs)])."""
    graphs = pydot.graph_from_dot_data(text)
    assert graphs is not None and len(graphs) == 1, text
    (d,) = graphs
    nodes = {}
    for n in d.get_nodes():
        if n.get_name() in ("node", "edge", "graph"):   # default-attribute statements
            continue
        assert n.get_name() not in nodes, f"node {n.get_name()} declared twice"
        nodes[n.get_name()] = {k: v.strip('"') for k, v in n.get_attributes().items()}
    edges = [(e.get_source(), e.get_destination(), {k: v.strip('"') for k, v in e.get_attributes().items()})
             for e in d.get_edges()]
    return d, nodes, edges


def label_lines(attrs):
    return attrs["label"].split("\\n")


def dot_id(node):
    return f"n{node.id}"


def expected_edges(nodes):
    return collections.Counter((dot_id(i), dot_id(n)) for n in nodes for i in n.inputs)


def data_edges(edges):
    return collections.Counter((s, t) for s, t, a in edges if a.get("style") != "dashed")


def build_model():
    """A small graph with every kind of node; returns (graph, dict of nodes)."""
    g = gc.Graph("model")
    with g:
        x = gc.placeholder((None, 3), name="x")
        w = gc.variable(np.ones((3, 2), np.float32), name="w")
        b = gc.variable(np.zeros(2, np.float32), name="b")
        h = x @ w + b
        y = gc.relu(h) - 0.5
        loss = gc.mean(gc.square(y))
        grad_b = gc.sum(y, axis=0)
    return g, dict(x=x, w=w, b=b, h=h, y=y, loss=loss, grad_b=grad_b)


# ------------------------------------------------------------ a whole graph


def test_graph_to_dot_has_every_node_and_edge():
    g, n = build_model()
    text = gc.to_dot(g)
    d, nodes, edges = parse(text)
    assert d.get_name().strip('"') == "model"
    assert d.get_type() == "digraph"
    assert set(nodes) == {dot_id(x) for x in g.nodes}
    assert len(nodes) == len(g.nodes)
    assert data_edges(edges) == expected_edges(g.nodes)
    assert not any(a.get("style") == "dashed" for _, _, a in edges)   # a graph has no updates


def test_labels_contain_op_shape_and_dtype():
    g, n = build_model()
    _, nodes, _ = parse(gc.to_dot(g))
    for node in g.nodes:
        lines = label_lines(nodes[dot_id(node)])
        shape_text = "(" + ", ".join("?" if s is None else str(s) for s in node.shape) \
            + ("," if node.ndim == 1 else "") + ")"
        assert lines[-1] == f"{shape_text} {node.dtype}", lines
        if node.op.name == "constant":
            assert lines[0].startswith("const")
        else:
            assert node.op.name in lines[:2], lines
    x_lines = label_lines(nodes[dot_id(n["x"])])
    assert x_lines == ["x", "placeholder", "(?, 3) float32"]
    assert label_lines(nodes[dot_id(n["w"])]) == ["w", "variable", "(3, 2) float32"]
    assert label_lines(nodes[dot_id(n["loss"])])[-1] == "() float32"
    assert "axis=(0,)" in label_lines(nodes[dot_id(n["grad_b"])])


def test_constant_label_shows_its_value():
    with gc.Graph() as g:
        x = gc.placeholder((2,), name="x")
        x * 2.5
    _, nodes, _ = parse(gc.to_dot(g))
    consts = [a for a in nodes.values() if a["shape"] == "note"]
    assert len(consts) == 1
    assert label_lines(consts[0])[0] == "const 2.5"


def test_attribute_labels():
    with gc.Graph() as g:
        x = gc.placeholder((4, 6), name="x")
        r = gc.reshape(x, (3, 8))
        s = x[1:3, ::2]
        c = gc.cast(x, gc.int32)
    _, nodes, _ = parse(gc.to_dot(g))
    assert "shape=(3, 8)" in label_lines(nodes[dot_id(r)])
    assert "[1:3, ::2]" in label_lines(nodes[dot_id(s)])
    assert "dtype=int32" in label_lines(nodes[dot_id(c)])


def test_node_kinds_have_distinct_styles():
    g, n = build_model()
    _, nodes, _ = parse(gc.to_dot(g))

    def style(node):
        a = nodes[dot_id(node)]
        return (a["shape"], a.get("fillcolor"))

    const = next(x for x in g.nodes if x.op.name == "constant")
    kinds = {"placeholder": style(n["x"]), "variable": style(n["w"]),
             "constant": style(const), "op": style(n["h"])}
    assert len(set(kinds.values())) == 4, kinds
    assert style(n["b"]) == kinds["variable"]
    assert style(n["loss"]) == style(n["y"]) == kinds["op"]
    assert kinds["placeholder"][0] == "ellipse" and kinds["variable"][0] == "cylinder"
    # in a plain graph nothing is marked as an output
    assert not any("penwidth" in a for a in nodes.values())


def test_multiple_inputs_of_a_non_commutative_op_are_numbered():
    with gc.Graph() as g:
        a = gc.placeholder((2,), name="a")
        b = gc.placeholder((2,), name="b")
        d = a - b
        m = a * b
        sq = a * a
    _, _, edges = parse(gc.to_dot(g))
    into_d = {s: attrs.get("label") for s, t, attrs in edges if t == dot_id(d)}
    assert into_d == {dot_id(a): "0", dot_id(b): "1"}
    assert all("label" not in attrs for s, t, attrs in edges if t == dot_id(m))
    assert [s for s, t, _ in edges if t == dot_id(sq)] == [dot_id(a), dot_id(a)]   # x * x: two edges


def test_rankdir_and_escaping():
    with gc.Graph('the "quoted" graph') as g:
        gc.placeholder((2,), name='odd"name\\x')
    text = gc.to_dot(g, rankdir="LR")
    d, nodes, _ = parse(text)
    assert "rankdir=LR" in text
    (attrs,) = nodes.values()
    assert label_lines(attrs)[0] == 'odd\\"name\\\\x'


def test_empty_graph():
    d, nodes, edges = parse(gc.to_dot(gc.Graph("empty")))
    assert nodes == {} and edges == []


# ------------------------------------------------------------ a compiled function


def test_function_to_dot():
    g, n = build_model()
    with g:
        lr = 0.1
        f = gc.function([n["x"]], [n["loss"], n["y"]],
                        updates={n["b"]: n["b"] - lr * n["grad_b"]}, backend=BACKEND)
    d, nodes, edges = parse(gc.to_dot(f))
    assert d.get_name().strip('"') == "model"
    assert set(nodes) == {dot_id(x) for x in f.nodes}
    assert len(nodes) == len(f.nodes)
    assert data_edges(edges) == expected_edges(f.nodes)

    # outputs are marked; nothing else is
    marked = {name for name, a in nodes.items() if "penwidth" in a}
    assert marked == {dot_id(n["loss"]), dot_id(n["y"])}
    assert all(nodes[m].get("color") == nodes[dot_id(n["loss"])]["color"] for m in marked)
    assert nodes[dot_id(n["y"])]["shape"] == "box"     # still an op box, with the output border

    # one dashed update edge, from the new value to the variable
    dashed = [(s, t, a) for s, t, a in edges if a.get("style") == "dashed"]
    (new_b,) = f.updates.values()
    assert [(s, t) for s, t, _ in dashed] == [(dot_id(new_b), dot_id(n["b"]))]
    assert dashed[0][2].get("label") == "update"


def test_function_updating_a_variable_nothing_reads():
    with gc.Graph():
        x = gc.placeholder((3,), name="x")
        v = gc.variable(np.zeros(3, np.float32), name="v")
        f = gc.function([x], [], updates={v: x * 2}, backend=BACKEND)
    _, nodes, edges = parse(gc.to_dot(f))
    assert dot_id(v) in nodes                       # declared, so it gets its label and style
    assert nodes[dot_id(v)]["shape"] == "cylinder"
    assert label_lines(nodes[dot_id(v)])[:2] == ["v", "variable"]
    for s, t, _ in edges:
        assert s in nodes and t in nodes


def test_function_outputs_of_every_kind_are_marked():
    with gc.Graph():
        x = gc.placeholder((2,), name="x")
        v = gc.variable(np.zeros(2, np.float32), name="v")
        c = gc.constant(np.ones(2, np.float32))
        f = gc.function([x], [x, v, c], backend=BACKEND)
    _, nodes, edges = parse(gc.to_dot(f))
    assert len(nodes) == 3 and edges == []
    assert all("penwidth" in a for a in nodes.values())
    assert len({a["shape"] for a in nodes.values()}) == 3


def test_swap_updates_are_two_dashed_edges():
    with gc.Graph():
        a = gc.variable(np.zeros(2, np.float32), name="a")
        b = gc.variable(np.ones(2, np.float32), name="b")
        f = gc.function([], [], updates={a: b, b: a}, backend=BACKEND)
    _, nodes, edges = parse(gc.to_dot(f))
    assert set(nodes) == {dot_id(a), dot_id(b)}
    dashed = {(s, t) for s, t, attrs in edges if attrs.get("style") == "dashed"}
    assert dashed == {(dot_id(a), dot_id(b)), (dot_id(b), dot_id(a))}
    assert len(edges) == 2


# ------------------------------------------------------------ nodes


def test_node_to_dot_shows_its_ancestors():
    g, n = build_model()
    _, nodes, edges = parse(gc.to_dot(n["loss"]))
    expected = ancestors([n["loss"]])
    assert set(nodes) == {dot_id(x) for x in expected}
    assert dot_id(n["grad_b"]) not in nodes           # not an ancestor of loss
    assert data_edges(edges) == expected_edges(expected)
    marked = {name for name, a in nodes.items() if "penwidth" in a}
    assert marked == {dot_id(n["loss"])}


def test_list_of_nodes_to_dot():
    g, n = build_model()
    outs = [n["h"], n["grad_b"]]
    d, nodes, edges = parse(gc.to_dot(outs))
    expected = ancestors(outs)
    assert set(nodes) == {dot_id(x) for x in expected}
    assert dot_id(n["loss"]) not in nodes
    assert data_edges(edges) == expected_edges(expected)
    assert {name for name, a in nodes.items() if "penwidth" in a} == {dot_id(x) for x in outs}
    assert d.get_name().strip('"') == "model"
    assert parse(gc.to_dot(tuple(outs)))[1] == nodes


def test_to_dot_of_something_else():
    with pytest.raises(gc.GraphError, match="to_dot"):
        gc.to_dot(42)
    with pytest.raises(gc.GraphError):
        gc.to_dot([])
    with pytest.raises(gc.GraphError):
        gc.to_dot("digraph {}")


# ------------------------------------------------------------ render


def test_render_svg(tmp_path):
    if shutil.which("dot") is None:
        pytest.skip("Graphviz `dot` is not installed")
    g, n = build_model()
    path = tmp_path / "model.svg"
    assert gc.render(g, str(path)) == str(path)
    text = path.read_text()
    assert "<svg" in text
    assert "placeholder" in text and "variable" in text and "matmul" in text
    assert text.count('class="node"') == len(g.nodes)


def test_render_png_of_a_function(tmp_path):
    if shutil.which("dot") is None:
        pytest.skip("Graphviz `dot` is not installed")
    with gc.Graph():
        x = gc.placeholder((2,), name="x")
        f = gc.function([x], x + 1, backend=BACKEND)
    path = tmp_path / "f.PNG"                      # the extension is case-insensitive
    gc.render(f, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _check_not_found(info):
    msg = str(info.value)
    assert isinstance(info.value, gc.GraphError)
    assert "Graphviz" in msg and "dot" in msg
    assert "apt-get install graphviz" in msg
    assert "brew install graphviz" in msg


def test_render_without_dot_on_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert shutil.which("dot") is None
    g, _ = build_model()
    out = tmp_path / "model.svg"
    with pytest.raises(gc.GraphvizNotFound) as info:
        gc.render(g, str(out))
    _check_not_found(info)
    assert not out.exists()


def test_render_without_dot_via_which(tmp_path, monkeypatch):
    seen = []

    def which(cmd, *args, **kwargs):
        seen.append(cmd)
        return None

    monkeypatch.setattr(shutil, "which", which)
    g, _ = build_model()
    with pytest.raises(gc.GraphvizNotFound) as info:
        gc.render(g, str(tmp_path / "model.pdf"))
    _check_not_found(info)
    assert seen == ["dot"]
    assert issubclass(gc.GraphvizNotFound, RuntimeError)


@pytest.mark.parametrize("name", ["model.txt", "model", "model.dot", "model.svg.bak"])
def test_render_bad_extension(tmp_path, monkeypatch, name):
    monkeypatch.setattr(shutil, "which", lambda *a, **k: pytest.fail("looked for dot"))
    g, _ = build_model()
    with pytest.raises(gc.GraphError) as info:
        gc.render(g, str(tmp_path / name))
    assert not isinstance(info.value, gc.GraphvizNotFound)
    msg = str(info.value)
    assert name in msg and ".svg" in msg and ".png" in msg and ".pdf" in msg
    assert not (tmp_path / name).exists()
