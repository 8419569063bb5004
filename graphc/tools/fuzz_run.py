"""Running fuzz programs: the interpreter (the oracle) one program at a time, the backend under
test on a batch of programs at once, and the verdict for each program.

Why batches: a Numba compile costs ~0.3 s per distinct kernel plus ~1 s per module, and a
module is generated per function and shape signature. Building one function whose outputs are
the outputs of K independent programs (and whose inputs and updates are theirs, names prefixed
g<k>_) compiles K programs in one module, and equal kernels of different programs are compiled
once. If the batch raises, it is bisected until the programs that raise alone are found (a
program that only fails inside a batch is reported with its batch). Programs without a None axis
have the same shape signature at both calls, so they are batched apart from the others: one
compile for both calls.
"""
import re
import traceback
import warnings
from dataclasses import dataclass, field

import numpy as np

import graphc as gc
from graphc.core.graph import ancestors
from graphc.core.types import TensorType

from .fuzz_check import (DOCUMENTED_GRAD_LIMITS, SIGN_LOOSE, check_gradient, differ, float_dtypes, tolerance,
                         unstable, upstream_scale)
from .fuzz_gen import generate
from .fuzz_ir import V, build, feeds


@dataclass
class Outcome:
    """The verdict on one program: kind is ok | rejected | mismatch | crash | unstable."""
    seed: int
    kind: str
    where: str = ""        # build | interp | <backend> | <output name> | update of <var> | grad
    detail: str = ""
    known: str = ""        # the known defect this looks like (fuzz_gen.KNOWN_DEFECTS), if any
    notes: list = field(default_factory=list)


@dataclass
class Oracle:
    """The interpreter's results: per call, {name: value} of every result; the variables after
    the second call, and after the first."""
    calls: list
    variables: list
    types: dict
    after_first: list = field(default_factory=list)


def _err(e):
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def _tensor_names(prog, env):
    """The results the outputs and updates need (only those: a dead step must not run; and as the
    graph has them: gc.size of a known shape is a constant that reads nothing), tensors only."""
    roots = [env[o] for o in prog.outputs] + [env[n] for u in prog.updates for n in u]
    needed = {id(n) for n in ancestors(roots)}
    return [o for s in prog.steps for o in s.outs
            if id(env[o]) in needed and isinstance(env[o].type, TensorType)]


def run_interp(prog):
    """The oracle: prog built alone, every result an output, called at both sizes."""
    with gc.Graph(f"fuzz{prog.seed}"):
        env, inputs, outputs, updates = build(prog)
        names = list(dict.fromkeys(prog.outputs + _tensor_names(prog, env)))
        f = gc.function(inputs, [env[n] for n in names], updates)
    calls, after_first = [], None
    for call in (0, 1):
        calls.append(dict(zip(names, f(*feeds(prog, call)))))
        after_first = after_first or [np.array(gc.get_value(env[v])) for v, _ in prog.updates]
    types = {n: env[n].dtype for n in _tensor_names(prog, env)}
    return Oracle(calls, [np.array(gc.get_value(env[v])) for v, _ in prog.updates], types, after_first)


def run_batch_backend(progs, backend):
    """All programs in one function of the backend under test: per program, (outputs of each call,
    variables after the second call, variables after the first)."""
    with gc.Graph("fuzz_batch"):
        parts = [build(p, prefix=f"g{k}_") for k, p in enumerate(progs)]
        inputs = [x for _, xs, _, _ in parts for x in xs]
        outputs = [o for _, _, os_, _ in parts for o in os_]
        updates = {v: x for _, _, _, u in parts for v, x in u.items()}
        if backend == "interp":           # the optimized interpreter: the passes without Numba
            f = gc.function(inputs, outputs, updates, backend="interp", optimize=True)
        else:
            f = gc.function(inputs, outputs, updates, backend=backend)
    got, first = [], []
    for call in (0, 1):
        got.append(f(*[a for p in progs for a in feeds(p, call)]))
        first = first or [[np.array(gc.get_value(v)) for v in upd] for *_, upd in parts]
    results, k = [], 0
    for p, (env, _, _, upd), after_first in zip(progs, parts, first):
        n = len(p.outputs)
        results.append(([got[0][k:k + n], got[1][k:k + n]], [np.array(gc.get_value(v)) for v in upd],
                        after_first))
        k += n
    return results


def compare(prog, oracle, calls, variables, after_first=(), signed_zeros=True):
    """None, or (where, why, unstable-why) for the first output or variable that differs, in the
    order they were computed: a variable that differs after the first call is reported there (an
    unstable update would otherwise show as a plain mismatch of the second call's outputs)."""
    checks = [(f"{o} (call 1)", o, calls[0][j], oracle.calls[0][o], 0) for j, o in enumerate(prog.outputs)]
    checks += [(f"update of {v} (call 1)", x, got, want, 0)
               for (v, x), got, want in zip(prog.updates, after_first, oracle.after_first)]
    checks += [(f"{o} (call 2)", o, calls[1][j], oracle.calls[1][o], 1) for j, o in enumerate(prog.outputs)]
    checks += [(f"update of {v}", x, got, want, 1)
               for (v, x), got, want in zip(prog.updates, variables, oracle.variables)]
    drifted = set()            # variables a rounding-level difference after call 1 carries into call 2
    for where, name, got, want, c in checks:
        rtol = tolerance(prog, oracle.types, name)
        why = differ(got, want, rtol, signed_zeros=signed_zeros)
        if why is None:
            continue
        _, upstream = float_dtypes(prog, oracle.types, name)
        if why.startswith("value") and differ(got, want, rtol, upstream_scale(oracle.calls[c], upstream),
                                              signed_zeros) is None:
            if where.startswith("update of") and c == 0:
                drifted.add(where.split()[2])
            continue           # within rounding of the magnitudes upstream
        if c == 1 and drifted & upstream:
            return where, why, f"reads {', '.join(sorted(drifted & upstream))}, which differed within rounding " \
                               "of large values after call 1"
        if why.startswith("sign of zero"):
            loose = sorted({prog.op_of(n) for n in upstream} & SIGN_LOOSE)
            return where, why, f"the sign of a zero from {', '.join(loose)} is not defined" if loose else None
        return where, why, unstable(prog, oracle.types, oracle.calls[c], upstream, rtol)
    return None


def guess_known(prog, outcome):
    """Which known defect a failure looks like ('' if none): only a label for the report."""
    from .fuzz_ir import refs
    with gc.Graph("probe"):
        try:
            env, *_ = build(prog)
        except Exception:                     # noqa: BLE001
            env = {}
    dt = {n: getattr(v, "dtype", None) for n, v in env.items()}
    steps, d, where = prog.step_of(), outcome.detail, outcome.where
    ops = {prog.op_of(o): s for s in prog.steps for o in s.outs}

    def kinds(name):
        return "".join(dt[i].kind for i in refs(steps[name].args) if dt.get(i) is not None)

    powers = [s.outs[0] for s in prog.steps if prog.op_of(s.outs[0]) == "power" and s.outs[0] in dt]
    ints = re.search(r"got (np\.\w+\()?(-?\d+|np\.True_|np\.False_)\)?, want", d)     # an int or bool result differs
    # messages first: they name the defect; then the shapes of the program
    if "'TupleType' object has no attribute 'size'" in d:
        return "split_of_constant"
    if "must hold ints, got (" in d and "None" in d and "split" in ops:
        return "grad_split_none"
    if outcome.kind == "crash" and re.search(r"KeyError: <Node \S+: variable", d):
        return "unread_var_update"
    if "negative integer powers" in d or (ints and any(kinds(p) in ("ii", "i") for p in powers)):
        return "int_pow_neg"
    if "expects shape ()" in d or any(s.fn == "placeholder" and s.args[0] == () for s in prog.steps) and \
            outcome.kind == "crash" and "shape" in d:
        return "zero_d_feed"
    if d.startswith("sign of zero"):
        return "sign_neg_zero" if "sign" in ops else "neg_zero"
    if where.startswith("update of") and where.split()[2] not in {n for s in prog.steps for n in refs(s.args)}:
        return "unread_var_update"
    if {"softmax", "log_softmax"} & set(ops) and ("size 0" in d or 0 in prog.sizes):
        return "softmax_size0"
    if outcome.kind == "crash" and any(s.fn == "getitem" and env.get(s.args[0].name) is not None
                                       and env[s.args[0].name].ndim == 0 for s in prog.steps):
        return "zero_d_index"
    if "wrap" in prog.edges and ints and any(v == np.int32 for v in dt.values()):
        return "int_wrap"
    if where == "grad" and any(kinds(p).startswith("i") and "f" in kinds(p) for p in powers):
        return "grad_int_pow_float"
    if outcome.kind == "mismatch" and ints and {"argmax", "argmin"} & set(ops):
        return "argreduce_size1"
    if any(_constant_base(prog, env, s) for s in prog.steps):
        return "neg_literal_pow"
    return ""


def _constant_base(prog, env, step):
    """Is step a power whose base is a negative constant (a literal in generated code)?"""
    if prog.op_of(step.outs[0]) != "power":
        return False
    base = step.args[1] if step.fn == "binop" else step.args[0]
    if not isinstance(base, V):
        return base < 0
    node = env.get(base.name)
    return node is not None and node.op.name == "constant" and bool(np.any(node.attrs["value"] < 0))


def label(backend):
    """How reports name the backend under test."""
    return "interp+passes" if backend == "interp" else backend


@dataclass
class Options:
    backend: str = "cpu"
    avoid: tuple = ()
    grad: bool = True
    signed_zeros: bool = True


def check_seeds(seeds, opts):
    """Generate, run and judge the programs of these seeds: a list of Outcomes."""
    return check_programs([generate(seed, opts.avoid) for seed in seeds], opts)


def check_programs(progs, opts):
    """Run and judge these programs (the backend gets them as one batch): a list of Outcomes."""
    warnings.simplefilter("ignore")
    outcomes, ready = {}, []
    with np.errstate(all="ignore"):
        for prog in progs:
            seed = prog.seed
            if prog.rejected:
                outcomes[seed] = Outcome(seed, "rejected", "build", prog.rejected)
                continue
            if prog.crashed:
                outcomes[seed] = Outcome(seed, "crash", "build", prog.crashed)
                continue
            try:
                oracle = run_interp(prog)
            except gc.GraphError as e:        # the backend must refuse it too
                outcomes[seed] = _alone_raises(prog, e, opts)
                continue
            except Exception as e:            # noqa: BLE001
                outcomes[seed] = Outcome(seed, "crash", "interp", _err(e) + "\n" + _tb(e))
                continue
            outcomes[seed] = Outcome(seed, "ok")
            if opts.grad:
                _grad(prog, outcomes[seed])
            ready.append((prog, oracle))
        # a program without None axes has one shape signature for both calls: one compile; the
        # others are compiled again for the second size, so they go into a batch of their own
        dynamic = [(p, o) for p, o in ready if any(None in s.args[0] for s in p.steps if s.fn == "placeholder")]
        _judge_batch([r for r in ready if r not in dynamic], outcomes, opts)
        _judge_batch(dynamic, outcomes, opts)
    for prog in progs:
        o = outcomes[prog.seed]
        if o.kind in ("mismatch", "crash"):
            o.known = guess_known(prog, o)
    return [outcomes[p.seed] for p in progs]


def _tb(e):
    return "".join(traceback.format_exception(e)[-4:])


def _grad(prog, outcome):
    floats = [o for o in prog.outputs if prog.step_of()[o].fn != "grad"]
    rng = np.random.default_rng([prog.seed, 7])
    try:
        with gc.Graph("probe"):
            env, *_ = build(prog)
        floats = [o for o in floats if env[o].dtype.kind == "f"]
        if not floats:
            return
        why = check_gradient(prog, floats[rng.integers(len(floats))], rng)
    except gc.GraphError as e:
        if any(limit in str(e) for limit in DOCUMENTED_GRAD_LIMITS):
            outcome.notes.append(f"gradient not built: {_err(e)}")
        else:
            outcome.kind, outcome.where, outcome.detail = "mismatch", "grad", f"gc.grad refuses: {_err(e)}"
        return
    except Exception as e:                    # noqa: BLE001
        outcome.kind, outcome.where, outcome.detail = "crash", "grad", _err(e) + "\n" + _tb(e)
        return
    if why:
        kind, why = why
        outcome.kind, outcome.where, outcome.detail = kind, "grad", why


def _alone_raises(prog, error, opts):
    try:
        run_batch_backend([prog], opts.backend)
    except gc.GraphError:
        return Outcome(prog.seed, "ok", notes=[f"both raise: {_err(error)}"])
    except Exception as e:                    # noqa: BLE001
        return Outcome(prog.seed, "crash", label(opts.backend),
                       f"interp raises {_err(error)}; {label(opts.backend)} raises {_err(e)}\n{_tb(e)}")
    return Outcome(prog.seed, "mismatch", label(opts.backend),
                   f"interp raises {_err(error)}; {label(opts.backend)} does not")


def _judge_batch(ready, outcomes, opts):
    if not ready:
        return
    progs = [p for p, _ in ready]
    try:
        results = run_batch_backend(progs, opts.backend)
    except Exception as e:                    # noqa: BLE001
        if len(ready) == 1:
            p = progs[0]
            kind = "crash" if not isinstance(e, gc.GraphError) else "mismatch"
            outcomes[p.seed] = Outcome(p.seed, kind, label(opts.backend),
                                       f"{label(opts.backend)} raises {_err(e)} (interp does not)\n{_tb(e)}")
            return
        # quarters, not halves: each part is compiled again, and a quarter narrows faster per kernel
        k = -(-len(ready) // 4)
        for part in range(0, len(ready), k):
            _judge_batch(ready[part:part + k], outcomes, opts)
        if all(outcomes[p.seed].kind not in ("crash", "mismatch") for p in progs):
            for p in progs:                   # fails together, not alone: report the batch
                outcomes[p.seed] = Outcome(p.seed, "crash", label(opts.backend),
                                           f"a batch of seeds {[q.seed for q in progs]} raises {_err(e)}, "
                                           "none alone")
        return
    for (prog, oracle), (calls, variables, after_first) in zip(ready, results):
        found = compare(prog, oracle, calls, variables, after_first, opts.signed_zeros)
        if found is None or outcomes[prog.seed].kind != "ok":
            continue
        where, why, excuse = found
        outcomes[prog.seed] = Outcome(prog.seed, "unstable" if excuse else "mismatch", where, why,
                                      notes=[excuse] if excuse else [])
