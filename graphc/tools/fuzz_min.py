"""Cutting a failing fuzz program down (`graphc fuzz --replay`), delta-debugging style.

First only the output (or variable update) that fails is kept, with the steps it needs. Then,
from the failing output backwards, each intermediate result is cut off: replaced by a
placeholder fed the values the interpreter computed for it at the two calls, so everything
upstream of it goes. A cut is kept when the program still fails the same way (the same kind,
at the same output, or the same exception), else undone. Each try runs the program again
(a compile on the CPU backend), so the number of tries is bounded.
"""
import re
from dataclasses import replace

import numpy as np

from .fuzz_ir import Step, prune
from .fuzz_run import check_programs, run_interp


def same_failure(a, b):
    if a.kind != b.kind:
        return False
    if a.kind == "crash":
        return a.detail.split(":")[0] == b.detail.split(":")[0] and a.where == b.where
    return a.where.split(" (")[0] == b.where.split(" (")[0]


def target(prog, outcome):
    """(outputs, updates) that the failure is about, or None when it is not about one."""
    m = re.match(r"d sum\(w \* (\w+)\)", outcome.detail)
    if outcome.where == "grad" and m:
        return [m[1]], []
    if outcome.where.startswith("update of "):
        return [], [outcome.where.split()[2]]
    name = outcome.where.split(" (")[0]
    if name in prog.step_of():
        return [name], []
    return None


def minimize(prog, outcome, opts, tries=40):
    """A smaller program with the same failure (prog itself when nothing smaller fails)."""
    def fails(p):
        nonlocal tries
        tries -= 1
        (o,) = check_programs([p], opts)
        return same_failure(o, outcome)

    t = target(prog, outcome)
    if t is None:                     # a crash of the whole program: try each output, each update
        candidates = [([o], []) for o in prog.outputs] + [([], [v]) for v, _ in prog.updates]
    else:
        candidates = [t]
    for outs, upd in candidates:
        small = prune(prog, outs, updates=upd)
        if tries > 0 and len(small.steps) < len(prog.steps) and fails(small):
            prog = small
            break
    for name in reversed([o for s in prog.steps for o in s.outs]):
        if tries <= 0:
            break
        step = prog.step_of().get(name)
        if step is None or step.fn in ("placeholder", "variable", "constant") or len(step.outs) > 1:
            continue
        if name in prog.outputs or any(name == x for _, x in prog.updates):
            continue
        try:
            oracle = run_interp(prog)
        except Exception:             # noqa: BLE001
            break
        if name not in oracle.calls[0] or np.asarray(oracle.calls[0][name]).ndim == 0:
            continue                  # (0-d feeds are a known defect of their own)
        values = [np.asarray(oracle.calls[c][name]) for c in (0, 1)]
        shape = tuple(None if a != b else a for a, b in zip(values[0].shape, values[1].shape))
        cut = Step((name,), "placeholder", (shape, values[0].dtype))
        steps = [cut if s is step else s for s in prog.steps]
        candidate = replace(prog, steps=steps, fixed={**prog.fixed, name: values})
        candidate = prune(candidate, candidate.outputs, [v for v, _ in candidate.updates])
        if len(candidate.steps) < len(prog.steps) and fails(candidate):
            prog = candidate
    return prog

