"""Shape families and the kernel cache keyed by each kernel's text (runtime/cpu/codegen.py).

A new size of a None dimension runs the module compiled for the first size (its text is the
same: no compile), a graph differing only in names runs the other's modules, a kernel is
compiled once for every graph containing it; and out= lets a call write into the caller's
arrays. The numpy interpreter is the oracle throughout."""
import sys

import numpy as np
import pytest

import graphc as gc
from graphc.core.errors import ArgumentError


def compiled_count():
    """How many Numba compilations this process holds for generated modules (every overload
    of every kernel and step): a call that compiles nothing leaves it unchanged."""
    total = 0
    for name, module in list(sys.modules.items()):
        if name.startswith("graphc_kernels_"):
            total += sum(len(getattr(v, "overloads", ())) for v in vars(module).values())
    return total


def mlp_step(prefix="", batch=None, lr=0.1):
    """A small MLP training step (matmul, relu, log_softmax, mean, SGD updates)."""
    rng = np.random.default_rng(0)
    with gc.Graph(prefix + "mlp"):
        x = gc.placeholder((batch, 4), gc.float32, name=prefix + "x")
        t = gc.placeholder((batch, 3), gc.float32, name=prefix + "t")
        w1 = gc.variable(rng.normal(size=(4, 6)).astype(np.float32), name=prefix + "W1")
        b1 = gc.variable(np.zeros(6, np.float32), name=prefix + "b1")
        w2 = gc.variable(rng.normal(size=(6, 3)).astype(np.float32), name=prefix + "W2")
        h = gc.relu(x @ w1 + b1)
        loss = -gc.mean(gc.sum(t * gc.log_softmax(h @ w2, axis=1), axis=1))
        grads = gc.grad(loss, [w1, b1, w2])
        updates = {v: v - lr * g for v, g in zip([w1, b1, w2], grads)}
    return [x, t], loss, updates


def batch(n, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    t = np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]
    return x, t


def test_a_new_batch_size_compiles_nothing_and_agrees_with_the_interpreter():
    inputs, loss, updates = mlp_step()
    f = gc.function(inputs, loss, updates, backend="cpu")
    ref_in, ref_loss, ref_up = mlp_step()
    g = gc.function(ref_in, ref_loss, ref_up, backend="interp")
    for n in (8, 5, 13, 8):
        before = compiled_count()
        got, want = f(*batch(n, seed=n)), g(*batch(n, seed=n))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        if n != 8 or len(f._compiled) > 1:
            assert compiled_count() == before, f"batch {n} compiled something"
    modules = {c.module for c in f._compiled.values()}
    assert len(f._compiled) == 3 and len(modules) == 1
    for v_cpu, v_int in zip(updates, ref_up):
        np.testing.assert_allclose(gc.get_value(v_cpu), gc.get_value(v_int), rtol=1e-5, atol=1e-6)


def test_a_batch_of_one_broadcasts_and_is_a_family_of_its_own():
    inputs, loss, updates = mlp_step()
    f = gc.function(inputs, loss, {}, backend="cpu")
    g = gc.function(inputs, loss, {}, backend="interp")
    for n in (4, 1):
        np.testing.assert_allclose(f(*batch(n)), g(*batch(n)), rtol=1e-5, atol=1e-6)


def test_a_graph_differing_only_in_names_runs_the_same_modules():
    first = gc.function(*mlp_step("a_")[:2], backend="cpu")
    first(*batch(6))
    before = compiled_count()
    second = gc.function(*mlp_step("other_")[:2], backend="cpu")
    np.testing.assert_allclose(second(*batch(6)), first(*batch(6)), rtol=1e-6)
    (c1,), (c2,) = first._compiled.values(), second._compiled.values()
    assert c1.module is c2.module and c1.program.cache_source == c2.program.cache_source
    assert compiled_count() == before
    assert "other_x" in second.source and "a_x" in first.source     # what a reader sees keeps the names


def test_a_kernel_is_compiled_once_for_every_graph_containing_it():
    x = gc.placeholder((None, 5), gc.float32, name="x")
    f1 = gc.function([x], [gc.tanh(x * 2.0 + 1.0), gc.sum(x, axis=1)], backend="cpu")
    y = gc.placeholder((None, 5), gc.float32, name="y")
    f2 = gc.function([y], [gc.tanh(y * 2.0 + 1.0), gc.max(y, axis=0)], backend="cpu")
    a = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    f1(a), f2(a)
    k1 = set(next(iter(f1._compiled.values())).program.kernel_sources)
    k2 = set(next(iter(f2._compiled.values())).program.kernel_sources)
    shared = k1 & k2
    assert shared and k1 != k2                     # the tanh kernel; not the reductions
    from graphc.runtime.cpu import cache
    assert all(cache.loaded(src) for src in shared)


@pytest.mark.parametrize("sizes", [(3, 5), (5, 3)])
def test_concatenate_and_pad_along_a_none_axis_run_one_module(sizes):
    x = gc.placeholder((None, 2), gc.float32, name="x")
    y = gc.placeholder((4, 2), gc.float32, name="y")
    outs = [gc.concatenate([x, y, x], axis=0) * 2.0, gc.pad(x, ((1, 2), (0, 1)), constant_values=-1.0) + 1.0]
    f, g = gc.function([x, y], outs, backend="cpu"), gc.function([x, y], outs, backend="interp")
    rng = np.random.default_rng(2)
    b = rng.normal(size=(4, 2)).astype(np.float32)
    for n in sizes:
        a = rng.normal(size=(n, 2)).astype(np.float32)
        for got, want in zip(f(a, b), g(a, b)):
            np.testing.assert_allclose(got, want, rtol=1e-6)
    assert len({c.module for c in f._compiled.values()}) == 1


# ---------------------------------------------------------------- out= buffers

def out_graph():
    x = gc.placeholder((None, 3), gc.float32, name="x")
    y = gc.exp(x) * 2.0
    return x, [y, gc.sum(y), gc.reshape(y, (-1,))]    # a fresh array, a 0-d value, a view


@pytest.mark.parametrize("backend", ["interp", "cpu"])
def test_out_arrays_receive_the_outputs(backend):
    x, outs = out_graph()
    f = gc.function([x], outs, backend=backend)
    a = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    want = gc.function([x], outs, backend="interp")(a)
    given = [np.empty((4, 3), np.float32), np.empty((), np.float32), np.empty(12, np.float32)]
    for _ in range(2):
        got = f(a, out=given)
        assert all(g is o for g, o in zip(got, given))
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-6)
    partly = f(a, out=[None, None, given[2]])                 # None: a new array for that output
    assert partly[2] is given[2] and partly[0] is not given[0]
    np.testing.assert_allclose(partly[0], want[0], rtol=1e-6)


@pytest.mark.parametrize("backend", ["interp", "cpu"])
def test_bad_out_arrays_get_clear_errors(backend):
    x, outs = out_graph()
    f = gc.function([x], outs, backend=backend)
    a = np.ones((2, 3), np.float32)
    ok = [np.empty((2, 3), np.float32), np.empty((), np.float32), np.empty(6, np.float32)]
    cases = {
        "1 array(s) for 3 output(s)": [ok[0]],
        "expects float32 (2, 3) in this call, got float64 (2, 3)": [np.empty((2, 3))] + ok[1:],
        "expects float32 (2, 3) in this call, got float32 (3, 2)": [np.empty((3, 2), np.float32)] + ok[1:],
        "writable and C-contiguous": [np.empty((3, 2), np.float32).T] + ok[1:],
        "expects a numpy array": [[0.0] * 6] + ok[1:],
    }
    for message, out in cases.items():
        with pytest.raises(ArgumentError, match=message.replace("(", r"\(").replace(")", r"\)")):
            f(a, out=out)
    with pytest.raises(ArgumentError, match="shares memory with a feed"):
        f(a, out=[a] + ok[1:])


def test_out_for_a_single_output_with_updates():
    v = gc.variable(np.ones(3, np.float32), name="v")
    x = gc.placeholder((3,), gc.float32, name="x")
    f = gc.function([x], x + v, {v: v * 2.0}, backend="cpu")
    buf, z = np.empty(3, np.float32), np.zeros(3, np.float32)
    assert f(z, out=buf) is buf and np.array_equal(buf, [1, 1, 1])
    assert f(z, out=buf) is buf and np.array_equal(buf, [2, 2, 2])
    with pytest.raises(ArgumentError, match="shares memory"):
        f(z, out=z)


MATMULS = [((None, 3, 1), (1,)), ((None, 2, 3), (3, 4)), ((3,), (3, None)), ((None, 3), (3,)),
           ((None, 2, 3), (None, 3, 4)), ((2, 3), (None, 3, 4)), ((None, 4), (4, 2))]


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
@pytest.mark.parametrize("sa, sb", MATMULS)
def test_matmul_of_every_rank_at_two_sizes(sa, sb, dtype):
    """matmul's step text is shape-free too ((3, 3, 1) @ (1,) once wrote a wrong out= shape
    for np.dot, and a -1 reshape failed for a size-0 axis); each size against the interpreter."""
    a = gc.placeholder(sa, dtype, name="a")
    b = gc.placeholder(sb, dtype, name="b")
    y = (a @ b) * 2
    f, g = gc.function([a, b], y, backend="cpu"), gc.function([a, b], y, backend="interp")
    rng = np.random.default_rng(3)
    for n in (2, 0, 5):                   # 0: numpy cannot infer a -1 in a reshape there
        arrays = [rng.integers(-3, 4, [n if d is None else d for d in s]).astype(dtype) for s in (sa, sb)]
        np.testing.assert_allclose(f(*arrays), g(*arrays), rtol=1e-5)
    assert len({c.module for c in f._compiled.values()}) == 1


def test_a_value_read_with_its_own_view_keeps_its_buffer_until_its_last_reader():
    """x <= x[:, None]-like reads (a value and a view of it by one node) released the value's
    buffer twice: two later values got the same buffer, and one overwrote the other (a fuzzer
    find: a batch of programs updated a variable with another's counter)."""
    a = gc.placeholder((3,), gc.int64, name="a")
    b = gc.placeholder((2,), gc.int64, name="b")
    m = gc.argmax(a, axis=-1, keepdims=False)               # a buffer of int64 (1,)
    le = gc.less_equal(gc.expand_dims(m, (-1,)), m)          # reads m and a view of m
    s = gc.sum(b * 3)                                        # then two int64 (1,) values,
    t = gc.sum(b * 5)                                        # both alive at once
    outs = [le, gc.expand_dims(s, 0) * 7 + t]
    f, g = gc.function([a, b], outs, backend="cpu"), gc.function([a, b], outs, backend="interp")
    args = np.array([1, 9, 2]), np.array([1, 2])
    for got, want in zip(f(*args), g(*args)):
        np.testing.assert_array_equal(got, want)
