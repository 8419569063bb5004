"""The memory plan: where each value of a compiled step lives.

- Views (transpose, reshape of a contiguous value, slicing, picking one
  output of a fused node) take no memory: they alias their input.
- Outputs are written into fresh arrays allocated in the step, so the caller
  may keep them.
- An update is written straight into its variable when that is safe (the
  kernel is elementwise, reads the variable only at the same index, and no
  later node reads the old value); otherwise into a buffer, copied at the end.
- Every other value gets a buffer, allocated once per shape signature and
  reused across calls. A buffer is handed to a later value of the same shape
  and dtype once the last reader of the earlier one has run (liveness). "The same
  shape" means the same here and as the graph was built ((None, 6) is not (6, 6),
  even when 6 rows are fed): which buffer a value gets then does not depend on the
  sizes fed for None dimensions, so one generated step serves every batch size.

Which values are views is the backend's call (`aliases`): the CPU backend
knows which Numba layouts it can view (runtime/cpu/layout.py). A node with
several outputs stores nothing itself: its `output` nodes own the memory.
Inside the step a 0-d value is a 1-element array (both Numba targets index
those uniformly); the runtime reshapes at the boundary.
"""
from dataclasses import dataclass

import numpy as np

from graphc.core.types import TupleType
from graphc.ops.fused import producer


def kshape(shape):
    """The shape a value has inside the step: 0-d values are 1-element arrays."""
    return tuple(shape) if len(shape) else (1,)


@dataclass
class Buffer:
    name: str
    shape: tuple             # this shape signature's
    dtype: np.dtype
    family_shape: tuple = None   # as the graph was built (None: a dimension fed at call time)


class Plan:
    def __init__(self):
        self.buffers = []
        self._target = {}          # node -> buffer name | "fresh" | variable node (in place) | None (view)
        self._inline = set()       # scalar constants written as literals
        self._in_place = set()     # variables updated in place
        self._needs_copy = set()   # outputs that must be copied before returning

    def target(self, n):
        return self._target.get(n)

    def inlined(self, n):
        return n in self._inline

    def in_place(self, var):
        return var in self._in_place

    def needs_copy(self, n):
        return n in self._needs_copy


def is_elementwise_kernel(n):
    """One loop over n's output reading each input at the same index (or broadcast): it may
    write over an input it reads. Not a group whose loop starts from a convolution."""
    return n.op.kind == "elementwise" or (n.op.name == "fused" and n.attrs.get("reduce") is None
                                          and not isinstance(n.type, TupleType) and producer(n) is None)


def stores_nothing(n):
    return isinstance(n.type, TupleType)


def plan_memory(nodes, outputs, updates, types, aliases, in_place=True):
    """aliases(n): does n, a view op, alias its input in this backend (no memory of its own)?
    in_place=False: every update goes through a buffer and is copied in at the end of the step
    (a step that may stop with an error then leaves the variables as they were)."""
    plan = Plan()
    position = {n: k for k, n in enumerate(nodes)}
    readers = {n: [] for n in nodes}
    for n in nodes:
        for i in n.inputs:
            readers[i].append(n)
    # scalar constants read only by elementwise kernels become literals
    roots_needed = set(outputs) | set(updates.values())
    for n in nodes:
        if n.op.name == "constant" and n.attrs["value"].size == 1 and readers[n] and n not in roots_needed and \
                all(r.op.kind == "elementwise" or r.op.name == "fused" and producer(r) is None for r in readers[n]):
            plan._inline.add(n)
    # a value's storage is its own unless it is a view; the root is what holds the memory
    def is_view(n):
        return stores_nothing(n) or (n.op.view is not None and aliases(n))
    root = {}
    for n in nodes:
        root[n] = root[n.inputs[0]] if is_view(n) and not stores_nothing(n) else n
    plan.root = root
    last_use = {}
    for n in nodes:
        # a multi-output kernel runs where its output nodes get their memory
        reads = n.inputs[0].inputs if n.op.name == "output" else n.inputs
        for i in reads:
            last_use[root[i]] = max(last_use.get(root[i], -1), position[n])
    for n in outputs:
        last_use[root[n]] = len(nodes)
    for v in updates.values():
        last_use[root[v]] = max(last_use.get(root[v], -1), len(nodes))

    value_of_update = {}
    for var, v in updates.items():
        value_of_update.setdefault(v, var)
    output_set = set(outputs)
    free = {}
    for n in nodes:
        if n.op.kind == "source" or n.op.name == "size":
            continue
        if is_view(n):
            plan._target[n] = None
            continue
        var = value_of_update.get(n)
        if n in output_set:
            plan._target[n] = "fresh"
        elif var is not None and in_place and _can_write_in_place(n, var, nodes, position, readers, root, outputs, updates):
            plan._target[n] = var
            plan._in_place.add(var)
            last_use[root[n]] = -1         # lives in the variable, not in a buffer
        else:
            key = _pool_key(n, types)
            pool = free.get(key)
            if pool:
                plan._target[n] = pool.pop()
            else:
                buf = Buffer(f"buf{len(plan.buffers)}", key[0], key[1], kshape(n.type.shape))
                plan.buffers.append(buf)
                plan._target[n] = buf.name
        # release the buffers whose last reader is n (in input order, never a set's order:
        # the generated source, hence the kernel cache's file name, must not vary between runs)
        # (each root once: x and a view of x read by one node release x's buffer once, not twice)
        for r in dict.fromkeys(root[i] for i in (n.inputs[0].inputs if n.op.name == "output" else n.inputs)):
            if last_use.get(r) == position[n] and isinstance(plan._target.get(r), str) \
                    and plan._target[r].startswith("buf"):
                free.setdefault(_pool_key(r, types), []).append(plan._target[r])
    for o in outputs:
        if plan._target.get(root[o]) != "fresh" or root[o] is not o or outputs.count(o) > 1:
            plan._needs_copy.add(o)
    return plan


def _pool_key(n, types):
    """Values with equal keys may share a buffer: the shape and dtype, and the shape as built."""
    return kshape(types[n].shape), types[n].dtype, tuple(n.type.shape)


def _can_write_in_place(n, var, nodes, position, readers, root, outputs, updates):
    """May n's kernel write its result straight into var's memory?"""
    if not is_elementwise_kernel(n):
        return False
    if any(root[o] is var for o in outputs) or any(root[v] is var for v in updates.values()):
        return False                        # the old value is returned or assigned elsewhere
    for i in n.inputs:                      # var may be read by the kernel only at the same index
        if root[i] is var and (i is not var or i.shape != n.shape):
            return False
    later = [r for m in nodes if root[m] is var for r in readers[m]
             if position[r] > position[n] and r is not n]
    return not later
