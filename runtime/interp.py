"""The interpreter: run the graph node by node with each op's numpy reference.

It is the oracle every other backend and every pass is tested against, so it
stays simple: no rewriting, no buffers, values freed after their last use.
With check_numerics, every value but the constants is checked for nan and inf
as it is made (the feeds and variables first, as the CPU backend does).
"""
import numpy as np

from graphc.core.errors import GraphError, where
from graphc.core.types import TensorType
from graphc.function import Function, negative_power_error, numerics_error


class InterpFunction(Function):
    backend = "interp"
    optimize_by_default = False     # the oracle runs the graph as built

    def __init__(self, inputs, outputs, updates=None, **options):
        super().__init__(inputs, outputs, updates, **options)
        keep = set(self.outputs) | set(self.updates.values())
        last_use = {}
        for i, n in enumerate(self.nodes):
            for x in n.inputs:
                last_use[x] = i
        # after running node i, drop the inputs whose last use it was
        self._free_after = [[x for x in set(n.inputs) if last_use[x] == i and x not in keep]
                            for i, n in enumerate(self.nodes)]
        self._variables = [n for n in self.nodes if n.op.name == "variable"]
        self._var_slots = [n.attrs["slot"] for n in self._variables]

    def _run(self, feeds, types):
        # the leaves first: the feeds and the variables' values (from the graph's store)
        values = self.program_feeds(feeds)
        values.update(zip(self._variables, self.graph.store.host_values(self._var_slots)))
        protected = {id(a) for a in values.values()}
        check = self.check_numerics
        if check:
            for n in self.nodes:
                if n.op.kind == "source" and n.op.name != "constant":
                    _check(n, values[n])
        with np.errstate(all="ignore"):   # inf/nan follow IEEE rules, as in the compiled backends
            for n, free in zip(self.nodes, self._free_after):
                if n not in values:
                    values[n] = self._eval(n, values, types[n])
                    if check and n.op.name != "constant":
                        _check(n, values[n])
                for x in free:
                    del values[x]

        def owned(a):  # the caller may keep and mutate what we return
            # C order too: the compiled backend updates variables in place as C arrays
            if a.flags.owndata and a.flags.writeable and a.flags.c_contiguous and id(a) not in protected:
                protected.add(id(a))   # hand each array out once: an output that is also an update
                return a               # (or a repeated output) gets a copy, not an alias
            return a.copy()

        outs = [owned(values[n]) for n in self.outputs]
        return outs, {var: owned(values[v]) for var, v in self.updates.items()}

    def _eval(self, n, values, ttype):
        op = n.op.name
        if op == "constant":
            return n.attrs["value"]
        args = [values[x] for x in n.inputs]
        try:
            out = n.op.ref(*args, **n.attrs)
            if isinstance(out, tuple):      # a fused node with several outputs
                return out
            out = np.asarray(out)
        except Exception as e:  # a numpy error at run time, e.g. int ** negative int
            if isinstance(e, ValueError) and "negative integer powers" in str(e):   # (a fused node too)
                raise negative_power_error(n, [TensorType(a.shape, a.dtype) for a in args]) from e
            shapes = ", ".join(f"{a.dtype}{list(a.shape)}" for a in args)
            raise GraphError(f"{op}({shapes}) failed at call time: {e}{where(n.loc)}") from e
        if out.shape != ttype.shape or out.dtype != ttype.dtype:
            raise GraphError(f"internal: {op} produced {out.dtype}{list(out.shape)}, "
                             f"its type says {ttype}{where(n.loc)}")
        return out


def _check(n, value):
    """check_numerics: raise at a float value holding nan or inf (a tuple's parts are checked
    as the output nodes that read them)."""
    if isinstance(value, np.ndarray) and value.dtype.kind == "f" and not np.isfinite(value).all():
        raise numerics_error(n, value)
