"""How the CPU backend configures Numba and its BLAS threads.

Numba: once, when the first CPU function is built. Numba reads these settings
from the environment when it sets up its compiler and threading layer, i.e.
before the first kernel compiles, not when it is imported; so importing graphc
changes nothing in the process, and a program that never compiles for the CPU
keeps Numba's defaults.

BLAS threads: per compiled step and per call (blas_step, below), because one
fixed thread count is either slow on a quiet machine or collapses on a shared one.
"""
import os
import sys
import time

import numpy as np

_done = False


def configure_once():
    global _done
    if not _done:
        configure_numba()
        start_threads()
        _done = True


def start_threads():
    """Start Numba's threading layer now. A compiled function loaded from Numba's cache that
    calls a parallel one (conv_blocked.py's _tiles) links to the layer's functions
    (allocate_sched, ...), which exist only once it is started: "LLVM ERROR: Symbol not found:
    allocate_sched", or a segfault, otherwise."""
    from numba.np.ufunc import parallel
    parallel._launch_threads()


def configure_numba():
    """Choices made before Numba compiles anything, unless the user made them (env vars).

    - Threading: Numba's OpenMP layer, its idle workers spinning for GOMP_SPINCOUNT = 100000
      turns (~0.1 ms) before they sleep. libgomp's default (300000 turns, ~1 ms) starves
      OpenBLAS's threads on a small machine (DESIGN.md section 7); OMP_WAIT_POLICY=PASSIVE
      (no spinning, used before) made each parallel loop wait 30-130 us for its sleeping
      workers, which the blocked convolutions (conv_blocked.py, one parallel loop each) paid
      53 times per ResNet-50 call: 47.9 ms against 34.3 with 100000 turns (48.3 with 10^6).
      `graphc bench W1 W2 W3`: 1.29 / 2.06 / 1.09 ms passive, 1.24 / 1.90 / 1.05 bounded. The
      workqueue layer is the fallback when OpenMP is missing (W1 3.7, W2 7.3 ms against 3.0
      and 3.2 with OpenMP, measured before).
    - Vector width: LLVM prefers 256-bit vectors even where AVX-512 exists; the float32
      math of the generated kernels runs faster in 512-bit registers (exp over 4M floats:
      1.8 ms vs 2.3 ms here). GRAPHC_AVX512=0 keeps LLVM's default.
    Numba reads these from the environment when it sets up its compiler, which is why
    this runs when graphc.runtime is first imported, before any kernel is compiled.
    """
    if "NUMBA_THREADING_LAYER" not in os.environ:
        if "OMP_WAIT_POLICY" not in os.environ:                 # read when libgomp loads
            os.environ.setdefault("GOMP_SPINCOUNT", "100000")
        os.environ["NUMBA_THREADING_LAYER"] = "omp" if _has_openmp() else "workqueue"
    if "NUMBA_CPU_FEATURES" not in os.environ and os.environ.get("GRAPHC_AVX512", "1") != "0":
        try:
            import llvmlite.binding as ll
        except ImportError:          # pragma: no cover - numba (and llvmlite) are dependencies
            return
        features = ll.get_host_cpu_features()
        if features.get("avx512f"):
            os.environ["NUMBA_CPU_FEATURES"] = features.flatten() + ",-prefer-256-bit"
    if "numba" in sys.modules:
        sys.modules["numba"].config.reload_config()


def _has_openmp():
    """Is Numba's OpenMP threading layer loadable here (it needs libgomp)?"""
    import ctypes.util
    return ctypes.util.find_library("gomp") is not None


# ---------------------------------------------------------------- BLAS threads per compiled step
#
# Numba's np.dot calls SciPy's OpenBLAS (not numpy's: threadpoolctl lists both), with as many
# threads as cores. A GEMM split in two waits at its end for the thread that got the other
# half, and after each call that thread spins (sched_yield) for OPENBLAS_THREAD_TIMEOUT
# (default 2^28 cycles, ~0.1 s) before it sleeps. With another CPU-bound process on these 2
# cores, the spinning worker, the main thread and the other process share 2 cores, and each
# split GEMM waits for a time slice: `graphc bench W3 --busy --keep-env` measured the W3 step
# at 128-131 ms with 2 threads (~50x its quiet time; numpy's own W3 collapses the same way)
# and 8 ms with 1. On a quiet machine 2 threads are faster (W3 1.2-1.4x). Neither fixed count
# suits both, so a step with a GEMM that OpenBLAS would split times its own calls and keeps
# the faster count (ThreadChoice); steps without one are left as they are (W4 at batch 1).

SPLIT_MNK = 2 * 65536 * 4   # OpenBLAS splits a GEMM from m*n*k >= this (measured here: 64x64x127
                            # runs on one thread, 64x64x129 on two; interface/gemm.c's threshold)


def gemm_sizes(nodes, types):
    """(m, n, k) of each BLAS call of a step: its float matmul nodes (batch axes of a folded
    into the rows, as runtime/cpu/lower_linalg.py calls it) and convolutions (one GEMM per
    image and group, as conv_kernels.py runs them; also those fused with their epilogue)."""
    sizes = []
    for node in nodes:
        conv = _conv_gemm(node, types)
        if conv is not None:
            sizes.append(conv)
        if node.op.name != "matmul" or types[node].dtype.kind != "f":
            continue
        ta, tb = (types[x] for x in node.inputs)
        k = ta.shape[-1]
        m = 1 if ta.ndim == 1 else ta.shape[-2]
        n = 1 if tb.ndim == 1 else tb.shape[-1]
        if tb.ndim <= 2 and ta.ndim > 2:
            m *= int(np.prod(ta.shape[:-2]))
        sizes.append((m, n, k))
    return sizes


def _conv_gemm(node, types):
    """(m, n, k) of a forward convolution's GEMM (output channels of a group, output positions,
    multiply-adds per output), or None for other nodes and for the convolutions that the
    blocked kernel takes (no GEMM: lower_scan.calls_blas)."""
    from .lower_scan import calls_blas
    if node.op.name in ("conv2d", "fused") and not calls_blas(node):
        return None
    if node.op.name == "conv2d":
        attrs, x, w, out = node.attrs, node.inputs[0], node.inputs[1], types[node]
    elif node.op.name == "fused" and node.attrs.get("reduce") is None and node.attrs["region"].steps[0].op.name == "conv2d":
        attrs, x, w = node.attrs["region"].steps[0].kwargs, node.inputs[0], node.inputs[1]
        out = node.attrs["region"].types(tuple(types[i] for i in node.inputs))[0]
    else:
        return None
    o, cg, kh, kw = types[w].shape
    return o // attrs["groups"], int(np.prod(out.shape[2:])), cg * kh * kw


def blas_threads_for(m, n, k, cores=2):
    """The thread counts worth trying for one GEMM: (1,) when OpenBLAS would not split it
    anyway (m*n*k < SPLIT_MNK: W3's 128x256x10 products, W4 at batch 1 and 2), else
    (1, cores), timed in use (ThreadChoice): W3's 128x784x256 and 128x256x256 products.
    (Whether 2 threads pay for a GEMM of a given size depends on the machine and its load:
    measured here, 1-4M m*n*k gained 0.9-1.4x from a second thread, 8-26M 1.1-1.8x, when
    quiet; a fixed size limit would be a guess.)"""
    return (1,) if cores <= 1 or m * n * k < SPLIT_MNK else (1, cores)


class ThreadChoice:
    """Which of `counts` (1 or all of OpenBLAS's threads) one step runs with: the count whose
    last TRIES calls took least (median). First each count runs TRIES calls (all threads
    first); the very first call is not counted, since it pays for the step's warm-up (fresh
    buffers, cold caches: ResNet-50's first call took 133 ms, the next ones 80-90, and counted
    against 2 threads it made 1 thread win and stay for ~10 s). After that the other count is
    tried again, TRIES calls in a row, once the time spent on the chosen one since the last
    try reaches TRIES times the other's median / BUDGET: so at most ~BUDGET of the time goes
    to trying a count that turns out slower, however much slower (2 threads under
    contention: 15-50x), and a change in the machine's load is noticed within a few seconds
    (a quiet machine again: ~3 s)."""
    TRIES = 3
    BUDGET = 0.03

    def __init__(self, counts):
        self.counts = tuple(counts)
        self.recent = {c: [] for c in self.counts}
        self.best = self.counts[-1]          # as OpenBLAS would run: all its threads
        self.trying, self.left, self.spent = None, 0, 0.0
        self.warm = False                    # has the first (warm-up) call been made?

    def pick(self):
        if self.left:
            return self.trying
        for c in (self.best,) + self.counts:
            if len(self.recent[c]) < self.TRIES:      # not yet tried TRIES times
                self.trying, self.left = c, self.TRIES - len(self.recent[c])
                return c
        for c in self.counts:
            if c != self.best:
                r = self.recent[c]
                if self.spent * self.BUDGET >= self.TRIES * _median(r):
                    self.trying, self.left = c, self.TRIES
                    return c
        return self.best

    def record(self, count, seconds):
        if not self.warm:
            self.warm = True
            return
        r = self.recent[count]
        r.append(seconds)
        del r[:-self.TRIES]
        if self.left and count == self.trying:
            self.left -= 1
            if not self.left:
                self.trying, self.spent = None, 0.0
                self.best = min(self.counts, key=lambda c: _median(self.recent[c]) if self.recent[c] else 1e300)
        elif count == self.best:
            self.spent += seconds


def _median(xs):
    s = sorted(xs)
    return s[len(s) // 2] if len(s) % 2 else 0.5 * (s[len(s) // 2 - 1] + s[len(s) // 2])


class _Blas:
    """get/set of one OpenBLAS's thread count through its own C functions (~0.4 us a call;
    threadpoolctl's set_num_threads takes ~2 us), or threadpoolctl's for another BLAS."""

    def __init__(self, controller):
        self.controller, self.get, self.set = controller, controller.get_num_threads, controller.set_num_threads
        if controller.internal_api == "openblas":
            for pre in ("", "scipy_"):
                for suf in ("", "64_", "_64"):
                    get = getattr(controller.dynlib, f"{pre}openblas_get_num_threads{suf}", None)
                    set_ = getattr(controller.dynlib, f"{pre}openblas_set_num_threads{suf}", None)
                    if get is not None and set_ is not None:
                        self.get, self.set = get, set_
                        return


_numba_blas = []       # [] not looked up yet; [None] none found; [_Blas]


def numba_blas():
    """The BLAS that Numba's np.dot calls: SciPy's (scipy.linalg.cython_blas), found among the
    loaded BLAS libraries by its folder (a wheel's scipy.libs); where there is one BLAS only
    (numpy and SciPy sharing a system or conda OpenBLAS), that one; else None."""
    if not _numba_blas:
        found = None
        try:
            import scipy.linalg.cython_blas  # noqa: F401  (loads it, as Numba's first np.dot does)
            from threadpoolctl import ThreadpoolController
            blas = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
            scipy_own = [c for c in blas if "scipy" in os.path.basename(os.path.dirname(c.filepath))]
            pick = scipy_own or (blas if len(blas) == 1 else [])
            found = _Blas(pick[0]) if pick else None
        except Exception:             # pragma: no cover - no SciPy BLAS, or an unknown layout
            found = None
        _numba_blas.append(found)
    return _numba_blas[0]


def blas_step(step, nodes, types, parallel=False):
    """`step` itself when OpenBLAS would run each of its GEMMs on one thread anyway (all
    below SPLIT_MNK); else `step` setting, for each call, the thread count that ThreadChoice
    finds faster, 1 or all cores, by timing its own calls; 1 for a step with parallel loops
    (its BLAS calls are matrix-vector products: lower_scan.calls_blas), so that no BLAS
    thread competes with Numba's (DESIGN.md section 7). The count is set for the call and
    set back after it, so SciPy's calls elsewhere in the program keep theirs.
    GRAPHC_BLAS_THREADS: "auto" (the default, as said), "off" (leave OpenBLAS as it is: its
    GEMMs on all cores, the behaviour before), or a number of threads for such steps.
    runtime/cpu/function.py wraps each compiled step with it."""
    mode = os.environ.get("GRAPHC_BLAS_THREADS", "auto").strip().lower()
    blas = None if mode == "off" else numba_blas()
    if blas is None:
        return step
    cores = blas.get()
    if not any(len(blas_threads_for(m, n, k, cores)) > 1 for m, n, k in gemm_sizes(nodes, types)):
        return step                   # OpenBLAS runs each of its GEMMs on one thread anyway
    choice = _Fixed(int(mode)) if mode.isdigit() else _Fixed(1) if parallel else ThreadChoice((1, cores))
    return _choosing(step, blas, choice)


class _Fixed:
    def __init__(self, count):
        self.count = count

    def pick(self):
        return self.count

    def record(self, count, seconds):
        pass


_inflight = [0]        # steps now running with a thread count of their choice, in all threads


def _choosing(step, blas, choice):
    perf, get, set_ = time.perf_counter, blas.get, blas.set

    def step_with_blas_threads(*args):
        had = get()
        if had <= 1 or _inflight[0]:  # the user limited it, or another call set it: as it is
            return step(*args)
        n = choice.pick()
        _inflight[0] += 1
        if n != had:
            set_(n)
        t0 = perf()
        try:
            return step(*args)
        finally:
            choice.record(n, perf() - t0)
            if n != had:
                set_(had)
            _inflight[0] -= 1

    step_with_blas_threads.choice = choice
    return step_with_blas_threads
