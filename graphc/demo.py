"""`make demo`: a small MLP forward graph, drawn, run by the interpreter and compiled for the CPU."""
import os
import shutil
import time

import numpy as np

import graphc as gc


def build_mlp(n_in=4, n_hidden=8, n_out=3, seed=0):
    """A 2-layer MLP: x -> relu(x @ W1 + b1) -> softmax(h @ W2 + b2)."""
    rng = np.random.default_rng(seed)
    with gc.Graph("mlp") as g:
        x = gc.placeholder((None, n_in), gc.float32, name="x")
        W1 = gc.variable(rng.normal(0, 0.5, (n_in, n_hidden)).astype(np.float32), name="W1")
        b1 = gc.variable(np.zeros(n_hidden, np.float32), name="b1")
        W2 = gc.variable(rng.normal(0, 0.5, (n_hidden, n_out)).astype(np.float32), name="W2")
        b2 = gc.variable(np.zeros(n_out, np.float32), name="b2")
        h = gc.relu(x @ W1 + b1)
        probs = gc.softmax(h @ W2 + b2, axis=-1)
    return g, x, probs


def run(out_dir="build"):
    g, x, probs = build_mlp()
    predict = gc.function([x], probs, backend="interp")
    os.makedirs(out_dir, exist_ok=True)
    dot_path = os.path.join(out_dir, "mlp.dot")
    with open(dot_path, "w") as f:
        f.write(gc.to_dot(predict))
    print(f"graph: {len(predict.nodes)} nodes; DOT written to {dot_path}")
    if shutil.which("dot"):
        print("picture:", gc.render(predict, os.path.join(out_dir, "mlp.svg")))
    batch = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    p = predict(batch)
    np.set_printoptions(precision=4, suppress=True)
    print(f"input x: {batch.shape} {batch.dtype}")
    print("softmax output (one row per example, each sums to 1):")
    print(p)
    print("argmax:", p.argmax(axis=1))

    # the same graph compiled: optimized, fused, lowered to Numba kernels
    compiled = gc.function([x], probs, backend="cpu")
    t0 = time.perf_counter()
    pc = compiled(batch)
    print(f"cpu backend: first call (compile or load from the kernel cache) {time.perf_counter() - t0:.2f} s; "
          f"same answer: {np.allclose(pc, p, rtol=1e-5, atol=1e-6)}")
    src = os.path.join(out_dir, "mlp_kernels.py")
    with open(src, "w") as f:
        f.write(compiled.source)
    with open(os.path.join(out_dir, "mlp_optimized.dot"), "w") as f:
        f.write(gc.to_dot(compiled))
    print(f"generated kernels: {src}; optimized graph: {out_dir}/mlp_optimized.dot")
    for name, fn in (("interp", predict), ("cpu", compiled)):
        reps = 2000
        t0 = time.perf_counter()
        for _ in range(reps):
            fn(batch)
        print(f"  {name:6} {(time.perf_counter() - t0) / reps * 1e6:8.1f} us per call")


if __name__ == "__main__":
    run()
