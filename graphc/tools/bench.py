"""`graphc bench`: the workloads of BENCHMARKS.md, every column side by side in one run.

For each workload every column is first checked against the interpreter
(float32 tolerance) and refused if wrong; then the columns are timed
interleaved (one call of each in turn, repeated), so that the ratios hold on
a noisy machine. Reported: median time per call, ratio to numpy, and minor
page faults per call. W6 and W6b time first calls in fresh processes
(bench_compile.py).

    graphc bench [W1 W2 ...] [--busy] [--reps N] [--json out.json] [--plot out.png] [--keep-env]
                 [--backend cuda]

--backend cuda adds a cuda column (a call: feeds to the GPU, the step, outputs back) beside
the CPU backend's; it refuses to run under Numba's CUDA simulator, whose timings mean nothing.

It re-runs itself with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset and
OPENBLAS_THREAD_TIMEOUT=4 (see below) unless --keep-env is given. With --busy the
whole run goes on beside a CPU-bound process of its own (graphc/tools/busy.py),
as on a shared machine; that process is stopped at the end, however the run ends.
"""
import argparse
import contextlib
import json
import os
import platform
import resource
import sys
import time

import numpy as np

from . import busy, peers
from .bench_compile import COMPILE_BENCHES, COMPILE_DESCRIPTIONS, format_compile
from .workloads import WORKLOADS as MLP_WORKLOADS
from .workloads_nn import NN_WORKLOADS

WORKLOADS = {**MLP_WORKLOADS, **NN_WORKLOADS}


def columns(name, backend="cpu"):
    """{column: (make_callable, data)}: each make_callable builds its own state."""
    cols = {}

    def graphc_col(backend):
        def make():
            w = WORKLOADS[name]()
            f = w.function(backend)
            return (lambda: f(*w.data)), w.data
        return make

    def numpy_col():
        w = WORKLOADS[name]()
        return (lambda: w.numpy_fn(*w.data)), w.data

    cols["interp"] = graphc_col("interp")
    cols["numpy"] = numpy_col
    cols["cpu"] = graphc_col("cpu")
    if backend == "cuda":
        cols["cuda"] = graphc_col("cuda")
    if name == "W1":                               # the memory floor: read x once, write y once
        def copy_col():
            w = WORKLOADS[name]()
            out = np.empty_like(w.data[0])
            return (lambda: np.copyto(out, w.data[0])), w.data
        cols["copy"] = copy_col
    for peer, make in peers.available(name).items():
        cols[peer] = make
    return cols


def check(name, runs, reference):
    """Refuse a column whose first output differs from the interpreter's."""
    bad = {}
    for col, fn in runs.items():
        out = fn()
        got = np.asarray(out[0] if isinstance(out, (list, tuple)) else out, np.float64)
        if got.shape != reference.shape or not np.allclose(got, reference, rtol=2e-4, atol=1e-5):
            bad[col] = float(np.max(np.abs(got - reference))) if got.shape == reference.shape else "shape"
    return bad


SETTLE = 0.02   # seconds between columns: the previous column's worker threads (OpenBLAS,
                # XLA, Numba) stop spinning and leave the cores to the next one
BURST = 3       # timed calls per column and round, after one untimed call that wakes it up


def time_interleaved(runs, reps, progress=None):
    """Median seconds and page faults per call. Each round visits every column once, in a
    new order (no column always follows the same one); a visit is a pause, one untimed
    call, then BURST timed calls."""
    times = {c: [] for c in runs}
    faults = {c: 0 for c in runs}
    order = list(runs)
    rng = np.random.default_rng(0)
    for _ in range(reps):
        for c in rng.permutation(order):
            fn = runs[c]
            time.sleep(SETTLE)
            fn()
            for _ in range(BURST):
                f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                t0 = time.perf_counter()
                fn()
                times[c].append(time.perf_counter() - t0)
                faults[c] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
        if progress:
            progress.update(1)
    return {c: (float(np.median(t)), faults[c] / (reps * BURST)) for c, t in times.items()}


CORE = ("interp", "numpy", "cpu", "copy", "cuda")     # a failure here is graphc's own: it propagates


def bench_workload(name, reps, progress=None, backend="cpu"):
    """({column: (median s, faults)}, {column: why not timed}). A peer column that fails
    to build or run (a version that does not fit, a missing compiler) is left out, saying why."""
    makers = columns(name, backend)
    runs, bad = {}, {}
    for col, make in makers.items():
        try:
            fn, _ = make()
            fn()                                   # warm up: compile, caches
        except Exception as e:
            if col in CORE:
                raise
            bad[col] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
            continue
        runs[col] = fn
    # the check uses fresh state (a training step changes its variables)
    fresh = {col: makers[col]()[0] for col in runs}
    reference = np.asarray(_first(fresh.pop("interp")()), np.float64)
    fresh.pop("copy", None)                        # not the workload's answer, only its floor
    bad.update(check(name, fresh, reference))
    for col in bad:
        runs.pop(col, None)
    result = time_interleaved(runs, reps, progress)
    return result, bad


def _first(out):
    return out[0] if isinstance(out, (list, tuple)) else out


def machine_info():
    info = {"python": platform.python_version(), "machine": platform.machine(), "cores": os.cpu_count(),
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "unset"),
            "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE", "unset"),
            "OPENBLAS_THREAD_TIMEOUT": os.environ.get("OPENBLAS_THREAD_TIMEOUT", "unset")}
    try:
        import scipy.linalg.cython_blas  # noqa: F401  the BLAS Numba's np.dot calls, loaded
        from threadpoolctl import threadpool_info
        info["blas"] = [f"{os.path.basename(os.path.dirname(p['filepath']))}: {p.get('internal_api')} "
                        f"{p.get('version')} {p.get('architecture')} threads={p.get('num_threads')}"
                        for p in threadpool_info() if p.get("user_api") == "blas"]
    except ImportError:
        info["blas"] = ["threadpoolctl not installed"]
    info["GRAPHC_BLAS_THREADS"] = os.environ.get("GRAPHC_BLAS_THREADS", "auto")
    import numba

    from graphc.runtime.cpu.config import configure_once
    configure_once()                  # the threading layer the CPU backend chooses
    info["numba"] = f"{numba.__version__} threading layer {numba.config.THREADING_LAYER}"
    return info


def format_table(results):
    cols = []
    for r in results.values():
        cols += [c for c in r["times"] if c not in cols]
    head = f"{'':4} " + "".join(f"{c:>20}" for c in cols)
    lines = [head]
    for name, r in results.items():
        base = r["times"].get("numpy", (None,))[0]
        cells = []
        for c in cols:
            if c not in r["times"]:
                why = str(r["bad"].get(c, "-"))
                cells.append(f"{'failed' if why.startswith('failed') else 'wrong' if c in r['bad'] else '-':>20}")
                continue
            t, faults = r["times"][c]
            ratio = f" ({t / base:.2f}x)" if base else ""
            cells.append(f"{_fmt(t) + ratio:>20}")
        lines.append(f"{name:4} " + "".join(cells))
    lines.append("times: median per call; (ratio to numpy, lower is faster)")
    faults = {f"{n}/{c}": round(f, 1) for n, r in results.items() for c, (t, f) in r["times"].items() if f >= 1}
    lines.append(f"minor page faults per call (>= 1): {faults or 'none'}")
    for n, r in results.items():
        for c, why in r["bad"].items():
            lines.append(f"{n}/{c} not timed: {'wrong answer, max abs error ' if not str(why).startswith('failed') else ''}"
                         f"{why}")
    return "\n".join(lines)


def _fmt(seconds):
    return f"{seconds * 1e3:.3f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.1f} us"


# The environment of a benchmark run (DESIGN.md section 7): OpenBLAS's kernel choice is
# forced to AVX2 by these two on this machine; and OpenBLAS threads spin for a long time
# after each call, which, with two OpenBLAS copies in one process (numpy's and the one
# Numba calls through scipy) and columns timed in turn, makes each column pay for the
# previous one's spinning threads. Both are set before numpy loads, by re-running.
UNSET = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
SET = {"OPENBLAS_THREAD_TIMEOUT": "4"}


def _reexec_with_bench_env(argv, module="graphc.tools.bench"):
    """Run `python -m module *argv` again in the benchmark environment (unless this is it)."""
    if os.environ.get("GRAPHC_BENCH_ENV") == "1":
        return
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update(SET, GRAPHC_BENCH_ENV="1")
    os.execve(sys.executable, [sys.executable, "-m", module, *argv], env)


DEFAULT = ["W1", "W2", "W3", "W4", "W5", "W6", "W6b", "W7"]


def known_workloads():
    from .workloads import DESCRIPTIONS
    from .workloads_nn import NN_DESCRIPTIONS
    known = {**DESCRIPTIONS, **NN_DESCRIPTIONS, **COMPILE_DESCRIPTIONS}
    return {k: known[k] for k in sorted(known, key=lambda k: (int(k[1:].rstrip("b")), k))}


def build_parser():
    known = known_workloads()
    epilog = "workloads (BENCHMARKS.md):\n" + "\n".join(f"  {k:4} {d}" for k, d in known.items())
    epilog += ("\n\ncolumns: interp, numpy, cpu, and the peers installed here (jax, torch, pytensor),\n"
               "and hand-written Numba (numba) where BENCHMARKS.md has one."
               "\n--busy runs the same beside one CPU-bound process of its own (W3 if no workload is named);"
               "\nwith --keep-env too, OpenBLAS's threads spin after each call for as long as a user's do.")
    parser = argparse.ArgumentParser(prog="graphc bench", description=__doc__.split("\n\n")[0], epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workloads", nargs="*", metavar="WORKLOAD",
                        help=f"which to run (default {' '.join(DEFAULT)}; with --busy, W3)")
    parser.add_argument("--reps", type=int, default=20, help=f"rounds; each times {BURST} calls per column (default 20)")
    parser.add_argument("--busy", action="store_true",
                        help="run a competing CPU-bound process of its own during the benchmark (and stop it)")
    parser.add_argument("--competitors", type=int, default=1, metavar="N",
                        help="with --busy: how many competing processes (default 1)")
    parser.add_argument("--json", default="bench.json", help="write the results here (default bench.json)")
    parser.add_argument("--plot", help="write a bar chart of the ratios to numpy (needs matplotlib)")
    parser.add_argument("--backend", choices=("cpu", "cuda"), default="cpu",
                        help="cuda: add a column for backend='cuda' (a real GPU only)")
    parser.add_argument("--keep-env", action="store_true",
                        help="keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE / OPENBLAS_THREAD_TIMEOUT as they are")
    return parser


def parse_args(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = [w for w in args.workloads if w not in known_workloads()]
    if unknown:
        parser.error(f"unknown workload{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                     f"known: {', '.join(known_workloads())} (see graphc bench --help)")
    if not args.workloads:
        args.workloads = ["W3"] if args.busy else list(DEFAULT)
    if args.competitors < 1:
        parser.error("--competitors must be at least 1")
    if args.backend == "cuda":
        why = cuda_unavailable()
        if why:
            parser.error(why)
    return args


def cuda_unavailable():
    """Why --backend cuda cannot be timed here (None if it can: a real GPU)."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1":
        return ("--backend cuda times a real GPU, but NUMBA_ENABLE_CUDASIM=1 selects Numba's CUDA simulator, "
                "which runs kernels as Python threads: its timings mean nothing. Unset it on a machine with a GPU "
                "(the simulator is for tests: pytest tests/test_cuda.py)")
    try:
        from graphc.runtime.cuda.launch import available
    except ImportError as e:
        return f"--backend cuda needs numba-cuda: pip install 'graphc[cuda]' ({e})"
    why = available()
    return f"--backend cuda: {why}" if why else None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)             # --help and bad names answer before anything loads
    if not args.keep_env:
        _reexec_with_bench_env(argv)
    try:
        from tqdm import tqdm
    except ImportError:                            # pragma: no cover
        tqdm = None
    info = machine_info()
    print("machine:", json.dumps(info))
    results, compile_times = {}, None
    timed = [w for w in args.workloads if w not in COMPILE_DESCRIPTIONS]
    with (busy.competing(args.competitors) if args.busy else contextlib.nullcontext([])) as pids:
        if args.busy:
            info["busy"] = f"{len(pids)} competing CPU-bound process(es), pid {' '.join(map(str, pids))}"
            print(f"BUSY: {info['busy']}, running during the whole benchmark")
        bar = tqdm(total=len(timed) * args.reps, desc="bench", unit="round") if tqdm else None
        for name in timed:
            if bar:
                bar.set_postfix_str(name)
            times, bad = bench_workload(name, args.reps, bar, args.backend)
            results[name] = {"times": times, "bad": bad}
        if bar:
            bar.close()
        compile_times = {w: COMPILE_BENCHES[w]() for w in args.workloads if w in COMPILE_BENCHES} or None
    if args.busy:
        print(f"BUSY run: beside {args.competitors} competing CPU-bound process(es) of its own (now stopped)")
    print(format_table(results))
    for w, times in (compile_times or {}).items():
        print(format_compile(w, times))
    with open(args.json, "w") as f:
        json.dump({"machine": info, "results": results, **(compile_times or {})}, f, indent=1)
    print(f"results written to {args.json}")
    if args.plot:
        plot(results, args.plot)
    return 0


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4))
    names = list(results)
    cols = sorted({c for r in results.values() for c in r["times"]} - {"interp"})
    width = 0.8 / max(len(cols), 1)
    for k, c in enumerate(cols):
        ratios = [results[n]["times"][c][0] / results[n]["times"]["numpy"][0] if c in results[n]["times"] else 0
                  for n in names]
        ax.bar(np.arange(len(names)) + k * width, ratios, width, label=c)
    ax.set_xticks(np.arange(len(names)) + width * (len(cols) - 1) / 2, names)
    ax.set_yscale("log")                  # ratios from 0.04 (W1) to 3+ (a slow peer) stay readable
    ax.axhline(1.0, color="gray", linewidth=0.8)
    ax.set_ylabel("time / numpy time (log scale, lower is faster)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    print(f"plot written to {path}")


if __name__ == "__main__":
    sys.exit(main())
