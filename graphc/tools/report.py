"""`graphc report WORKLOAD_OR_SCRIPT -o report.html`: the teaching page of a compiled function.

WORKLOAD: W1-W4 (graphc/tools/workloads.py; W1 at 100,000 elements, W3 at batch 32,
so that the page's graphs stay readable and the profile quick), compiled for the
CPU and profiled on the workload's own data.
SCRIPT: a Python file run as __main__; its compiled CPU function is the global
named by --name (default: the last gc.function(..., backend="cpu") it leaves in
its globals, called at least once, or given `args` to compile and profile with).
"""
import os
import runpy
import sys

import graphc as gc

SIZES = {"W1": dict(n=100_000), "W2": dict(rows=64, cols=256), "W3": dict(batch=32), "W4": {}}


def function_of(target, name=None):
    """(the CPU function to report on, its arguments or None, a title)."""
    from graphc.tools.workloads import WORKLOADS
    if target in WORKLOADS:
        w = WORKLOADS[target](**SIZES.get(target, {}))
        return w.function("cpu"), list(w.data), f"{w.name}: {w.description}"
    if not os.path.isfile(target):
        raise SystemExit(f"graphc report: {target!r} is neither a workload ({', '.join(WORKLOADS)}) nor a file")
    sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
    scope = runpy.run_path(target, run_name="__main__")
    if name is not None:
        if name not in scope:
            raise SystemExit(f"graphc report: {target} defines no global {name!r}")
        found = [scope[name]]
    else:
        found = [v for v in scope.values() if isinstance(v, gc.Function) and v.backend == "cpu"]
    if not found or not isinstance(found[-1], gc.Function) or found[-1].backend != "cpu":
        raise SystemExit(f"graphc report: {target} leaves no function compiled with backend='cpu' in its "
                         "globals (pass --name NAME to pick one)")
    args = scope.get("args")
    return found[-1], list(args) if isinstance(args, (list, tuple)) else None, os.path.basename(target)


def main(target, out="report.html", name=None):
    fn, args, title = function_of(target, name)
    path = gc.report(fn, out, args=args, title=title)
    print(f"report of {title}: {os.path.abspath(path)}")
    return path
