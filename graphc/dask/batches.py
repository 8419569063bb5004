"""gc.dask.map_batches: a compiled function applied to dask arrays, chunk by chunk.

The function runs once per chunk of the batch axis, so every input needs that axis
(a None dimension of its placeholder) and every output must keep it (one output row
per input row: a model's predictions, not a mean over the batch). Chunks must not split
any other axis: a chunk is a whole set of examples, which is what the function takes.

The dask graph holds the function once, as the bytes of its serialized form
(graphc/dask/serialize.py) under one key; each chunk's task names that key, so the
scheduler ships the bytes to a worker once, not once per chunk, and the worker
rebuilds and compiles the function once (cached by digest) for all its chunks. The
chunks' task results are tuples of arrays; each output is a dask array of getitem
tasks over them, so several outputs cost one call per chunk, not one per output.
"""
import operator
import pickle

import numpy as np

from graphc.core.errors import ArgumentError, DTypeError, GraphError, ShapeError, where
from graphc.core.types import fmt_shape

from .extra import require
from .serialize import digest_bytes, rebuild, to_form


def run_chunk(key, form_bytes, *blocks):
    """On a worker: this process's compiled copy of the function, called on one chunk."""
    rebuilt = rebuild(key, lambda: pickle.loads(form_bytes))
    outs = rebuilt.fn(*blocks)
    return (outs,) if rebuilt.fn.single else tuple(outs)


def serialized(fn):
    """(digest, bytes) of fn's form: what the dask graph holds, computed once per function."""
    cached = getattr(fn, "_dask_form", None)
    if cached is None:
        data = pickle.dumps(to_form(fn), protocol=5)
        cached = (digest_bytes(data), data)
        try:
            fn._dask_form = cached
        except AttributeError:                            # pragma: no cover - a Function without __dict__
            pass
    return cached


def map_batches(fn, *arrays, batch_axis=0, batch_size=None):
    """Apply the compiled gc.Function `fn` to dask arrays chunk by chunk along batch_axis.

    Returns a dask array (a tuple of them when fn has several outputs), lazily: compute it
    on whatever scheduler is active (threads, processes, a dask.distributed Client).
    arrays: dask arrays, or numpy arrays (np.memmap included) that are wrapped with
    dask.array.from_array, chunked by batch_size rows (default: one chunk).
    batch_size: rechunk every input to this many rows along batch_axis.
    All inputs are rechunked along batch_axis to the first input's chunks.
    """
    da = require("dask.array")
    from graphc.function import Function
    if not isinstance(fn, Function):
        raise ArgumentError(f"map_batches: fn must be a compiled function (gc.function(...)), got {fn!r}")
    if fn.updates:
        raise GraphError("map_batches: fn updates variables (" + ", ".join(v.name for v in fn.updates)
                         + "); each worker would update its own copy. Compile the function without "
                         "updates (and without random ops) for batch inference")
    if len(arrays) != len(fn.inputs):
        raise ArgumentError(f"map_batches: fn takes {len(fn.inputs)} input(s) "
                            f"({', '.join(x.name for x in fn.inputs)}), got {len(arrays)} array(s)")
    _check_batch_axis(fn, batch_axis)
    arrays = [_as_dask(da, a, ph, batch_axis, batch_size) for a, ph in zip(arrays, fn.inputs)]
    rows = arrays[0].shape[batch_axis]
    for a, ph in zip(arrays, fn.inputs):
        if a.shape[batch_axis] != rows:
            raise ShapeError(f"map_batches: input {ph.name} has {a.shape[batch_axis]} rows along axis "
                             f"{batch_axis}, input {fn.inputs[0].name} has {rows}")
    batch_chunks = arrays[0].chunks[batch_axis]
    arrays = [a if a.chunks[batch_axis] == batch_chunks else a.rechunk({batch_axis: batch_chunks})
              for a in arrays]
    out_types = _output_types(fn, arrays, batch_axis, batch_chunks)
    return _graph(da, fn, arrays, batch_axis, batch_chunks, out_types)


def _check_batch_axis(fn, axis):
    for ph in fn.inputs:
        if ph.ndim <= axis:
            raise ShapeError(f"map_batches: input {ph.name} ({ph.type}) has no batch axis {axis}; every "
                             f"input needs one, a None dimension: gc.placeholder((None, ...)){where(ph.loc)}")
        if ph.shape[axis] is not None:
            raise ShapeError(f"map_batches: input {ph.name} ({ph.type}) has a fixed size "
                             f"{ph.shape[axis]} on batch axis {axis}; declare it None "
                             f"(gc.placeholder with None there) so that chunks of any size fit{where(ph.loc)}")


def _as_dask(da, a, ph, axis, batch_size):
    if not isinstance(a, da.Array):
        a = np.asarray(a) if not isinstance(a, np.ndarray) else a
        chunks = tuple(-1 if k != axis else (batch_size or -1) for k in range(a.ndim))
        a = da.from_array(a, chunks=chunks, asarray=False)
    elif batch_size is not None:
        a = a.rechunk({axis: batch_size})
    if a.ndim != ph.ndim:
        raise ShapeError(f"map_batches: input {ph.name} expects shape {fmt_shape(ph.shape)}, got a "
                         f"{a.ndim}-d array {fmt_shape(a.shape)}{where(ph.loc)}")
    if a.dtype != ph.dtype:
        raise DTypeError(f"map_batches: input {ph.name} expects {ph.type}, got dtype {a.dtype} "
                         f"(convert it with .astype(np.{ph.dtype})){where(ph.loc)}")
    for k, (want, have) in enumerate(zip(ph.shape, a.shape)):
        if k != axis and want is not None and want != have:
            raise ShapeError(f"map_batches: input {ph.name} expects shape {fmt_shape(ph.shape)}, got "
                             f"{fmt_shape(a.shape)}{where(ph.loc)}")
    for k, c in enumerate(a.chunks):
        if k != axis and len(c) > 1:
            raise ShapeError(f"map_batches: the chunks of input {ph.name} split axis {k} (chunks {c}); "
                             f"only batch axis {axis} may be chunked: every chunk must hold whole examples. "
                             f"Rechunk it: x.rechunk({{{k}: -1}})")
    return a


def _output_types(fn, arrays, axis, batch_chunks):
    """Each output's concrete (shape, dtype) per distinct chunk size, checked to keep the axis."""
    from graphc.runtime.specialize import concrete_types
    sizes = sorted(set(batch_chunks) | {max(batch_chunks) + 1})      # +1: the axis must follow the batch
    per_size = {}
    for n in sizes:
        shapes = {p: tuple(n if k == axis else d for k, d in enumerate(a.shape))
                  for p, a in zip(fn._placeholders, arrays)}
        types = concrete_types(fn.nodes, shapes)
        per_size[n] = [types.get(o, o.type) for o in fn.outputs]
    first = per_size[sizes[0]]
    for k, name in enumerate(fn.output_names):
        for n in sizes:
            t = per_size[n][k]
            if t.ndim <= axis or t.shape[axis] != n:
                raise ShapeError(f"map_batches: output {name} does not keep batch axis {axis}: chunks of "
                                 f"{n} rows give it shape {fmt_shape(t.shape)}. Every output needs one row "
                                 "per input row (compute a reduction over the batch on the result)")
            if t.shape[:axis] + t.shape[axis + 1:] != first[k].shape[:axis] + first[k].shape[axis + 1:]:
                raise ShapeError(f"map_batches: output {name}'s other dimensions change with the chunk size "
                                 f"({fmt_shape(first[k].shape)} vs {fmt_shape(t.shape)})")
    return first


def _graph(da, fn, arrays, axis, batch_chunks, out_types):
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph
    key, data = serialized(fn)
    token = tokenize(key, [a.name for a in arrays], axis)
    form_key = f"graphc-fn-{key[:16]}"
    call = f"graphc-map-{token}"
    layer = {form_key: data}
    for i in range(len(batch_chunks)):
        blocks = [(a.name,) + tuple(i if k == axis else 0 for k in range(a.ndim)) for a in arrays]
        layer[(call, i)] = (run_chunk, key, form_key, *blocks)
    calls = HighLevelGraph.from_collections(call, layer, dependencies=arrays)
    outs = []
    for k, t in enumerate(out_types):
        name = f"graphc-out{k}-{token}"
        out_layer = {(name,) + tuple(i if d == axis else 0 for d in range(t.ndim)): (operator.getitem, (call, i), k)
                     for i in range(len(batch_chunks))}
        graph = HighLevelGraph({**calls.layers, name: out_layer}, {**calls.dependencies, name: {call}})
        chunks = tuple(batch_chunks if d == axis else (t.shape[d],) for d in range(t.ndim))
        outs.append(da.Array(graph, name, chunks, dtype=t.dtype))
    return outs[0] if fn.single else tuple(outs)


class NpyFile:
    """A .npy file as an array-like that dask.array.from_array can chunk: it pickles as its path
    (a worker opens the file itself, memory-mapped, instead of receiving its bytes) and reads
    only the rows a chunk asks for."""

    def __init__(self, path):
        self.path = str(path)
        head = np.load(self.path, mmap_mode="r")
        self.shape, self.dtype, self.ndim = head.shape, head.dtype, head.ndim
        self._mm = None

    def __getstate__(self):
        return {"path": self.path, "shape": self.shape, "dtype": self.dtype, "ndim": self.ndim, "_mm": None}

    def __getitem__(self, key):
        if self._mm is None:
            self._mm = np.load(self.path, mmap_mode="r")
        return np.array(self._mm[key])


def from_npy(path, batch_size):
    """A dask array of the .npy file at path, batch_size rows a chunk, read where it is computed."""
    da = require("dask.array")
    f = NpyFile(path)
    return da.from_array(f, chunks=(batch_size,) + (-1,) * (f.ndim - 1), asarray=False,
                         name=f"graphc-npy-{digest_bytes(f.path.encode())[:16]}-{batch_size}")
