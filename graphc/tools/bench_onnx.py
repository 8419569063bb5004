"""`graphc bench onnx MODEL.onnx`: an imported ONNX model on graphc's cpu backend beside
onnxruntime (2 threads), after checking that their outputs agree.

    graphc bench onnx MODEL.onnx [--shape NAME=1,3,224,224] [--reps N] [--threads 2]

The inputs are random (standard normal floats, small ints), shaped as the model declares
(a symbolic size is 1 unless --shape gives it). The outputs must agree to 1e-4 of the largest
|output| or nothing is timed. The two take turns in short bursts (untimed calls for SETTLE_S
seconds, then BURST timed ones, then the other), so the ratio holds on a noisy machine while
neither pays for the other: onnxruntime's threads keep spinning for a while after each of its
calls (and OpenBLAS's after graphc's), and graphc's calls straight after onnxruntime's ran
1.3-1.5x slower (ResNet-50: 173 ms interleaved call by call, 112-120 ms in bursts; a graphc
call 2 or 10 ms after onnxruntime's 164-177 ms, 50 ms after it 122 ms). With 0.2 s of
settling, ResNet-50's graphc calls still took 134 ms against 80-90 alone: onnxruntime's pool
threads spin even after the session is made and before it runs, and graphc's calls were
back to their own time only ~1 s after onnxruntime's (108, 104, 97, 80, 83 ms at 0.2 s;
92, 92, 84, 90, 86 at 1 s); with SETTLE_S = 1 s the bench gave 90 ms, two runs.
Reported: median ms per call and graphc / onnxruntime.
Like `graphc bench`, it re-runs itself with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset
(this machine forces OpenBLAS onto its AVX2 kernels with them, while onnxruntime picks its
own AVX-512 ones) unless --keep-env is given.
"""
import argparse
import sys
import time

import numpy as np

BURST = 3           # timed calls per turn, after untimed calls for SETTLE_S seconds (at least one)
SETTLE_S = 1.0      # onnxruntime's idle threads spin for up to ~1 s (above)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="graphc bench onnx", description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="an .onnx file")
    p.add_argument("--shape", action="append", default=[], metavar="NAME=D0,D1,...",
                   help="the shape of an input whose sizes the model leaves symbolic")
    p.add_argument("--reps", type=int, default=10, help=f"turns of each, {BURST} timed calls a turn (default 10)")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime's intra-op threads (default 2)")
    p.add_argument("--keep-env", action="store_true",
                   help="keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE / OPENBLAS_THREAD_TIMEOUT as they are")
    return p.parse_args(argv)


def random_inputs(proto, shapes, rng):
    from onnx import helper
    inits = {i.name for i in proto.graph.initializer}
    feeds = {}
    for vi in proto.graph.input:
        if vi.name in inits:
            continue
        t = vi.type.tensor_type
        shape = shapes.get(vi.name) or tuple(d.dim_value if d.HasField("dim_value") else 1 for d in t.shape.dim)
        dtype = helper.tensor_dtype_to_np_dtype(t.elem_type)
        feeds[vi.name] = (rng.standard_normal(shape) if dtype.kind == "f" else rng.integers(0, 3, shape)).astype(dtype)
    return feeds


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if not args.keep_env:
        from .bench import _reexec_with_bench_env
        _reexec_with_bench_env(argv, module="graphc.tools.bench_onnx")
    import onnx
    import onnxruntime as ort

    import graphc as gc
    shapes = {}
    for s in args.shape:
        name, _, dims = s.partition("=")
        shapes[name] = tuple(int(d) for d in dims.split(","))
    proto = onnx.load(args.model)
    feeds = random_inputs(proto, shapes, np.random.default_rng(0))
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = args.threads, 1
    so.log_severity_level = 3          # errors only: not a warning per initializer listed as an input
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    t0 = time.perf_counter()
    fn = gc.onnx.load(proto, backend="cpu", shapes=shapes)
    expected, got = sess.run(None, feeds), fn(**feeds) if all(n.isidentifier() for n in feeds) else fn(*feeds.values())
    print(f"graphc import + compile + first call: {time.perf_counter() - t0:.2f} s")
    for k, (e, g) in enumerate(zip(expected, got)):
        err = np.abs(g.astype(np.float64) - e).max() / max(np.abs(e).max(), 1e-30)
        if g.shape != e.shape or not err <= 1e-4:
            print(f"output {k}: graphc and onnxruntime disagree (shape {g.shape} vs {e.shape}, relative error "
                  f"{err:.3g}); not timed")
            return 1
    args_list = list(feeds.values())
    runs = {"graphc cpu": lambda: fn(*args_list),
            f"onnxruntime ({args.threads} threads)": lambda: sess.run(None, feeds)}
    times = {k: [] for k in runs}
    for _ in range(args.reps):
        for k, f in runs.items():
            settle = time.perf_counter() + SETTLE_S
            f()                                  # the other's threads may still be spinning
            while time.perf_counter() < settle:
                f()
            for _ in range(BURST):
                t = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t)
    med = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:28s} {v:9.2f} ms")
    g, o = med.values()
    print(f"graphc / onnxruntime: {g / o:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
