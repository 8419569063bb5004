"""Finite-difference gradient checking, shared by the autodiff tests.

`check_grad(make_y, arrays)` builds y = make_y(*placeholders), reduces it to
a scalar with fixed random weights (a plain sum would hide wrong rules whose
errors sum to zero, e.g. softmax's), and compares gc.grad's nodes, run by the
interpreter, with central differences in float64.
"""
import numpy as np

import graphc as gc


def numeric_grad(f, arrays, i, eps=1e-6):
    """Central differences of the scalar f(*arrays) with respect to arrays[i]."""
    x = arrays[i]
    out = np.zeros(x.shape, np.float64)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        hi = float(f(*arrays))
        x[idx] = old - eps
        lo = float(f(*arrays))
        x[idx] = old
        out[idx] = (hi - lo) / (2 * eps)
    return out


def weighted_loss(y, seed=0):
    """sum(y * w) for fixed random w: every element of y's Jacobian counts."""
    w = np.random.default_rng(seed).uniform(0.5, 1.5, size=y.shape if None not in y.shape else ())
    return gc.sum(y * gc.constant(w.astype(y.dtype)))


def check_grad(make_y, arrays, wrt=None, rtol=1e-5, atol=1e-6, eps=1e-6, shapes=None):
    """Assert gc.grad of sum(w * make_y(...)) matches finite differences for the float inputs.

    shapes: the placeholders' shapes (may hold None); by default the arrays' shapes.
    """
    arrays = [np.array(a) for a in arrays]
    wrt = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"] if wrt is None else wrt
    with gc.Graph():
        shapes = shapes or [a.shape for a in arrays]
        phs = [gc.placeholder(s, a.dtype, name=f"in{i}") for i, (s, a) in enumerate(zip(shapes, arrays))]
        loss = weighted_loss(make_y(*phs))
        grads = gc.grad(loss, [phs[i] for i in wrt], unconnected="zero")
        f = gc.function(phs, loss)
        g = gc.function(phs, grads)
    analytic = g(*arrays)
    for i, got in zip(wrt, analytic):
        assert got.shape == arrays[i].shape and got.dtype == arrays[i].dtype
        want = numeric_grad(f, arrays, i, eps)
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=f"gradient of input {i}")
    return analytic
