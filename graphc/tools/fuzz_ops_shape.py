"""The fuzzer's shape steps: slicing (and unslice), reshapes, transposes, new and dropped axes,
broadcasting, concatenate, split, pad. See graphc/tools/fuzz_ops.py for the conventions."""
import numpy as np

from .fuzz_ir import V


def _any(g):
    """Any pool entry (a fresh source when the pool is empty)."""
    return g.pick() if g.pool else g.fresh(g.shape(), g.dtype())


def _slice(g, d):
    """A random slice of an axis of size d (None: the size N), negative steps included."""
    r = g.r
    step = r.choice([None, 1, 2, -1, -2, 3])
    hi = 4 if d is None else d + 1
    start = r.choice([None, r.randint(-hi, hi)])
    stop = r.choice([None, r.randint(-hi, hi)])
    return slice(start, stop, step)


def getitem(g):
    r = g.r
    x = _any(g)
    shape = g.node(x).shape
    if not shape:
        if "zero_d_index" in g.avoid:
            return
        key = r.choice([None, Ellipsis, (None, Ellipsis), ()])
    else:
        key = []
        for axis, d in enumerate(shape):
            form = r.choice(["all", "int", "slice", "slice"])
            n = g.low(x, axis)                  # an int index must exist at both calls
            if form == "int" and (n > 0 or g.wild):
                key.append(r.randint(-n, max(n - 1, 0)))
            elif form == "slice":
                key.append(_slice(g, d))
            else:
                key.append(slice(None))
        if r.random() < 0.3:
            key.insert(r.randint(0, len(key)), None)
        if r.random() < 0.25:                   # ... for a run of leading or trailing full slices
            full = [k for k, v in enumerate(key) if v == slice(None)]
            if full:
                key[full[0]] = Ellipsis
        while len(key) > 1 and key[-1] == slice(None) and r.random() < 0.5:
            key.pop()
        key = tuple(key) if len(key) != 1 or r.random() < 0.5 else key[0]
    g.emit("getitem", V(x), key)


def _factor_shape(g, n, ndim):
    """ndim ints whose product is n."""
    dims = [1] * ndim
    for p in (2, 3, 5, 7):
        while n % p == 0:
            dims[g.r.randrange(ndim)] *= p
            n //= p
    dims[0] *= n
    g.r.shuffle(dims)
    return dims


def reshape(g):
    r = g.r
    x = _any(g)
    shape = g.node(x).shape
    known = int(np.prod([d for d in shape if d is not None]))
    ndim = r.randint(1, 3)
    if known == 0:                             # no -1 can be inferred from 0 elements
        if None in shape:
            return
        target = [0] + [r.randint(1, 3) for _ in range(ndim - 1)]
    else:
        target = _factor_shape(g, known, ndim)
        if None in shape or r.random() < 0.3:  # the unknown (or any) part as -1
            target.insert(r.randint(0, len(target)), -1)
    if g.wild:
        target = [r.randint(-1, 4) for _ in range(r.randint(0, 3))]
    g.emit("reshape", V(x), tuple(target) if r.random() < 0.8 else list(target))


def transpose(g):
    r = g.r
    x = g.pick(lambda n: n.ndim >= 2) or g.fresh(g.shape(r.randint(2, 3)), g.dtype())
    nd = g.node(x).ndim
    form = r.random()
    if form < 0.25:
        g.emit("T", V(x))
    elif form < 0.4:
        g.emit("transpose", V(x))
    else:
        perm = r.sample(range(nd), nd)
        g.emit("transpose", V(x), tuple(a - nd if r.random() < 0.3 else a for a in perm))


def expand_squeeze(g):
    r = g.r
    x = _any(g)
    shape = g.node(x).shape
    ones = [k for k, d in enumerate(shape) if d == 1]
    if ones and r.random() < 0.5:
        if None not in shape and r.random() < 0.3:
            g.emit("squeeze", V(x))
        else:
            axes = r.sample(ones, r.randint(1, len(ones)))
            g.emit("squeeze", V(x), axis=tuple(axes) if len(axes) > 1 else axes[0] - len(shape) * r.randint(0, 1))
    elif len(shape) < 4:
        a = r.randint(-len(shape) - 1, len(shape))
        g.emit("expand_dims", V(x), a if r.random() < 0.7 else (a,))


def broadcast(g):
    r = g.r
    x = _any(g)
    shape = g.node(x).shape
    if None in shape or r.random() < 0.3:       # broadcast_like an entry x broadcasts to
        like = g.pick_name(lambda n: n != x and g.fits_into(g.sym(x), g.sym(n)))
        if like is not None:
            g.emit("broadcast_like", V(x), V(like))
        return
    target = [r.choice([2, 3]) if d == 1 and r.random() < 0.6 else d for d in shape]
    if len(target) < 3 and r.random() < 0.5:
        target.insert(0, r.choice([1, 2]))
    if int(np.prod(target)) <= 48:
        g.emit("broadcast_to", V(x), tuple(target))


def concatenate(g):
    r = g.r
    x = g.pick(lambda n: n.ndim >= 1) or g.fresh(g.shape(r.randint(1, 3)), g.dtype())
    xt = g.node(x)
    axis = r.randrange(xt.ndim)
    parts = [V(x)]
    for _ in range(r.randint(1, 2)):
        shape = list(g.sym(x))
        if shape[axis] != "N" or r.random() < 0.5:
            shape[axis] = r.choice([1, 2, 3, 0])
        shape = tuple(shape)
        same = g.pick_name(lambda n: g.sym(n) == shape, recent=0) if r.random() < 0.3 else None
        if same is None and any(isinstance(d, tuple) for d in shape):
            return                              # a call-time size no fresh source has
        parts.append(V(same or g.fresh(shape, xt.dtype if r.random() < 0.8 else g.dtype())))
    r.shuffle(parts)
    g.emit("concatenate", parts, axis=axis - xt.ndim if r.random() < 0.3 else axis)


def split(g):
    r = g.r
    x = g.pick(lambda n: any(d and d > 1 for d in n.shape))
    if x is None or "split_of_constant" in g.avoid and not g.from_inputs(x) or \
            "grad_split_none" in g.avoid and None in g.node(x).shape:
        return
    shape = g.node(x).shape
    axis = r.choice([k for k, d in enumerate(shape) if d and d > 1])
    d = shape[axis]
    if r.random() < 0.5:
        k = r.choice([s for s in range(1, d + 1) if d % s == 0])
        arg = k
    else:
        cuts = sorted(r.sample(range(1, d), r.randint(1, d - 1)))
        arg, k = cuts, len(cuts) + 1
    g.emit("split", V(x), arg, n=k, axis=axis if r.random() < 0.7 else axis - len(shape))


def pad(g):
    r = g.r
    x = g.pick(lambda n: n.ndim >= 1) or g.fresh(g.shape(r.randint(1, 3)), g.dtype())
    xt = g.node(x)
    form = r.random()
    if form < 0.3:
        width = r.randint(0, 2)
    elif form < 0.5:
        width = (r.randint(0, 2), r.randint(0, 2))
    else:
        width = tuple((r.randint(0, 2), r.randint(0, 2)) for _ in range(xt.ndim))
    value = g.scalar(xt.dtype) if r.random() < 0.6 else 0
    if xt.dtype.kind in "iub" and isinstance(value, float) and not g.wild:
        value = int(value)
    g.emit("pad", V(x), width, constant_values=value)


def reshape_like(g):
    """reshape_like(x, like): like of the same size at both calls. gc.reshape_like is a plain reshape
    unless like has two None axes, so sometimes like is made so: an outer product of a vector of size N."""
    x = _any(g)
    vector = g.pick(lambda n: n.shape[:1] == (None,))
    if vector is not None and g.r.random() < 0.6:
        x = vector
    size = [int(np.prod(s)) for s in g.concrete[x]]
    if x == vector:
        col = g.emit("getitem", V(x), (slice(None), None) + (0,) * (g.node(x).ndim - 1))
        row = g.emit("getitem", V(x), (None, slice(None)) + (0,) * (g.node(x).ndim - 1))
        like = g.emit("binop", "*", V(col), V(row))               # (N, N)
        x = g.emit("reshape", V(like), (-1,))
    else:
        like = g.pick_name(lambda n: n != x and [int(np.prod(s)) for s in g.concrete[n]] == size)
    if like is not None:
        g.emit("reshape_like", V(x), V(like))


def unslice(g):
    """unslice(h(x[key]), x, key): the gradient op of slicing, called directly."""
    getitem(g)
    s = g.prog.steps[-1]
    if s.fn != "getitem":
        return
    t = s.outs[0]
    grad = g.emit("binop", "*", V(t), 2) if g.node(t).dtype.kind in "fi" else t
    g.emit("unslice", V(grad), s.args[0], s.args[1])
