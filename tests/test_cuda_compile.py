"""The generated CUDA kernels compile for a real GPU, not only under the simulator.

The simulator runs kernels as Python, so it accepts code the CUDA compiler rejects (a numpy
function Numba's CUDA target lacks, a type that does not unify). Here graphs covering every kind
of generated kernel run under the simulator while each launch records its kernel and argument
types; then a process without the simulator types and lowers each kernel for compute
capability 9.0 through numba-cuda's own compiler (tests/cuda_lower_check.py), which needs no GPU.
"""
import os
import pickle
import subprocess
import sys

import numba
import numpy as np
import pytest

import graphc as gc

pytest.importorskip("numba.cuda")
HERE = os.path.dirname(os.path.abspath(__file__))


def _numba_type(a):
    if hasattr(a, "_ary"):                   # a simulator device array: its numpy array's type
        return numba.typeof(np.asarray(a._ary))
    if isinstance(a, tuple):                 # a shape (the simulator's FakeShape is a tuple)
        return numba.typeof(tuple(int(d) for d in a))
    return numba.typeof(a)


class _Recorder:
    """Stands in for a kernel in a generated module: records each launch's argument types."""

    def __init__(self, kernel, name, source, seen):
        self.kernel, self.name, self.source, self.seen = kernel, name, source, seen

    def __getitem__(self, config):
        launch = self.kernel[config]

        def run(*args):
            self.seen.add((self.source, self.name, tuple(_numba_type(a) for a in args)))
            return launch(*args)
        return run


def _graphs():
    """Functions whose kernels cover the generated kinds: fused groups (float32/64, ints, bools,
    broadcasting, several outputs, an integer power with its check), reductions over each axis
    kind (sum/mean/max/min/prod, fused prologue, keepdims, split), and a training step."""
    from graphc.tools.workloads import w3_train_step
    rng = np.random.default_rng(0)
    with gc.Graph():
        x = gc.placeholder((None, 5), gc.float32, name="x")
        d = gc.placeholder((3, 4), gc.float64, name="d")
        i = gc.placeholder((3, 4), gc.int32, name="i")
        e = gc.placeholder((4,), gc.int64, name="e")
        h = gc.tanh(x * 1.5) + gc.sigmoid(x) - gc.softplus(x)
        outs = [h, gc.sum(h * x, axis=1), gc.mean(x, axis=0, keepdims=True), gc.max(x), gc.exp(d) / gc.sqrt(d * d + 1),
                gc.log(d * d + 1.0), gc.min(d, axis=(0, 1)), gc.prod(d, axis=0), gc.elu(d), gc.where(d > 0, d, -d),
                i * 3 + 1, gc.sum(i, axis=1), (i > 0) & (i < 3), i ** e, gc.cast(i, gc.float32) * 0.5,
                gc.sum(gc.cast(i, gc.float64) ** 2), gc.max(i, axis=0)]
        f = gc.function([x, d, i, e], outs, backend="cuda")
        feeds = [rng.normal(size=(7, 5)).astype(np.float32), rng.normal(size=(3, 4)),
                 rng.integers(-3, 3, (3, 4)).astype(np.int32), np.array([0, 1, 2, 3], np.int64)]
        yield f, feeds
        z = gc.placeholder((700,), gc.float32, name="z")
        yield gc.function([z], [gc.sum(z), gc.mean(z * z)], backend="cuda"), [rng.normal(size=700).astype(np.float32)]
    w = w3_train_step(batch=4, sizes=(6, 5, 3))
    yield w.function("cuda"), w.data
    with gc.Graph():                        # a scan and its gradient: the bodies' kernels too
        x = gc.placeholder((2, 3, 2), gc.float32)
        layer = gc.nn.LSTM(3, return_sequences=True, seed=1)
        y = layer(x)
        yield gc.function([x], [y] + gc.grad(gc.sum(y * y), layer.params), backend="cuda"), \
            [rng.normal(size=(2, 3, 2)).astype(np.float32)]


@pytest.fixture(scope="module")
def launches():
    seen = set()
    for f, feeds in _graphs():
        f(*feeds)
        todo, programs = [list(f._compiled.values())[-1]], []
        while todo:                                     # the step's module and its scans' bodies
            c = todo.pop()
            if all(c.module is not p.module for p in programs):    # (two bodies may share one module)
                programs.append(c)
            todo += [loop.body for loop in c.scan_loops]
        for c in programs:
            for name in c.program.kernels.values():
                setattr(c.module, name, _Recorder(getattr(c.module, name), name, c.program.source, seen))
        f(*feeds)
        for c in programs:                              # leave the modules as they were
            for name in c.program.kernels.values():
                setattr(c.module, name, getattr(c.module, name).kernel)
    return sorted(seen, key=lambda s: (s[1], str(s[2])))


def test_generated_kernels_lower_for_a_real_gpu(launches, tmp_path):
    names = {name for _, name, _ in launches}
    assert len(launches) >= 20 and any("_finish" in n for n in names) and any(n.startswith("sum_") for n in names)
    jobs = tmp_path / "jobs.pkl"
    jobs.write_bytes(pickle.dumps(launches))
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    run = subprocess.run([sys.executable, os.path.join(HERE, "cuda_lower_check.py"), str(jobs)], env=env,
                         capture_output=True, text=True, timeout=600)
    lines = run.stdout.splitlines()
    failed = [line for line in lines if not line.startswith("ok ")]
    assert run.returncode == 0 and len(lines) == len(launches) and not failed, \
        "\n".join(failed) or run.stderr[-3000:]
