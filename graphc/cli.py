"""The `graphc` command: `graphc demo` (more subcommands join as issues land)."""
import argparse


def main(argv=None):
    parser = argparse.ArgumentParser(prog="graphc", description="a small computation-graph compiler")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="build a small MLP graph, write its DOT, run it")
    demo.add_argument("--out", default="build", help="folder for the DOT/SVG files (default: build)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run
        run(args.out)


if __name__ == "__main__":
    main()
