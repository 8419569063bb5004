"""Direct convolution on channel-interleaved inputs: the micro-kernel's vectors run over 16
output channels, not 16 positions (conv_blocked.py's), the way onnxruntime's NCHWc kernels do.

conv_blocked.py broadcasts weights and loads 32 positions of one input channel: for a 3x3
kernel the input rows of a tile lie a plane apart for each channel and most loads straddle
two cache lines; it reached 270-310 GF/s on 2 cores for ResNet's 3x3 layers and lost 1/3 of
its work to padding where 14 output channels do not divide the layer's (DenseNet's 128 -> 32:
3 tiles = 42 channels). Here the input is first copied into blocks of 16 channels, each
position's 16 channels side by side ((C / 16, hq, wq, 16), zero-padded, split by stride phase
as in conv_blocked._phases); a tile holds NB = 2 vectors of 16 output channels x P = 12 (or
14, whichever pads a plane's positions less: 7x7 and 14x14 planes take 14) positions of sums
(24 or 28 zmm registers) and, for each tap and input channel, loads 2 weight vectors and
broadcasts P inputs, which lie in P consecutive 64-byte lines (2P FMAs to 2 loads and P
broadcasts). The sums are written out by scatter (16 channels of a position are a
plane apart in NCHW), with the per-channel bias they start from, a residual added and a relu.
Measured (ms, 2 threads, median of 60, the two taking turns in one process, bias included,
conv_blocked vs this): 3x3 64 -> 64 at 56x56 0.729 vs 0.591, 128 at 28x28 0.770 vs 0.588, 256
at 14x14 0.730 vs 0.612, 512 at 7x7 0.990 vs 0.751, DenseNet's 128 -> 32 at 56x56 0.890 vs
0.618 and at 14x14 0.070 vs 0.053, stride 2 128 at 56x56 0.992 vs 0.701; 48 -> 128 5x5 in 2
groups at 27x27 0.383 vs 0.404 (lost, a little); 64 -> 64 at 224x224 16.5 vs 17.6 (lost:
MAX_POSITIONS). The copy into blocks of 16 takes 0.05 ms of the 64 x 56 x 56 case.

Positions are "wide" (v = oh * wq + ow at the pitch of the padded phase, as in conv_blocked);
the junk columns ow >= OW are computed and not stored. Editing this file: clear Numba's caches
as conv_blocked.py says.
"""
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .conv_blocked import COPY_PARALLEL_MIN, V, _ptr, _splat, split_strips

NB = 2          # vectors of 16 output channels per tile
P_MAX = 14      # positions per tile: 12 or 14 (interleaved_conv2d_into picks)
CO = NB * V     # output channels per tile
CI = V          # input channels per block


# Larger planes stay with conv_blocked (VGG's 64 -> 64 at 224x224: 16.3 vs 17.1 ms; 128 -> 128
# at 112x112: 11.6 vs 8.9, this faster). A 224x224 plane is 49 x 4 KiB: the 16 lanes of each
# scatter then probably fall in one cache set (not measured further).
MAX_POSITIONS = 128 * 128


def fits(cg, og, kh, kw, positions=None):
    """Does this kernel take a convolution with cg input and og output channels per group, a
    kh x kw kernel and `positions` output positions an image: one larger than 1x1 (a 1x1 kernel
    reads its input in place in conv_blocked.py; here it would be copied), whose channels fill
    whole blocks (padding no more than 1/8 of the work), on a plane up to MAX_POSITIONS?"""
    if kh * kw == 1 or cg < CI or og < CO or positions is None or positions > MAX_POSITIONS:
        return False
    return -(-cg // CI) * CI <= 1.125 * cg and -(-og // CO) * CO <= 1.125 * og


def _tile_kernel(P):
    """The micro-kernel for tiles of CO output channels x P positions (an intrinsic)."""
    return intrinsic(_tile_ir(P))


def _tile_ir(P):
    def _tile(typingctx, x, w, offs, x0, w0, v0, n_pos, wq, ow_n, out, o0, plane, m_valid, bias, b0, relu, res, has_res):
        """Sums s[n][p] (n < NB, p < P) over taps t < len(offs) and lanes c < 16:
        w[w0 + (t * 16 + c) * CO + n * 16 + lane] * x[x0 + offs[t] + p * 16 + c], from
        bias[b0 + n * 16 + lane]; for position v = v0 + p < n_pos of column v % wq < ow_n,
        channel k = n * 16 + lane < m_valid: out[o0 + k * plane + (v // wq) * ow_n + v % wq] = the
        sum, plus res at the same index if has_res, then max(that, 0) if relu (nan stays nan)."""
        if not all(isinstance(a, types.Array) and a.ndim == 1 and a.dtype == types.float32 for a in (x, w, out, bias, res)):
            return None
        if not (isinstance(offs, types.Array) and offs.ndim == 1 and offs.dtype == types.int64):
            return None
        scalars = (x0, w0, v0, n_pos, wq, ow_n, o0, plane, m_valid, b0, relu, has_res)
        if not all(isinstance(a, (types.Integer, types.Boolean)) for a in scalars):
            return None
        sig = types.void(x, w, offs, x0, w0, v0, n_pos, wq, ow_n, out, o0, plane, m_valid, bias, b0, relu, res, has_res)

        def codegen(context, builder, signature, args):
            args = [context.cast(builder, v, t, types.int64) if isinstance(t, (types.Integer, types.Boolean)) else v
                    for v, t in zip(args, signature.args)]
            xv, wv, ov, x0, w0, v0, n_pos, wq, ow_n, outv, o0, plane, m_valid, bv, b0, relu, rv, has_res = args
            xp, wp, op, tp, bp, rp = (_ptr(context, builder, signature.args[k], a)
                                      for k, a in ((0, xv), (1, wv), (2, ov), (9, outv), (13, bv), (16, rv)))
            n_taps = context.make_array(signature.args[2])(context, builder, ov).nitems
            i64, i32, f32 = ir.IntType(64), ir.IntType(32), ir.FloatType()
            vec, ivec, mvec = ir.VectorType(f32, V), ir.VectorType(i64, V), ir.VectorType(ir.IntType(1), V)
            pvec = ir.VectorType(f32.as_pointer(), V)
            mod = builder.module
            fma = cgutils.get_or_insert_function(mod, ir.FunctionType(vec, [vec] * 3), "llvm.fma.v16f32")
            scatter = cgutils.get_or_insert_function(mod, ir.FunctionType(ir.VoidType(), [vec, pvec, i32, mvec]),
                                                     "llvm.masked.scatter.v16f32.v16p0")
            gather = cgutils.get_or_insert_function(mod, ir.FunctionType(vec, [pvec, i32, mvec, vec]),
                                                    "llvm.masked.gather.v16f32.v16p0")
            zero = ir.Constant(vec, [0.0] * V)

            def const(v):
                return ir.Constant(i64, v)

            def pointers(base, idx):
                """base + idx as a vector of pointers (llvmlite's gep takes no vector of indices)."""
                at = builder.add(_splat(builder, builder.ptrtoint(base, i64), ivec), builder.mul(idx, _splat(builder, const(4), ivec)))
                return builder.inttoptr(at, pvec)

            def vload(ptr, at):
                return builder.load(builder.bitcast(builder.gep(ptr, [at]), vec.as_pointer()), align=4)

            sums = [[cgutils.alloca_once(builder, vec) for _ in range(P)] for _ in range(NB)]
            for n in range(NB):
                start = vload(bp, builder.add(b0, const(n * V)))
                for p in range(P):
                    builder.store(start, sums[n][p])
            with cgutils.for_range(builder, n_taps) as taps:
                t = taps.index
                xt = builder.add(x0, builder.load(builder.gep(op, [t])))
                wt = builder.add(w0, builder.mul(t, const(CI * CO)))
                with cgutils.for_range(builder, const(CI)) as lanes:       # kept rolled, as conv_blocked's
                    c = lanes.index
                    ws = [vload(wp, builder.add(wt, builder.add(builder.mul(c, const(CO)), const(n * V)))) for n in range(NB)]
                    xc = builder.add(xt, c)
                    for p in range(P):
                        b = _splat(builder, builder.load(builder.gep(xp, [builder.add(xc, const(p * V))])), vec)
                        for n in range(NB):
                            builder.store(builder.call(fma, [b, ws[n], builder.load(sums[n][p])]), sums[n][p])
            # the store: channel n * 16 + lane of position v at out[o0 + channel * plane + row * ow_n + col]
            chans = [ir.Constant(ivec, list(range(n * V, n * V + V))) for n in range(NB)]
            cmask = [builder.icmp_signed("<", chans[n], _splat(builder, m_valid, ivec)) for n in range(NB)]
            lane_at = [builder.mul(chans[n], _splat(builder, plane, ivec)) for n in range(NB)]
            clip = builder.icmp_signed("!=", relu, const(0))
            add_res = builder.icmp_signed("!=", has_res, const(0))
            row, col = builder.sdiv(v0, wq), builder.srem(v0, wq)
            for p in range(P):
                v = builder.add(v0, const(p))
                keep = builder.and_(builder.icmp_signed("<", v, n_pos), builder.icmp_signed("<", col, ow_n))
                with builder.if_then(keep):
                    at = builder.add(o0, builder.add(builder.mul(row, ow_n), col))
                    for n in range(NB):
                        idx = builder.add(lane_at[n], _splat(builder, at, ivec))
                        value = cgutils.alloca_once_value(builder, builder.load(sums[n][p]))
                        with builder.if_then(add_res):
                            got = builder.call(gather, [pointers(rp, idx), ir.Constant(i32, 4), cmask[n], zero])
                            builder.store(builder.fadd(builder.load(value), got), value)
                        s = builder.load(value)
                        below = builder.and_(builder.fcmp_ordered("<", s, zero), _splat(builder, clip, mvec))
                        builder.call(scatter, [builder.select(below, zero, s), pointers(tp, idx), ir.Constant(i32, 4),
                                               cmask[n]])
                col = builder.add(col, const(1))            # the next position: (row, col + 1) or (row + 1, 0)
                wrap = builder.icmp_signed("==", col, wq)
                row = builder.select(wrap, builder.add(row, const(1)), row)
                col = builder.select(wrap, const(0), col)
            return context.get_dummy_value()
        return sig, codegen
    _tile.__name__ = _tile.__qualname__ = f"tile16_{CO}x{P}"
    return _tile


_tile12, _tile14 = _tile_kernel(12), _tile_kernel(14)


def pack_weights(w, groups=1):
    """w (O, C / groups, kh, kw) -> (groups, OB, CB, kh, kw, 16, CO) float32, OB = ceil(O /
    groups / CO), CB = ceil(C / groups / 16): for each tile of CO output channels, its weights
    tap by tap (input channel block, kernel row, column) and input channel by input channel,
    the CO output channels innermost, as _tile reads them; missing channels are zeros."""
    o, cg, kh, kw = w.shape
    og = o // groups
    ob, cb = -(-og // CO), -(-cg // CI)
    padded = np.zeros((groups, ob * CO, cb * CI, kh, kw), np.float32)
    padded[:, :og, :cg] = w.reshape(groups, og, cg, kh, kw)
    blocks = padded.reshape(groups, ob, CO, cb, CI, kh, kw)
    return np.ascontiguousarray(blocks.transpose(0, 1, 3, 5, 6, 4, 2))


def pack_bias(b, groups):
    """A bias per output channel -> (groups * OB * CO,) float32, each group's padded with zeros
    to whole tiles of CO channels."""
    b = np.asarray(b, np.float32).reshape(-1)
    og = b.size // groups
    out = np.zeros((groups, -(-og // CO) * CO), np.float32)
    out[:, :og] = b.reshape(groups, og)
    return out.reshape(-1)


@njit(cache=True)
def _interleave(x, cb_n, groups, sh, sw, pt, pl, hq, wq, slack):
    """x (C, H, W) -> flat (groups, cb_n, sh, sw, hq, wq, 16) + slack zeros: each group's
    channels in blocks of 16 (the last one padded with zeros), zero-padded, split by stride
    phase: entry (g, b, a, e, y, z, lane) = padded x[g * C / groups + b * 16 + lane,
    y * sh + a, z * sw + e]. On Numba's threads from COPY_PARALLEL_MIN entries."""
    xi = np.zeros(groups * cb_n * sh * sw * hq * wq * CI + slack, x.dtype)
    if x.size >= COPY_PARALLEL_MIN:
        _interleave_parallel(x, xi, cb_n, groups, sh, sw, pt, pl, hq, wq)
    else:
        for job in range(groups * cb_n * x.shape[1]):
            _interleave_row(x, xi, job, cb_n, groups, sh, sw, pt, pl, hq, wq)
    return xi


@njit(cache=True, parallel=True)
def _interleave_parallel(x, xi, cb_n, groups, sh, sw, pt, pl, hq, wq):
    for job in prange(groups * cb_n * x.shape[1]):
        _interleave_row(x, xi, job, cb_n, groups, sh, sw, pt, pl, hq, wq)


@njit(inline="always")
def _interleave_row(x, xi, job, cb_n, groups, sh, sw, pt, pl, hq, wq):
    """Row y of the 16 channels of block (g, b), job = (g * cb_n + b) * H + y: each position's 16
    channels read from their 16 planes, written side by side (a 64-byte line)."""
    c, h, w = x.shape
    cg = c // groups
    gb, y = job // h, job % h
    g, b = gb // cb_n, gb % cb_n
    first, lanes = g * cg + b * CI, min(CI, cg - b * CI)
    py = y + pt
    row = ((gb * sh + py % sh) * sw * hq + py // sh) * wq
    u8 = np.uint64
    xf, plane = x.reshape(x.size), u8(h * w)
    src = u8((first * h + y) * w)
    # A channel's row is read in order and written 16 floats apart (lines that stay in L1): measured
    # (ms, median of 60) 25-35% faster than 16 loads from 16 planes per position; with
    # per-element phase arithmetic a stride-2 copy of 128 x 56 x 56 had taken 0.96 of its conv's 1.71.
    for e in range(sw):                # column phase e holds the columns z with z + pl = e (mod sw)
        z0 = (e - pl) % sw
        at = u8((row + e * hq * wq + (z0 + pl) // sw) * CI)
        count = u8((w - z0 + sw - 1) // sw if z0 < w else 0)
        for lane in range(u8(lanes)):
            s0 = src + lane * plane + u8(z0)
            for k in range(count):
                xi[at + k * u8(CI) + lane] = xf[s0 + k * u8(sw)]


@njit(cache=True, parallel=True)
def _tiles(xi, x_base, wflat, w_base, offs, n_pos, wq, ow_n, o, out, o_base, plane, bias, b_base, relu, res, has_res, p):
    """Output channels q < o (of out from o_base) at wide positions v < n_pos, in tiles of CO
    channels x P positions on Numba's threads."""
    taps = offs.size
    ob = (o + CO - 1) // CO
    strips = (n_pos + p - 1) // p
    per, chunks = split_strips(strips, ob)
    for job in prange(ob * chunks):
        g, k = job // chunks, job % chunks
        for s in range(k * per, min(strips, (k + 1) * per)):
            v0 = s * p
            x0, w0, at, m_valid = x_base + v0 * CI, w_base + g * taps * CI * CO, o_base + g * CO * plane, min(CO, o - g * CO)
            if p == 12:
                _tile12(xi, wflat, offs, x0, w0, v0, n_pos, wq, ow_n, out, at, plane, m_valid, bias, b_base + g * CO, relu, res, has_res)
            else:
                _tile14(xi, wflat, offs, x0, w0, v0, n_pos, wq, ow_n, out, at, plane, m_valid, bias, b_base + g * CO, relu, res, has_res)


@njit(cache=True)
def interleaved_conv2d_into(x, wpk, bias, relu, res, has_res, out, sh, sw, pt, pb, pl, pr, dh, dw):
    """out (N, O, OH, OW) = conv2d(x (N, C, H, W), w) + bias per output channel (+ res, an
    array of out's shape, if has_res), then max(that, 0) if relu; w packed by pack_weights,
    bias by pack_bias. Tap (i, j) reads phase ((i * dh) % sh, (j * dw) % sw) of the padded input
    at ((i * dh) // sh, (j * dw) // sw) from the output position, as in conv_blocked."""
    n, c, h, wd = x.shape
    o, oh_n, ow_n = out.shape[1], out.shape[2], out.shape[3]
    groups, ob, cb_n, kh, kw = wpk.shape[0], wpk.shape[1], wpk.shape[2], wpk.shape[3], wpk.shape[4]
    og = o // groups
    hq, wq = (h + pt + pb + sh - 1) // sh, (wd + pl + pr + sw - 1) // sw
    phase_size = hq * wq * CI
    block_size = sh * sw * phase_size
    offs = np.empty(cb_n * kh * kw, np.int64)
    for b in range(cb_n):
        for i in range(kh):
            for j in range(kw):
                phase = ((i * dh) % sh) * sw + (j * dw) % sw
                offs[(b * kh + i) * kw + j] = (b * block_size + phase * phase_size
                                               + (((i * dh) // sh) * wq + (j * dw) // sw) * CI)
    wflat, oflat, rflat = wpk.reshape(wpk.size), out.reshape(out.size), res.reshape(res.size)
    n_pos, plane = oh_n * wq, oh_n * ow_n
    slack = (P_MAX + ((kw - 1) * dw) // sw + 1) * CI      # the last tile's junk positions read past the end
    w_group = wpk.size // groups
    p = 14 if (n_pos + 13) // 14 * 14 < (n_pos + 11) // 12 * 12 else 12    # the fewer padded positions
    for b in range(n):
        xi = _interleave(x[b], cb_n, groups, sh, sw, pt, pl, hq, wq, slack)
        for gi in range(groups):
            _tiles(xi, gi * cb_n * block_size, wflat, gi * w_group, offs, n_pos, wq, ow_n, og, oflat,
                   (b * o + gi * og) * plane, plane, bias, gi * ob * CO, relu, rflat, has_res, p)
