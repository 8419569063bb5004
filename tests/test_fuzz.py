"""The differential fuzzer (graphc/tools/fuzz*.py) and its fast subset.

(a) The generator: deterministic per seed, reaches every op of the registry and every dtype,
    and the features the fuzzer promises (None axes fed two sizes, negative steps, None and
    Ellipsis in keys, several and negative reduction axes, gradients, updates, outputs that
    other outputs read).
(b) The printed program is the program: exec'ing `--replay`'s code builds graphs that give the
    interpreter's results.
(c) The judge: the comparison catches wrong values, dtypes, shapes and signs of zero and accepts
    rounding; a backend that returns one wrong value, or raises, fails exactly that program;
    the command's exit code is 1 then.
(d) The fast subset: fixed seeds on the CPU backend (two batched compiles) and on the
    optimizing interpreter, with the known defects' triggers left out (fuzz_gen.KNOWN_DEFECTS:
    each is being fixed elsewhere; `graphc fuzz` without --avoid-known finds them).
"""
import numpy as np
import pytest

import graphc as gc
from graphc.core.graph import ancestors
from graphc.ops import REGISTRY
from graphc.tools import fuzz, fuzz_run
from graphc.tools.cli import main as cli_main
from graphc.tools.fuzz_check import differ
from graphc.tools.fuzz_gen import KNOWN_DEFECTS, generate
from graphc.tools.fuzz_ir import build, feeds, to_python
from graphc.tools.fuzz_run import Options, check_programs, check_seeds, run_interp

AVOID = tuple(KNOWN_DEFECTS)


def valid(seeds, avoid=()):
    return [p for p in (generate(s, avoid) for s in seeds) if not (p.rejected or p.crashed)]

# ====================================================================== (a) the generator


def test_a_seed_gives_one_program():
    for seed in (0, 7, 123456):
        assert to_python(generate(seed)) == to_python(generate(seed))
    assert to_python(generate(1)) != to_python(generate(2))


def test_generator_reaches_every_op_and_dtype():
    ops, dtypes, features = set(), set(), set()
    progs = valid(range(600))
    assert len(progs) > 540                       # few rejected: the generator aims at valid graphs
    for p in progs:
        with gc.Graph():
            env, inputs, outputs, updates = build(p)
            ops |= {n.op.name for n in ancestors(outputs + list(updates.values()))}
        dtypes |= {s.args[1] for s in p.steps if s.fn == "placeholder"}
        for s in p.steps:
            if s.fn == "placeholder" and None in s.args[0]:
                features.add("None axis")
            if s.fn == "getitem":
                key = s.args[1] if isinstance(s.args[1], tuple) else (s.args[1],)
                features |= {"None key" for k in key if k is None} | {"... key" for k in key if k is Ellipsis}
                features |= {"negative step" for k in key if isinstance(k, slice) and (k.step or 1) < 0}
            axis = s.kwargs.get("axis")
            if isinstance(axis, tuple) and len(axis) > 1 and min(axis) < 0:
                features.add("several axes, some negative")
            if s.kwargs.get("keepdims"):
                features.add("keepdims")
            if s.fn == "grad":
                features.add("grad")
        if p.updates:
            features.add("update")
        if any(o in {n for s in p.steps for n in _refs(s)} for o in p.outputs):
            features.add("an output another result reads")
        if p.sizes[0] != p.sizes[1]:
            features.add("two sizes")
    assert set(REGISTRY) - ops <= {"fused"}, set(REGISTRY) - ops - {"fused"}     # fused: made by the passes
    assert dtypes == {np.dtype(d) for d in ("float32", "float64", "int32", "int64", "bool")}
    assert features == {"None axis", "None key", "... key", "negative step", "several axes, some negative",
                        "keepdims", "grad", "update", "an output another result reads", "two sizes"}


def _refs(step):
    from graphc.tools.fuzz_ir import refs
    return refs(step.args)


def test_avoiding_the_known_defects_leaves_out_their_triggers():
    for p in valid(range(300), AVOID):
        assert "wrap" not in p.edges and "negzero" not in p.edges
        for s in p.steps:
            assert not (s.fn == "placeholder" and s.args[0] == ())           # 0-d feeds
        for w, x in p.updates:                                              # every updated variable is read
            assert any(w in _refs(s) for s in p.steps)

# ====================================================================== (b) the printed program


@pytest.mark.parametrize("seed", [3, 11, 20, 42])
def test_the_printed_program_is_the_program(seed):
    prog = generate(seed)
    assert not prog.rejected
    code = to_python(prog)
    assert "def build():" in code and "if __name__ == '__main__':" in code
    namespace = {}
    exec(compile(code, f"<replay {seed}>", "exec"), namespace)             # noqa: S102
    oracle = run_interp(prog)
    inputs, outputs, updates = namespace["build"]()
    f = gc.function(inputs, outputs, updates)
    with np.errstate(all="ignore"):
        for call, args in enumerate(namespace["calls"]):
            for a, b in zip(args, feeds(prog, call)):
                np.testing.assert_array_equal(a, b)
            for got, name in zip(f(*args), prog.outputs):
                assert differ(got, oracle.calls[call][name], 0.0) is None, name

# ====================================================================== (c) the judge


def test_differ_tells_values_apart():
    f32 = np.float32
    assert differ(np.array([1.0, np.nan], f32), np.array([1.0 + 1e-6, np.nan], f32), 2e-4) is None
    assert differ(np.array([1.0], f32), np.array([1.01], f32), 2e-4).startswith("value")
    assert differ(np.array([np.nan], f32), np.array([1.0], f32), 2e-4)
    assert differ(np.array([np.inf], f32), np.array([-np.inf], f32), 2e-4)
    assert differ(np.array([np.inf], f32), np.array([np.inf], f32), 2e-4) is None
    assert differ(np.array([-0.0], f32), np.array([0.0], f32), 2e-4).startswith("sign of zero")
    assert differ(np.array([-0.0], f32), np.array([0.0], f32), 2e-4, signed_zeros=False) is None
    assert differ(np.array([3], np.int32), np.array([3], np.int64), 0.0).startswith("got int32")
    assert differ(np.zeros((2, 1)), np.zeros((1, 2)), 0.0)
    assert differ(np.array([2 ** 31 - 1], np.int32), np.array([-2 ** 31], np.int32), 0.0)
    assert differ(np.array([True]), np.array([True]), 0.0) is None
    # a cancelling float32 sum is compared at the scale of its terms, not its result
    assert differ(np.array([1e-3], f32), np.array([0.0], f32), 2e-4, scale=100.0) is None


def test_the_oracle_runs_only_what_the_outputs_need():
    """gc.size of a known shape is a constant: x ** x, which raises for x = -1, never runs."""
    from graphc.tools.fuzz_ir import Program, Step, V
    i32 = np.dtype(np.int32)
    prog = Program(0, (2, 3), [Step(("x0",), "placeholder", ((), i32)), Step(("t0",), "power", (V("x0"), V("x0"))),
                               Step(("t1",), "size", (V("t0"),), {"dtype": "int32"})], ["t1"],
                   fixed={"x0": [np.array(-1, i32), np.array(-2, i32)]})
    oracle = run_interp(prog)
    assert oracle.calls[0]["t1"] == 1 and "t0" not in oracle.calls[0]


def test_a_variable_updated_from_float32_values_carries_float32_rounding():
    """Seed 31000481: a float64 variable updated by the sum of a float32 convolution; at the
    second call a float64 output read that variable and was judged at float64 tolerance."""
    from graphc.tools.fuzz_check import float_dtypes
    from graphc.tools.fuzz_ir import Program, Step, V
    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    prog = Program(0, (2, 3), [Step(("x0",), "placeholder", ((2,), f32)),
                               Step(("w0",), "variable", (np.zeros(2),)),
                               Step(("t0",), "cast", (V("x0"), f64)),
                               Step(("t1",), "add", (V("w0"), V("t0"))),
                               Step(("t2",), "multiply", (V("w0"), 2.0))], ["t2"], [("w0", "t1")])
    types = {"x0": f32, "w0": f64, "t0": f64, "t1": f64, "t2": f64}
    dts, upstream = float_dtypes(prog, types, "t2")
    assert dts == {f32, f64} and "x0" in upstream


def _corrupt(seed_to_break, how):
    real = fuzz_run.run_batch_backend

    def backend(progs, name):
        if how == "raise" and any(p.seed == seed_to_break for p in progs):
            raise RuntimeError("a broken kernel")
        results = real(progs, name)
        for p, (calls, *_) in zip(progs, results):
            if p.seed == seed_to_break and how == "value":
                calls[0][0] = np.asarray(calls[0][0]).copy()
                flat = calls[0][0].reshape(-1)
                flat[0] = (flat[0] + 1) if flat.dtype != np.bool_ else ~flat[0]
        return results
    return backend


@pytest.mark.parametrize("how", ["value", "raise"])
def test_a_wrong_backend_fails_exactly_its_program(monkeypatch, how):
    progs = valid(range(500, 540), AVOID)
    victim = next(p for p in progs if np.asarray(run_interp(p).calls[0][p.outputs[0]]).size)
    monkeypatch.setattr(fuzz_run, "run_batch_backend", _corrupt(victim.seed, how))
    outcomes = check_programs(progs, Options(backend="interp", avoid=AVOID))
    bad = {o.seed: o for o in outcomes if o.kind in ("mismatch", "crash")}
    assert list(bad) == [victim.seed], [fuzz.describe(o) for o in bad.values()]
    assert bad[victim.seed].kind == ("mismatch" if how == "value" else "crash")


def test_the_command_fails_and_names_the_seed(monkeypatch, capsys):
    monkeypatch.setattr(fuzz_run, "run_batch_backend", _corrupt(17, "raise"))
    code = cli_main(["fuzz", "--graphs", "30", "--backend", "interp", "--jobs", "1", "--avoid-known"])
    out = capsys.readouterr().out
    assert code == 1
    assert "seed 17: crash" in out and "graphc fuzz --replay 17 --backend interp --avoid-known" in out
    assert "graphs 30," in out and "crashes 1" in out and "failing seeds:" in out


def test_replay_prints_the_program_and_both_results(capsys):
    o = fuzz.replay(5, backend="interp", avoid=AVOID)
    out = capsys.readouterr().out
    assert "def build():   # graphc fuzz --replay 5" in out
    assert "# interp call 1:" in out and "# interp+passes call 2:" in out
    assert f"# verdict: seed 5: {o.kind}" in out


def test_graphc_passes_names_the_workloads(capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["passes", "W9"])
    assert e.value.code == 2
    assert "unknown workload 'W9'; choose one of W1, W2, W3, W4" in capsys.readouterr().err

# ====================================================================== (d) the fast subset


def _assert_clean(outcomes):
    failures = [fuzz.describe(o) for o in outcomes if o.kind in ("mismatch", "crash")]
    assert not failures, "\n".join(failures)
    assert sum(o.kind == "ok" for o in outcomes) >= 0.85 * len(outcomes)


def test_fast_subset_interp_with_passes():
    _assert_clean(check_seeds(range(10_000, 10_300), Options(backend="interp", avoid=AVOID,
                                                               signed_zeros=False)))


def test_fast_subset_cpu():
    """Two compiles (programs without a None axis, then the others); the kernel cache makes a rerun fast."""
    _assert_clean(check_seeds(range(20_000, 20_032), Options(backend="cpu", avoid=AVOID, signed_zeros=False)))


def test_fast_subset_cuda():
    """The same programs on the CUDA backend (under Numba's simulator: tests/conftest.py)."""
    _assert_clean(check_seeds(range(20_000, 20_024), Options(backend="cuda", avoid=AVOID, signed_zeros=False)))


def test_worker_processes():
    tally = fuzz.run(seed=7, graphs=40, backend="interp", jobs=2, batch=20, avoid=AVOID, progress=False)
    assert tally.counts["graphs"] == 40
    assert sum(tally.counts[k] for k in ("ok", "rejected", "unstable", "mismatch", "crash")) == 40
