"""The scan bodies of the fuzzer's scan steps (graphc/tools/fuzz_ops_nn.py draws them): each a
lambda's source, which fuzz_ir.py both builds (build_scan) and prints (fmt_scan), so that a
printed program is the program. Apart from fuzz_ops_nn.py so that fuzz_ir.py can import it
(fuzz_ops_nn.py imports fuzz_ir.py).
"""
import graphc as gc

# name -> (the body's source, carries are a tuple, number of y_t (0: y_t is None), dtype kinds)
SCAN_BODIES = {
    "cumsum": ("lambda c, x: (c + x, c + x)", False, 1, "fiu"),
    "rnn": ("lambda h, x: (lambda n: (n, n))(gc.tanh(h @ {0} + x @ {1}))", False, 1, "f"),
    "pair": ("lambda c, x: ((c[1], gc.tanh(c[0] + c[1] * x)), (c[0] - c[1], c[0] * x))", True, 2, "f"),
    "decay": ("lambda c, x: (c * 0.5 + x, None)", False, 0, "f"),
}


def scan_fn(template, captured):
    """The body function of a scan step: its template's source, reading the captured nodes."""
    source = SCAN_BODIES[template][0].format(*[f"w[{k}]" for k in range(len(captured))])
    return eval(source, {"gc": gc, "w": list(captured)})         # noqa: S307 -- our own template table


def build_scan(args, kwargs):
    """gc.scan of a scan step's resolved args: its results, flattened (finals, then ys)."""
    template, init, xs, captured = args
    _, is_tuple, n_y, _ = SCAN_BODIES[template]
    final, ys = gc.scan(scan_fn(template, captured), tuple(init) if is_tuple else init[0], xs[0], **kwargs)
    out = list(final) if is_tuple else [final]
    return out + ([] if ys is None else list(ys) if isinstance(ys, tuple) else [ys])


def fmt_scan(step, fmt_value):
    template, init, xs, captured = step.args
    _, is_tuple, n_y, _ = SCAN_BODIES[template]
    source = SCAN_BODIES[template][0].format(*[c.name for c in captured])
    n_c = len(step.outs) - n_y
    lhs = [f"({', '.join(step.outs[:n_c])})" if is_tuple else step.outs[0]]
    lhs.append("_" if n_y == 0 else step.outs[n_c] if n_y == 1 else f"({', '.join(step.outs[n_c:])})")
    init_s = fmt_value(tuple(init)) if is_tuple else fmt_value(init[0])
    kw = "".join(f", {k}={fmt_value(v)}" for k, v in step.kwargs.items())
    return f"{', '.join(lhs)} = gc.scan({source}, {init_s}, {fmt_value(xs[0])}{kw})"
