"""The hand-written Numba column of `graphc bench`: each workload as a Numba user would write
it by hand, one @njit function per step (BLAS through np.dot, loops for the rest). It is the
bar graphc's generated code is measured against: the same compiler, written by a person for
one graph, with no framework around it.
"""
import numpy as np

from .workloads import WORKLOADS, mlp_params


def _numba_w4():
    """The W3 network's forward pass at batch 1: three np.dot calls (Numba sends a one-row
    product to gemv), bias + ReLU in a loop, then softmax over the 10 logits."""
    from numba import njit

    @njit(cache=True)
    def forward(x, w0, b0, w1, b1, w2, b2):
        h = np.dot(x, w0)
        for j in range(h.shape[1]):
            h[0, j] = max(h[0, j] + b0[j], np.float32(0))
        h2 = np.dot(h, w1)
        for j in range(h2.shape[1]):
            h2[0, j] = max(h2[0, j] + b1[j], np.float32(0))
        z = np.dot(h2, w2)
        m = -np.inf
        for j in range(z.shape[1]):
            z[0, j] += b2[j]
            m = max(m, z[0, j])
        s = np.float32(0)
        for j in range(z.shape[1]):
            z[0, j] = np.exp(z[0, j] - m)
            s += z[0, j]
        for j in range(z.shape[1]):
            z[0, j] /= s
        return z

    w = WORKLOADS["W4"]()
    params = mlp_params()
    x = w.data[0]
    return (lambda: forward(x, *params)), w.data


NUMBA = {"W4": _numba_w4}
