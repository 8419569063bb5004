"""ONNX shape, constant and data-movement ops -> graphc shape ops or values computed at import.

Shape, Size, ConstantOfShape and Range give numpy values (static), so the shape arithmetic an
exporter writes (Shape -> Gather -> Concat -> Reshape) is done at import. The inputs that
changed from attributes to tensors across opsets (Squeeze/Unsqueeze axes at 13, Split's split
at 13, Slice's starts/ends at 10, Pad's pads at 11) are read from wherever the opset puts them.
"""
import math

import numpy as np

import graphc as gc

from .ops_math import arith
from .registry import converts, dtype_of, ints, is_static, norm_axis, present, rank, shape_of, unsupported


def known_shape(cx, node, x, what="input"):
    shape = shape_of(x)
    if None in shape:
        raise cx.error(node, f"needs the {what}'s shape {shape} known at import; give the symbolic sizes "
                             "with gc.onnx.load(..., shapes={input name: shape})")
    return shape


@converts("Constant")
def constant(cx, node, inputs, attrs):
    for key, dt in (("value", None), ("value_float", np.float32), ("value_floats", np.float32),
                    ("value_int", np.int64), ("value_ints", np.int64)):
        if key in attrs:
            return [np.asarray(attrs[key], dt) if dt else attrs[key]]
    raise unsupported(cx, node, f"a Constant given as {sorted(attrs)} (graphc takes dense numeric tensors)")


@converts("Shape")
def shape(cx, node, inputs, attrs):
    dims = shape_of(inputs[0])
    start, end = attrs.get("start", 0), attrs.get("end", len(dims))
    part = dims[slice(start, end)]
    if None in part:
        known_shape(cx, node, inputs[0])
    return [np.asarray(part, np.int64)]


@converts("Size")
def size(cx, node, inputs, attrs):
    return [np.asarray(math.prod(known_shape(cx, node, inputs[0])), np.int64)]


@converts("ConstantOfShape")
def constant_of_shape(cx, node, inputs, attrs):
    value = attrs.get("value", np.zeros(1, np.float32))
    return [np.full(ints(cx.static(inputs[0], node, "shape")), value.reshape(-1)[0], value.dtype)]


@converts("Range")
def range_(cx, node, inputs, attrs):
    start, limit, delta = (cx.static(v, node, what) for v, what in zip(inputs, ("start", "limit", "delta")))
    n = max(int(np.ceil((limit - start) / delta)), 0)
    return [(start + np.arange(n) * delta).astype(start.dtype)]


@converts("Reshape")
def reshape(cx, node, inputs, attrs):
    x = inputs[0]
    if cx.opset < 5:
        target = list(attrs["shape"])
    else:
        target = list(ints(cx.static(inputs[1], node, "shape")))
    if not attrs.get("allowzero", 0):       # a 0 copies the input's size there
        for i, d in enumerate(target):
            if d == 0:
                target[i] = shape_of(x)[i]
    if None in target:                      # a copied unknown size: the -1, if there is none yet
        if -1 in target or target.count(None) > 1:
            raise cx.error(node, f"cannot reshape {shape_of(x)} to {target}: more than one size unknown")
        target[target.index(None)] = -1
    if is_static(x):
        return [x.reshape(target)]
    return [gc.reshape(x, tuple(target))]


@converts("Transpose")
def transpose(cx, node, inputs, attrs):
    x = inputs[0]
    perm = tuple(attrs.get("perm", range(rank(x) - 1, -1, -1)))
    return [x.transpose(perm) if is_static(x) else gc.transpose(x, perm)]


def axes_of(cx, node, inputs, attrs, n):
    """Squeeze/Unsqueeze axes: an attribute before opset 13, the second input from it on."""
    if cx.opset >= 13:
        v = present(inputs, 1)
        return None if v is None else ints(cx.static(v, node, "axes"))
    return tuple(attrs["axes"]) if "axes" in attrs else None


@converts("Squeeze")
def squeeze(cx, node, inputs, attrs):
    x = inputs[0]
    axes = axes_of(cx, node, inputs, attrs, rank(x))
    if axes is None:
        axes = tuple(i for i, d in enumerate(known_shape(cx, node, x)) if d == 1)
    axes = tuple(sorted({norm_axis(a, rank(x), cx, node) for a in axes}))
    return [np.squeeze(x, axes) if is_static(x) else gc.squeeze(x, axes)]


@converts("Unsqueeze")
def unsqueeze(cx, node, inputs, attrs):
    x = inputs[0]
    axes = axes_of(cx, node, inputs, attrs, rank(x))
    out_rank = rank(x) + len(axes)
    for a in sorted(norm_axis(a, out_rank, cx, node) for a in axes):
        x = np.expand_dims(x, a) if is_static(x) else gc.expand_dims(x, a)
    return [x]


@converts("Concat")
def concat(cx, node, inputs, attrs):
    xs = [v for v in inputs if v is not None]
    axis = norm_axis(attrs["axis"], rank(xs[0]), cx, node)
    if all(is_static(v) for v in xs):
        return [np.concatenate(xs, axis=axis)]
    return [gc.concatenate([arith(v) for v in xs], axis=axis)]


@converts("Split")
def split(cx, node, inputs, attrs):
    x = arith(inputs[0])
    axis = norm_axis(attrs.get("axis", 0), rank(x), cx, node)
    size = known_shape(cx, node, x)[axis] if shape_of(x)[axis] is None else shape_of(x)[axis]
    sizes = attrs.get("split") if cx.opset < 13 else present(inputs, 1)
    if sizes is not None:
        sizes = ints(cx.static(sizes, node, "split") if cx.opset >= 13 else sizes)
    else:
        k = attrs.get("num_outputs", len(node.output))
        chunk = -(-size // k)                  # opset 18: equal pieces, the last one smaller
        sizes = [chunk] * (size // chunk) + ([size % chunk] if size % chunk else [])
    cuts = list(np.cumsum(sizes)[:-1])
    if 0 in sizes:                               # graphc's split makes no empty pieces: slices
        edges = [0] + [int(c) for c in np.cumsum(sizes)]
        return [x[(slice(None),) * axis + (slice(a, b),)] for a, b in zip(edges, edges[1:])]
    return gc.split(x, cuts, axis=axis) if len(sizes) > 1 else [gc.reshape(x, shape_of(x))]


@converts("Slice")
def slice_(cx, node, inputs, attrs):
    x = inputs[0]
    if cx.opset < 10:
        starts, ends, axes, steps = attrs["starts"], attrs["ends"], attrs.get("axes"), None
    else:
        starts, ends = (ints(cx.static(v, node, w)) for v, w in zip(inputs[1:3], ("starts", "ends")))
        axes, steps = (present(inputs, k) for k in (3, 4))
        axes = None if axes is None else ints(cx.static(axes, node, "axes"))
        steps = None if steps is None else ints(cx.static(steps, node, "steps"))
    n = rank(x)
    axes = range(len(starts)) if axes is None else axes
    steps = steps or (1,) * len(starts)
    key = [slice(None)] * n
    for a, b, e, s in zip(axes, starts, ends, steps):
        key[norm_axis(a, n, cx, node)] = slice(int(b), int(e), int(s))
    return [x[tuple(key)]]          # numpy's slicing (clamped ends) is ONNX's


@converts("Gather")
def gather(cx, node, inputs, attrs):
    x, idx = inputs
    axis = norm_axis(attrs.get("axis", 0), rank(x), cx, node)
    idx = cx.static(idx, node, "indices")
    if is_static(x):
        return [np.take(x, idx, axis=axis)]
    size = shape_of(x)[axis]
    if size is None and (idx < 0).any():
        raise cx.error(node, f"negative indices on axis {axis} whose size is unknown")
    flat = [int(i) % size if size is not None else int(i) for i in idx.reshape(-1)]
    pre = (slice(None),) * axis
    if idx.ndim == 0:
        return [x[pre + (flat[0],)]]
    if not flat:
        raise unsupported(cx, node, "an empty Gather")
    # a run of consecutive indices is one slice; the runs are joined along the axis
    runs, start = [], 0
    for k in range(1, len(flat) + 1):
        if k == len(flat) or flat[k] != flat[k - 1] + 1:
            runs.append(x[pre + (slice(flat[start], flat[k - 1] + 1),)])
            start = k
    y = runs[0] if len(runs) == 1 else gc.concatenate(runs, axis=axis)
    shape = shape_of(x)
    out = shape[:axis] + tuple(idx.shape) + shape[axis + 1:]
    return [gc.reshape(y, tuple(-1 if d is None else d for d in out)) if idx.ndim != 1 else y]


@converts("Expand")
def expand(cx, node, inputs, attrs):
    x = inputs[0]
    target = ints(cx.static(inputs[1], node, "shape"))
    shape = np.broadcast_shapes(known_shape(cx, node, x), target)      # Expand broadcasts both ways
    if is_static(x):
        return [np.broadcast_to(x, shape).copy()]
    return [gc.broadcast_to(x, shape) if tuple(shape) != shape_of(x) else x]


@converts("Tile")
def tile(cx, node, inputs, attrs):
    x, reps = inputs[0], ints(cx.static(inputs[1], node, "repeats"))
    if is_static(x):
        return [np.tile(x, reps)]
    shape = known_shape(cx, node, x)
    # (d0, d1) -> (1, d0, 1, d1) -> broadcast to (r0, d0, r1, d1) -> (r0 * d0, r1 * d1)
    y = gc.reshape(x, tuple(v for d in shape for v in (1, d)))
    y = gc.broadcast_to(y, tuple(v for r, d in zip(reps, shape) for v in (r, d)))
    return [gc.reshape(y, tuple(r * d for r, d in zip(reps, shape)))]


@converts("Pad")
def pad(cx, node, inputs, attrs):
    x = arith(inputs[0])
    mode = attrs.get("mode", "constant")
    if mode not in ("constant", "edge", "reflect", "wrap"):
        raise unsupported(cx, node, f"Pad mode {mode!r}")
    n = rank(x)
    if cx.opset < 11:
        pads, value, axes = attrs.get("pads", attrs.get("paddings")), attrs.get("value", 0.0), None
    else:
        pads = ints(cx.static(inputs[1], node, "pads"))
        value = present(inputs, 2)
        value = 0 if value is None else cx.static(value, node, "constant_value").reshape(-1)[0]
        axes = present(inputs, 3)
        axes = None if axes is None else ints(cx.static(axes, node, "axes"))
    axes = list(range(n)) if axes is None else [norm_axis(a, n, cx, node) for a in axes]
    width = [[0, 0] for _ in range(n)]
    for k, a in enumerate(axes):
        width[a] = [int(pads[k]), int(pads[k + len(axes)])]
    # negative pads crop: slice first, then pad the rest
    key = tuple(slice(-b if b < 0 else None, e if e < 0 else None) for b, e in width)
    if any(b < 0 or e < 0 for b, e in width):
        x = x[key]
    width = tuple((max(b, 0), max(e, 0)) for b, e in width)
    if not any(b or e for b, e in width):
        return [x]
    if mode != "constant":
        return [pad_from_edges(x, width, mode)]
    return [gc.pad(x, width, constant_values=np.asarray(value, dtype_of(x)).item())]


def pad_from_edges(x, width, mode):
    """edge / reflect / wrap padding as numpy.pad does it, axis by axis: slices of x joined."""
    for axis, (b, e) in enumerate(width):
        if not (b or e):
            continue
        n = shape_of(x)[axis]
        pre = (slice(None),) * axis

        def part(start, stop, step=1):
            return x[pre + (slice(start, stop, step),)]

        def edge(start, count):
            piece = part(start, start + 1)
            return gc.broadcast_to(piece, shape_of(piece)[:axis] + (count,) + shape_of(piece)[axis + 1:])
        if mode == "edge":
            before, after = (edge(0, b) if b else None), (edge(n - 1, e) if e else None)
        elif mode == "reflect":
            before = part(b, 0, -1) if b else None
            after = part(n - 2, n - 2 - e if n - 2 - e >= 0 else None, -1) if e else None
        else:
            before, after = (part(n - b, n) if b else None), (part(0, e) if e else None)
        x = gc.concatenate([p for p in (before, x, after) if p is not None], axis=axis)
    return x


@converts("DepthToSpace", "SpaceToDepth")
def depth_space(cx, node, inputs, attrs):
    x, b = arith(inputs[0]), attrs["blocksize"]
    n, c, h, w = known_shape(cx, node, x)
    if node.op_type == "SpaceToDepth":
        y = gc.reshape(x, (n, c, h // b, b, w // b, b))
        crd = attrs.get("mode", "DCR") == "CRD"
        y = gc.transpose(y, (0, 1, 3, 5, 2, 4) if crd else (0, 3, 5, 1, 2, 4))
        return [gc.reshape(y, (n, c * b * b, h // b, w // b))]
    if attrs.get("mode", "DCR") == "DCR":
        y = gc.transpose(gc.reshape(x, (n, b, b, c // (b * b), h, w)), (0, 3, 4, 1, 5, 2))
    else:
        y = gc.transpose(gc.reshape(x, (n, c // (b * b), b, b, h, w)), (0, 1, 4, 2, 5, 3))
    return [gc.reshape(y, (n, c // (b * b), h * b, w * b))]


@converts("OneHot")
def one_hot(cx, node, inputs, attrs):
    """values[1] where the index (negative ones count from the end) equals the position along
    the new axis, values[0] elsewhere (also for an index out of range)."""
    idx, depth, values = arith(inputs[0]), inputs[1], inputs[2]
    depth = int(cx.static(depth, node, "depth").reshape(-1)[0])
    if dtype_of(idx).kind == "f":
        idx = gc.cast(idx, np.int64)
    idx = gc.where(idx < np.asarray(0, dtype_of(idx)), idx + np.asarray(depth, dtype_of(idx)), idx)
    n = rank(idx) + 1
    axis = norm_axis(attrs.get("axis", -1), n, cx, node)
    positions = np.arange(depth, dtype=dtype_of(idx)).reshape((-1,) + (1,) * (n - 1 - axis))
    hot = gc.equal(gc.expand_dims(idx, axis), positions)
    off, on = (arith(values)[k] for k in (0, 1))
    return [gc.where(hot, on, off)]


@converts("Trilu")
def trilu(cx, node, inputs, attrs):
    x = arith(inputs[0])
    k = present(inputs, 1)
    k = 0 if k is None else int(cx.static(k, node, "k").reshape(-1)[0])
    rows, cols = known_shape(cx, node, x)[-2:]
    ones = np.ones((rows, cols), np.bool_)
    mask = np.triu(ones, k) if attrs.get("upper", 1) else np.tril(ones, k)
    return [gc.where(mask, x, np.zeros((), dtype_of(x)))]


@converts("EyeLike")
def eye_like(cx, node, inputs, attrs):
    rows, cols = known_shape(cx, node, inputs[0])
    dt = dtype_of(inputs[0])
    if "dtype" in attrs:
        dt = cx.dtype(attrs["dtype"], f"the dtype of EyeLike node {node.name!r}")
    return [np.eye(rows, cols, attrs.get("k", 0), dtype=dt)]
