"""W5 and W7 (graphc/tools/workloads_nn.py): the hand-written numpy steps, which `graphc bench`
times as its numpy column, agree with the graphc graph on the interpreter over several SGD
steps (so their backward passes and updates are the same), at small sizes."""
import numpy as np
from graphc.tools import bench
from graphc.tools.workloads_nn import w5_cnn_step, w7_lstm_step


def _same_losses(w, steps=3):
    f = w.function("interp")
    for _ in range(steps):
        got, want = f(*w.data)[0], w.numpy_fn(*w.data)[0]
        np.testing.assert_allclose(got, want, rtol=2e-5)


def test_w5_numpy_step_matches_the_graph():
    _same_losses(w5_cnn_step(batch=4))


def test_w7_numpy_step_matches_the_graph():
    _same_losses(w7_lstm_step(batch=3, steps=5, features=4, units=6))


def test_bench_knows_w5_and_w7():
    assert {"W5", "W7"} <= set(bench.WORKLOADS) and {"W5", "W7"} <= set(bench.known_workloads())
