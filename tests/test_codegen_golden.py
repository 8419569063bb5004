"""Golden sources: the whole generated module (fn.source) of four small graphs, pinned in
tests/golden/*.py.txt.

The generated code is read by people (fn.source, the teaching page), so a change in what it
says or how it is laid out should be a decision, not an accident: a changed text fails here
with a unified diff. After a deliberate change, rewrite the files and review their diff:

    GRAPHC_UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q tests/test_codegen_golden.py

The graphs are built by the helpers right below, and the step's comments name the file:line
that built each node, so editing those lines changes the goldens (rewrite them as above).
Each module must also still compute what the interpreter computes, and fn.kernel_map must
link every node that runs to a line of fn.source that names its kernel and the node.
"""
import difflib
import os
import re
from collections import Counter

import numpy as np
import pytest

import graphc as gc

# ---------------------------------------------------------------- the graphs (these lines are in the goldens)


def elementwise_chain():
    """One fused group with a broadcast input, two outputs, and a literal (0.01) to keep short."""
    x = gc.placeholder((3, 4), gc.float32, name="x")
    b = gc.placeholder((4,), gc.float32, name="b")
    h = gc.tanh(x * 1.5 + b)
    y = h * gc.sigmoid(x) - 0.01
    return [x, b], [h, y], None


def softmax_and_mean():
    """A row softmax kernel, then a mean over the batch of a fused prologue."""
    x = gc.placeholder((4, 5), gc.float32, name="x")
    p = gc.softmax(x, axis=1)
    return [x], [p, gc.mean(p * x, axis=0)], None


def mlp_train_step():
    """Matmuls (BLAS), a softmax cross-entropy, the gradients, and SGD updates written into
    the variables in place: a long step, so plain Python calling the kernels."""
    rng = np.random.default_rng(0)
    x = gc.placeholder((8, 4), gc.float32, name="x")
    t = gc.placeholder((8, 3), gc.float32, name="t")
    W1 = gc.variable(rng.normal(size=(4, 6)).astype(np.float32), name="W1")
    b1 = gc.variable(np.zeros(6, np.float32), name="b1")
    W2 = gc.variable(rng.normal(size=(6, 3)).astype(np.float32), name="W2")
    h = gc.relu(x @ W1 + b1)
    loss = gc.mean(-gc.sum(t * gc.log_softmax(h @ W2, axis=1), axis=1))
    grads = gc.grad(loss, [W1, b1, W2])
    return [x, t], [loss], {v: v - 0.1 * g for v, g in zip([W1, b1, W2], grads)}


def batch_reduction():
    """A None batch dimension (compiled for the fed size) and reductions along both axes."""
    x = gc.placeholder((None, 3), gc.float32, name="x")
    s = gc.sum(gc.exp(x) * 2.0, axis=1)
    return [x], [s, gc.max(x, axis=0)], None


# name -> (graph builder, shapes fed)
CASES = {
    "elementwise_chain": (elementwise_chain, [(3, 4), (4,)]),
    "softmax_and_mean": (softmax_and_mean, [(4, 5)]),
    "mlp_train_step": (mlp_train_step, [(8, 4), (8, 3)]),
    "batch_reduction": (batch_reduction, [(5, 3)]),
}

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "golden")


def feeds(shapes):
    rng = np.random.default_rng(1)
    return [rng.normal(size=s).astype(np.float32) for s in shapes]


def build(name, backend):
    """A function of a fresh graph (so two backends never share variables), called once."""
    make, shapes = CASES[name]
    with gc.Graph():
        inputs, outputs, updates = make()
        fn = gc.function(inputs, outputs, updates, backend=backend)
        variables = list(updates or {})
    out = fn(*feeds(shapes))
    return fn, out, [gc.get_value(v) for v in variables]


@pytest.fixture(scope="module")
def compiled():
    """Every case compiled once. The comments give files relative to the working directory,
    so compile from the repository root: the goldens say tests/test_codegen_golden.py."""
    here = os.getcwd()
    os.chdir(ROOT)
    try:
        return {name: build(name, "cpu") for name in CASES}
    finally:
        os.chdir(here)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_generated_module_matches_its_golden_file(compiled, name):
    source = compiled[name][0].source
    path = os.path.join(GOLDEN, f"{name}.py.txt")
    if os.environ.get("GRAPHC_UPDATE_GOLDEN") == "1":
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, "w") as f:
            f.write(source)
    with open(path) as f:
        golden = f.read()
    if source != golden:
        diff = "".join(difflib.unified_diff(golden.splitlines(True), source.splitlines(True),
                                            f"tests/golden/{name}.py.txt", "fn.source"))
        pytest.fail(f"the generated module changed (GRAPHC_UPDATE_GOLDEN=1 rewrites the golden):\n{diff}",
                    pytrace=False)


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_golden_module_computes_what_the_interpreter_does(compiled, name):
    _, got, got_vars = compiled[name]
    _, want, want_vars = build(name, "interp")
    for a, b in zip(got + got_vars, want + want_vars):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_kernel_map_links_every_node_that_runs_to_its_line(compiled, name):
    fn = compiled[name][0]
    lines = fn.source.split("\n")
    kernels = set(re.findall(r"^def (\w+)\(", fn.source, re.M)) - {"step"}
    running = [n for n in fn.nodes if n.op.kind != "source"]
    assert set(fn.kernel_map) == set(running)
    for n in running:
        kernel, line = fn.kernel_map[n]
        text = lines[line - 1]                                   # line numbers are 1-based
        assert n.name in text, (n.name, text)
        if kernel is not None:
            assert kernel in kernels or kernel == "matmul_into", kernel
            assert text.lstrip().startswith(kernel + "("), (kernel, text)
    fused = [n for n in running if n.op.name == "fused"]
    assert fused and all(fn.kernel_map[n][0] for n in fused)   # a fused node names the kernel of its region


def test_kernels_are_named_once_and_shared_by_identical_work(compiled):
    """No two kernels share a name; the same work on two inputs is one kernel, called twice."""
    source = compiled["mlp_train_step"][0].source
    assert max(Counter(re.findall(r"^def (\w+)\(", source, re.M)).values()) == 1
    with gc.Graph():
        a = gc.placeholder((None, 3), gc.float32, name="a")
        b = gc.placeholder((None, 3), gc.float32, name="b")
        fn = gc.function([a, b], [gc.tanh(a * 2.0 + 1.0), gc.tanh(b * 2.0 + 1.0)], backend="cpu")
    fn(np.ones((2, 3), np.float32), np.zeros((2, 3), np.float32))
    defs = Counter(re.findall(r"^def (\w+)\(", fn.source, re.M))
    calls = Counter(re.findall(r"^    (\w+)\(", fn.source.split("\ndef step(")[1], re.M))
    assert any(calls[k] == 2 for k in defs) and len(defs) == 2, (defs, calls)     # the kernel and step


def test_the_kernel_map_needs_a_call_first():
    with gc.Graph():
        x = gc.placeholder((3,), gc.float32)
        fn = gc.function([x], gc.exp(x), backend="cpu")
    with pytest.raises(gc.ArgumentError):
        fn.kernel_map


def test_what_runs_holds_no_locations_and_imports_every_kernel(compiled):
    """What runs -- each kernel in a module of its own, the bare step in one importing them --
    has no users' file:line or names, so moving or renaming a graph does not recompile it."""
    fn = compiled["elementwise_chain"][0]
    (c,) = fn._compiled.values()
    assert "test_codegen_golden.py:" in fn.source
    for text in [c.program.cache_source] + c.program.kernel_sources:
        assert "test_codegen_golden.py:" not in text and "#" not in text.split("def ", 1)[1]
    kernels = re.findall(r"^def (\w+)\(", fn.source, re.M)[:-1]
    imported = re.findall(r"^from graphc_kernels_\w+ import (\w+)(?: as (\w+))?$", c.program.cache_source, re.M)
    assert sorted(alias or name for name, alias in imported) == sorted(kernels)
    assert len(c.program.kernel_sources) == len(kernels)
    assert "in0_x" in fn.source and "in0_x" not in c.program.cache_source


def test_the_readme_shows_a_trimmed_copy_of_a_golden_module():
    """README.md's excerpt of generated code is the MLP golden with parts left out (`# ...`)."""
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    at = readme.index("tests/golden/mlp_train_step.py.txt")
    excerpt = readme[readme.index("```python\n", at) + 10:]
    excerpt = excerpt[:excerpt.index("```")].splitlines()
    with open(os.path.join(GOLDEN, "mlp_train_step.py.txt")) as f:
        golden = iter(f.read().splitlines())
    for line in excerpt:                    # in order, each line a line of the golden
        if "# ..." not in line:
            assert line in golden, f"README.md's excerpt is stale at: {line!r}"
