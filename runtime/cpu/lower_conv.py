"""CPU lowering of convolution and pooling: one step line per node, a call of a fixed helper
of conv_kernels.py (imported through fastmath, like matmul_into) with the destination and
the attrs as literals:

    conv2d_by_im2col(x, var_W, buf_3, 2, 2, 1, 1, 1, 1, 1, 1, 1)   # stride, pads (t b l r), dilation, groups

The helpers read every size off their arguments, so the line is the same for every batch size;
a forward convolution names its path's helper (conv_kernels.conv2d_helper), which depends on
the channels, the kernel and the plane.

A convolution fused with its elementwise epilogue (passes/epilogue.py) is one kernel: per
image, the helper writes that image's convolution into a scratch `acc`, and the epilogue's
loop reads it there at once, while it is in cache (the whole convolution output is never
stored; W5's conv + bias + relu + relu mask read it back from memory apart).
"""
import numpy as np

from graphc.core.region import Param
from graphc.runtime.memory import Buffer, kshape

from . import conv_interleaved
from .channel_gather import materialize, pending, source
from .conv_blocked import tile_rows
from .conv_kernels import conv2d_helper
from .emit import CONTRACT, PARALLEL_MIN, ident, lowers, ops_name
from .lower_conv_affine import affine_epilogue, pack, packed_affine, scaled_depthwise
from .lower_scan import blocked_conv
from .loops import Body, output_dests

HELPERS = {"conv2d": "conv2d_into", "conv2d_grad_input": "conv2d_grad_input_into",
           "conv2d_grad_weight": "conv2d_grad_weight_into", "max_pool2d": "max_pool2d_into",
           "max_pool2d_grad": "max_pool2d_grad_into", "max_pool2d_select": "max_pool2d_select_into",
           "avg_pool2d": "avg_pool2d_into", "avg_pool2d_grad": "avg_pool2d_grad_into"}


def _ints(*values):
    return [str(int(v)) for v in values]


def _conv_consts(a):
    (pt, pb), (pl, pr) = a["padding"]
    return _ints(*a["stride"], pt, pb, pl, pr, *a["dilation"], a["groups"])


CONV_NOTES = ["stride", None, "pad top", "bottom", "left", "right", "dilation", None, "groups"]


def _conv_helper(x, w, out_type, attrs, ctx, pack_weight=True):
    """(the conv2d helper for these shapes, the weight argument it takes): its path's helper
    (conv_kernels.py), so that the kernel calling it does not also compile the other paths;
    for the register-blocked ones, the weight packed once, here, as a constant of the step."""
    a = attrs
    packable = blocked_conv(x, w) and not ctx.plan.inlined(w)   # as calls_blas predicted for the step
    helper = conv2d_helper(ctx.types[x].shape, ctx.types[w].shape, out_type.shape, a["stride"], a["padding"],
                           a["dilation"], a["groups"], packable)
    if helper == "conv2d_by_depthwise" and _threaded(ctx, ctx.types[x], PLANES_PARALLEL_MIN):   # on Numba's threads
        return "conv2d_by_depthwise_parallel", None
    if helper != "conv2d_by_blocked":
        return helper, None
    layout = _layout(w, out_type, a["groups"])
    if layout[0] == "interleaved":
        helper = "conv2d_by_interleaved"
    if not pack_weight:
        return helper, None
    done = ctx.__dict__.setdefault("packed_weights", {})      # a weight two convolutions share: once
    key = (w, a["groups"], layout)
    if key not in done:
        done[key] = ctx.param(f"{ctx.value(w)}_packed", "const", pack(layout, w.attrs["value"], a["groups"]),
                              f"{w.name}, packed for {helper} ({layout[0]} tiles)")
    return helper, done[key]


@lowers("conv2d", "conv2d_grad_input", "conv2d_grad_weight")
def _conv(n, ctx):
    if n.op.name != "conv2d":
        return _call(n, ctx, _conv_consts(n.attrs), CONV_NOTES)
    if pending(n.inputs[0], ctx):         # a channel shuffle only depthwise convs read
        materialize(n.inputs[0], ctx)
    helper, packed = _conv_helper(n.inputs[0], n.inputs[1], ctx.types[n], n.attrs, ctx)
    return _call(n, ctx, _conv_consts(n.attrs), CONV_NOTES, helper, packed)


@lowers("fused_producer")
def _conv_epilogue(n, ctx):
    """fused[conv2d, ...]: the convolution image by image into `acc`, each image's epilogue
    read from there (region step 0 is conv2d(p0, p1), a step the loop is given)."""
    region = n.attrs["region"]
    steps, outs = region.steps, region.outputs
    users, dests = output_dests(n, ctx)
    b = Body(ctx, n.inputs, steps, [ctx.types[x] for x in n.inputs], node=n)
    conv = steps[0]
    dtype = b.inner_types[0].dtype
    x, w = (n.inputs[p.index] for p in conv.operands[:2])
    helper, _ = _conv_helper(x, w, b.inner_types[0], conv.kwargs, ctx, pack_weight=False)
    if helper.startswith("conv2d_by_depthwise") and blocked_conv(x, w) and not ctx.plan.inlined(w):
        fold = affine_epilogue(n, ctx, x, w, ctx.types[n])
        if fold is not None:              # the scale in the weight, the shift a bias (conv_depthwise.py)
            scale, shift, relu, _ = fold
            wd, bias = scaled_depthwise(ctx, w, scale, shift)
            args, notes = [ctx.value(x)], [x.name]
            if pending(x, ctx):           # a channel shuffle, read in place (channel_gather.py)
                y, planes = source(x, ctx)
                helper = helper.replace("depthwise", "shuffled_depthwise")
                args, notes = [ctx.value(y), planes], [y.name, f"the channels {x.name} takes"]
            else:
                helper = helper.replace("depthwise", "depthwise_bias")
            ctx.mod.call(helper, args + [wd, bias, str(int(relu)), dests[0]] + _conv_consts(conv.kwargs),
                         notes + [f"{w.name}, scaled", "epilogue as a bias", "relu", f"-> {users[0].name}"] + CONV_NOTES)
            return dests[0]
    if pending(x, ctx):                   # the paths below read the whole gathered value
        materialize(x, ctx)
        b = Body(ctx, n.inputs, steps, [ctx.types[i] for i in n.inputs], node=n)
    fold = (affine_epilogue(n, ctx, x, w, ctx.types[n], residual=_in_place(helper, ctx.types[w].shape, conv.kwargs))
            if helper in ("conv2d_by_blocked", "conv2d_by_interleaved") else None)
    if fold is not None:                  # the epilogue in the micro-kernel (lower_conv_affine.py)
        scale, shift, relu, res = fold
        groups = conv.kwargs["groups"]
        wpk, bias = packed_affine(ctx, w, groups, scale, shift, _layout(w, b.inner_types[0], groups))
        args, notes = [ctx.value(x), wpk, bias, str(int(relu))], [x.name, f"{w.name}, scaled, packed", "epilogue as a bias", "relu"]
        if res is not None:
            args, notes = args + [ctx.value(res)], notes + [f"+ {res.name}"]
        ctx.mod.call(f"{helper}_{'bias' if res is None else 'residual'}", args + [dests[0]] + _conv_consts(conv.kwargs),
                     notes + [f"-> {users[0].name}"] + CONV_NOTES)
        return dests[0]
    helper, packed = _conv_helper(x, w, b.inner_types[0], conv.kwargs, ctx)
    domain = kshape(b.inner_types[0].shape)
    lines = ["    n0, n1, n2, n3 = out0.shape"]     # acc: one image's conv2d, read by the loop below
    planes = _plane_loads(b, ctx, domain)
    threaded = _threaded(ctx, b.inner_types[0])
    rng = "prange" if threaded else "range"              # the channels on Numba's threads
    if planes is None:                    # an input varies along only one of H and W
        loop = [f"        for i1 in {rng}(n1):", "            for i2 in range(n2):", "                for i3 in range(n3):"]
        idx, pad, loads, acc, outs_at = ["i0", "i1", "i2", "i3"], " " * 20, {}, "acc[0, i1, i2, i3]", "out{}[i0, i1, i2, i3]"
    else:                                 # each channel's plane as one run, which LLVM vectorizes
        views, loads = planes
        lines += ["    m = n2 * n3", "    accf = acc.reshape((n1, m))"] + views
        lines += [f"    o{k} = out{k}.reshape((n0, n1, m))" for k in range(len(outs))]
        loop = [f"        for i1 in {rng}(n1):", "            for p in range(m):"]
        idx, pad, acc, outs_at = ["i0", "i1", "p"], " " * 16, "accf[i1, p]", "o{}[i0, i1, p]"
    lines += ["    for i0 in range(n0):",
              f"        {helper}(a0[i0:i0 + 1], {'w_packed' if packed else 'a1'}, acc, "
              f"{', '.join(_conv_consts(conv.kwargs))})"] + loop
    lines += b.lines(tuple(domain), idx, pad, given={0: acc}, loads=loads)
    lines += [pad + outs_at.format(k) + f" = v{j}" for k, j in enumerate(outs)]
    lines = b.opening() + lines + b.closing()
    extra, notes = (["w_packed"], [f"{w.name}, packed"]) if packed else ([], [])
    name = ctx.mod.kernel(f"conv2d_{ops_name(steps[1:])}",
                          b.params + extra + ["acc"] + [f"out{k}" for k in range(len(outs))],
                          lines, fastmath=CONTRACT, parallel=threaded)
    ctx.mod.call(name, b.arg_exprs + ([packed] if packed else []) + [_image_scratch(n, region, ctx, dtype)] + dests,
                 [x.name for x in b.arg_nodes] + notes + ["scratch"] + [f"-> {u.name}" for u in users])
    return dests[0]


def _in_place(helper, w_shape, attrs):
    """Does this blocked kernel write each output value once, at its own index, so that it can add
    a residual read there: conv_interleaved always, conv_blocked for a 1x1 kernel without padding
    (the others it computes at a wider pitch and copies out)."""
    return helper == "conv2d_by_interleaved" or (tuple(w_shape[2:]) == (1, 1)
                                                 and all(p == 0 for pair in attrs["padding"] for p in pair))


def _image_scratch(n, region, ctx, dtype):
    """A buffer of the step (allocated once, reused by every call) for one image's convolution:
    an np.empty of it in the kernel cost ~0.1 ms a call at ResNet's 64 x 56 x 56 (page faults)."""
    conv = region.types(tuple(ctx.types[x] for x in n.inputs))[0]
    built = region.types(tuple(x.type for x in n.inputs))[0]
    name = f"acc_{ident(n.name)}"
    return ctx.param(name, "buf", Buffer(name, (1,) + kshape(conv.shape)[1:], dtype, (1,) + tuple(built.shape[1:])),
                     f"scratch of {n.name}: one image's convolution")


@lowers("max_pool2d", "max_pool2d_grad", "max_pool2d_select")
def _max_pool(n, ctx):
    a = n.attrs
    (pt, _), (pl, _) = a["padding"]    # the far padding and ceil_mode only set the output's size
    return _call(n, ctx, _ints(*a["kernel"], *a["stride"], pt, pl),
                 ["kernel", None, "stride", None, "pad top", "left"], _parallel_pool(n, ctx))


@lowers("avg_pool2d", "avg_pool2d_grad")
def _avg_pool(n, ctx):
    a = n.attrs
    (pt, pb), (pl, pr) = a["padding"]
    consts = _ints(*a["kernel"], *a["stride"], pt, pb, pl, pr) + [str(a["count_include_pad"])]
    return _call(n, ctx, consts, ["kernel", None, "stride", None, "pad top", "bottom", "left", "right",
                                  "count_include_pad"], _parallel_pool(n, ctx))


# Pools and depthwise convolutions (parallel_planes.py: runs of planes per task) go parallel
# from smaller images than generated loops: with 1 << 14 instead of PARALLEL_MIN, ShuffleNet
# took 3.10 / 3.14 ms a call instead of 3.56 / 3.60, Inception v2 16.7 instead of 17.4 (the
# two models built side by side in one process, calls taking turns, medians of 200 and 40).
PLANES_PARALLEL_MIN = 1 << 14


def _threaded(ctx, t, minimum=PARALLEL_MIN):
    """Run a pool, a depthwise convolution or a conv epilogue on Numba's threads: in a step
    without BLAS (DESIGN.md section 7), for an image of `minimum` values or more (PARALLEL_MIN:
    the size from which the generated loops go parallel too, emit.py). Each parallel loop
    costs ~3-10 us to start and end."""
    per_image = t.shape[1:]
    return ctx.mod.parallel and None not in per_image and int(np.prod(per_image)) >= minimum


def _layout(w, out_type, groups):
    """How the blocked kernels pack this convolution's weight (lower_conv_affine.pack):
    ("interleaved", None) where conv_interleaved takes it, else ("blocked", conv_blocked's output
    channels per tile)."""
    o, cg, kh, kw = w.attrs["value"].shape
    positions = None if None in out_type.shape[2:] else int(np.prod(out_type.shape[2:]))
    if conv_interleaved.fits(cg, o // groups, kh, kw, positions):
        return "interleaved", None
    return "blocked", tile_rows(kh, kw, o // groups, positions)


def _parallel_pool(n, ctx):
    """The forward pool on Numba's threads (parallel_planes.py) in a step that runs no BLAS."""
    if n.op.name in ("max_pool2d", "avg_pool2d") and _threaded(ctx, ctx.types[n.inputs[0]], PLANES_PARALLEL_MIN):
        return f"{n.op.name}_parallel_into"
    return None


def _plane_loads(b, ctx, domain):
    """(view lines, {input: load}) reading each input of the epilogue with one index p over a
    channel's (H, W) plane: an input either spans the whole plane (C-contiguous, viewed with
    the plane as one axis) or is constant over it (a bias per channel); None if one is not."""
    views, loads = [], {}
    read = {x.index for s in b.body[1:] for x in s.operands if isinstance(x, Param)}
    for k, x in enumerate(b.inputs):
        if k in b.operand or k not in read:       # literals; the convolution's own x and w
            continue
        own = kshape(ctx.types[x].shape)             # as the kernel gets it: a 0-d value is (1,)
        nd = len(own)
        shape = (1,) * (4 - nd) + own                # broadcast to the domain, aligned right
        at = ["i0" if shape[0] != 1 else "0", "i1" if shape[1] != 1 else "0"][max(4 - nd, 0):]
        if shape[2:] == (1, 1):
            loads[k] = f"a{k}[{', '.join(at + ['0'] * min(nd, 2))}]"
        elif shape[2:] == tuple(domain[2:]) and ctx.layout.get(x) == "C" and nd >= 2:
            views.append(f"    a{k}p = a{k}.reshape(({''.join(f'a{k}.shape[{d}], ' for d in range(nd - 2))}m))")
            loads[k] = f"a{k}p[{', '.join(at + ['p'])}]"
        else:
            return None
    return views, loads


def _call(n, ctx, consts, const_notes, helper=None, packed=None):
    dest = ctx.dest(n)
    args = [ctx.value(x) for x in n.inputs] + [dest] + consts
    notes = [x.name for x in n.inputs] + [f"-> {n.name}"] + const_notes
    if packed:                      # the weight as the blocked kernel reads it, packed once
        args[1], notes[1] = packed, f"{n.inputs[1].name}, packed"
    ctx.mod.call(helper or HELPERS[n.op.name], args, notes)
    return dest
