"""Regions: a sub-graph that one node runs -- parameters, steps, outputs.

A fused group (ops/fused.py) is a region run as one loop; a scan (an RNN's
step function) will be a region run once per time step. A region is a plain
immutable value, so a node holding one hash-conses like any other:

    Region(n_params=2,
           steps=(Step(multiply, (), (Param(0), Param(1))),     # v0 = p0 * p1
                  Step(tanh, (), (Ref(0),))),                   # v1 = tanh(v0)
           outputs=(1,))                                        # the region computes v1

A step holds the op itself (not its name), its attrs as sorted (key, value)
pairs, and its operands: `Param(k)` is the region's k-th parameter (the
node's k-th input), `Ref(j)` the value of step j.
"""
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


class Param(NamedTuple):
    index: int


class Ref(NamedTuple):
    index: int


class Step(NamedTuple):
    op: object            # an Op instance (ops/base.py)
    attrs: tuple          # ((key, value), ...) sorted by key
    operands: tuple       # Param(k) | Ref(j)

    @property
    def kwargs(self):
        return dict(self.attrs)


@dataclass(frozen=True)
class Region:
    n_params: int
    steps: tuple
    outputs: tuple        # indices of the steps whose values leave the region

    def types(self, param_types):
        """The TensorType of every step, given the parameters' types."""
        out = []
        for s in self.steps:
            args = tuple(param_types[x.index] if isinstance(x, Param) else out[x.index] for x in s.operands)
            out.append(s.op.infer(args, **s.kwargs))
        return out

    def evaluate(self, arrays):
        """Run the steps with each op's numpy reference; return the value of every step."""
        vals = []
        for s in self.steps:
            args = [arrays[x.index] if isinstance(x, Param) else vals[x.index] for x in s.operands]
            vals.append(np.asarray(s.op.ref(*args, **s.kwargs)))
        return vals

    def op_names(self):
        return [s.op.name for s in self.steps]

    def __str__(self):
        lines = []
        for j, s in enumerate(self.steps):
            args = ", ".join(f"p{x.index}" if isinstance(x, Param) else f"v{x.index}" for x in s.operands)
            extra = "".join(f", {k}={v!r}" for k, v in s.attrs)
            lines.append(f"v{j} = {s.op.name}({args}{extra})")
        return "; ".join(lines) + " -> " + ", ".join(f"v{j}" for j in self.outputs)
