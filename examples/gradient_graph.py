"""gc.grad builds the gradient as more nodes of the same graph: draw both."""
import sys

import numpy as np

import graphc as gc

with gc.Graph("grad") as g:
    x = gc.placeholder((3,), gc.float32, name="x")
    w = gc.variable(np.array([0.5, -1.0, 2.0], np.float32), name="w")
    y = gc.sum(gc.tanh(x * w))
    (dw,) = gc.grad(y, [w])              # a node: d y / d w = x * (1 - tanh(x*w)^2)

f = gc.function([x], [y, dw])
print("y, dy/dw =", f(np.array([1, 2, 3], np.float32)))
if len(sys.argv) > 1:                    # python examples/gradient_graph.py docs/
    with open(f"{sys.argv[1]}/grad_forward.dot", "w") as out:
        out.write(gc.to_dot(y))
    with open(f"{sys.argv[1]}/grad_backward.dot", "w") as out:
        out.write(gc.to_dot(dw))
