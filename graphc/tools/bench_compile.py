"""The compile-time rows of `graphc bench`, each measured in fresh Python processes (a process
that has compiled something before would hide what a user's first run pays):

  W6   the W3 step's first call with an empty kernel cache (cold), then in a second
       process with the cache the first one left (warm); and how much of each was Numba's
       own start-up, which every Numba program pays once per process.
  W6b  compile reuse, in one process with an empty cache: after a W3 step (batch None) has
       run at batch 128, its first call at batch 37 (a new size of the same shape family),
       and the first call of a second W3 graph whose nodes have other names but which
       generates the same kernels.
"""
import os
import subprocess
import sys
import tempfile
import textwrap

W6_SCRIPT = textwrap.dedent("""
    import time, numpy as np
    from graphc.tools.workloads import w3_train_step
    w = w3_train_step()
    f = w.function("cpu")
    t = time.perf_counter()
    # Numba's own start-up, which the first call would otherwise do: loading its typing and
    # lowering registries (numba.np.*, scipy.linalg for BLAS). Timed apart so the report can
    # say how much of the call is graphc's.
    from numba.core.registry import cpu_target
    cpu_target.typing_context.refresh(); cpu_target.target_context.refresh()
    t1 = time.perf_counter(); f(*w.data); t2 = time.perf_counter()
    print(t2 - t, t1 - t)
""")

W6B_SCRIPT = textwrap.dedent("""
    import time, numpy as np
    from graphc.tools.workloads import w3_train_step
    w = w3_train_step(any_batch=True)
    f = w.function("cpu")
    f(*w.data)                                          # compiles: batch 128
    rng = np.random.default_rng(7)
    x37 = rng.normal(size=(37, 784)).astype(np.float32)
    y37 = rng.integers(0, 10, size=37).astype(np.int64)
    t = time.perf_counter(); f(x37, y37); t1 = time.perf_counter()
    other = w3_train_step(any_batch=True, prefix="other_")
    t2 = time.perf_counter()
    g = other.function("cpu"); g(*other.data)
    t3 = time.perf_counter()
    print(t1 - t, t3 - t2)
""")


def _run(script, env):
    p = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    return [float(v) for v in p.stdout.strip().splitlines()[-1].split()]


def bench_w6(runs=1):
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, GRAPHC_CACHE_DIR=d)
        out = [_run(W6_SCRIPT, env) for _ in range(1 + runs)]
    warm = min(out[1:])
    return {"cold": out[0][0], "warm": warm[0], "numba_start_cold": out[0][1], "numba_start_warm": warm[1]}


def bench_w6b():
    with tempfile.TemporaryDirectory() as d:
        second_batch, second_graph = _run(W6B_SCRIPT, dict(os.environ, GRAPHC_CACHE_DIR=d))
    return {"second_batch": second_batch, "second_graph": second_graph}


def format_compile(name, t):
    if name == "W6":
        return (f"W6   W3 step first call in a fresh process: cold cache {t['cold']:.2f} s, warm cache "
                f"{t['warm']:.2f} s (of which Numba's own start-up {t['numba_start_cold']:.2f} s / "
                f"{t['numba_start_warm']:.2f} s)")
    return (f"W6b  compile reuse (empty cache): batch 37 after 128, first call {t['second_batch'] * 1e3:.1f} ms; "
            f"a second W3 graph with other names, first call {t['second_graph'] * 1e3:.1f} ms")


COMPILE_BENCHES = {"W6": bench_w6, "W6b": bench_w6b}
COMPILE_DESCRIPTIONS = {
    "W6": "compile time: the W3 step's first call in a fresh process, cold then warm kernel cache",
    "W6b": "compile reuse: a W3 step's first call at a second batch size, and a renamed second graph",
}
