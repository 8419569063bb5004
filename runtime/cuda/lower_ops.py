"""The CUDA lowering of every op that is not an elementwise group or a reduction.

- Reshapes are views of their (C-contiguous) input: `x.reshape(shape)`, no kernel.
- Ops with a fixed kernel (kernels.LAUNCH: matmul, softmax, convolution, pooling,
  slicing, random numbers, ...) are one call of its launcher, with the node's
  attributes written out: `launch_matmul(buf0, var_W, out0, ...)`. The launcher picks
  the grid from the sizes.
- scan runs its body's kernels T times from a host loop (lower_scan.py).
- An op with none of these would run on the host (`host_op(k, inputs, outputs)`: copy
  the inputs to the host, run the op's numpy reference, copy the results back); the
  step's comment says so, and `CudaFunction.host_ops` lists them. Every registered op
  has a kernel today (tests/test_cuda.py checks that none falls back), so this is for
  ops added later: the backend stays total while their kernels are written.
"""
import numpy as np

from graphc.core.types import TupleType

from .kernels import LAUNCH
from .lower_scan import lower_scan


def on_device(n):
    """Does n run on the device (or need no code at all)?"""
    return (n.op.kind in ("source", "elementwise", "reduction") and n.op.name not in LAUNCH_ONLY_IF_ROWS
            or n.op.name in ("fused", "output", "size", "scan") or n.op.view == "reshape" or n.op.name in LAUNCH)


LAUNCH_ONLY_IF_ROWS = {"argmax", "argmin"}      # reductions without an identity: fixed kernels


def literal(v):
    """v as Python source that evaluates to v in a generated module (None if there is none)."""
    if isinstance(v, (bool, int, float, str)) or v is None:
        return repr(v)
    if isinstance(v, np.dtype):
        return f"np.dtype({v.name!r})"
    if isinstance(v, np.generic):
        return literal(v.item())
    if isinstance(v, slice):
        parts = [literal(p) for p in (v.start, v.stop, v.step)]
        return None if None in parts else f"slice({', '.join(parts)})"
    if isinstance(v, (tuple, list)):
        parts = [literal(p) for p in v]
        if any(p is None for p in parts):
            return None
        text = ", ".join(parts)
        return f"({text}{',' if len(parts) == 1 else ''})" if isinstance(v, tuple) else f"[{text}]"
    return None


def _outputs(n, ctx):
    """n's destination arrays: one, or one per part of a node with several outputs (None for
    a part nothing reads: it has no output node, so no memory)."""
    if isinstance(ctx.types[n], TupleType):
        by_index = {u.attrs["index"]: u for u in ctx.users[n]}
        dests, notes = [], []
        for k in range(len(ctx.types[n].types)):
            u = by_index.get(k)
            if u is not None:
                ctx.names[u] = ctx.dest(u)
            dests.append(ctx.names[u] if u is not None else "None")
            notes.append(f"-> {u.name}" if u is not None else f"part {k}: not needed")
        return dests, notes
    return [ctx.dest(n)], [f"-> {n.name}"]


def lower(n, ctx):
    if n.op.view == "reshape" and ctx.plan.target(n) is None:
        return f"{ctx.names[n.inputs[0]]}.reshape({ctx.shape(n, reshape=True)})"
    ins = [ctx.names[x] for x in n.inputs]
    dests, notes = _outputs(n, ctx)
    launcher = LAUNCH.get(n.op.name)
    if n.op.name == "scan":
        k = lower_scan(n, ctx, dests)
        ctx.mod.call("scan_loop", [str(k), f"({', '.join(ins)}{',' if len(ins) == 1 else ''})",
                                   f"({', '.join(dests)},)"],
                     [f"its body runs {'backwards ' if n.attrs['reverse'] else ''}once per step, launched from the "
                      "host (below)", "init carries, xs, values the body reads", "final carries, ys, saved"])
    elif launcher is not None:
        args, arg_notes = ins + dests, [x.name for x in n.inputs] + notes
        for key, value in sorted(n.attrs.items()):
            text = literal(value)
            if text is None:              # not writable as source (an array): a constant argument
                text = ctx.param(f"attr{len(ctx.fallbacks)}_{key}", "const", np.asarray(value), f"{n.name}.{key}")
            args.append(f"{key}={text}")
            arg_notes.append(None)
        ctx.launchers.append(launcher.__name__)
        ctx.mod.call(launcher.__name__, args, arg_notes)
    else:
        ctx.fallbacks.append(n)
        ctx.mod.call("host_op", [str(len(ctx.fallbacks) - 1), f"({', '.join(ins)}{',' if len(ins) == 1 else ''})",
                                 f"({', '.join(dests)},)"],
                     [f"{n.op.name} has no CUDA kernel: it runs on the host", "its inputs", "its outputs"])
    return next(d for d in dests if d != "None")
