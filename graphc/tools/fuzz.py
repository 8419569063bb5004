"""`graphc fuzz`: graphc's own differential fuzzer.

    graphc fuzz --minutes 20 --seed 0 [--backend cpu] [--jobs 2] [--batch 100]
    graphc fuzz --graphs 500 --seed 3
    graphc fuzz --replay 1234          # the program of seed 1234 as Python, both results, the verdict

Random programs over every op (graphc/tools/fuzz_gen.py, fuzz_ops.py), each run by the
interpreter (the oracle) and by the backend under test -- "cpu" (Numba), "cuda" (numba.cuda; without
a GPU set NUMBA_ENABLE_CUDASIM=1 for Numba's simulator), or "interp" with the pass pipeline
(optimize=True) -- at two values of the None size; float programs also get their
gradient checked against finite differences (graphc/tools/fuzz_check.py). Each program comes
from its seed alone: run seed S checks the programs S*1000000, S*1000000+1, ...; a failure
prints its seed and `graphc fuzz --replay SEED`.

Counts: graphs, rejected (graphc refused to build it: fine, the generator drew an ill-typed
graph), unstable (outputs differ where the program is numerically ill-defined: not a failure),
mismatches and crashes (failures: the exit code is 1). Programs are checked in batches, one
compile per batch (graphc/tools/fuzz_run.py says why), in `--jobs` worker processes.
"""
import argparse
import collections
import os
import sys
import time

from .fuzz_gen import KNOWN_DEFECTS, generate
from .fuzz_run import Options, check_programs, check_seeds, label

SEEDS_PER_RUN = 1_000_000


def worker_init(cache):
    if cache:
        os.environ["GRAPHC_CACHE_DIR"] = cache


def default_cache():
    """Fuzz modules are many and used once: keep them apart from the user's kernel cache."""
    from graphc.runtime.cpu.cache import cache_dir
    if os.environ.get("GRAPHC_CACHE_DIR"):
        return os.environ["GRAPHC_CACHE_DIR"]
    return os.path.join(cache_dir(), "fuzz")


class Tally:
    def __init__(self):
        self.counts = collections.Counter()
        self.failures = []          # Outcomes that are mismatches or crashes
        self.start = time.perf_counter()

    def add(self, outcomes):
        for o in outcomes:
            self.counts["graphs"] += 1
            self.counts[o.kind] += 1
            if o.kind in ("mismatch", "crash"):
                self.failures.append(o)

    def line(self):
        c, minutes = self.counts, (time.perf_counter() - self.start) / 60
        rate = c["graphs"] / minutes if minutes else 0.0
        return (f"[{int(minutes):3d}:{int(minutes * 60) % 60:02d}] {c['graphs']} graphs ({rate:.0f}/min): "
                f"{c['rejected']} rejected, {c['unstable']} unstable, {c['mismatch']} mismatches, "
                f"{c['crash']} crashes")


def run(seed=0, minutes=None, graphs=None, backend="cpu", jobs=1, batch=100, avoid=(), grad=True,
        progress=True, out=None):
    """Check programs until `minutes` pass or `graphs` are done; return the Tally."""
    out = out or sys.stdout
    opts = Options(backend=backend, avoid=tuple(avoid), grad=grad, signed_zeros="neg_zero" not in avoid)
    tally = Tally()
    deadline = tally.start + 60 * minutes if minutes else None
    limit = graphs if graphs is not None else (None if minutes else 1000)
    next_seed = [seed * SEEDS_PER_RUN]

    def batches():
        while (limit is None or next_seed[0] - seed * SEEDS_PER_RUN < limit) and \
                (deadline is None or time.perf_counter() < deadline):
            n = batch if limit is None else min(batch, seed * SEEDS_PER_RUN + limit - next_seed[0])
            yield list(range(next_seed[0], next_seed[0] + n))
            next_seed[0] += n

    last = [0.0]

    def report(outcomes):
        tally.add(outcomes)
        for o in outcomes:
            if o.kind in ("mismatch", "crash"):
                print(f"  {describe(o, opts)}", file=out, flush=True)
        if progress and time.perf_counter() - last[0] > 30:
            last[0] = time.perf_counter()
            print(tally.line(), file=out, flush=True)

    cache = default_cache() if backend == "cpu" else None
    if jobs <= 1:
        saved = os.environ.get("GRAPHC_CACHE_DIR")
        worker_init(cache)
        try:
            for seeds in batches():
                report(check_seeds(seeds, opts))
        finally:
            if saved is None:
                os.environ.pop("GRAPHC_CACHE_DIR", None)
            else:
                os.environ["GRAPHC_CACHE_DIR"] = saved
    else:
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        ctx = multiprocessing.get_context("spawn")     # no forked Numba/OpenMP state
        # a worker keeps every module it compiled (~0.2 GB a batch): replace it now and then
        recycle = {"max_tasks_per_child": 8} if sys.version_info >= (3, 11) else {}
        with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=worker_init, initargs=(cache,),
                                 **recycle) as pool:
            todo = batches()
            running = {pool.submit(check_seeds, s, opts) for s in _take(todo, jobs + 1)}
            while running:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    report(fut.result())
                    running |= {pool.submit(check_seeds, s, opts) for s in _take(todo, 1)}
    print(tally.line(), file=out, flush=True)
    return tally


def _take(it, n):
    out = []
    for _ in range(n):
        try:
            out.append(next(it))
        except StopIteration:
            break
    return out


def describe(o, opts=None):
    """One line for an Outcome, with the command that replays it."""
    if o.kind == "ok":
        return f"seed {o.seed}: ok"
    first = o.detail.splitlines()[0] if o.detail else ""
    known = f" [known: {o.known}]" if o.known else ""
    flags = "" if opts is None else (" --backend interp" if opts.backend == "interp" else "") + (
        " --avoid-known" if opts.avoid else "")
    return f"seed {o.seed}: {o.kind} in {o.where}: {first[:300]}{known}  (replay: graphc fuzz --replay {o.seed}{flags})"


def summary(tally, out=None):
    out = out or sys.stdout
    c = tally.counts
    print(f"graphs {c['graphs']}, ok {c['ok']}, rejected {c['rejected']}, unstable {c['unstable']}, "
          f"mismatches {c['mismatch']}, crashes {c['crash']}", file=out)
    if tally.failures:
        groups = collections.defaultdict(list)
        for o in tally.failures:
            groups[o.known or "new"].append(o)
        print("failing seeds:", file=out)
        for key in sorted(groups):
            what = KNOWN_DEFECTS.get(key, "not a known defect")
            print(f"  {key} ({what}): {' '.join(str(o.seed) for o in groups[key])}", file=out)


def replay(seed, backend="cpu", avoid=(), out=None):
    """Print seed's program as Python, the two backends' results and the verdict; return the Outcome."""
    out = out or sys.stdout
    import numpy as np

    from .fuzz_ir import fmt_array, to_python
    from .fuzz_run import run_batch_backend, run_interp
    prog = generate(seed, avoid)
    print(to_python(prog), file=out)
    if prog.rejected or prog.crashed:
        print(f"# {'rejected' if prog.rejected else 'crash'}: {prog.rejected or prog.crashed}", file=out)
    else:
        for name, run_it in (("interp", lambda: run_interp(prog)),
                             (label(backend), lambda: run_batch_backend([prog], backend)[0])):
            try:
                res = run_it()
            except Exception as e:              # noqa: BLE001
                print(f"# {name} raises {type(e).__name__}: {e}", file=out)
                continue
            calls, variables = (([[res.calls[c][o] for o in prog.outputs] for c in (0, 1)], res.variables)
                                if name == "interp" else res[:2])
            for c in (0, 1):
                print(f"# {name} call {c + 1}: " + "; ".join(
                    f"{o} = {fmt_array(np.asarray(v))}" for o, v in zip(prog.outputs, calls[c])), file=out)
            if variables:
                print(f"# {name} variables after: " + "; ".join(
                    f"{w} = {fmt_array(np.asarray(v))}" for (w, _), v in zip(prog.updates, variables)), file=out)
    opts = Options(backend=backend, avoid=tuple(avoid), signed_zeros="neg_zero" not in avoid)
    (o,) = check_programs([prog], opts)
    print(f"# verdict: {describe(o, opts)}", file=out)
    for note in o.notes:
        print(f"# note: {note}", file=out)
    if o.kind in ("mismatch", "crash") and not (prog.rejected or prog.crashed):
        from .fuzz_min import minimize
        small = minimize(prog, o, opts)
        if len(small.steps) < len(prog.steps):
            print("\n# a smaller program that fails the same way:", file=out)
            print(to_python(small), file=out)
    return o


def main(argv=None):
    parser = argparse.ArgumentParser(prog="graphc fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="run seed: checks seeds S*1e6, S*1e6+1, ...")
    parser.add_argument("--minutes", type=float, help="run this long (default: 1000 graphs)")
    parser.add_argument("--graphs", type=int, help="stop after this many graphs")
    parser.add_argument("--backend", default="cpu", choices=["cpu", "interp", "cuda"],
                        help="the backend checked against the plain interpreter (interp: with the passes)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes")
    parser.add_argument("--batch", type=int, default=100, help="programs per worker task (about two compiles)")
    parser.add_argument("--avoid-known", action="store_true",
                        help="leave out the triggers of the known defects: " + ", ".join(KNOWN_DEFECTS))
    parser.add_argument("--no-grad", action="store_true", help="skip the finite-difference gradient checks")
    parser.add_argument("--replay", type=int, metavar="SEED", help="print one program, both results, the verdict")
    args = parser.parse_args(argv)
    avoid = tuple(KNOWN_DEFECTS) if args.avoid_known else ()
    if args.replay is not None:
        o = replay(args.replay, args.backend, avoid)
        return 1 if o.kind in ("mismatch", "crash") else 0
    tally = run(args.seed, args.minutes, args.graphs, args.backend, args.jobs, args.batch, avoid,
                grad=not args.no_grad)
    summary(tally)
    return 1 if tally.failures else 0
