"""A compiled function as plain data, and the per-process cache that rebuilds it once.

Dask ships a task's arguments to worker processes by pickling them. A `gc.Function`
holds live objects (its backend's compiled Numba step, locks, the graph's store), so
what travels instead is its *program* -- the optimized nodes the backend runs -- as
plain data: one record per node (op name, input positions, attrs, name, the user's
file:line), the inputs, outputs and updates as positions, the variables' values, the
backend and its options. Ops travel by their registry name, regions (fused groups, scan
bodies) step by step, arrays as arrays; nothing else is accepted, so an attr of a kind
not listed here is an error naming the op, not a silently wrong program.

A worker rebuilds the program in a fresh graph and compiles it with optimize=False (it
is already optimized: the worker runs exactly the nodes the driver runs), once per
process: `rebuild` caches the function by the form's digest. The CPU backend's kernel
cache on disk (GRAPHC_CACHE_DIR) is shared by every process of one machine, so a
worker's first call loads the generated module instead of generating it again.
"""
import hashlib
import pickle
import threading
from collections import OrderedDict

import numpy as np

from graphc.core.errors import GraphError
from graphc.core.graph import Graph, Location
from graphc.core.region import Param, Ref, Region, Step
from graphc.core.store import new_slot

FORMAT = 1
_TAG = "\x00graphc"          # marks an encoded object (an op, a region, ...) among plain values


def encode(value, where):
    """An attr value as plain data (Python scalars, strings, numpy arrays/dtypes, tuples,
    lists, dicts, slices, and tagged tuples for ops and regions)."""
    from graphc.ops.base import Op
    if value is None or isinstance(value, (bool, int, float, str, np.generic, np.dtype, type(Ellipsis))):
        return value
    if isinstance(value, np.ndarray):
        return np.array(value)                         # a plain, writable, C-ordered copy
    if isinstance(value, Op):
        return (_TAG, "op", value.name)
    if isinstance(value, Region):
        steps = tuple((s.op.name, encode(s.attrs, where), tuple(_operand(o) for o in s.operands))
                      for s in value.steps)
        return (_TAG, "region", value.n_params, steps, tuple(value.outputs))
    if isinstance(value, slice):
        return (_TAG, "slice", encode(value.start, where), encode(value.stop, where), encode(value.step, where))
    if isinstance(value, (Param, Ref)):
        return (_TAG, "operand") + _operand(value)
    if isinstance(value, tuple) and type(value) is tuple:
        return tuple(encode(v, where) for v in value)
    if isinstance(value, list):
        return [encode(v, where) for v in value]
    if isinstance(value, dict):
        return {k: encode(v, where) for k, v in value.items()}
    raise GraphError(f"gc.dask: cannot serialize {where}: a {type(value).__name__} ({value!r}); "
                     "graphc.dask.serialize knows ops, regions, arrays, dtypes, numbers, strings, "
                     "slices and containers of them")


def _operand(o):
    return ("param", o.index) if isinstance(o, Param) else ("ref", o.index)


def decode(value):
    from graphc.ops.base import REGISTRY
    if isinstance(value, tuple):
        if value and value[0] == _TAG:
            kind = value[1]
            if kind == "op":
                return REGISTRY[value[2]]
            if kind == "slice":
                return slice(*(decode(v) for v in value[2:]))
            if kind == "operand":
                return _operand_back(value[2:])
            if kind == "region":
                _, _, n_params, steps, outputs = value
                return Region(n_params, tuple(Step(REGISTRY[op], decode(attrs), tuple(_operand_back(o) for o in ops))
                                              for op, attrs, ops in steps), tuple(outputs))
            raise GraphError(f"gc.dask: unknown serialized kind {kind!r} (written by a newer graphc?)")
        return tuple(decode(v) for v in value)
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        value = np.array(value)
        value.flags.writeable = False                  # constants are read-only, as constant_node makes them
    return value


def _operand_back(pair):
    kind, index = pair
    return Param(index) if kind == "param" else Ref(index)


def to_form(fn, values=True):
    """The plain-data form of a gc.Function (see the module docstring). values=False leaves
    the variables' values out (the caller sends them with each call)."""
    index = {n: k for k, n in enumerate(fn.nodes)}
    for ph in fn._placeholders:                         # an input the program does not read
        if ph not in index:
            index[ph] = len(index)
    order = sorted(index, key=lambda n: index[n])
    records = []
    for n in order:
        attrs = dict(n.attrs)
        if n.op.name == "variable":
            del attrs["slot"]                        # a process-wide number: the rebuild takes a new one
        what = f"node {n.name} ({n.op.name})"
        loc = tuple(n.loc) if isinstance(n.loc, tuple) else None
        records.append((n.op.name, tuple(index[i] for i in n.inputs), encode(attrs, what), n.name, loc))
    variables = [index[n] for n in order if n.op.name == "variable"]
    store = fn.graph.store
    options = {"check_numerics": fn.check_numerics}
    if fn.backend == "cpu":
        options["parallel"] = fn.parallel
    return {
        "format": FORMAT, "backend": fn.backend, "options": options, "nodes": records,
        "inputs": [index[p] for p in fn._placeholders], "input_names": [x.name for x in fn.inputs],
        "outputs": [index[o] for o in fn.outputs], "single": fn.single,
        "updates": [(index[v], index[x]) for v, x in fn.updates.items()],
        "variables": variables,
        "values": {k: np.array(store[order[k]]) for k in variables} if values else None,
    }


def digest(form):
    """A sha256 of the form: equal programs with equal values have equal digests."""
    return digest_bytes(pickle.dumps(form, protocol=5))


def digest_bytes(data):
    return hashlib.sha256(data).hexdigest()


class Rebuilt:
    """A form compiled in this process: the function and its variables in the form's order."""

    def __init__(self, form):
        from graphc.function import function
        from graphc.ops.base import REGISTRY
        if form.get("format") != FORMAT:
            raise GraphError(f"gc.dask: serialized format {form.get('format')!r}, this graphc reads {FORMAT}")
        self.graph = Graph("dask.rebuilt")
        nodes = []
        values = form["values"] or {}
        for k, (op_name, inputs, attrs, name, loc) in enumerate(form["nodes"]):
            attrs = decode(attrs)
            if op_name == "variable":
                attrs["slot"] = new_slot()
            loc = Location(*loc) if loc else None
            node = self.graph.add(REGISTRY[op_name], tuple(nodes[i] for i in inputs), attrs, name=name,
                                  loc=loc, exact_name=True)
            if op_name == "variable":
                value = values.get(k)
                self.graph.store[node] = (np.array(value) if value is not None
                                          else np.zeros(node.shape, node.dtype))
            nodes.append(node)
        self.variables = [nodes[k] for k in form["variables"]]
        inputs = [nodes[k] for k in form["inputs"]]
        outputs = [nodes[k] for k in form["outputs"]]
        updates = {nodes[v]: nodes[x] for v, x in form["updates"]}
        self.fn = function(inputs, outputs[0] if form["single"] else outputs, updates,
                           backend=form["backend"], optimize=False, **form["options"])
        self.lock = threading.Lock()     # set_values + call, for callers that send values

    def set_values(self, arrays):
        """New values for the form's variables, in the form's order (shapes as before)."""
        for var, a in zip(self.variables, arrays):
            self.graph.store[var] = np.ascontiguousarray(a, dtype=var.dtype)


_cache = OrderedDict()           # digest -> Rebuilt, in this process
_cache_lock = threading.Lock()
CACHE_SIZE = 16


def rebuild(key, form):
    """The Rebuilt function of form (a form, or a callable returning it: unpickled only on a
    miss), from this process's cache (compiled on first use)."""
    with _cache_lock:
        got = _cache.get(key)
        if got is not None:
            _cache.move_to_end(key)
            return got
        got = _cache[key] = Rebuilt(form() if callable(form) else form)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
        return got
