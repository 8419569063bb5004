"""The runtime under stress and on odd input, each case against the interpreter (numpy):
calls from several threads, integers that overflow, an integer to a negative power, the
kernel cache's validation and faults (unusable folder, damaged Numba cache files, two
processes at once), feeds sharing memory with a variable, feeds that are not plain
arrays, 0-d feeds and indexing, an update no output reads, softmax over an empty axis.

Compiled graphs are few and small (each costs a Numba compile when the cache is cold).
"""
import glob
import importlib.machinery
import json
import os
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pytest

import graphc as gc
from graphc.runtime.cpu import cache

from test_cache import SCRIPT, run_process

HERE = os.path.basename(__file__)


# the oracle first, then every compiled backend (cuda under Numba's simulator: tests/conftest.py)
BACKENDS = ("interp", "cpu", "cuda")


def both(inputs, outputs, updates=None, **options):
    return [gc.function(inputs, outputs, updates, backend=b, **options) for b in BACKENDS]


def same(got, want):
    for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(want, list) else [want]):
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, w.dtype, g.shape, w.shape)
        np.testing.assert_array_equal(g, w)


def line_of(marker):
    """The line of this file holding `marker` (error messages must point at it)."""
    with open(__file__) as f:
        return next(k for k, text in enumerate(f, 1) if marker in text and "line_of(" not in text)


def in_threads(n, work):
    """Run work(k) in n threads started together; return their results (re-raise an error)."""
    results, errors, start = [None] * n, [], threading.Barrier(n)

    def run(k):
        start.wait()
        try:
            results[k] = work(k)
        except BaseException as e:          # noqa: B036 - handed to the test's thread
            errors.append(e)
    threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def switch_often():
    """Switch threads as often as CPython allows, so races show up within a few calls."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


# ---------------------------------------------------------------- 1. threads


def test_concurrent_calls_of_one_cpu_function_match_sequential_calls(switch_often):
    with gc.Graph():
        x = gc.placeholder((384, 384), gc.float32, name="x")
        h = x
        for _ in range(3):                       # parallel kernels, a plain-Python step
            h = gc.softmax(h * 3.0, axis=1)
            h = h - gc.mean(h, axis=0)
        f = gc.function([x], [h, gc.sum(h * h)], backend="cpu", jit_step=False)
    rng = np.random.default_rng(0)
    data = [rng.normal(size=(384, 384)).astype(np.float32) for _ in range(4)]
    expected = [f(d) for d in data]
    got = in_threads(4, lambda k: [f(data[k]) for _ in range(6)])
    for k, calls in enumerate(got):
        for out in calls:
            same(out, expected[k])


def test_a_first_call_from_several_threads_compiles_once_and_waits(tmp_path, monkeypatch):
    """A module being imported by one thread is not handed to another before it has run."""
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    exec_module = importlib.machinery.SourceFileLoader.exec_module

    def slow_exec_module(self, module):           # a big module: its import takes a while
        time.sleep(0.3)
        exec_module(self, module)
    monkeypatch.setattr(importlib.machinery.SourceFileLoader, "exec_module", slow_exec_module)
    with gc.Graph():
        x = gc.placeholder((5,), gc.float64, name="x")
        y = gc.tanh(x) * 7.25 + 0.5
        f, g = gc.function([x], y, backend="cpu"), gc.function([x], y, backend="cpu")   # one source
    data = np.linspace(-1, 1, 5)
    results = in_threads(3, lambda k: (f, f, g)[k](data))
    for r in results:
        np.testing.assert_allclose(r, np.tanh(data) * 7.25 + 0.5, rtol=1e-12)
    assert len(f._compiled) == 1


@pytest.mark.parametrize("backend", ["interp", "cpu", "cuda"])
def test_calls_with_updates_from_several_threads_run_one_at_a_time(backend, switch_often):
    with gc.Graph():
        x = gc.placeholder((2,), gc.float64, name="x")
        count = gc.variable(np.zeros(2), name="count")
        y = x
        for _ in range(12 if backend == "interp" else 0):    # a longer call: more thread switches
            y = gc.tanh(y) + 1.0
        options = {"jit_step": False} if backend == "cpu" else {}
        f = gc.function([x], [count + x, y], updates={count: count + 1.0}, backend=backend, **options)
    f(np.zeros(2))
    gc.set_value(count, np.zeros(2))
    calls = {"cpu": 2000, "interp": 300, "cuda": 50}[backend]      # (the CUDA simulator is slow)
    got = in_threads(4, lambda k: [f(np.zeros(2))[0][0] for _ in range(calls)])
    seen = sorted(v for values in got for v in values)
    assert seen == list(range(4 * calls))          # each call saw the previous call's update
    np.testing.assert_array_equal(gc.get_value(count), [4 * calls] * 2)


# ---------------------------------------------------------------- 2. integers wrap around as in numpy


def test_int32_arithmetic_wraps_around_as_in_numpy():
    data = np.array([2 ** 30, 70000, 3, -2 ** 31], np.int32)
    with gc.Graph():
        x = gc.placeholder((4,), gc.int32, name="x")
        e = gc.placeholder((4,), gc.int32, name="e")
        row, col = gc.reshape(x, (1, 4)), gc.reshape(x, (4, 1))
        outs = [gc.cast(x * x, gc.float64), (x + x) > 0, (x - (-x)) > 0, -x > 0, gc.abs(x) < 0,
                x ** 3, gc.square(x) > 0, x ** e, gc.sum(x * x), gc.prod(x), gc.sum(x), row @ col,
                gc.sum(x * x, axis=0, keepdims=True) > 0]
        fi, *compiled = both([x, e], outs)
    exponents = np.array([2, 3, 5, 0], np.int32)
    want = fi(data, exponents)
    np.testing.assert_array_equal(want[0], [0, 605032704, 9, 0])         # numpy wraps at 2**32
    for fc in compiled:
        same(fc(data, exponents), want)


def test_int64_arithmetic_wraps_around_as_in_numpy():
    data = np.array([2 ** 62, 3, -2 ** 63, 7], np.int64)
    with gc.Graph():
        x = gc.placeholder((4,), gc.int64, name="x")
        outs = [(x + x) > 0, x * x, (x * x) > 0, -x > 0, gc.abs(x) < 0, (x - 1) < x, x ** 3,
                gc.sum(x), gc.prod(x), gc.sum(x + x, axis=0), gc.cast(x, gc.int32) * 2]
        fi, *compiled = both([x], outs)
    want = fi(data)
    np.testing.assert_array_equal(want[0], [False, True, False, True])    # 2**62 + 2**62 < 0
    for fc in compiled:
        same(fc(data), want)


# ---------------------------------------------------------------- 3. int ** negative int


@pytest.fixture(scope="module")
def int_powers():
    with gc.Graph():
        x = gc.placeholder((3,), gc.int32, name="x")
        y = gc.placeholder((3,), gc.int32, name="y")
        v = gc.variable(np.zeros(3, np.int32), name="v")
        plain = x ** y                                        # marker: plain power
        fused = (x + 1) ** y * 2                              # marker: fused power
        const = x ** -2                                       # marker: const power
        xf = gc.cast(x, gc.float32)
        fns = {"plain": both([x, y], plain), "fused": both([x, y], fused, updates={v: v + 1}),
               "const": both([x], const), "float": both([x], xf ** -2.0)}
    return fns, v


@pytest.mark.parametrize("case", ["plain", "fused", "const"])
def test_an_int_to_a_negative_int_power_raises_on_every_backend(int_powers, case):
    fns, v = int_powers
    x, y = np.array([1, 2, 3], np.int32), np.array([2, -1, 2], np.int32)
    args = (x,) if case == "const" else (x, y)
    ok = (x,) if case == "const" else (x, np.array([2, 0, 3], np.int32))
    if case != "const":
        same(fns[case][1](*ok), fns[case][0](*ok))
    before = gc.get_value(v).copy()
    for f in fns[case]:
        with pytest.raises(gc.GraphError) as info:
            f(*args)
        msg = str(info.value)
        assert "power" in msg and "negative integer powers" in msg and "int32" in msg, msg
        assert f"{HERE}:{line_of(f'marker: {case} power')}" in msg, msg
        np.testing.assert_array_equal(gc.get_value(v), before)      # no update after an error


def test_a_float_power_has_no_check(int_powers):
    fns, _ = int_powers
    fi, *compiled = fns["float"]
    x = np.array([1, 2, 4], np.int32)
    for fc in compiled:
        same(fc(x), fi(x))
        assert "bad +=" not in fc.source and "raise ValueError" not in fc.source and "raise_if(" not in fc.source


# ---------------------------------------------------------------- 4. the cache validates against the source


def test_a_cache_file_is_imported_only_if_it_holds_the_source_asked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    source = f"# test {uuid.uuid4().hex}\nVALUE = 42\n"
    module, path, _ = cache.load(source)
    stale = source.replace("42", "666")              # self-consistent: its header matches its body
    with open(path, "w") as f:
        f.write(f"{cache.HEADER}{cache._digest(stale)}\n{stale}")
    sys.modules.pop(module.__name__)
    module, path2, wrote = cache.load(source)
    assert wrote and path2 == path and module.VALUE == 42


# ---------------------------------------------------------------- 5. a feed sharing a variable's memory


@pytest.mark.parametrize("backend", ["interp", "cpu", "cuda"])
def test_a_feed_sharing_memory_with_an_updated_variable_reads_its_old_value(backend):
    with gc.Graph() as g:
        x = gc.placeholder((2,), gc.float64, name="x")
        v = gc.variable(np.array([10.0, 10.0]), name="v")
        f = gc.function([x], [x, gc.sum(x)], updates={v: v * 2.0}, backend=backend)   # cpu: in place
    f(np.zeros(2))
    gc.set_value(v, [10.0, 10.0])
    out, total = f(g.values[v])                     # the variable's own array (not a copy)
    np.testing.assert_array_equal(out, [10.0, 10.0])
    assert total == 20.0
    np.testing.assert_array_equal(gc.get_value(v), [20.0, 20.0])


# ---------------------------------------------------------------- 6. feeds that are not plain arrays


@pytest.fixture(scope="module")
def feed_fns():
    with gc.Graph():
        m = gc.placeholder((2, 2), gc.float64, name="m")
        i = gc.placeholder((3,), gc.int32, name="i")
        return both([m, i], [gc.sum(m * m, axis=1), i * 2])


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_subclasses_of_ndarray_are_fed_as_plain_arrays(feed_fns):
    plain, ints = np.array([[1.0, 2.0], [3.0, 4.0]]), np.arange(3, dtype=np.int32)
    want = feed_fns[0](plain, ints)
    np.testing.assert_array_equal(want[0], [5.0, 25.0])
    for f in feed_fns:
        same(f(np.matrix(plain), ints), want)         # elementwise, not matrix products
        with pytest.raises(gc.FeedError, match="input m: a masked array"):
            f(np.ma.masked_array(plain, mask=[[0, 1], [0, 0]]), ints)


def test_a_python_int_out_of_the_dtypes_range_is_an_error(feed_fns):
    plain = np.ones((2, 2))
    for f in feed_fns:
        with pytest.raises(gc.FeedError, match="input i expects int32"):
            f(plain, [2 ** 40, 1, 2])
        same(f(plain, [1, 2, -3]), [np.full(2, 2.0), np.array([2, 4, -6], np.int32)])


# ---------------------------------------------------------------- 7. crashes on valid input


def test_0d_feeds_of_every_kind():
    with gc.Graph():
        s = gc.placeholder((), gc.float32, name="s")
        m = gc.placeholder((2, 3), gc.float32, name="m")
        fi, *compiled = both([s, m], [s * m, s + 1.0])
    m = np.arange(6, dtype=np.float32).reshape(2, 3)
    wide = np.arange(12, dtype=np.float32).reshape(2, 6)
    for scalar in (3.0, np.float32(3), True, np.array(3, np.float32)):
        for other in (m, wide[:, ::2], np.asfortranarray(m), m.tolist()):
            for fc in compiled:
                same(fc(scalar, other), fi(scalar, other))


def test_indexing_a_0d_tensor():
    with gc.Graph():
        x = gc.placeholder((), gc.float32, name="x")
        outs = [x[None], x[None] * 2, x[...] + 1, x[None, None] + x, x[..., None]]
        fi, *compiled = both([x], outs)
    want = fi(np.float32(1.5))
    assert [w.shape for w in want] == [(1,), (1,), (), (1, 1), (1,)]
    for fc in compiled:
        same(fc(np.float32(1.5)), want)


def test_a_module_that_fails_to_import_is_not_left_half_initialized(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    source = f"# test {uuid.uuid4().hex}\nVALUE = 1\nx = [\n"
    for _ in range(2):                               # the same error again, not an AttributeError
        with pytest.raises(SyntaxError):
            cache.load(source)
    assert f"graphc_kernels_{cache.module_key(source)}" not in sys.modules


def test_a_variable_updated_but_read_by_no_output():
    with gc.Graph():
        x = gc.placeholder((3,), gc.float32, name="x")
        v = gc.variable(np.zeros(3, np.float32), name="v")
        fns = both([x], x * 2.0, updates={v: x + 1.0})
    for f in fns:
        gc.set_value(v, np.zeros(3, np.float32))
        same(f(np.arange(3, dtype=np.float32)), np.array([0, 2, 4], np.float32))
        same(gc.get_value(v), np.array([1, 2, 3], np.float32))


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_over_an_empty_axis_is_a_shape_error_on_every_backend(op):
    with gc.Graph():
        x = gc.placeholder((2, None), gc.float32, name="x")
        k = gc.placeholder((2, 0), gc.float32, name="k")
        y = getattr(gc, op)(x, axis=1)                        # marker: empty softmax
        z = getattr(gc, op)(k, axis=0)                        # marker: known empty softmax
        for f in both([x], y):
            with pytest.raises(gc.ShapeError, match=f"{op} over axis 1 of size 0") as info:
                f(np.zeros((2, 0), np.float32))
            assert f"{HERE}:{line_of('marker: empty softmax')}" in str(info.value)
        for f in both([k], z):               # axis 0 has 2 values: an empty result, no error
            assert f(np.zeros((2, 0), np.float32)).shape == (2, 0)
        for f in both([k], getattr(gc, op)(k, axis=1)):
            with pytest.raises(gc.ShapeError, match="size 0"):
                f(np.zeros((2, 0), np.float32))


# ---------------------------------------------------------------- 8. faults of the kernel cache


@pytest.mark.parametrize("where", ["file", "under_a_file", "read_only"])
def test_an_unusable_cache_folder_falls_back_with_one_warning(where, tmp_path, monkeypatch):
    target = tmp_path / "cache"
    if where == "read_only":
        target.mkdir()
        target.chmod(0o555)
        if os.access(target, os.W_OK):          # root writes anyway: refuse the write itself
            real = cache._write

            def write(folder, key, source):
                if folder == str(target):
                    raise PermissionError(13, "Permission denied", folder)
                return real(folder, key, source)
            monkeypatch.setattr(cache, "_write", write)
    else:
        target.write_text("not a folder")
        target = target / "sub" if where == "under_a_file" else target
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(target))
    monkeypatch.setattr(cache, "_warned", False)
    with pytest.warns(RuntimeWarning, match="kernel cache folder cannot be used") as caught:
        for value in (1, 2):
            module, path, _ = cache.load(f"# test {uuid.uuid4().hex}\nVALUE = {value}\n")
            assert module.VALUE == value and not path.startswith(str(target))
    assert len([w for w in caught if "kernel cache" in str(w.message)]) == 1
    if where == "file":                          # and a real function compiles and runs
        with gc.Graph():
            x = gc.placeholder((3,), gc.float64, name="x")
            f = gc.function([x], gc.exp(x) * 0.125, backend="cpu")
        np.testing.assert_allclose(f(np.ones(3)), np.exp(np.ones(3)) * 0.125, rtol=1e-12)


def _kernel_stats(f):
    from numba.core.registry import CPUDispatcher
    (c,) = f._compiled.values()
    kernels = [v for v in vars(c.module).values()
               if isinstance(v, CPUDispatcher) and v.__module__ == c.module.__name__]
    return (sum(sum(k.stats.cache_hits.values()) for k in kernels),
            sum(sum(k.stats.cache_misses.values()) for k in kernels), c.module.__name__)


def test_damaged_numba_cache_files_are_discarded_and_compiled_again(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    data = np.linspace(-2, 2, 6)

    def build():
        with gc.Graph():
            x = gc.placeholder((6,), gc.float64, name="x")
            return gc.function([x], gc.sum(gc.sigmoid(x) * 3.5), backend="cpu")
    f = build()
    want = f(data)
    files = glob.glob(str(tmp_path / "__pycache__" / "*.nb[ic]"))
    assert any(p.endswith(".nbi") for p in files) and any(p.endswith(".nbc") for p in files)
    for p in files:
        with open(p, "wb") as fh:
            fh.write(b"garbage, not a pickle\x00\xff" * 3)
    sys.modules.pop(_kernel_stats(f)[2])       # as a new process would: import the module again
    g = build()
    assert g(data) == want
    sys.modules.pop(_kernel_stats(g)[2])
    h = build()                                 # the repaired cache serves the next import
    assert h(data) == want
    hits, misses, _ = _kernel_stats(h)
    assert hits > 0 and misses == 0


def test_a_module_file_another_process_wrote_meanwhile_is_kept(tmp_path, monkeypatch):
    """Numba's cache index records the module file's modification time: a second writer
    replacing the file under a process that compiled against it would make that cache stale."""
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    source = f"# test {uuid.uuid4().hex}\nVALUE = 7\n"
    _, path, _ = cache.load(source)
    before = os.stat(path)
    state, answers = cache._state, iter(["absent"])     # as if checked just before it was written
    monkeypatch.setattr(cache, "_state", lambda p, s=None: next(answers, None) or state(p, s))
    module, _, _ = cache.load(source)
    after = os.stat(path)
    assert module.VALUE == 7 and (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_two_processes_compiling_one_graph_at_once_leave_a_consistent_cache(tmp_path):
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(tmp_path))
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    values = {json.loads(out.strip().splitlines()[-1])["value"] for out, _ in outs}
    assert len(values) == 1
    third = run_process(tmp_path)
    assert not third["file_written"] and third["misses"] == 0 and third["hits"] > 0
    assert third["value"] in values
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp_")]


@pytest.mark.parametrize("backend", ["interp", "cpu", "cuda"])
def test_a_feed_dict_says_how_to_feed(backend):
    """TensorFlow 1's habit, f({x: arr}), gets told to pass the array itself."""
    with gc.Graph():
        x = gc.placeholder((2,), name="x")
        f = gc.function([x], x * 2, backend=backend)
    with pytest.raises(gc.FeedError, match=r"got a dict; .*f\(x=arr\)"):
        f({x: np.ones(2, np.float32)})
