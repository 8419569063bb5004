"""check_numerics=True: the first value holding nan or inf raises gc.NumericsError naming the
op, the node and the user's line, on the interpreter and the CPU backend alike; the
variables keep their values; off (the default), nothing in the generated code or the call
path changes."""
import os

import numpy as np
import pytest

import graphc as gc

HERE = os.path.basename(__file__)


def line_of(marker):
    with open(__file__) as f:
        return next(k for k, text in enumerate(f, 1) if marker in text and "line_of(" not in text)


@pytest.fixture(scope="module")
def program():
    with gc.Graph():
        x = gc.placeholder((4,), gc.float32, name="x")
        w = gc.variable(np.ones(4, np.float32), name="w")
        h = gc.log(x)                                          # marker: log
        y = h * 2.0 + w                                        # marker: fused
        r = gc.reciprocal(gc.sum(y) - 4.0)                     # marker: reciprocal
        graph = ([x], [y, r], {w: w + y * 0.0})
        fns = {(b, check): gc.function(*graph, backend=b, check_numerics=check)
               for b in ("interp", "cpu", "cuda") for check in (False, True)}
    return fns, w


@pytest.mark.parametrize("backend", ["interp", "cpu", "cuda"])
def test_finite_values_pass_and_give_what_the_unchecked_function_gives(program, backend):
    fns, w = program
    gc.set_value(w, np.ones(4, np.float32))
    x = np.array([1, 2, 3, 4], np.float32)
    plain = fns[backend, False](x)
    gc.set_value(w, np.ones(4, np.float32))
    checked = fns[backend, True](x)
    for a, b in zip(plain, checked):
        np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize("backend", ["interp", "cpu", "cuda"])
def test_the_first_nan_names_the_op_the_node_and_the_users_line(program, backend):
    fns, w = program
    before = np.full(4, 3.0, np.float32)
    gc.set_value(w, before)
    with pytest.raises(gc.NumericsError) as info:
        fns[backend, True](np.array([1, -1, 2, 3], np.float32))
    msg = str(info.value)
    assert isinstance(info.value, gc.GraphError) and isinstance(info.value, FloatingPointError)
    assert "log" in msg and "1 nan of 4" in msg and "index (1,)" in msg, msg
    if backend == "interp":                         # the graph as built: the log node itself
        assert f"{HERE}:{line_of('marker: log')}" in msg and "(node log" in msg, msg
    else:                                           # fused: the fused node and its region's ops
        assert "fused[" in msg and "(node fused" in msg, msg
        assert any(f"{HERE}:{line_of(m)}" in msg for m in ("marker: log", "marker: fused")), msg
    np.testing.assert_array_equal(gc.get_value(w), before)       # no update after the error


@pytest.mark.parametrize("backend", ["interp", "cpu", "cuda"])
def test_an_inf_after_a_reduction_and_a_nan_fed(program, backend):
    fns, w = program
    gc.set_value(w, np.ones(4, np.float32))
    with pytest.raises(gc.NumericsError, match=r"reciprocal.*1 inf of 1 value\(s\), the first at index \(\)") as info:
        fns[backend, True](np.array([1, 1, 1, 1], np.float32))      # sum(y) - 4 == 0
    assert f"{HERE}:{line_of('marker: reciprocal')}" in str(info.value)
    with pytest.raises(gc.NumericsError, match="input x holds 1 nan"):
        fns[backend, True](np.array([1, np.nan, 1, 1], np.float32))
    gc.set_value(w, np.array([1, np.inf, 1, 1], np.float32))
    with pytest.raises(gc.NumericsError, match="variable w holds 1 inf"):
        fns[backend, True](np.ones(4, np.float32))


def test_off_by_default_the_cpu_step_is_unchanged(program):
    fns, w = program
    gc.set_value(w, np.ones(4, np.float32))
    x = np.array([1, 2, 3, 4], np.float32)
    off, on = fns["cpu", False], fns["cpu", True]
    off(x), on(x)
    assert "check" not in off.source and "@njit" in off.source.split("def step")[0][-60:]
    assert "check(" in on.source and "plain Python" in on.source
    with np.errstate(all="ignore"):                  # unchecked: nan and inf flow through
        y, r = off(np.array([1, -1, 2, 3], np.float32))
    assert np.isnan(y[1])
    lines = {v[1] for v in on.kernel_map.values()}
    assert all("check(" not in on.source.splitlines()[k - 1] for k in lines)
