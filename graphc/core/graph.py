"""The IR: a Graph owns immutable, hash-consed, single-output Nodes.

A node is built by `Graph.add(op, inputs, attrs)`: the op infers the node's
TensorType from its inputs' types (so shape errors surface at build time),
and a node with the same op, inputs and attrs already in the graph is
returned instead of a new one (hash-consing: CSE for free, and pass tests can
compare nodes with `is`).

Every node remembers the user's file and line where it was built, found by
walking the call stack past graphc's own files, and (`Location.also`) the
other lines where the user asked for the same node, so an error about it
names every line that built it ("built at a.py:3, also requested at a.py:9").

numpy meets nodes through `Node.__array_ufunc__`/`__array_function__`:
`ndarray * node` builds the node, `np.exp(node)` is an error pointing at gc.exp.

Node operators (`a + b`, `x[1:]`, `x.T`) dispatch through OPERATORS, a table
the op modules fill when they load (ops/base.py `operator`): the IR core
imports no op, so nothing here depends on ops/.
"""
import contextlib
import itertools
import os
import sys
import threading

from .errors import ForeignNodeError, GraphError, NumpyOnNodeError, where
from .store import VariableStore

# The graphc packages whose files are graphc's own, by import name. Installed, all of them sit
# under graphc/; in a source tree ops/, passes/ and runtime/ sit beside it (pyproject's
# package-dir), so each package's folder is read off the package itself, once everything loaded.
PACKAGES = ("graphc", "graphc.ops", "graphc.passes", "graphc.runtime")
_roots = []


def internal_roots():
    """Folder prefixes (ending in os.sep) of graphc's own files; any subfolder counts."""
    if len(_roots) < len(PACKAGES):
        found = [os.path.join(os.path.abspath(p), "") for name in PACKAGES if name in sys.modules
                 for p in getattr(sys.modules[name], "__path__", ())]
        _roots[:] = sorted(set(found))
    return _roots


def is_internal(filename):
    return os.path.abspath(filename).startswith(tuple(internal_roots()))


class Location(tuple):
    """(file, line) where a node was first built; compares, hashes and unpacks as that tuple.

    `also` lists the other (file, line)s where user code asked for the same node (hash-consing
    returned the existing one there). Nodes are immutable, their Location only grows: a pass
    rebuilding a node and the compiled copies share it, so an error at call time names every
    line where the user wrote that expression (errors.where formats them)."""
    also = ()

    def __new__(cls, filename, line):
        return super().__new__(cls, (filename, line))

    def __getnewargs__(self):
        return tuple(self)

    def requested(self, loc):
        """Note that user code asked for this node (again) at loc."""
        if loc is not None and loc != self and loc not in self.also:
            self.also = self.also + (tuple(loc),)


def user_location():
    """Location (file, line) of the innermost frame outside graphc, or None.

    While a pass rebuilds a node (`building_at`), the nodes it makes get that
    node's location, so errors still point at the user's line."""
    if _default.location is not None:
        return _default.location
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith("<") and not is_internal(filename):
            return Location(filename, frame.f_lineno)
        frame = frame.f_back
    return None


class Node:
    """One value in the graph: `op` applied to `inputs` with `attrs`.

    Immutable. Identity is the node: two nodes are equal only if they are the
    same object (operators like `==` are not overloaded; use gc.equal).
    """

    __slots__ = ("op", "inputs", "attrs", "type", "name", "loc", "graph", "id")

    def __init__(self, op, inputs, attrs, type, name, loc, graph, id):
        for slot, value in zip(self.__slots__, (op, inputs, attrs, type, name, loc, graph, id)):
            object.__setattr__(self, slot, value)

    def __setattr__(self, key, value):
        raise AttributeError("graphc nodes are immutable")

    def __delattr__(self, key):
        raise AttributeError("graphc nodes are immutable")

    @property
    def shape(self):
        return self.type.shape

    @property
    def dtype(self):
        return self.type.dtype

    @property
    def ndim(self):
        return self.type.ndim

    @property
    def where(self):
        """'file:line' where the node was built."""
        return f"{self.loc[0]}:{self.loc[1]}" if self.loc else "<unknown>"

    def __repr__(self):
        return f"<Node {self.name}: {self.op.name} {self.type}{where(self.loc)}>"

    def __bool__(self):
        raise GraphError(f"{self.name} is a graph node; its value exists only when a function runs, "
                         "so it has no truth value (use gc.where for a choice inside the graph)")

    def __iter__(self):
        raise GraphError(f"cannot iterate over graph node {self.name}; index it with [] instead")

    def __len__(self):
        raise GraphError(f"len() of graph node {self.name}: use .shape[0]")

    # Operators build nodes through OPERATORS, filled by the op modules (ops/base.py).
    def __add__(self, other): return OPERATORS["add"](self, other)
    def __radd__(self, other): return OPERATORS["add"](other, self)
    def __sub__(self, other): return OPERATORS["subtract"](self, other)
    def __rsub__(self, other): return OPERATORS["subtract"](other, self)
    def __mul__(self, other): return OPERATORS["multiply"](self, other)
    def __rmul__(self, other): return OPERATORS["multiply"](other, self)
    def __truediv__(self, other): return OPERATORS["divide"](self, other)
    def __rtruediv__(self, other): return OPERATORS["divide"](other, self)
    def __pow__(self, other): return OPERATORS["power"](self, other)
    def __rpow__(self, other): return OPERATORS["power"](other, self)
    def __matmul__(self, other): return OPERATORS["matmul"](self, other)
    def __rmatmul__(self, other): return OPERATORS["matmul"](other, self)
    def __neg__(self): return OPERATORS["negative"](self)
    def __pos__(self): return self
    def __abs__(self): return OPERATORS["abs"](self)
    def __lt__(self, other): return OPERATORS["less"](self, other)
    def __le__(self, other): return OPERATORS["less_equal"](self, other)
    def __gt__(self, other): return OPERATORS["greater"](self, other)
    def __ge__(self, other): return OPERATORS["greater_equal"](self, other)
    def __and__(self, other): return OPERATORS["logical_and"](self, other)
    def __or__(self, other): return OPERATORS["logical_or"](self, other)
    def __rand__(self, other): return OPERATORS["logical_and"](other, self)
    def __ror__(self, other): return OPERATORS["logical_or"](other, self)
    def __invert__(self): return OPERATORS["logical_not"](self)
    def __getitem__(self, key): return OPERATORS["getitem"](self, key)
    __hash__ = object.__hash__
    __eq__ = object.__eq__

    @property
    def T(self):
        return OPERATORS["transpose"](self)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        # numpy calls this for `ndarray * node` too (instead of our __rmul__): build the node then
        if method == "__call__" and not kwargs and ufunc.__name__ in _NUMPY_OPERATORS:
            op, (a, b) = _NUMPY_OPERATORS[ufunc.__name__], inputs
            if op in _MIRRORED and not isinstance(a, Node):   # as Python reflects: array < node is node > array
                return OPERATORS[_MIRRORED[op]](b, a)
            return OPERATORS[op](a, b)
        if method == "__call__" and not kwargs and ufunc.__name__ in ("equal", "not_equal"):
            same = inputs[0] is inputs[1]      # ndarray == node: identity, as node == anything is
            return same if ufunc.__name__ == "equal" else not same
        name = ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}"
        raise _numpy_error(name, inputs, "; numpy cannot store a node in an array" if "out" in kwargs else "")

    def __array_function__(self, func, types, args, kwargs):
        raise _numpy_error(func.__name__, args)           # np.sum(node), np.concatenate([node]), ...


# op name -> the user function building it; the op modules fill it as they load
OPERATORS = {}
# the names of graphc's op functions (gc.exp, ...), for the errors below; graphc/api.py fills it
FUNCTION_NAMES = set()
# numpy's ufuncs behind ndarray's binary operators -> the OPERATORS entry Node's own operator uses
_NUMPY_OPERATORS = {"add": "add", "subtract": "subtract", "multiply": "multiply", "divide": "divide",
                    "true_divide": "divide", "power": "power", "matmul": "matmul", "less": "less",
                    "less_equal": "less_equal", "greater": "greater", "greater_equal": "greater_equal",
                    "bitwise_and": "logical_and", "bitwise_or": "logical_or"}
_MIRRORED = {"less": "greater", "greater": "less", "less_equal": "greater_equal", "greater_equal": "less_equal"}
# numpy's names -> graphc's function, where they differ
_GC_NAMES = {"add.reduce": "sum", "multiply.reduce": "prod", "maximum.reduce": "max", "minimum.reduce": "min",
             "absolute": "abs", "amax": "max", "amin": "min", "invert": "logical_not", "true_divide": "divide"}


def _numpy_error(numpy_name, args, extra=""):
    """numpy was handed a node: say which gc function builds that op, if there is one."""
    gc_name = _GC_NAMES.get(numpy_name, numpy_name)
    name = next((a.name for a in _flat(args) if isinstance(a, Node)), "?")
    call = name if len(args) == 1 and isinstance(args[0], Node) else "..."
    use = (f"use gc.{gc_name}({call}) to build it in the graph" if gc_name in FUNCTION_NAMES
           else f"graphc has no {gc_name} op")
    return NumpyOnNodeError(f"np.{numpy_name} got graph node {name}, which has no value until a "
                            f"function runs; {use}{extra}{where(user_location())}")


def _flat(args):
    for a in args:
        if isinstance(a, (list, tuple)):
            yield from _flat(a)
        else:
            yield a


class Graph:
    """A container of nodes. `with Graph() as g:` makes g the default graph.

    Nodes are kept in creation order, which is a topological order: a node's
    inputs always exist before it. Variable values live in the graph's store
    (`store`, also `values`), so every function compiled from the graph sees
    the same state; a compiled program's scratch graph shares it.
    """

    _ids = itertools.count()

    def __init__(self, name=None):
        self.name = name or f"graph{next(Graph._ids)}"
        self.nodes = []
        self.store = VariableStore()   # variable -> its current value, and where it lives
        self._by_key = {}         # hash-consing table
        self._names = set()
        self._counters = {}

    def __enter__(self):
        _default.stack.append(self)
        return self

    def __exit__(self, *exc):
        _default.stack.pop()
        return False

    def __repr__(self):
        return f"<Graph {self.name}: {len(self.nodes)} nodes>"

    def __contains__(self, node):
        return isinstance(node, Node) and node.graph is self

    def _unique_name(self, base):
        if base not in self._names:
            self._names.add(base)
            return base
        n = self._counters.get(base, 0)
        while f"{base}_{n}" in self._names:
            n += 1
        self._counters[base] = n + 1
        self._names.add(f"{base}_{n}")
        return f"{base}_{n}"

    def add(self, op, inputs=(), attrs=None, name=None, loc=None, exact_name=False):
        """Return the node for `op(inputs, **attrs)`, building it if it is new.

        exact_name: use `name` as given even if taken (a pass rebuilding a node keeps its name)."""
        attrs = dict(attrs or {})
        inputs = tuple(inputs)
        for x in inputs:
            if not isinstance(x, Node):
                raise GraphError(f"{op.name}: input {x!r} is not a graph node")
            if x.graph is not self:
                mine = next((y for y in inputs if isinstance(y, Node) and y.graph is self), None)
                raise ForeignNodeError(
                    f"{op.name}: input {x.name} belongs to {x.graph.name}{where(x.loc)}, "
                    f"not to {self.name}" + (f" (as {mine.name} does{where(mine.loc)})" if mine is not None else "")
                    + "; build all nodes of one computation in one graph"
                    f"{where(user_location())}")
        types = tuple(x.type for x in inputs)
        try:
            attrs = op.canonical(types, **attrs)
            key = (op.name, tuple(x.id for x in inputs), op.key(attrs))
            found = self._by_key.get(key)
            if found is not None:
                if loc is None and _default.location is None and isinstance(found.loc, Location):
                    found.loc.requested(user_location())    # the user asked for it again: keep that line
                return found
            ttype = op.infer(types, **attrs)
        except GraphError as e:
            loc = loc or user_location()
            shapes = ", ".join(str(t) for t in types)
            raise type(e)(f"{op.name}({shapes}): {e}{where(loc)}") from None
        loc = loc or user_location()
        name = name if exact_name and name else self._unique_name(name or op.name)
        node = Node(op, inputs, attrs, ttype, name, loc, self, len(self.nodes))
        self.nodes.append(node)
        self._by_key[key] = node
        return node

    @property
    def values(self):
        """The variable store, indexed by variable node: g.values[v] is v's value (on the host)."""
        return self.store

    def scratch_copy(self, roots, name=None):
        """A new graph holding copies of the nodes behind `roots`, sharing this graph's store.

        Compiled programs optimize such a copy, so the user's graph keeps only what the
        user built. Returns (scratch graph, {original node: copy})."""
        scratch = Graph(name or f"{self.name}.compiled")
        scratch.store = self.store
        scratch.rng_counter = getattr(self, "rng_counter", None)
        memo = {}
        for n in ancestors(list(roots)):
            memo[n] = scratch._adopt(n, tuple(memo[i] for i in n.inputs))
        if scratch.rng_counter is not None:
            scratch.rng_counter = memo.get(scratch.rng_counter)
        return scratch, memo

    def _adopt(self, node, inputs):
        """A copy of node (of another graph) on inputs of this one: same op, attrs, type, name, line."""
        key = (node.op.name, tuple(x.id for x in inputs), node.op.key(node.attrs))
        found = self._by_key.get(key)
        if found is not None:
            return found
        copy = Node(node.op, inputs, node.attrs, node.type, node.name, node.loc, self, len(self.nodes))
        self._names.add(node.name)
        self.nodes.append(copy)
        self._by_key[key] = copy
        return copy

    def variables(self):
        return [n for n in self.nodes if n.op.name == "variable"]

    def placeholders(self):
        return [n for n in self.nodes if n.op.name == "placeholder"]


class _DefaultStack(threading.local):
    def __init__(self):
        self.stack = []
        self.root = None
        self.location = None


@contextlib.contextmanager
def building_at(loc):
    """Nodes built inside this block are attributed to loc (a pass rewriting a user's node)."""
    old, _default.location = _default.location, loc
    try:
        yield
    finally:
        _default.location = old


_default = _DefaultStack()


def get_default_graph():
    """The innermost `with Graph()` block's graph, else a process-wide default graph."""
    if _default.stack:
        return _default.stack[-1]
    if _default.root is None:
        _default.root = Graph("default")
    return _default.root


def reset_default_graph():
    _default.root = None


def ancestors(nodes):
    """All nodes the given nodes depend on (themselves included), in topological order."""
    seen = set()
    stack = list(nodes)
    while stack:
        n = stack.pop()
        if n.id in seen:
            continue
        seen.add(n.id)
        stack.extend(n.inputs)
    graph = nodes[0].graph if nodes else None
    return [n for n in graph.nodes if n.id in seen] if graph else []
