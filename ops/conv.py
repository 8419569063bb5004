"""2-D convolution (NCHW activations, OIHW weights) and its two gradient ops.

    conv2d(x, w)                     y[n, o] = sum_c,i,j x_pad[n, c, s*h + d*i, s*w + d*j] * w[o, c, i, j]
    conv2d_grad_input(g, w)          dL/dx for y = conv2d(x, w), given g = dL/dy (the adjoint in x)
    conv2d_grad_weight(x, g)         dL/dw (the adjoint in w)

All three are bilinear, so each one's gradient is made of the other two (see the grad rules):
second-order gradients work. Attrs are canonical: stride and dilation pairs, padding as
explicit ((top, bottom), (left, right)) ("same" is resolved against the input size when the
node is built), groups; so two equal convolutions written differently hash-cons to one node.

The numpy reference is im2col: the padded input's windows (sliding_window_view, strided and
dilated), contracted with the weights per group by einsum, in float64 (exact enough to be the
oracle of the float32 backends) and cast back.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from graphc.core.errors import DTypeError, ShapeError
from graphc.core.types import FLOATS, TensorType, fmt_shape

from .base import Op, apply, register

# ---------------------------------------------------------------- attrs


def pair(value, what, op, minimum=1):
    """An int or a pair of ints (each >= minimum) as a pair of Python ints."""
    vals = (value, value) if isinstance(value, (int, np.integer)) else value
    try:
        vals = tuple(vals)
    except TypeError:
        vals = ()
    if len(vals) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in vals):
        raise ShapeError(f"{op}: {what} must be an int or a pair of ints, got {value!r}")
    if min(vals) < minimum:
        raise ShapeError(f"{op}: {what} must be >= {minimum}, got {value!r}")
    return int(vals[0]), int(vals[1])


def explicit_pads(padding, op):
    """p, (ph, pw) or ((top, bottom), (left, right)) as ((top, bottom), (left, right)), all >= 0."""
    if isinstance(padding, (int, np.integer)) or (
            isinstance(padding, (tuple, list)) and all(isinstance(p, (int, np.integer)) for p in padding)):
        ph, pw = pair(padding, "padding", op, minimum=0)
        return (ph, ph), (pw, pw)
    try:
        (t, b), (left, r) = padding
        return pair((t, b), "padding", op, 0), pair((left, r), "padding", op, 0)
    except (TypeError, ValueError):
        raise ShapeError(f"{op}: padding must be 'valid', 'same', an int, (ph, pw) or "
                         f"((top, bottom), (left, right)), got {padding!r}") from None


def same_pads(size, k, s, d):
    """TF/ONNX SAME_UPPER: output ceil(size / s); the odd pixel of padding goes at the end."""
    total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def conv_out(size, k, s, d, pads):
    """Output size along one axis (None if the input size is unknown)."""
    if size is None:
        return None
    return (size + pads[0] + pads[1] - d * (k - 1) - 1) // s + 1


def conv_attrs(op, x_hw, k_hw, stride, padding, dilation, groups):
    """The canonical attrs of a convolution of an input of spatial size x_hw with a k_hw kernel."""
    stride, dilation = pair(stride, "stride", op), pair(dilation, "dilation", op)
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1:
        raise ShapeError(f"{op}: groups must be a positive int, got {groups!r}")
    if isinstance(padding, str):
        if padding == "valid":
            pads = ((0, 0), (0, 0))
        elif padding == "same":
            pads = []
            for size, k, s, d in zip(x_hw, k_hw, stride, dilation):
                if size is None and s != 1:
                    raise ShapeError(f"{op}: padding='same' with stride {s} needs a known input size")
                pads.append(same_pads(size if size is not None else 1, k, s, d) if s != 1
                            else ((k - 1) * d // 2, (k - 1) * d - (k - 1) * d // 2))
            pads = tuple(pads)
        else:
            raise ShapeError(f"{op}: padding must be 'valid', 'same' or explicit ints, got {padding!r}")
    else:
        pads = explicit_pads(padding, op)
    return {"stride": stride, "padding": pads, "dilation": dilation, "groups": int(groups)}


def check_float(op, *types):
    for t in types:
        if t.dtype not in FLOATS:
            raise DTypeError(f"{op} needs float tensors, got {t.dtype}")
    if len({t.dtype for t in types}) > 1:
        raise DTypeError(f"{op} needs operands of one dtype, got {', '.join(str(t.dtype) for t in types)}; "
                         "cast one of them (gc.cast)")


def check_rank4(op, what, t):
    if t.ndim != 4:
        raise ShapeError(f"{op}: {what} must have rank 4 ({'NCHW' if what != 'weight' else 'OIHW'}), "
                         f"got {fmt_shape(t.shape)}")


def conv_shape(op, x, w, stride, padding, dilation, groups):
    """The output shape of conv2d for input shape x and weight shape w; checks channels and sizes."""
    n, c, h, wd = x
    o, cg, kh, kw = w
    if o % groups:
        raise ShapeError(f"{op}: groups={groups} does not divide the {o} output channels")
    if c is not None and (c % groups or c // groups != cg):
        raise ShapeError(f"{op}: the input has {c} channels; a weight {fmt_shape(w)} with groups={groups} "
                         f"needs {cg * groups}" + (f" (groups does not divide {c})" if c % groups else ""))
    out = [conv_out(size, k, s, d, p) for size, k, s, d, p in zip((h, wd), (kh, kw), stride, dilation, padding)]
    if any(v is not None and v < 1 for v in out):
        raise ShapeError(f"{op}: output size {tuple(out)} is not positive: input {fmt_shape(x)}, kernel "
                         f"{(kh, kw)}, stride {stride}, padding {padding}, dilation {dilation}")
    return (n, o, out[0], out[1])

# ---------------------------------------------------------------- the im2col reference


def patches(x, k_hw, stride, padding, dilation):
    """(N, C, OH, OW, kh, kw): the window of x_pad each output position reads (a view)."""
    (kh, kw), (sh, sw), (dh, dw) = k_hw, stride, dilation
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple(padding))
    win = sliding_window_view(xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    return win[:, :, ::sh, ::sw, ::dh, ::dw]


def conv2d_ref(x, w, stride, padding, dilation, groups):
    n, c = x.shape[:2]
    o, cg, kh, kw = w.shape
    cols = patches(x.astype(np.float64), (kh, kw), stride, padding, dilation)
    cols = cols.reshape((n, groups, cg) + cols.shape[2:])
    wg = w.astype(np.float64).reshape(groups, o // groups, cg, kh, kw)
    y = np.einsum("ngchwij,gocij->ngohw", cols, wg)
    return y.reshape(n, o, *y.shape[3:]).astype(x.dtype)


def grad_input_ref(g, w, input_size, stride, padding, dilation, groups):
    """The adjoint of conv2d in x: each output position's gradient spread back over its window."""
    n, o, oh, ow = g.shape
    _, cg, kh, kw = w.shape
    (sh, sw), (dh, dw), ((t, b), (left, r)) = stride, dilation, padding
    gg = g.astype(np.float64).reshape(n, groups, o // groups, oh, ow)
    wg = w.astype(np.float64).reshape(groups, o // groups, cg, kh, kw)
    cols = np.einsum("ngohw,gocij->ngchwij", gg, wg).reshape(n, groups * cg, oh, ow, kh, kw)
    h, wd = input_size
    xp = np.zeros((n, groups * cg, max(h + t + b, (oh - 1) * sh + (kh - 1) * dh + 1),
                   max(wd + left + r, (ow - 1) * sw + (kw - 1) * dw + 1)))
    for i in range(kh):
        for j in range(kw):
            xp[:, :, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw] += cols[..., i, j]
    return xp[:, :, t:t + h, left:left + wd].astype(g.dtype)


def grad_weight_ref(x, g, kernel_size, stride, padding, dilation, groups):
    n, c = x.shape[:2]
    o = g.shape[1]
    cols = patches(x.astype(np.float64), kernel_size, stride, padding, dilation)
    cols = cols.reshape((n, groups, c // groups) + cols.shape[2:])
    gg = g.astype(np.float64).reshape(n, groups, o // groups, *g.shape[2:])
    dw = np.einsum("ngchwij,ngohw->gocij", cols, gg)
    return dw.reshape(o, c // groups, *kernel_size).astype(x.dtype)

# ---------------------------------------------------------------- the ops


class ConvOp(Op):
    kind = "opaque"

    def label(self, node):
        return [(k, v) for k, v in node.attrs.items()]


@register
class Conv2D(ConvOp):
    name = "conv2d"

    def canonical(self, types, stride=1, padding="valid", dilation=1, groups=1):
        x, w = types
        check_rank4(self.name, "input", x)
        check_rank4(self.name, "weight", w)
        return conv_attrs(self.name, x.shape[2:], w.shape[2:], stride, padding, dilation, groups)

    def infer(self, types, stride, padding, dilation, groups):
        x, w = types
        check_float(self.name, x, w)
        if None in w.shape:
            raise ShapeError(f"conv2d: the weight's shape must be known, got {fmt_shape(w.shape)}")
        return TensorType(conv_shape(self.name, x.shape, w.shape, stride, padding, dilation, groups), x.dtype)

    def ref(self, x, w, **attrs):
        return conv2d_ref(x, w, **attrs)

    def grad(self, node, g):
        x, w = node.inputs
        if None in x.shape[2:]:
            raise ShapeError(f"the gradient of conv2d needs the input's spatial size, got {fmt_shape(x.shape)}")
        return [conv2d_grad_input(g, w, x.shape[2:], **node.attrs),
                conv2d_grad_weight(x, g, w.shape[2:], **node.attrs)]


@register
class Conv2DGradInput(ConvOp):
    """dL/dx of conv2d(x, w) for an x of spatial size input_size, given g = dL/dy."""
    name = "conv2d_grad_input"

    def canonical(self, types, input_size, stride=1, padding="valid", dilation=1, groups=1):
        g, w = types
        check_rank4(self.name, "gradient", g)
        check_rank4(self.name, "weight", w)
        size = pair(input_size, "input_size", self.name)
        return {"input_size": size, **conv_attrs(self.name, size, w.shape[2:], stride, padding, dilation, groups)}

    def infer(self, types, input_size, stride, padding, dilation, groups):
        g, w = types
        check_float(self.name, g, w)
        x = (g.shape[0], w.shape[1] * groups) + input_size
        y = conv_shape(self.name, x, w.shape, stride, padding, dilation, groups)
        if any(a is not None and a != b for a, b in zip(g.shape[1:], y[1:])):
            raise ShapeError(f"{self.name}: the gradient {fmt_shape(g.shape)} is not the shape of conv2d's "
                             f"output {fmt_shape(y)} for an input {fmt_shape(x)}")
        return TensorType(x, g.dtype)

    def ref(self, g, w, input_size, **attrs):
        return grad_input_ref(g, w, input_size, **attrs)

    def grad(self, node, G):
        g, w = node.inputs
        attrs = {k: v for k, v in node.attrs.items() if k != "input_size"}
        # <G, A_w^T g> = <A_w G, g>: linear in g through conv2d, in w through conv2d_grad_weight
        return [conv2d(G, w, **attrs), conv2d_grad_weight(G, g, w.shape[2:], **attrs)]


@register
class Conv2DGradWeight(ConvOp):
    """dL/dw of conv2d(x, w) for a w of spatial size kernel_size, given g = dL/dy."""
    name = "conv2d_grad_weight"

    def canonical(self, types, kernel_size, stride=1, padding="valid", dilation=1, groups=1):
        x, g = types
        check_rank4(self.name, "input", x)
        check_rank4(self.name, "gradient", g)
        k = pair(kernel_size, "kernel_size", self.name)
        return {"kernel_size": k, **conv_attrs(self.name, x.shape[2:], k, stride, padding, dilation, groups)}

    def infer(self, types, kernel_size, stride, padding, dilation, groups):
        x, g = types
        check_float(self.name, x, g)
        if x.shape[1] is None or g.shape[1] is None:
            raise ShapeError(f"{self.name}: the channel counts must be known, got {fmt_shape(x.shape)}, "
                             f"{fmt_shape(g.shape)}")
        if x.shape[1] % groups:
            raise ShapeError(f"{self.name}: groups={groups} does not divide the input's {x.shape[1]} channels")
        w = (g.shape[1], x.shape[1] // groups) + kernel_size
        y = conv_shape(self.name, x.shape, w, stride, padding, dilation, groups)
        if any(a is not None and b is not None and a != b for a, b in zip(g.shape, y)):
            raise ShapeError(f"{self.name}: the gradient {fmt_shape(g.shape)} is not the shape of conv2d's "
                             f"output {fmt_shape(y)} for an input {fmt_shape(x.shape)}")
        return TensorType(w, x.dtype)

    def ref(self, x, g, kernel_size, **attrs):
        return grad_weight_ref(x, g, kernel_size, **attrs)

    def grad(self, node, G):
        x, g = node.inputs
        attrs = {k: v for k, v in node.attrs.items() if k != "kernel_size"}
        if None in x.shape[2:]:
            raise ShapeError(f"the gradient of {self.name} needs the input's spatial size, got {fmt_shape(x.shape)}")
        # <G, dW(x, g)> = <conv2d(x, G), g>
        return [conv2d_grad_input(g, G, x.shape[2:], **attrs), conv2d(x, G, **attrs)]

# ---------------------------------------------------------------- user functions


def conv2d(x, w, stride=1, padding="valid", dilation=1, groups=1, name=None):
    """2-D cross-correlation of x (N, C, H, W) with w (O, C // groups, kh, kw), like
    torch.nn.functional.conv2d. padding: "valid", "same" (output ceil(H / stride), the odd
    pixel at the end), p, (ph, pw) or ((top, bottom), (left, right))."""
    return apply("conv2d", [x, w], name=name, stride=stride, padding=padding, dilation=dilation, groups=groups)


def conv2d_grad_input(g, w, input_size, stride=1, padding="valid", dilation=1, groups=1, name=None):
    """dL/dx of y = conv2d(x, w, ...) given g = dL/dy; input_size: x's (H, W)."""
    return apply("conv2d_grad_input", [g, w], name=name, input_size=input_size, stride=stride,
                 padding=padding, dilation=dilation, groups=groups)


def conv2d_grad_weight(x, g, kernel_size, stride=1, padding="valid", dilation=1, groups=1, name=None):
    """dL/dw of y = conv2d(x, w, ...) given g = dL/dy; kernel_size: w's (kh, kw)."""
    return apply("conv2d_grad_weight", [x, g], name=name, kernel_size=kernel_size, stride=stride,
                 padding=padding, dilation=dilation, groups=groups)
