"""The first graphc program: define a graph, run it, draw it."""
import numpy as np

import graphc as gc

with gc.Graph("first") as g:
    x = gc.placeholder((None, 3), gc.float32, name="x")       # batch size given at call time
    w = gc.variable(np.array([0.5, -1.0, 2.0], np.float32), name="w")
    y = gc.sum(gc.tanh(x * w) ** 2, axis=1)                     # numpy names, numpy broadcasting
    f = gc.function([x], y, updates={w: w * 0.5})              # each call halves w afterwards

batch = np.array([[1, 2, 3], [0, 0, 1]], np.float32)
print("y  =", f(batch))
print("y  =", f(batch), "(w was halved by the first call)")
print("w  =", gc.get_value(w))
print(y)                                                       # the node: op, type and your line
print(gc.to_dot(f))                                            # DOT text of the function
