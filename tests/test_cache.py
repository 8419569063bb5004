"""The kernel cache: a second process reuses it without recompiling; a damaged
file is detected and rewritten, never imported."""
import json
import os
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest

from graphc.runtime.cpu import cache

SCRIPT = textwrap.dedent("""
    import json, numpy as np, graphc as gc
    from numba.core.registry import CPUDispatcher
    with gc.Graph():
        x = gc.placeholder((8,), gc.float32)
        f = gc.function([x], gc.sum(gc.tanh(x) * 2.0), backend="cpu")
    y = f(np.linspace(-1, 1, 8, dtype=np.float32))
    (c,) = f._compiled.values()
    kernels = {k: v for k, v in vars(c.module).items()
               if isinstance(v, CPUDispatcher) and v.__module__ == c.module.__name__}
    print(json.dumps({"value": float(y), "file_written": c.times["cache_file_written"],
                      "misses": sum(sum(k.stats.cache_misses.values()) for k in kernels.values()),
                      "hits": sum(sum(k.stats.cache_hits.values()) for k in kernels.values())}))
""")


def run_process(cache_dir):
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(cache_dir))
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_second_process_reuses_the_cache(tmp_path):
    first = run_process(tmp_path)
    second = run_process(tmp_path)
    assert first["file_written"] and first["misses"] > 0
    assert not second["file_written"]
    assert second["misses"] == 0 and second["hits"] > 0          # nothing recompiled
    assert second["value"] == first["value"]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp_")]


def test_a_truncated_or_edited_file_is_rewritten(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    source = f"# test {uuid.uuid4().hex}\nVALUE = 42\n"
    module, path, wrote = cache.load(source)
    assert wrote and module.VALUE == 42
    with open(path) as f:
        text = f.read()
    for damaged in (text[: len(text) // 2], text.replace("42", "43"), ""):
        with open(path, "w") as f:
            f.write(damaged)
        assert not cache._valid(path)
        sys.modules.pop(module.__name__, None)
        module, path2, wrote = cache.load(source)
        assert wrote and path2 == path and module.VALUE == 42
        assert cache._valid(path)


def test_the_file_name_depends_on_the_source_and_versions():
    a, b = cache.module_key("x = 1\n"), cache.module_key("x = 2\n")
    assert a != b and a == cache.module_key("x = 1\n")
    assert np.__version__ in cache._versions()


def test_the_generated_source_is_the_same_every_time():
    """The kernel file's name is the hash of its source: it must not depend on object
    addresses or set order, or a second process would miss the cache."""
    from graphc.tools.workloads import w3_train_step
    sources = set()
    for _ in range(3):
        w = w3_train_step(batch=4)
        f = w.function("cpu")
        f(*w.data)
        sources.add(f.source)
    assert len(sources) == 1


@pytest.mark.parametrize("helper", ["conv_kernels", "conv_blocked", "conv_direct", "conv_depthwise", "conv_im2col",
                                    "conv_winograd", "conv_wide", "pool_kernels", "parallel_planes",
                                    "conv_interleaved"])
def test_the_file_name_depends_on_the_helpers_the_kernels_call(monkeypatch, tmp_path, helper):
    """A jitted step's Numba cache holds matmul_into's and the conv helpers' code linked in, so
    a changed helper file (gemm.py, conv_kernels.py, fastmath.py, and the files of the jitted
    functions those call: conv_direct.py, conv_depthwise.py) must change every module name."""
    import importlib
    import inspect
    module = importlib.import_module(f"graphc.runtime.cpu.{helper}")
    before = cache.module_key("x = 1\n")
    real = inspect.getfile
    edited = tmp_path / f"{helper}.py"
    edited.write_text(open(module.__file__).read() + "\n# edited\n")
    monkeypatch.setattr(inspect, "getfile", lambda f: str(edited) if real(f) == module.__file__ else real(f))
    cache._versions.cache_clear()
    try:
        assert cache.module_key("x = 1\n") != before
    finally:
        monkeypatch.undo()
        cache._versions.cache_clear()
    assert cache.module_key("x = 1\n") == before
