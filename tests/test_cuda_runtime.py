"""The CUDA backend's runtime: random graphs against the interpreter, the generated source, the
error without a GPU or simulator, and the benchmark's refusal under the simulator."""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import graphc as gc

from test_passes_semantics import HypothesisChooser, assert_same, describe, random_program

pytest.importorskip("numba.cuda")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(st.data())
def test_random_graphs_match_the_interpreter(data):
    """The passes tests' random programs (fused groups, reductions, views, broadcasting)."""
    g, inputs, outputs, bounds, feeds = random_program(HypothesisChooser(data))
    note(describe(outputs))
    want = gc.function(inputs, outputs, backend="interp")(*feeds)
    got = gc.function(inputs, outputs, backend="cuda")(*feeds)
    assert_same(got, want, bounds, "cuda backend")


def test_the_source_says_which_node_and_line_each_launch_computes():
    with gc.Graph():
        x = gc.placeholder((None, 4), gc.float32, name="x")
        w = gc.variable(np.ones((4, 3), np.float32), name="w")
        y = gc.relu(x @ w + 1.0)                              # marker: the layer
        f = gc.function([x], [y, gc.sum(y, axis=0)], backend="cuda")
    with pytest.raises(gc.ArgumentError):
        f.source
    f(np.ones((2, 4), np.float32))
    src = f.source
    line = next(k for k, t in enumerate(open(__file__).read().splitlines(), 1) if "marker: the layer" in t)
    assert "@cuda.jit" in src and "def step(" in src and f"test_cuda_runtime.py:{line}" in src
    assert "launch_matmul(" in src and "[blocks(" in src and "REDUCE_THREADS](" in src
    kernel, at = f.kernel_map[next(n for n in f.nodes if n.op.name == "matmul")]
    assert kernel == "launch_matmul" and "launch_matmul(" in src.splitlines()[at - 1]
    # a new batch size: the same kernels, no new text for them
    f(np.ones((5, 4), np.float32))
    assert len(f._compiled) == 2


def test_without_gpu_or_simulator_the_error_says_how_to_get_one():
    code = ("import numpy as np, graphc as gc\n"
            "x = gc.placeholder((3,))\n"
            "try:\n    gc.function([x], x * 2, backend='cuda')\n"
            "except gc.GraphError as e:\n    print('ERROR', e)\n")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout
    if "ERROR" not in out:
        pytest.skip("this machine has a GPU")
    assert "NUMBA_ENABLE_CUDASIM=1" in out and "graphc[cuda]" in out and "not available" in out


def test_the_benchmark_refuses_the_simulator():
    from graphc.runtime.cuda.launch import SIMULATOR
    if not SIMULATOR:
        pytest.skip("on a GPU the benchmark runs")
    from graphc.tools import bench
    with pytest.raises(SystemExit):
        bench.parse_args(["W3", "--backend", "cuda"])
    assert "simulator" in bench.cuda_unavailable()


def test_check_numerics_names_the_node_on_the_device():
    with gc.Graph():
        x = gc.placeholder((3,), gc.float32, name="x")
        y = gc.log(x) * 2.0
        f = gc.function([x], y, backend="cuda", check_numerics=True)
    np.testing.assert_allclose(f(np.ones(3, np.float32)), np.zeros(3))
    with pytest.raises(gc.NumericsError, match="log"):
        f(np.array([1.0, 0.0, 2.0], np.float32))


def test_what_the_cuda_fuzz_found():
    """Seeds 41000175, 41000107/41000386 and 41000029 of `graphc fuzz --backend cuda`: a reduction
    of a 0-d value (no reduced axis to unravel), an output that is a view of an empty feed (an
    empty device array's copy), and a negative int64 literal in integer arithmetic that wraps
    (np.uint64(-1) raises in the simulator; the literal keeps its type)."""
    with gc.Graph():
        x = gc.placeholder((), gc.int64, name="x")
        w = gc.variable(np.zeros((2, 3), np.int64), name="w")
        f = gc.function([x], gc.sum(x < -1), {w: gc.broadcast_to(gc.cast(gc.sum(x < -1), gc.int64), (2, 3))},
                        backend="cuda")
    assert f(np.array(-5, np.int64)) == 1 and (gc.get_value(w) == 1).all()
    with gc.Graph():
        v = gc.placeholder((None,), gc.float32, name="v")
        g = gc.function([v], gc.expand_dims(v, 0), backend="cuda")
    assert g(np.zeros(0, np.float32)).shape == (1, 0) and g(np.ones(2, np.float32)).shape == (1, 2)
    with gc.Graph():
        i = gc.placeholder((3,), gc.int64, name="i")
        h = gc.function([i], [i * -1 + 2, i - (-7)], backend="cuda")
    a = np.array([1, -2, 2 ** 62], np.int64)
    for got, want in zip(h(a), [a * -1 + 2, a + 7]):
        np.testing.assert_array_equal(got, want)
