"""Direct convolution with a register-blocked micro-kernel written in LLVM IR.

OpenBLAS ran im2col's GEMMs at 120-330 GF/s on this machine's 2 cores (AMD Zen 5,
AVX-512) and onnxruntime its whole convolutions at ~430, so no path built on a GEMM call
could come near it. This one has no GEMM call: a micro-kernel (`_tile`) keeps a block of
MR = 14 output channels x 32 output positions of sums in 28 zmm registers and, for each
kernel tap and input channel, loads 32 consecutive inputs (two 16-lane vectors) and adds
each of the 14 weights, broadcast, times them (28 FMAs to 2 loads and 14 broadcasts); 1x1
kernels mostly take 8 channels x 48 positions (24 FMAs to 3 loads and 8 broadcasts). Numba
has no way to say "keep these sums in registers", so the micro-kernel is LLVM IR on
<16 x float> values (numba.extending.intrinsic); LLVM's mem2reg puts the sums in registers.

- Positions: output position v = oh * wq + ow is computed "wide", at the pitch wq of the
  input's padded rows (as in conv_wide.py), so that 32 consecutive positions read 32
  consecutive inputs across rows for any tap; the columns ow >= OW are junk and not kept.
- Strides: the padded input is split into its sh x sw stride phases (_phases); a tap of a
  strided convolution reads one phase at stride 1 (at stride 1 there is one phase).
- Weights: packed once into the order the micro-kernel reads them (pack_weights), by the
  lowering, for a constant weight (lower_conv.py); the convolution then runs no copy of
  them. Inputs are copied per call (zero padding, phases), except a 1x1 kernel's.
- Threads: the tiles of an image run on Numba's threads (prange) and call no BLAS.

Measured (ms, 2 threads, ResNet-50's 3x3 convolutions, the micro-kernel alone against
onnxruntime's whole Conv node, in the first prototype, same register blocking): 64 -> 64 at
56x56 0.51 vs 0.54; 128 at 28x28 0.52 vs 0.55; 256 at 14x14 0.55 vs 0.57; 512 at 7x7 0.69
vs 0.76; one core reached 220 GF/s, OpenBLAS's GEMM 140-180. The channel loop is kept rolled:
unrolled 16 times, LLVM hoisted all of its broadcasts and spilled them to the stack (90
against 220 GF/s on one core).
"""
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

# _tiles runs on Numba's threads and is called from other compiled functions, which, loaded
# from Numba's cache, link to the threading layer's functions (allocate_sched, ...): those
# exist once the layer is started, which config.configure_once does ("LLVM ERROR: Symbol not
# found: allocate_sched", or a segfault, otherwise). Call that before these helpers.
# Editing this file: Numba's cache of conv_kernels.py's callers (and of the kernels compiled
# while those were stale) does not see it; clear runtime/cpu/__pycache__/*.nb? and the
# kernel cache (GRAPHC_CACHE_DIR) after an edit. A clean install has no such cache.
V = 16          # lanes of a zmm register of float32
MR = 14         # output channels per tile
NV = 2          # 16-position vectors per tile: 14 * 2 sums + 2 input vectors + 1 broadcast = 31 registers
# 1x1 kernels: 8 x 48 (24 sums + 3 vectors + 1 broadcast), fewer broadcasts per FMA; measured
# (ms, min of 20, 14 x 32 vs 8 x 48): 64 -> 256 at 56x56 0.292 vs 0.256, 256 -> 64 0.353 vs
# 0.308, 512 -> 128 at 28x28 0.350 vs 0.297; but 3x3 64 -> 64 at 56x56 0.654 vs 0.756.
MR_POINTWISE, NV_POINTWISE = 8, 3
JOBS = 16       # at least this many pieces of work per image for prange (2 cores here)
COPY_PARALLEL_MIN = 1 << 17   # entries from which the copies in and out use the threads


def _ptr(context, builder, ty, value):
    return context.make_array(ty)(context, builder, value).data


def _splat(builder, value, vec):
    """value (a scalar) in each lane of a vector of type vec."""
    undef, zeros = ir.Constant(vec, ir.Undefined), ir.Constant(ir.VectorType(ir.IntType(32), V), [0] * V)
    return builder.shuffle_vector(builder.insert_element(undef, value, ir.Constant(ir.IntType(32), 0)), undef, zeros)


def _tile_kernel(MR, NV):
    """The micro-kernel for tiles of MR output channels x NV * 16 positions (an intrinsic)."""
    return intrinsic(_tile_ir(MR, NV))


def _tile_ir(MR, NV):
    """The intrinsic's typing function, its LLVM IR written for MR x NV * 16 tiles."""
    def _tile(typingctx, x, w, offs, n_c, cstride, x0, w0, n_valid, m_valid, out, o0, ostride, bias, b0, relu, res,
              has_res):
        """For m < MR, q < NV * 16 (q < n_valid, m < m_valid): out[o0 + m * ostride + q] =
        bias[b0 + m] + sum over taps t < len(offs) and channels c < n_c of
        w[w0 + (t * n_c + c) * MR + m] * x[x0 + offs[t] + c * cstride + q]  (x read only at
        q < n_valid), plus res at out's index if has_res, then max(that, 0) if relu (a nan stays a
        nan, as ops/unary.py's relu)."""
        if not all(isinstance(a, types.Array) and a.ndim == 1 and a.dtype == types.float32 for a in (x, w, out, bias, res)):
            return None                       # float32 vectors only: the IR below is written for them
        if not (isinstance(offs, types.Array) and offs.ndim == 1 and offs.dtype == types.int64):
            return None
        scalars = (n_c, cstride, x0, w0, n_valid, m_valid, o0, ostride, b0, relu, has_res)
        if not all(isinstance(a, (types.Integer, types.Boolean)) for a in scalars):
            return None
        sig = types.void(x, w, offs, *scalars[:6], out, *scalars[6:8], bias, *scalars[8:10], res, scalars[10])

        def codegen(context, builder, signature, args):
            args = [context.cast(builder, v, t, types.int64) if isinstance(t, (types.Integer, types.Boolean)) else v
                    for v, t in zip(args, signature.args)]
            xv, wv, ov, n_c, cstride, x0, w0, n_valid, m_valid, outv, o0, ostride, bv, b0, relu, rv, has_res = args
            sx, sw, so, st, sb, sr = (signature.args[k] for k in (0, 1, 2, 9, 12, 15))
            xp, wp = _ptr(context, builder, sx, xv), _ptr(context, builder, sw, wv)
            op, tp = _ptr(context, builder, so, ov), _ptr(context, builder, st, outv)
            bp, rp = _ptr(context, builder, sb, bv), _ptr(context, builder, sr, rv)
            n_taps = context.make_array(so)(context, builder, ov).nitems
            i64, i32 = ir.IntType(64), ir.IntType(32)
            vec, mvec = ir.VectorType(ir.FloatType(), V), ir.VectorType(ir.IntType(1), V)
            fn = builder.module
            fma = cgutils.get_or_insert_function(fn, ir.FunctionType(vec, [vec] * 3), "llvm.fma.v16f32")
            mload = cgutils.get_or_insert_function(fn, ir.FunctionType(vec, [vec.as_pointer(), i32, mvec, vec]),
                                                   "llvm.masked.load.v16f32.p0")
            mstore = cgutils.get_or_insert_function(fn, ir.FunctionType(ir.VoidType(), [vec, vec.as_pointer(), i32, mvec]),
                                                    "llvm.masked.store.v16f32.p0")
            zero = ir.Constant(vec, [0.0] * V)

            def const(v):
                return ir.Constant(i64, v)

            # lane q of vector k is a position of the tile if k * 16 + q < n_valid: the last tile of
            # a plane reads and writes only those (masked loads and stores), never past the arrays
            lanes = ir.Constant(ir.VectorType(i64, V), list(range(V)))
            masks = [builder.icmp_signed("<", lanes, _splat(builder, builder.sub(n_valid, const(k * V)),
                                                             ir.VectorType(i64, V))) for k in range(NV)]
            sums = [[cgutils.alloca_once(builder, vec) for _ in range(NV)] for _ in range(MR)]
            for m in range(MR):                      # each sum starts at its channel's bias
                start = _splat(builder, builder.load(builder.gep(bp, [builder.add(b0, const(m))])), vec)
                for k in range(NV):
                    builder.store(start, sums[m][k])
            with cgutils.for_range(builder, n_taps) as taps:
                t = taps.index
                xt = builder.add(x0, builder.load(builder.gep(op, [t])))
                wt = builder.add(w0, builder.mul(builder.mul(t, n_c), const(MR)))
                with cgutils.for_range(builder, n_c) as chans:        # kept rolled (docstring)
                    c = chans.index
                    xc = builder.add(xt, builder.mul(c, cstride))
                    xs = [builder.call(mload, [builder.bitcast(builder.gep(xp, [builder.add(xc, const(k * V))]),
                                                               vec.as_pointer()), ir.Constant(i32, 4), masks[k], zero])
                          for k in range(NV)]
                    wc = builder.add(wt, builder.mul(c, const(MR)))
                    for m in range(MR):
                        b = _splat(builder, builder.load(builder.gep(wp, [builder.add(wc, const(m))])), vec)
                        for k in range(NV):
                            builder.store(builder.call(fma, [b, xs[k], builder.load(sums[m][k])]), sums[m][k])
            clip = builder.icmp_signed("!=", relu, const(0))
            add_res = builder.icmp_signed("!=", has_res, const(0))
            for m in range(MR):
                with builder.if_then(builder.icmp_signed("<", const(m), m_valid)):
                    row = builder.add(o0, builder.mul(ostride, const(m)))
                    for k in range(NV):
                        with builder.if_then(add_res):       # a residual, at the output's own index
                            at = builder.bitcast(builder.gep(rp, [builder.add(row, const(k * V))]), vec.as_pointer())
                            got = builder.call(mload, [at, ir.Constant(i32, 4), masks[k], zero])
                            builder.store(builder.fadd(builder.load(sums[m][k]), got), sums[m][k])
                        v = builder.load(sums[m][k])
                        below = builder.and_(builder.fcmp_ordered("<", v, zero), _splat(builder, clip, mvec))
                        v = builder.select(below, zero, v)
                        at = builder.bitcast(builder.gep(tp, [builder.add(row, const(k * V))]), vec.as_pointer())
                        builder.call(mstore, [v, at, ir.Constant(i32, 4), masks[k]])
            return context.get_dummy_value()
        return sig, codegen
    _tile.__name__ = _tile.__qualname__ = f"tile_{MR}x{NV * V}"
    return _tile


_tile = _tile_kernel(MR, NV)                      # 3x3 and larger kernels
_tile_pointwise = _tile_kernel(MR_POINTWISE, NV_POINTWISE)   # 1x1 kernels


def tile_rows(kh, kw, og=None, positions=None):
    """Output channels per tile for a kh x kw kernel with og output channels per group and
    `positions` output positions an image: MR_POINTWISE for a 1x1 kernel, unless its padded
    work, at the ~12% it runs faster, is more than MR's (ResNet's 2048 -> 512 at 7x7: 49
    positions are 2 strips of 48, one nearly empty: 0.46 vs 0.37 ms); else MR."""
    if kh * kw != 1:
        return MR
    if og is None or positions is None:
        return MR_POINTWISE

    def padded(rows, nv):
        return -(-og // rows) * rows * -(-positions // (nv * V)) * nv * V
    return MR_POINTWISE if padded(MR_POINTWISE, NV_POINTWISE) / 1.12 <= padded(MR, NV) else MR


def pack_weights(w, groups=1, rows=None):
    """w (O, C / groups, kh, kw) -> (groups, ceil(O / groups / rows), kh, kw, C / groups, rows)
    float32: each group's tiles of `rows` output channels (MR or MR_POINTWISE: tile_rows's by
    default), their weights in the order the micro-kernel reads them, a last tile's missing
    channels zero. Made once per compiled step for a constant weight (lower_conv.py)."""
    rows = rows or tile_rows(*w.shape[2:])
    o, c, kh, kw = w.shape
    og = o // groups
    ob = (og + rows - 1) // rows
    padded = np.zeros((groups, ob * rows, c, kh, kw), np.float32)
    padded[:, :og] = w.reshape(groups, og, c, kh, kw)
    return np.ascontiguousarray(padded.reshape(groups, ob, rows, c, kh, kw).transpose(0, 1, 4, 5, 3, 2))


def pack_bias(b, groups, rows):
    """A bias per output channel (O values) -> (groups, ceil(O / groups / rows) * rows) float32,
    each group's padded with zeros to whole tiles of `rows` channels, as _tile reads it."""
    b = np.asarray(b, np.float32).reshape(-1)
    og = b.size // groups
    ob = (og + rows - 1) // rows
    out = np.zeros((groups, ob * rows), np.float32)
    out[:, :og] = b.reshape(groups, og)
    return out.reshape(-1)


@njit(cache=True)
def _phases(x, sh, sw, pt, pl, hq, wq, slack):
    """x (C, H, W) zero-padded and split by stride phase: (C, sh, sw, hq, wq) flat, entry
    (c, a, b, y, x) = padded x[c, y * sh + a, x * sw + b], then `slack` zeros. A tap of a strided
    convolution reads one phase at stride 1 (at stride 1 there is one phase: the padded planes).
    On Numba's threads from COPY_PARALLEL_MIN entries."""
    c, h, w = x.shape
    xp = np.zeros(c * sh * sw * hq * wq + slack, x.dtype)
    if c * h * w >= COPY_PARALLEL_MIN:
        _phases_parallel(x, xp, sh, sw, pt, pl, hq, wq)
    else:
        for ch in range(c):
            _phase_channel(x, xp, ch, sh, sw, pt, pl, hq, wq)
    return xp


@njit(cache=True, parallel=True)
def _phases_parallel(x, xp, sh, sw, pt, pl, hq, wq):
    for ch in prange(x.shape[0]):
        _phase_channel(x, xp, ch, sh, sw, pt, pl, hq, wq)


@njit(inline="always")
def _phase_channel(x, xp, ch, sh, sw, pt, pl, hq, wq):
    h, w = x.shape[1], x.shape[2]
    u8 = np.uint64
    for y in range(h):
        py = y + pt
        a, yq = py % sh, py // sh
        src = x[ch, y]
        if sw == 1:
            at = u8(((ch * sh + a) * hq + yq) * wq + pl)
            for xx in range(u8(w)):
                xp[at + xx] = src[xx]
        else:                                    # phase b holds the columns xx + pl = b (mod sw)
            for b in range(sw):
                x0 = (b - pl) % sw                   # its first column of x
                at = u8((((ch * sh + a) * sw + b) * hq + yq) * wq + (x0 + pl) // sw)
                for q in range(u8((w - x0 + sw - 1) // sw if x0 < w else 0)):
                    xp[at + q] = src[u8(x0) + q * u8(sw)]


@njit(cache=True)
def split_strips(strips, ob):
    """(strips per chunk, chunks) for tiles of `ob` channel blocks x `strips` position strips:
    at least JOBS jobs of ob * chunks in all, and no empty chunk (19 strips in 16 chunks of 2
    had left 6 empty: one thread idle), so the threads get equal shares."""
    want = max(1, min(strips, (JOBS + ob - 1) // ob))
    per = (strips + want - 1) // want
    return per, (strips + per - 1) // per


@njit(cache=True, parallel=True)
def _tiles(xp, x_base, wflat, w_base, offs, c, plane, n_pos, o, wide, o_base, o_pitch, bias, b_base, relu, mr,
           res, has_res):
    """wide[o_base + q * o_pitch + v] for q < o, v < n_pos: output channel q at wide position v,
    from the c channels of xp from x_base, the weights of wflat from w_base (packed in tiles
    of mr channels) and the biases of bias from b_base (plus res at the same index if has_res,
    then relu'd if relu)."""
    nv = NV_POINTWISE if mr == MR_POINTWISE else NV
    ob = (o + mr - 1) // mr
    strips = (n_pos + nv * V - 1) // (nv * V)
    if offs.size == 1:
        # A 1x1 kernel's tiles run strip by strip, each strip's channel blocks in turn, split into
        # JOBS equal runs (prange gives each thread consecutive runs; get_num_threads here would
        # keep Numba from caching this): a strip's inputs (C x 48 floats) stay in cache while the
        # weights cycle.
        # Block by block (below) read the whole input once per block of 8 channels (3 MiB at 256
        # x 56 x 56); measured (ms, median of 60, two runs, ResNet's 1x1 layers, that vs this):
        # 256 -> 64 at 56x56 0.68-1.02 vs 0.52-0.58, 512 -> 256 at 28x28 1.27-1.88 vs 1.04-1.24,
        # 2048 -> 512 at 7x7 about the same.
        tiles = strips * ob
        runs = min(JOBS, tiles)
        for job in prange(runs):
            for t in range(job * tiles // runs, (job + 1) * tiles // runs):
                _strip_tile(xp, x_base, wflat, w_base, offs, c, plane, n_pos, o, wide, o_base, o_pitch, bias, b_base,
                            relu, mr, res, has_res, nv, t // ob, t % ob)
    else:
        per, chunks = split_strips(strips, ob)
        for job in prange(ob * chunks):
            g, k = job // chunks, job % chunks
            for s in range(k * per, min(strips, (k + 1) * per)):
                _strip_tile(xp, x_base, wflat, w_base, offs, c, plane, n_pos, o, wide, o_base, o_pitch, bias, b_base,
                            relu, mr, res, has_res, nv, s, g)


@njit(inline="always")
def _strip_tile(xp, x_base, wflat, w_base, offs, c, plane, n_pos, o, wide, o_base, o_pitch, bias, b_base, relu, mr,
                res, has_res, nv, s, g):
    """The tile of position strip s and channel block g (_tiles's arguments)."""
    v0 = s * nv * V
    x0, w0, at = x_base + v0, w_base + g * offs.size * c * mr, o_base + g * mr * o_pitch + v0
    n_valid, m_valid, b0 = min(nv * V, n_pos - v0), min(mr, o - g * mr), b_base + g * mr
    if mr == MR_POINTWISE:
        _tile_pointwise(xp, wflat, offs, c, plane, x0, w0, n_valid, m_valid, wide, at, o_pitch, bias, b0, relu,
                        res, has_res)
    else:
        _tile(xp, wflat, offs, c, plane, x0, w0, n_valid, m_valid, wide, at, o_pitch, bias, b0, relu, res, has_res)


@njit(cache=True)
def blocked_conv2d_into(x, wpk, out, sh, sw, pt, pb, pl, pr, dh, dw):
    """out (N, O, OH, OW) = conv2d(x (N, C, H, W), w), w packed by pack_weights (its groups)."""
    blocked_conv2d_bias_into(x, wpk, np.zeros(wpk.shape[0] * wpk.shape[1] * wpk.shape[5], np.float32), 0, out, 0, out,
                             sh, sw, pt, pb, pl, pr, dh, dw)


@njit(cache=True)
def blocked_conv2d_bias_into(x, wpk, bias, relu, res, has_res, out, sh, sw, pt, pb, pl, pr, dh, dw):
    """out = conv2d(x, w) + bias per output channel (+ res, of out's shape, if has_res: only
    where out is written in place, a 1x1 kernel without padding), then max(out, 0) if relu; bias
    as pack_bias packs it (its groups' tiles padded to wpk's channels per tile).
    Output position v = oh * wq + ow ("wide", as in conv_wide.py, at the pitch wq of a stride
    phase) reads, for tap (i, j), phase ((i * dh) % sh, (j * dw) % sw) of each channel at
    v + ((i * dh) // sh) * wq + (j * dw) // sw; the columns ow >= OW are junk, not kept."""
    n, c, h, wd = x.shape
    o, oh_n, ow_n = out.shape[1], out.shape[2], out.shape[3]
    groups, kh, kw, cg = wpk.shape[0], wpk.shape[2], wpk.shape[3], wpk.shape[4]
    og = o // groups
    pointwise = kh == 1 and kw == 1 and pt == 0 and pb == 0 and pl == 0 and pr == 0
    if pointwise:                    # a 1x1 kernel reads x as it is, or every (sh, sw)-th of it
        sh_, sw_, hq, wq = 1, 1, oh_n, ow_n
    else:
        sh_, sw_, hq, wq = sh, sw, (h + pt + pb + sh - 1) // sh, (wd + pl + pr + sw - 1) // sw
    offs = np.empty(kh * kw, np.int64)
    for i in range(kh):
        for j in range(kw):
            phase = ((i * dh) % sh_) * sw_ + (j * dw) % sw_
            offs[i * kw + j] = phase * hq * wq + ((i * dh) // sh_) * wq + (j * dw) // sw_
    wflat, oflat = wpk.reshape(wpk.size), out.reshape(out.size)
    plane, n_pos = sh_ * sw_ * hq * wq, oh_n * wq
    w_group = wpk.size // groups
    direct = wq == ow_n                              # no columns of junk: write out in place
    wide = oflat if direct else np.empty(o * n_pos, x.dtype)
    if has_res and not direct:
        raise ValueError("conv_blocked: a residual only where the output is written in place (a 1x1 kernel)")
    rflat = res.reshape(res.size)
    for b in range(n):
        if pointwise and sh == 1 and sw == 1:        # (the micro-kernel masks the last positions)
            xp = x[b].reshape(c * h * wd)
        elif pointwise:
            xp = _subsampled(x[b], sh, sw, oh_n, ow_n)
        else:
            xp = _phases(x[b], sh, sw, pt, pl, hq, wq, ((kw - 1) * dw) // sw + 1)   # junk columns read past the end
        base = b * o * n_pos if direct else 0
        for gi in range(groups):
            _tiles(xp, gi * cg * plane, wflat, gi * w_group, offs, cg, plane, n_pos, og, wide,
                   base + gi * og * n_pos, n_pos, bias, gi * wpk.shape[1] * wpk.shape[5], relu, wpk.shape[5], rflat,
                   has_res)
        if not direct:
            _unwide(wide, oflat, b, o, oh_n, ow_n, wq)


@njit(cache=True)
def _subsampled(x, sh, sw, oh_n, ow_n):
    """x[:, ::sh, ::sw] (the first oh_n x ow_n of it), flat."""
    c = x.shape[0]
    xs = np.empty(c * oh_n * ow_n, x.dtype)
    for ch in range(c):
        for y in range(oh_n):
            at = (ch * oh_n + y) * ow_n
            for xx in range(ow_n):
                xs[at + xx] = x[ch, y * sh, xx * sw]
    return xs


@njit(cache=True)
def _unwide(wide, oflat, b, o, oh_n, ow_n, wp):
    """out[b] = the wide output without its junk columns (on Numba's threads from
    COPY_PARALLEL_MIN entries)."""
    if o * oh_n * ow_n >= COPY_PARALLEL_MIN:
        _unwide_parallel(wide, oflat, b, o, oh_n, ow_n, wp)
    else:
        for q in range(o):
            _unwide_channel(wide, oflat, b, q, o, oh_n, ow_n, wp)


@njit(cache=True, parallel=True)
def _unwide_parallel(wide, oflat, b, o, oh_n, ow_n, wp):
    for q in prange(o):
        _unwide_channel(wide, oflat, b, q, o, oh_n, ow_n, wp)


@njit(inline="always")
def _unwide_channel(wide, oflat, b, q, o, oh_n, ow_n, wp):
    u8 = np.uint64
    for oh in range(oh_n):
        at, s0 = u8(((b * o + q) * oh_n + oh) * ow_n), u8(q * oh_n * wp + oh * wp)
        for ow in range(u8(ow_n)):
            oflat[at + ow] = wide[s0 + ow]
