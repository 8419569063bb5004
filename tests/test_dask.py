"""gc.dask on a real dask.distributed LocalCluster (2 worker processes): map_batches equals
the direct call, gc.dask.fit equals gc.nn.fit step for step, a killed worker is survived,
errors are clear; and the serialized form of a function rebuilds the same program."""
import os
import subprocess
import sys

import numpy as np
import pytest

import graphc as gc

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from graphc.dask.serialize import Rebuilt, to_form  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
rng = np.random.default_rng(7)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def several_outputs(dtype, backend):
    """fn(x, z) -> (float64 rows, per-row sums in x's dtype family, a bool mask): three dtypes out."""
    with gc.Graph():
        x = gc.placeholder((None, 4), dtype, name="x")
        z = gc.placeholder((None,), gc.float32, name="z")
        w = gc.variable(rng.normal(size=(4, 3)), name="w")
        h = gc.tanh(gc.cast(x, gc.float64) @ w) * gc.cast(gc.expand_dims(z, 1), gc.float64)
        return gc.function([x, z], [h, gc.sum(x * x, axis=1), x > 0], backend=backend)


def data(dtype, n=10):
    x = rng.normal(size=(n, 4)) * 3
    return x.astype(dtype), rng.normal(size=n).astype(np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_map_batches_equals_the_direct_call(client, dtype):
    fn = several_outputs(dtype, "interp")
    x, z = data(dtype)
    outs = gc.dask.map_batches(fn, da.from_array(x, chunks=(4, 4)), da.from_array(z, chunks=4))
    assert len(outs) == 3 and outs[0].chunks == ((4, 4, 2), (3,))       # a smaller last chunk
    got = client.compute(list(outs), sync=True)
    for g, want in zip(got, fn(x, z)):
        assert g.dtype == want.dtype and np.array_equal(g, want)


def test_map_batches_on_the_cpu_backend_and_a_memmap(client, tmp_path):
    with gc.Graph():
        x = gc.placeholder((None, 5), gc.float32, name="x")
        w = gc.variable(rng.normal(size=(5, 4)).astype(np.float32), name="w")
        b = gc.variable(rng.normal(size=4).astype(np.float32), name="b")
        fn = gc.function([x], gc.nn.softmax(gc.relu(x @ w + b) * 2.0 - 1.0), backend="cpu")
    mm = np.lib.format.open_memmap(str(tmp_path / "x.npy"), mode="w+", dtype=np.float32, shape=(23, 5))
    mm[:] = rng.normal(size=(23, 5))
    mm.flush()
    disk = np.load(str(tmp_path / "x.npy"), mmap_mode="r")
    out = gc.dask.map_batches(fn, disk, batch_size=8)                   # 8, 8, 7 rows
    assert out.chunks[0] == (8, 8, 7)
    np.testing.assert_allclose(client.compute(out, sync=True), fn(np.array(disk)), rtol=1e-6, atol=1e-7)
    lazy = gc.dask.map_batches(fn, gc.dask.from_npy(tmp_path / "x.npy", 10))   # workers open the file
    assert lazy.chunks[0] == (10, 10, 3)
    np.testing.assert_array_equal(client.compute(lazy, sync=True), client.compute(out, sync=True))


def test_map_batches_on_the_threaded_scheduler_too():
    fn = several_outputs(np.float64, "interp")
    x, z = data(np.float64, 7)
    h, _, _ = gc.dask.map_batches(fn, x, z, batch_size=3)
    np.testing.assert_array_equal(h.compute(scheduler="threads"), fn(x, z)[0])


def test_map_batches_errors():
    fn = several_outputs(np.float32, "interp")
    x, z = data(np.float32)
    with pytest.raises(gc.ShapeError, match="split axis 1"):
        gc.dask.map_batches(fn, da.from_array(x, chunks=(5, 2)), da.from_array(z, chunks=5))
    with pytest.raises(gc.DTypeError, match="expects float32"):
        gc.dask.map_batches(fn, da.from_array(x.astype(np.float64), chunks=5), da.from_array(z, chunks=5))
    with pytest.raises(gc.ArgumentError, match="2 input"):
        gc.dask.map_batches(fn, x)
    with gc.Graph():
        v = gc.placeholder((4,), gc.float32, name="v")
        fixed = gc.function([v], v * 2.0)
        b = gc.placeholder((None, 4), gc.float32, name="b")
        mean = gc.function([b], gc.mean(b, axis=0))
        c = gc.variable(np.zeros(4, np.float32), name="c")
        updating = gc.function([b], gc.sum(b), updates={c: c + 1.0})
    with pytest.raises(gc.ShapeError, match="fixed size 4 on batch axis 0"):
        gc.dask.map_batches(fixed, x[0])
    with pytest.raises(gc.ShapeError, match="does not keep batch axis 0"):
        gc.dask.map_batches(mean, x)
    with pytest.raises(gc.GraphError, match="updates variables"):
        gc.dask.map_batches(updating, x)


def test_dask_missing_is_a_clear_error(monkeypatch):
    for name in ("dask", "dask.array", "distributed"):
        monkeypatch.setitem(sys.modules, name, None)        # import dask.array raises ImportError
    fn = several_outputs(np.float32, "interp")
    with pytest.raises(ImportError, match=r"pip install 'graphc\[dask\]'"):
        gc.dask.map_batches(fn, *data(np.float32))
    with pytest.raises(ImportError, match=r"pip install 'graphc\[dask\]'"):
        gc.dask.fit(mlp(), gc.nn.mse, gc.optim.SGD(0.1), *regression(8), client=object())


def test_importing_graphc_does_not_import_dask():
    code = ("import sys, graphc\nassert 'dask' not in sys.modules\n"
            "graphc.dask.map_batches\nassert 'dask' not in sys.modules and 'distributed' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_serialized_form_rebuilds_the_same_cpu_program():
    """The optimized program (fused groups, several outputs) travels as plain data."""
    import pickle
    with gc.Graph():
        x = gc.placeholder((None, 6), gc.float32, name="x")
        w = gc.variable(rng.normal(size=(6, 6)).astype(np.float32), name="w")
        h = gc.tanh(x @ w) * 2.0 + 1.0
        loss = gc.mean(h * h)
        (gw,) = gc.grad(loss, [w])
        fn = gc.function([x], [loss, gw, gc.sum(h, axis=1), gc.max(h, axis=1)], backend="cpu")
    assert any(n.op.name == "fused" for n in fn.nodes)
    form = pickle.loads(pickle.dumps(to_form(fn)))
    back = Rebuilt(form)
    assert [n.op.name for n in back.fn.nodes] == [n.op.name for n in fn.nodes]
    a = rng.normal(size=(5, 6)).astype(np.float32)
    for got, want in zip(back.fn(a), fn(a)):
        np.testing.assert_array_equal(got, want)


def test_every_registry_case_survives_the_round_trip():
    sys.path.insert(0, os.path.dirname(__file__))
    from test_grad_registry import CASES
    for name, (build, arrays, *_) in CASES.items():
        with gc.Graph():
            phs = [gc.placeholder(a.shape, a.dtype) for a in arrays]
            out = build(*phs)
            fn = gc.function(phs, list(out) if isinstance(out, (list, tuple)) else out)
        back = Rebuilt(to_form(fn))
        got, want = back.fn(*arrays), fn(*arrays)
        for g, w in zip(*(([got], [want]) if fn.single else (got, want))):
            assert np.array_equal(np.asarray(g), np.asarray(w), equal_nan=True), name


# ---------------------------------------------------------------- training


def mlp():
    return gc.nn.Sequential([gc.nn.Dense(8, "tanh", seed=1), gc.nn.Dense(2, seed=2)])


def regression(n=80):
    r = np.random.default_rng(3)
    x = r.normal(size=(n, 5))
    return x, np.stack([np.sin(x[:, 0]) + x[:, 1], x[:, 2] * x[:, 3]], axis=1)


def weights(model):
    return [gc.get_value(p) for p in model.params]


@pytest.fixture(scope="module")
def reference():
    """gc.nn.fit in this process: 80 rows / 16 = 5 steps an epoch, 4 epochs: 20 steps."""
    model = mlp()
    history, _ = gc.nn.fit(model, gc.nn.mse, gc.optim.Adam(lr=0.01), *regression(), epochs=4, batch_size=16,
                           backend="interp", verbose=False)
    return model, history


def test_fit_equals_single_process_training(client, reference):
    model, steps = mlp(), []
    history = gc.dask.fit(model, gc.nn.mse, gc.optim.Adam(lr=0.01), *regression(), client=client, epochs=4,
                          batch_size=16, backend="interp", verbose=False, callback=lambda s, v: steps.append(s))
    assert steps == list(range(1, 21))
    for got, want in zip(weights(model), weights(reference[0])):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(history["loss"], reference[1]["loss"], rtol=1e-5)
    assert len(history["step_seconds"]) == 4


def test_fit_on_the_cpu_backend_with_three_shards(client):
    ref = mlp()
    gc.nn.fit(ref, gc.nn.mse, gc.optim.SGD(0.05, momentum=0.9), *regression(40), epochs=1, batch_size=20,
              backend="cpu", verbose=False)
    model = mlp()
    gc.dask.fit(model, gc.nn.mse, gc.optim.SGD(0.05, momentum=0.9), *regression(40), client=client, epochs=1,
                batch_size=20, backend="cpu", n_shards=3, verbose=False)
    for got, want in zip(weights(model), weights(ref)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_a_failing_shard_names_the_worker_and_applies_no_update(client):
    x, y = regression(48)
    x[40] = np.nan                                  # in the third batch of 16 (no shuffling)
    model, after = mlp(), {}
    with pytest.raises(gc.GraphError, match=r"step 3 failed on worker tcp://.*NumericsError.*no update"):
        gc.dask.fit(model, gc.nn.mse, gc.optim.SGD(0.1), x, y, client=client, batch_size=16, shuffle=False,
                    backend="interp", verbose=False, check_numerics=True,
                    callback=lambda s, v: after.update({s: weights(model)}))
    assert sorted(after) == [1, 2]
    for got, want in zip(weights(model), after[2]):
        np.testing.assert_array_equal(got, want)


def test_a_worker_killed_during_training_is_survived(client, reference):
    """Worker 0 dies right after step 7 (its nanny starts a new one): the next steps run on the
    workers alive -- dask reschedules a lost shard, fit retries a lost step -- and the result is
    still step-for-step single-process training."""
    import signal
    victim = sorted(client.scheduler_info(n_workers=-1)["workers"])[0]
    pid = client.run(os.getpid, workers=[victim])[victim]

    def kill(step, value):
        if step == 7:
            os.kill(pid, signal.SIGKILL)

    model = mlp()
    gc.dask.fit(model, gc.nn.mse, gc.optim.Adam(lr=0.01), *regression(), client=client, epochs=4, batch_size=16,
                backend="interp", verbose=False, callback=kill)
    for got, want in zip(weights(model), weights(reference[0])):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
    assert victim not in client.scheduler_info(n_workers=-1)["workers"]
    client.wait_for_workers(2, timeout=60)
