"""What the pass pipeline does to a small graph: draw it before and after."""
import sys

import numpy as np

import graphc as gc

with gc.Graph("small"):
    x = gc.placeholder((None, 4), gc.float32, name="x")
    w = gc.variable(np.ones(4, np.float32), name="w")
    h = gc.tanh(x * w + 0.5) * 1.0                  # "* 1.0" is dropped by simplify
    loss = gc.mean(h ** 2)                           # "** 2" becomes h * h, then fused into the mean
    (dw,) = gc.grad(loss, [w])
    before = gc.function([x], [loss, dw], backend="interp")
    after = gc.function([x], [loss, dw], backend="interp", optimize=True)

print(after.pass_timing)
xv = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
print("same answers:", all(np.allclose(a, b) for a, b in zip(before(xv), after(xv))))
if len(sys.argv) > 1:                                # python examples/optimize_graph.py docs/
    for name, fn in (("before", before), ("after", after)):
        with open(f"{sys.argv[1]}/passes_{name}.dot", "w") as f:
            f.write(gc.to_dot(fn))
