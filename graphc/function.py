"""gc.function: turn (inputs, outputs, updates) into a callable on one backend.

`Function` does what every backend shares: it checks the signature once at
build time (inputs are this graph's placeholders, every needed placeholder is
an input, each update fits its variable), copies what it needs of the user's
graph into a scratch graph and optimizes that copy -- so the user's graph
keeps only what the user built -- and on each call binds and checks the
arguments, works out every node's concrete type for the fed shapes (cached
per shape signature), lets the backend run, then assigns updates.

After building: `fn.inputs` are the user's placeholders (calls bind to them,
by position or name); `fn.nodes`, `fn.outputs`, `fn.updates` ({variable:
new value}) are the program that runs, in the scratch graph `fn.program_graph`
(variables there share the user's values: the graph's store); `fn.origin`
maps each scratch node copied from the user's graph back to the user's node.

Threads: a call that updates variables holds a lock shared by every function of the
graph (`update_lock`), so concurrent calls update one after another, each from the
values the previous one left; calls without updates run concurrently (a backend keeps
its scratch memory per thread).

`check_numerics=True` makes a call raise NumericsError at the first value of the program
(a feed, a variable, a computed node; not a constant) holding nan or inf, naming the node
and the user's line; the variables keep their old values then. Off, nothing checks.
"""
import importlib
import threading
import weakref

import numpy as np

from .core.errors import (ArgumentError, DTypeError, FeedError, ForeignNodeError, GraphError, NumericsError,
                          ShapeError, where)
from .core.graph import Node, ancestors, user_location
from .core.types import fmt_shape


BACKENDS = {
    "interp": "graphc.runtime.interp:InterpFunction",
    "cpu": "graphc.runtime.cpu:CpuFunction",
    "cuda": "graphc.runtime.cuda:CudaFunction",
}


def function(inputs, outputs, updates=None, backend="interp", **options):
    """Compile a callable: `fn(*arrays) -> outputs`, assigning `updates` after each call.

    inputs: placeholders, in the order the call passes them (also accepted by name).
    outputs: a node (the call returns one array) or a list of nodes (a list).
    updates: {variable: new value node}; all are computed from the old values, then assigned.
    optimize: run the pass pipeline first (default: yes for compiled backends, no for
        "interp", the unoptimized oracle). passes: a list of passes instead of the default.
    check_numerics: raise NumericsError at the first value holding nan or inf (slower; off by default).
    """
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise GraphError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    module, cls = BACKENDS[backend].split(":")
    try:
        impl = getattr(importlib.import_module(module), cls)
    except ImportError as e:
        raise GraphError(f"backend {backend!r} is not available: {e}") from None
    return impl(inputs, outputs, updates, **options)


class Function:
    backend = None
    optimize_by_default = True

    def __init__(self, inputs, outputs, updates=None, optimize=None, passes=None, check_numerics=False):
        self.single = isinstance(outputs, Node)
        self.check_numerics = bool(check_numerics)
        loc = user_location()
        try:
            self.outputs = [outputs] if self.single else list(outputs)
            self.inputs = [inputs] if isinstance(inputs, Node) else list(inputs)
        except TypeError:
            raise GraphError(f"function: inputs and outputs must each be a node or a list of nodes, "
                             f"got {inputs!r} and {outputs!r}{where(loc)}") from None
        try:
            updates = dict(updates or {})
        except (TypeError, ValueError, GraphError):
            raise GraphError(f"function: updates must be a dict {{variable: new value}}, got {updates!r}"
                             f"{where(loc)}") from None
        everything = self.inputs + self.outputs + list(dict(updates or {}))
        for x in everything:
            if not isinstance(x, Node):
                raise GraphError(f"function: {x!r} is not a graph node{where(loc)}")
        if not everything:
            raise GraphError(f"function: nothing to compute{where(loc)}")
        self.graph = everything[0].graph
        for x in everything:
            if x.graph is not self.graph:
                first = everything[0]
                raise ForeignNodeError(f"function: {x.name}{where(x.loc)} belongs to {x.graph.name}, "
                                       f"but {first.name}{where(first.loc)} to {self.graph.name}{where(loc)}")
        self._check_inputs(loc)
        updates = self._check_updates(updates or {}, loc)
        needed = ancestors(self.outputs + list(updates.values()))
        fed = set(self.inputs)
        missing = [n for n in needed if n.op.name == "placeholder" and n not in fed]
        if missing:
            raise FeedError("function: the outputs need placeholder(s) that are not inputs: "
                            + ", ".join(f"{n.name}{where(n.loc)}" for n in missing) + where(loc))
        # the program is a copy: what compiling adds (counter updates, optimized nodes) stays out
        # of the user's graph
        roots = self.outputs + list(updates) + list(updates.values()) + self.inputs
        self.program_graph, memo = self.graph.scratch_copy(roots)
        self.origin = {new: old for old, new in memo.items()}
        self.output_names = [o.name for o in self.outputs]
        self.outputs = [memo[o] for o in self.outputs]
        self.updates = {memo[v]: memo[x] for v, x in updates.items()}
        self._placeholders = [memo[x] for x in self.inputs]   # the program's copies of the inputs
        from graphc.ops.random import counters_in
        for c in counters_in(ancestors(self.outputs + list(self.updates.values()))):
            if c not in self.updates:                # random ops draw new numbers on every call
                self.updates[c] = c + 1
        self.nodes = schedule(self.outputs + list(self.updates.values()))
        # the program as the pass pipeline gets it (gc.report replays the passes from here)
        self.unoptimized = (list(self.outputs), dict(self.updates))
        self.pass_timing = None
        if self.optimize_by_default if optimize is None else optimize:
            self._optimize(passes)
        self._types = {}   # shape signature -> {node: concrete TensorType}
        self._lock = update_lock(self.graph) if self.updates else None

    def _optimize(self, passes):
        """Run the pass pipeline on the outputs and update values: what the backend runs."""
        from graphc.passes.pipeline import Timing, Verify, run_pipeline
        self.pass_timing = Timing()
        roots = run_pipeline(self.outputs + list(self.updates.values()), passes, (Verify(), self.pass_timing))
        self.outputs = roots[:len(self.outputs)]
        self.updates = dict(zip(self.updates, roots[len(self.outputs):]))
        self.nodes = schedule(self.outputs + list(self.updates.values()))

    def _check_inputs(self, loc):
        for x in self.inputs:
            if x.op.name != "placeholder":
                raise FeedError(f"function: input {x.name} is a {x.op.name}, not a placeholder"
                                f"{where(x.loc)}")
        if len(set(self.inputs)) != len(self.inputs):
            raise FeedError(f"function: an input is listed twice{where(loc)}")

    def _check_updates(self, updates, loc):
        from graphc.ops.base import as_node
        checked = {}
        for var, value in dict(updates).items():
            if var.op.name != "variable":
                raise GraphError(f"function: update target {var.name} is a {var.op.name}, "
                                 f"not a variable{where(var.loc)}")
            value = as_node(value, like=var)
            if value.graph is not self.graph:
                raise ForeignNodeError(f"function: the update of {var.name} comes from {value.graph.name}"
                                       f"{where(value.loc)}")
            vt, nt = var.type, value.type
            shape_ok = len(vt.shape) == len(nt.shape) and all(b in (a, None) for a, b in zip(vt.shape, nt.shape))
            if vt.dtype != nt.dtype:
                raise DTypeError(f"function: update of variable {var.name} ({vt}{where(var.loc)}) "
                                 f"has dtype {nt.dtype} ({nt}{where(value.loc)})")
            if not shape_ok:
                raise ShapeError(f"function: update of variable {var.name} ({vt}{where(var.loc)}) "
                                 f"has shape {fmt_shape(nt.shape)}{where(value.loc)}")
            checked[var] = value
        return checked

    # ------------------------------------------------------------ calling

    def __call__(self, *args, out=None, **kwargs):
        feeds = self._bind(args, kwargs)
        types = self._specialize(feeds)
        given = None if out is None else self._check_out(out, types, list(feeds.values()))
        if self._lock is None:
            outs, _ = self._run(feeds, types)
        else:
            with self._lock:              # read the variables, compute, assign: one call at a time
                outs, new_values = self._run(feeds, types)
                for var, value in new_values.items():
                    self.graph.store[var] = value
        if given is not None:
            for g, o in zip(given, outs):
                if g is not None:
                    np.copyto(g, o)
            outs = [o if g is None else g for g, o in zip(given, outs)]
        return outs[0] if self.single else outs

    def _check_out(self, out, types, feeds):
        """out=: the caller's arrays for the outputs, so that a call allocates none (an array,
        or a list with one per output, None where a new array is wanted). Each must be a
        writable, C-contiguous ndarray of the output's dtype and this call's shape that shares
        memory with no feed, variable or other out array. Returns one entry per output."""
        given = [out] if self.single and not isinstance(out, (list, tuple)) else list(out)
        if len(given) != len(self.outputs):
            raise ArgumentError(f"out=: {len(given)} array(s) for {len(self.outputs)} output(s)")
        variables = [self.graph.store[n] for n in self.nodes if n.op.name == "variable"]
        for k, (o, g) in enumerate(zip(self.outputs, given)):
            if g is None:
                continue
            name, t = self.output_names[k], types.get(o, o.type)
            if type(g) is not np.ndarray:
                raise ArgumentError(f"out= for output {name}: expects a numpy array, got {type(g).__name__}")
            if g.dtype != t.dtype or g.shape != t.shape:
                raise ArgumentError(f"out= for output {name}: expects {t.dtype} {fmt_shape(t.shape)} in this "
                                    f"call, got {g.dtype} {fmt_shape(g.shape)}")
            if not (g.flags.c_contiguous and g.flags.writeable):
                raise ArgumentError(f"out= for output {name}: must be writable and C-contiguous")
            others = feeds + variables + [h for j, h in enumerate(given) if j != k and h is not None]
            if any(np.may_share_memory(g, h) for h in others):
                raise ArgumentError(f"out= for output {name}: shares memory with a feed, a variable or "
                                    "another out array (the call would overwrite what it reads)")
        return given

    def _bind(self, args, kwargs):
        names = [x.name for x in self.inputs]
        if len(args) > len(self.inputs):
            raise ArgumentError(f"function takes {len(self.inputs)} input(s) ({', '.join(names)}), "
                                f"got {len(args)}")
        values = dict(zip(self.inputs, args))
        by_name = dict(zip(names, self.inputs))
        for k, v in kwargs.items():
            if k not in by_name:
                raise ArgumentError(f"function got an unknown input {k!r}; inputs: {', '.join(names)}")
            if by_name[k] in values:
                raise ArgumentError(f"function got input {k!r} twice")
            values[by_name[k]] = v
        missing = [x for x in self.inputs if x not in values]
        if missing:
            raise ArgumentError(f"function missing input(s): {', '.join(x.name for x in missing)} "
                                f"(takes {', '.join(names)})")
        return {x: feed_array(x, values[x]) for x in self.inputs}

    def program_feeds(self, feeds):
        """{user placeholder: array} -> {the program's placeholder: array}."""
        return {self._placeholders[k]: feeds[x] for k, x in enumerate(self.inputs)}

    def _specialize(self, feeds):
        sig = tuple(a.shape for a in feeds.values())
        types = self._types.get(sig)
        if types is None:
            from graphc.runtime.specialize import concrete_types
            shapes = {self._placeholders[k]: feeds[x].shape for k, x in enumerate(self.inputs)}
            types = concrete_types(self.nodes, shapes)
            for var, value in self.updates.items():   # a None dim must not change a variable's shape
                if types[value].shape != var.shape:
                    raise ShapeError(f"function: at call time the update of variable {var.name} "
                                     f"({var.type}{where(var.loc)}) has shape "
                                     f"{fmt_shape(types[value].shape)}{where(value.loc)}")
            self._types[sig] = types
        return types

    def _run(self, feeds, types):
        """Return (list of output arrays, {variable: new value}). Backends implement this."""
        raise NotImplementedError

    def __repr__(self):
        return (f"<{self.backend} function ({', '.join(x.name for x in self.inputs)}) -> "
                f"{', '.join(x.name for x in self.outputs)}, {len(self.updates)} update(s)>")


def schedule(roots):
    """The program's nodes in the order they run: topological, with the `output` nodes of a node
    with several outputs right after it. Its kernel writes all of them at once, so the memory
    plan must hand them their memory there, before any other node can take it."""
    order = ancestors(roots)
    outs = {}
    for n in order:
        if n.op.name == "output":
            outs.setdefault(n.inputs[0], []).append(n)
    ran = []
    for n in order:
        if n.op.name != "output":
            ran.append(n)
            ran.extend(sorted(outs.get(n, ()), key=lambda o: o.attrs["index"]))
    return ran


_locks = weakref.WeakKeyDictionary()      # variable store -> the lock of calls that update it
_locks_lock = threading.Lock()


def update_lock(graph):
    """The lock held by calls that update variables of graph (one per variable store)."""
    with _locks_lock:
        lock = _locks.get(graph.store)
        if lock is None:
            lock = _locks[graph.store] = threading.Lock()
        return lock


def op_text(node):
    """How an error names a node's op: `log`, or for a fused node its region's ops in order,
    `fused[multiply, log, add]` (+ the reduction it ends with)."""
    if node.op.name != "fused":
        return node.op.name
    ops = [s.op.name for s in node.attrs["region"].steps]
    if node.attrs.get("reduce"):
        ops.append(node.attrs["reduce"][0].name)
    return f"fused[{', '.join(ops)}]"


def numerics_error(node, value):
    """check_numerics: the NumericsError for node, whose value (an array) holds nan or inf."""
    value = np.asarray(value)
    if node.ndim == 0:
        value = value.reshape(())             # a compiled step holds a 0-d value as 1 element
    bad = ~np.isfinite(value)
    counts = [f"{int(k)} {what}" for k, what in ((np.isnan(value).sum(), "nan"), (np.isinf(value).sum(), "inf"))
              if k]
    first = tuple(int(i) for i in np.unravel_index(int(np.flatnonzero(bad)[0]), value.shape))
    if node.op.name == "output":                  # one value of a node with several
        parent = node.inputs[0]
        what = f"{op_text(parent)} (node {parent.name}, its value {node.name})"
    elif node.op.kind == "source":
        what = f"{'input' if node.op.name == 'placeholder' else node.op.name} {node.name}"
    else:
        what = f"{op_text(node)} (node {node.name})"
    return NumericsError(f"check_numerics: {what} holds {' and '.join(counts)} of {value.size} "
                         f"value(s), the first at index {first}" + where(node.loc))


def negative_power_error(node, in_types):
    """An integer to a negative integer power, on every backend (numpy raises ValueError)."""
    args = ", ".join(f"{t.dtype}{list(t.shape)}" for t in in_types)
    return GraphError(f"{op_text(node)}({args}) failed at call time (node {node.name}): integers to "
                      f"negative integer powers are not allowed, as in numpy (cast the base to a float)"
                      + where(node.loc))


def feed_array(ph, value):
    """Check a fed value against its placeholder; return it as a plain ndarray of its dtype.

    Every backend converts its feeds here, so they all compute on the same array: a
    subclass of ndarray becomes a plain ndarray (np.matrix, np.memmap), except a masked
    array, which is refused (its mask would be dropped without a word: feed m.filled(value)
    or m.data); a number or a list converts as numpy converts it, numpy's errors (a Python
    int out of the dtype's range) raised as a FeedError naming the input."""
    if isinstance(value, dict):      # TensorFlow 1's feed_dict habit: f({x: arr})
        raise FeedError(f"input {ph.name}: got a dict; pass the arrays themselves, in the order of the "
                        f"function's inputs or by name: f(arr) or f({ph.name}=arr)" + where(ph.loc))
    if isinstance(value, np.ma.MaskedArray):
        raise FeedError(f"input {ph.name}: a masked array cannot be fed (graphc ops do not read masks); "
                        "feed m.filled(value) or m.data" + where(ph.loc))
    if isinstance(value, np.ndarray):
        arr = value if type(value) is np.ndarray else np.asarray(value)    # a plain ndarray view
        if arr.dtype != ph.dtype:
            raise DTypeError(f"input {ph.name} expects {ph.type}, got an array of dtype {arr.dtype} "
                             f"(convert it with .astype(np.{ph.dtype}))" + where(ph.loc))
    else:
        if isinstance(value, Node):
            raise FeedError(f"input {ph.name}: fed a graph node ({value.name}); feed a numpy array")
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as e:   # e.g. a ragged list
            raise FeedError(f"input {ph.name} expects {ph.type}, cannot make an array of {value!r}: {e}"
                            + where(ph.loc)) from None
        if not np.can_cast(arr.dtype, ph.dtype, "same_kind"):
            raise DTypeError(f"input {ph.name} expects {ph.type}, got {arr.dtype} data" + where(ph.loc))
        if arr.dtype != ph.dtype:
            try:                  # from the value itself, as numpy does: a Python int must fit
                arr = np.asarray(value, dtype=ph.dtype)
            except (OverflowError, ValueError, TypeError) as e:
                raise FeedError(f"input {ph.name} expects {ph.type}, cannot convert {value!r}: {e}"
                                + where(ph.loc)) from None
    if arr.ndim != len(ph.shape) or any(d is not None and d != s for d, s in zip(ph.shape, arr.shape)):
        raise ShapeError(f"input {ph.name} expects shape {fmt_shape(ph.shape)}, got {fmt_shape(arr.shape)}"
                         + where(ph.loc))
    return arr
