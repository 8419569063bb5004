"""The architecture's promises: no import cycle, files under 400 lines, compiling leaves the
user's graph alone, the variable store, constants keyed by digest, graphc's own files told
apart by path, Numba configured on first use, regions and several outputs."""
import ast
import os
import subprocess
import sys

import networkx as nx
import numpy as np
import pytest

import graphc as gc
from graphc.core.graph import is_internal
from graphc.core.region import Param, Ref, Region, Step
from graphc.core.types import TupleType
from graphc.ops import REGISTRY

from gradcheck import check_grad

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = {"graphc": "graphc", "ops": "graphc.ops", "passes": "graphc.passes", "runtime": "graphc.runtime"}


def source_files():
    for folder in PACKAGES:
        for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
            for f in files:
                if f.endswith(".py"):
                    yield os.path.join(dirpath, f)


def module_name(path):
    rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    parts = PACKAGES[rel[0]].split(".") + rel[1:]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph():
    """Module -> modules it imports (every import statement, also inside functions)."""
    files = {module_name(p): p for p in source_files()}
    dag = nx.DiGraph()
    for mod, path in files.items():
        dag.add_node(mod)
        package = mod if path.endswith("__init__.py") else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(open(path).read())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")
                    base = ".".join(up[:len(up) - node.level + 1] + ([base] if base else []))
                # `from pkg import sub` imports the submodule when there is one
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for t in targets:
                if t in files and t != mod:
                    dag.add_edge(mod, t)
    return dag


def test_no_import_cycle():
    dag = import_graph()
    assert len(dag) > 40
    cycles = list(nx.simple_cycles(dag))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c + c[:1]) for c in cycles[:5])


def test_layers_import_only_downwards():
    """core imports nothing of graphc; ops never passes/runtime/nn; passes never runtime."""
    dag = import_graph()
    rules = {"graphc.core": ("graphc.",), "graphc.ops": ("graphc.passes", "graphc.runtime", "graphc.nn",
                                                          "graphc.function", "graphc.api", "graphc.tools"),
             "graphc.passes": ("graphc.runtime", "graphc.nn", "graphc.function", "graphc.tools", "graphc.api")}
    for mod, dep in dag.edges:
        for layer, banned in rules.items():
            if mod.startswith(layer) and not dep.startswith(layer) and dep.startswith(banned):
                if (mod, dep) != ("graphc.passes.pipeline", "graphc.view.dot"):    # inside DumpDot only
                    pytest.fail(f"{mod} imports {dep}")


def test_ops_import_without_numba():
    code = "import sys; import graphc.ops; assert 'numba' not in sys.modules, 'numba was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_importing_graphc_configures_nothing():
    """Numba's settings are chosen when the first CPU function is built, not by an import."""
    code = ("import os; import graphc; import graphc.runtime.cpu\n"
            "assert 'NUMBA_THREADING_LAYER' not in os.environ and 'NUMBA_CPU_FEATURES' not in os.environ\n"
            "import numpy as np, graphc as gc\n"
            "x = gc.placeholder((3,)); f = gc.function([x], gc.exp(x), backend='cpu')\n"
            "assert 'NUMBA_THREADING_LAYER' in os.environ")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env)


@pytest.mark.parametrize("path", sorted(source_files()), ids=lambda p: os.path.relpath(p, ROOT))
def test_no_source_file_over_400_lines(path):
    with open(path) as f:
        n = sum(1 for _ in f)
    assert n <= 400, f"{os.path.relpath(path, ROOT)} has {n} lines"


def test_every_package_says_what_it_may_import():
    for folder in ("graphc", "graphc/core", "graphc/nn", "graphc/view", "graphc/tools", "ops", "passes",
                   "runtime", "runtime/cpu"):
        doc = ast.get_docstring(ast.parse(open(os.path.join(ROOT, folder, "__init__.py")).read()))
        assert doc and ("import" in doc or folder == "graphc"), folder


def test_graphc_files_are_internal_by_path_prefix(tmp_path):
    import graphc.core.region as region
    import graphc.runtime.cpu.loops as loops
    assert is_internal(region.__file__) and is_internal(loops.__file__)
    new_sub = os.path.join(os.path.dirname(gc.__file__), "someday", "new.py")   # a folder not made yet
    assert is_internal(new_sub)
    assert not is_internal(__file__) and not is_internal(str(tmp_path / "user.py"))


def test_errors_point_at_the_users_line():
    x = gc.placeholder((2, 3))
    with pytest.raises(gc.ShapeError) as e:
        gc.placeholder((4,)) + x                                         # this line
    assert f"{os.path.basename(__file__)}:" in str(e.value) and "site-packages" not in str(e.value)

# ---------------------------------------------------------------- compiling leaves the user's graph alone


@pytest.mark.parametrize("backend", ["interp", "cpu"])
def test_to_dot_of_the_users_graph_is_unchanged_by_compiling(backend):
    with gc.Graph() as g:
        x = gc.placeholder((None, 4), name="x")
        w = gc.variable(np.ones((4, 3), np.float32), name="w")
        loss = gc.mean(gc.tanh(x @ w) * 2.0 + gc.random.uniform(x @ w, seed=1))
        (gw,) = gc.grad(loss, [w])
        new_w = w - 0.1 * gw
    before, n = gc.to_dot(g), len(g.nodes)
    f = gc.function([x], loss, updates={w: new_w}, backend=backend)
    f(np.ones((2, 4), np.float32))
    assert gc.to_dot(g) == before and len(g.nodes) == n
    assert gc.to_dot(f) != before                                   # the program: optimized, counter updated
    assert all(n.graph is f.program_graph for n in f.nodes)


def test_interp_and_cpu_take_turns_on_one_variable():
    with gc.Graph():
        v = gc.variable(np.zeros(3), name="v")
        step_i = gc.function([], [], updates={v: v + 1})
        step_c = gc.function([], [], updates={v: v * 2}, backend="cpu")
        step_i(), step_c(), step_i()
        np.testing.assert_array_equal(gc.get_value(v), [3, 3, 3])
        assert v.graph.store.where(v) == "host"


def test_store_copies_a_device_value_to_the_host_on_demand():
    with gc.Graph() as g:
        v = gc.variable(np.arange(3.0), name="v")
    copies = []
    g.store.register_device("fake", to_host=lambda a: (copies.append("to host"), np.array(a))[1],
                            to_device=lambda a: (copies.append("to device"), list(a))[1])
    g.store.put(v, [5.0, 6.0, 7.0], "fake")
    assert g.store.where(v) == "fake" and copies == []
    np.testing.assert_array_equal(gc.get_value(v), [5, 6, 7])
    assert g.store.where(v) == "host" and copies == ["to host"]
    assert g.store.get(v, "fake") == [5.0, 6.0, 7.0] and copies == ["to host", "to device"]


def test_large_constants_are_keyed_by_a_digest_not_a_copy():
    big = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
    with gc.Graph():
        a, b = gc.constant(big), gc.constant(big.copy())
        c = gc.constant(big + 1)
    assert a is b and a is not c
    key = a.op.key(a.attrs)
    assert sum(len(k) for k in key if isinstance(k, bytes)) <= 64


# ---------------------------------------------------------------- regions and several outputs


def test_a_region_types_and_evaluates_its_steps():
    mul, tanh = REGISTRY["multiply"], REGISTRY["tanh"]
    r = Region(2, (Step(mul, (), (Param(0), Param(1))), Step(tanh, (), (Ref(0),))), (1,))
    t = gc.TensorType((3,), gc.float32)
    assert [x.shape for x in r.types((t, gc.TensorType((), gc.float32)))] == [(3,), (3,)]
    a = np.array([0.1, 0.2, 0.3], np.float32)
    np.testing.assert_allclose(r.evaluate((a, np.float32(2)))[1], np.tanh(2 * a))
    assert str(r) == "v0 = multiply(p0, p1); v1 = tanh(v0) -> v1"


def test_split_has_several_outputs_and_one_gradient_per_output():
    with gc.Graph():
        x = gc.placeholder((5, 2), gc.float64)
        a, b, c = gc.split(x, [1, 3])
        assert isinstance(a.inputs[0].type, TupleType) and [p.shape for p in (a, b, c)] == [(1, 2), (2, 2), (2, 2)]
    # b is not used: its gradient slot stays None and becomes zeros
    check_grad(lambda x: gc.concatenate([gc.tanh(gc.split(x, [1, 3])[0]), gc.split(x, 5)[4] ** 2], axis=0),
               [np.random.default_rng(1).standard_normal((5, 2))])


@pytest.mark.parametrize("backend", ["interp", "cpu"])
def test_split_runs_on_every_backend(backend):
    with gc.Graph():
        x = gc.placeholder((None, 6))
        parts = gc.split(x, 3, axis=1)
        f = gc.function([x], [p * 2 for p in parts] + [gc.sum(parts[1])], backend=backend)
    v = np.arange(12, dtype=np.float32).reshape(2, 6)
    out = f(v)
    for k in range(3):
        np.testing.assert_array_equal(out[k], v[:, 2 * k:2 * k + 2] * 2)
    assert out[3] == v[:, 2:4].sum()


def test_split_errors_name_the_sizes():
    x = gc.placeholder((5,))
    with pytest.raises(gc.ShapeError, match="5 elements along axis 0 do not divide into 2"):
        gc.split(x, 2)
    with pytest.raises(gc.ShapeError, match="when the graph is built"):
        gc.split(gc.placeholder((None,)), 2)


@pytest.mark.parametrize("backend", ["interp", "cpu"])
def test_outputs_of_a_multi_output_node_are_scheduled_right_after_it(backend):
    """Its kernel writes every output at once: memory is handed to them there, even when the
    output nodes were built long after the node (other work in between)."""
    from graphc.ops.base import apply
    with gc.Graph() as g:
        x = gc.placeholder((4,), name="x")
        s = apply("split", [x], bounds=((0, 2), (2, 4)), axis=0)
        between = gc.exp(x * 3.0)[1:3] * 2.0
        a, b = (g.add(REGISTRY["output"], (s,), {"index": k}) for k in (0, 1))
        f = gc.function([x], [a * between + b, gc.tanh(b)], backend=backend)
    order = [n.op.name for n in f.nodes]
    assert order[order.index("split") + 1:order.index("split") + 3] == ["output", "output"]
    v = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    out = f(v)
    np.testing.assert_allclose(out[0], v[:2] * np.exp(3 * v)[1:3] * 2 + v[2:], rtol=1e-6)
    np.testing.assert_allclose(out[1], np.tanh(v[2:]), rtol=1e-6)


def test_split_of_a_constant_and_with_a_none_axis():
    """Found by `graphc fuzz`: folding a split of a constant crashed; the gradient through a
    split of a tensor with a None axis, one piece unused, asked for a broadcast to None."""
    with gc.Graph():
        a, b = gc.split(gc.constant(np.arange(4.0)), 2)
        f = gc.function([], [a * 2, b], backend="interp", optimize=True)
        np.testing.assert_array_equal(f()[0], [0, 2])
        x = gc.placeholder((None, 4), gc.float64)
        first, _ = gc.split(x, 2, axis=1)
        (gx,) = gc.grad(gc.sum(first * first), [x])
        v = np.arange(8.0).reshape(2, 4)
        np.testing.assert_array_equal(gc.function([x], gx)(v), np.concatenate([2 * v[:, :2], 0 * v[:, 2:]], 1))


@pytest.mark.parametrize("backend", ["interp", "cpu"])
def test_argmax_over_size_one_axes_is_zero(backend):
    """Found by `graphc fuzz`: the size-1 reduction rule turned argmax(int64 x, axis=1) into x."""
    with gc.Graph():
        x = gc.placeholder((3, 1), gc.int64)
        f = gc.function([x], [gc.argmax(x, axis=1, keepdims=True), gc.argmin(x, axis=1)], backend=backend)
    out = f(np.array([[5], [7], [9]]))
    np.testing.assert_array_equal(out[0], [[0], [0], [0]])
    np.testing.assert_array_equal(out[1], [0, 0, 0])
