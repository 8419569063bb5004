"""The one mechanism every rewriting pass uses.

A graph is an append-only, hash-consed store of immutable nodes, so a pass
never changes a node: it builds the nodes it wants next to the old ones and
returns new roots. `rewrite` rebuilds the DAG under the roots bottom-up;
hash-consing makes every rebuilt node that equals an existing one *be* that
node, which is why Before/Expected tests can compare with `is`.
"""
from graphc.core.graph import ancestors, building_at


def rebuild(node, inputs):
    """node with new inputs (the same node if they did not change)."""
    if tuple(inputs) == node.inputs:
        return node
    return node.graph.add(node.op, inputs, node.attrs, name=node.name, loc=node.loc, exact_name=True)


def rewrite(roots, rule):
    """New roots after replacing, bottom-up, each node n by rule(n, new_inputs) (or n rebuilt if None)."""
    memo = {}
    for n in ancestors(list(roots)):
        ins = tuple(memo[i] for i in n.inputs)
        with building_at(n.loc):
            new = rule(n, ins) if n.inputs else None
        memo[n] = new if new is not None else rebuild(n, ins)
    return [memo[r] for r in roots]


def to_fixpoint(roots, step, max_rounds=20):
    """Apply step(roots) -> roots until nothing changes."""
    for _ in range(max_rounds):
        new = step(roots)
        if all(a is b for a, b in zip(new, roots)):
            return new
        roots = new
    return roots


def users(nodes):
    """{node: [nodes that use it]} within `nodes`."""
    out = {n: [] for n in nodes}
    for n in nodes:
        for i in n.inputs:
            out[i].append(n)
    return out
