"""The pass pipeline: a plain list of named passes, with instruments around each.

A pass maps the roots of a program (its outputs and update values) to new
roots in the same graph; graphs are append-only and hash-consed, so no node
is ever changed and a pass's result can be compared with `is`.
"""
import os
import time
from dataclasses import dataclass, field

import networkx as nx

from graphc.core.errors import GraphError, where
from graphc.core.graph import Graph, Node, ancestors

from .cleanup import constant_fold, cse, dce
from .epilogue import fuse_conv_epilogue
from .fusion import fuse_elementwise, fuse_reductions
from .simplify import simplify


@dataclass
class Pass:
    name: str
    run: callable          # roots -> roots
    doc: str = ""

    def __call__(self, roots):
        return self.run(list(roots))


DEFAULT_PIPELINE = [
    Pass("simplify", simplify, "algebraic identities: x*1, x+0, --x, transpose(transpose(x)), ..."),
    Pass("constant_fold", constant_fold, "ops on constants become constants (size-limited)"),
    Pass("cse", cse, "merge a+b with b+a (hash-consing merges the rest)"),
    Pass("simplify", simplify, "again: folding and CSE expose more identities"),
    Pass("fuse_elementwise", fuse_elementwise, "groups of elementwise ops become one fused node"),
    Pass("fuse_reductions", fuse_reductions, "an elementwise group feeding a reduction joins it"),
    Pass("dce", dce, "drop unused outputs of fused nodes"),
    Pass("fuse_conv_epilogue", fuse_conv_epilogue, "a convolution joins the elementwise group that alone reads it"),
]


# ---------------------------------------------------------------- instruments


class Verify:
    """After every pass: each root was replaced by a node of the same graph and type, every
    node's type is what its op infers from its inputs, no node depends on itself, and every
    input belongs to the graph."""

    def before(self, index, p, roots):
        pass

    def after(self, index, p, roots, before):
        # a pass replaces each root by a node of the same graph and the same type
        if len(roots) != len(before):
            raise GraphError(f"verify after {p.name}: {len(before)} root(s) went in, {len(roots)} came out")
        for old, new in zip(before, roots):
            if not isinstance(new, Node) or new.graph is not old.graph:
                raise GraphError(f"verify after {p.name}: root {old.name} became {new!r}, "
                                 f"not a node of {old.graph.name}")
            if new.type != old.type:
                raise GraphError(f"verify after {p.name}: root {old.name} has type {old.type}, "
                                 f"its replacement {new.name} ({new.op.name}) has {new.type}{where(new.loc)}")
        nodes = ancestors(roots)
        dag = nx.DiGraph()
        for n in nodes:
            dag.add_node(n.id)
            for i in n.inputs:
                if i.graph is not n.graph:
                    raise GraphError(f"verify after {p.name}: {n.name} reads {i.name} from another graph")
                dag.add_edge(i.id, n.id)
            if n.inputs:
                t = n.op.infer(tuple(i.type for i in n.inputs), **n.attrs)
                if t != n.type:
                    raise GraphError(f"verify after {p.name}: {n.name} ({n.op.name}) has type {n.type}, "
                                     f"its inputs give {t}{where(n.loc)}")
        if not nx.is_directed_acyclic_graph(dag):
            raise GraphError(f"verify after {p.name}: the graph has a cycle")


class DumpDot:
    """Write NN_<pass>.before.dot and NN_<pass>.after.dot into a folder; new nodes are highlighted."""

    def __init__(self, directory):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)

    def before(self, index, p, roots):
        pass

    def after(self, index, p, roots, before):
        from graphc.view.dot import to_dot   # the viewer is not needed to run passes
        old = set(ancestors(before))
        changed = {n for n in ancestors(roots) if n not in old}
        stem = os.path.join(self.directory, f"{index:02d}_{p.name}")
        with open(stem + ".before.dot", "w") as f:
            f.write(to_dot(before))
        with open(stem + ".after.dot", "w") as f:
            f.write(to_dot(roots, highlight=changed))


@dataclass
class Timing:
    """Seconds and node counts per pass; str() is a small table."""
    rows: list = field(default_factory=list)

    def before(self, index, p, roots):
        self._t = time.perf_counter()

    def after(self, index, p, roots, before):
        self.rows.append((p.name, time.perf_counter() - self._t, len(ancestors(before)), len(ancestors(roots))))

    def __str__(self):
        lines = [f"{'pass':<18} {'ms':>8} {'nodes':>7} -> {'nodes':>5}"]
        lines += [f"{name:<18} {sec * 1e3:8.2f} {a:7d} -> {b:5d}" for name, sec, a, b in self.rows]
        return "\n".join(lines)


# ---------------------------------------------------------------- running


def run_pipeline(roots, passes=None, instruments=()):
    """Apply the passes in order to a list of root nodes; return the new roots."""
    roots = list(roots)
    for index, p in enumerate(DEFAULT_PIPELINE if passes is None else passes):
        for ins in instruments:
            ins.before(index, p, roots)
        new = p(roots)
        for ins in instruments:
            ins.after(index, p, new, roots)
        roots = new
    return roots


def optimize(obj, passes=None, instruments=(Verify(),)):
    """Optimize a node, a list of nodes, or a Graph (its nodes that nothing uses).

    Returns the same kind of thing: the optimized node, or a list of them."""
    if isinstance(obj, Node):
        return run_pipeline([obj], passes, instruments)[0]
    if isinstance(obj, Graph):
        used = {i for n in obj.nodes for i in n.inputs}
        obj = [n for n in obj.nodes if n not in used and n.op.kind != "source"]
    roots = list(obj)
    if not all(isinstance(r, Node) for r in roots):
        raise GraphError("optimize needs a node, a list of nodes or a Graph")
    return run_pipeline(roots, passes, instruments)
