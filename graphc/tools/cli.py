"""The `graphc` command.

    graphc demo                 the main job (also `make demo`)
    graphc passes [W3] [--dot DIR]
                                what the default pass pipeline does to a workload graph
    graphc report W3 -o report.html   the teaching page of a compiled function (or of a script's)
    graphc bench [W1 ...]       the benchmark (see graphc/tools/bench.py)
    graphc bench onnx MODEL.onnx   an ONNX model, graphc cpu beside onnxruntime
    graphc fuzz [--minutes N] [--seed S] [--replay SEED]
                                the differential fuzzer (see graphc/tools/fuzz.py)
"""
import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="graphc", description="a small computation-graph compiler")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="build a small MLP graph, write its DOT, run it")
    demo.add_argument("--out", default="build", help="folder for the DOT/SVG files (default: build)")
    passes = sub.add_parser("passes", help="run the pass pipeline on a workload graph and report")
    passes.add_argument("workload", nargs="?", default="W3", help="W1, W2, W3 or W4 (default W3)")
    passes.add_argument("--dot", metavar="DIR", help="write NN_<pass>.before/.after.dot files here")
    rep = sub.add_parser("report", help="the HTML teaching page of a compiled function (see tools/report.py)")
    rep.add_argument("target", metavar="WORKLOAD_OR_SCRIPT", help="W1-W4, or a script leaving a cpu function")
    rep.add_argument("-o", "--out", default="report.html", help="the page to write (default: report.html)")
    rep.add_argument("--name", help="the script's global holding the function")
    sub.add_parser("bench", help="time the workloads against numpy and the peers", add_help=False)
    sub.add_parser("fuzz", help="random graphs: the CPU backend against the interpreter", add_help=False)
    if argv is None:
        argv = sys.argv[1:]
    if argv[:2] == ["bench", "onnx"]:    # an ONNX model beside onnxruntime (graphc/tools/bench_onnx.py)
        from .bench_onnx import main as bench_onnx_main
        return bench_onnx_main(argv[2:])
    if argv[:1] == ["bench"]:
        from .bench import main as bench_main
        return bench_main(argv[1:])
    if argv[:1] == ["fuzz"]:             # its own options (graphc/tools/fuzz.py); exit code 1 on a failure
        from .fuzz import main as fuzz_main
        return fuzz_main(argv[1:])
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run
        run(args.out)
    elif args.command == "passes":
        from graphc.tools.workloads import WORKLOADS
        if args.workload not in WORKLOADS:
            parser.error(f"unknown workload {args.workload!r}; choose one of {', '.join(WORKLOADS)}")
        report_passes(args.workload, args.dot)
    elif args.command == "report":
        from .report import main as report_main
        report_main(args.target, args.out, args.name)


def report_passes(name, dot_dir=None):
    """Print node counts and timings per pass and the fused groups of a workload's graph."""
    from graphc.core.graph import ancestors
    from graphc.passes.pipeline import DumpDot, Timing, Verify, run_pipeline
    from graphc.tools.workloads import WORKLOADS
    w = WORKLOADS[name]() if name != "W1" else WORKLOADS[name](n=1000)
    roots = w.outputs + list(w.updates.values())
    timing = Timing()
    instruments = [Verify(), timing] + ([DumpDot(dot_dir)] if dot_dir else [])
    new = run_pipeline(roots, instruments=instruments)
    before, after = ancestors(roots), ancestors(new)
    fused = [n for n in after if n.op.name == "fused"]
    print(f"{w.name}: {w.description}")
    print(timing)
    print(f"nodes: {len(before)} -> {len(after)}; ops that run: "
          f"{sum(n.op.kind != 'source' for n in before)} -> {sum(n.op.kind != 'source' for n in after)}")
    print(f"fused groups: {len(fused)} ({sum(n.attrs['reduce'] is not None for n in fused)} into reductions), "
          f"sizes {sorted((len(n.attrs['region'].steps) for n in fused), reverse=True)}")
    if dot_dir:
        print(f"before/after DOT of every pass in {dot_dir}/")


if __name__ == "__main__":
    sys.exit(main())
