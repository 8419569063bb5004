"""Elementwise fusion, and fusion of an elementwise group into the reduction it feeds.

A group is a set of elementwise nodes with one output shape (its domain);
their inputs may be any shape that broadcasts to it. The compiled backends
run a group as one loop that reads each input once and writes only the
values needed outside the group, which is where fusion pays: memory traffic.

Groups grow in topological order: a node joins (and so merges) the groups
of its elementwise inputs of the same shape, as long as
- no cycle appears: an input from outside the group must not depend on a
  member, also through other groups once each is one node (checked with
  ancestor bitsets, one int per node), and
- the group reads at most `max_inputs` distinct tensors (narrow kernel signatures).
"""
import networkx as nx

from graphc.core.graph import ancestors
from graphc.core.region import Param, Ref, Region, Step
from graphc.ops import REGISTRY
from graphc.ops.fused import producer

from .rewrite import rebuild, users

MAX_INPUTS = 12


def fusible_reduction(n):
    """A reduction with an identity and a combine step (sum, mean, max, min, prod; not argmax)."""
    return n.op.kind == "reduction" and n.op.identity(n.dtype) is not None


def fusible(n):
    return n.op.kind == "elementwise"


def find_groups(nodes, max_inputs=MAX_INPUTS):
    """Partition the fusible nodes into legal groups: {node: frozenset(group)}."""
    pos = {n: k for k, n in enumerate(nodes)}
    anc = {}
    for n in nodes:                                 # strict ancestors as a bitset
        bits = 0
        for i in n.inputs:
            bits |= anc[i] | (1 << pos[i])
        anc[n] = bits
    group = {}
    closure = {}    # each group of two or more: (its members' bits, the bits of its members and their ancestors)

    def legal(members):
        mask = sum(1 << pos[m] for m in members)
        outside = {i for m in members for i in m.inputs if i not in members}
        if len(outside) > max_inputs:
            return False
        # what the outside inputs depend on once every other group is one node: a path that
        # leaves the group and comes back, directly or through another group, is a cycle
        reach = 0
        for i in outside:
            reach |= anc[i] | (1 << pos[i])
        grown = True
        while grown and not reach & mask:
            grown = False
            for bits, below in closure.values():
                if reach & bits and below & ~reach:
                    reach |= below
                    grown = True
        return not reach & mask

    for n in nodes:
        if not fusible(n):
            continue
        members = {n}
        for i in n.inputs:
            g = group.get(i)
            if g is not None and i.shape == n.shape and not g <= members and legal(members | g):
                members |= g
                closure.pop(g, None)
        frozen = frozenset(members)
        for m in frozen:
            group[m] = frozen
        if len(frozen) > 1:
            below = 0
            for m in frozen:
                below |= anc[m] | (1 << pos[m])
            closure[frozen] = (sum(1 << pos[m] for m in frozen), below)
    return group


def fuse_elementwise(roots, max_inputs=MAX_INPUTS):
    """Each group of two or more elementwise nodes becomes one `fused` node."""
    nodes = ancestors(list(roots))
    groups = {g for g in find_groups(nodes, max_inputs).values() if len(g) > 1}
    return _contract(roots, nodes, groups, reduce_of={})


def fuse_reductions(roots, max_inputs=MAX_INPUTS):
    """sum/mean/max/min/prod of an elementwise node or single-output fused group, used by
    nothing else, becomes one fused node: the body runs inside the reduction loop."""
    nodes = ancestors(list(roots))
    use = users(nodes)
    root_set = set(roots)
    groups, reduce_of = set(), {}
    for r in nodes:
        if not fusible_reduction(r):
            continue
        x = r.inputs[0]
        single_use = len(use[x]) == 1 and x not in root_set
        plain = fusible(x)
        fused = (x.op.name == "fused" and x.attrs.get("reduce") is None and len(x.attrs["region"].outputs) == 1
                 and producer(x) is None)
        if single_use and (plain or fused) and len(x.inputs) <= max_inputs:
            g = frozenset([x, r])
            groups.add(g)
            reduce_of[g] = r
    return _contract(roots, nodes, groups, reduce_of)


def _contract(roots, nodes, groups, reduce_of):
    """Replace each group by a fused node; rebuild everything else around it."""
    unit = {m: g for g in groups for m in g}
    dag = nx.DiGraph()
    for n in nodes:
        dag.add_node(unit.get(n, n))
        for i in n.inputs:
            if unit.get(i, i) != unit.get(n, n):
                dag.add_edge(unit.get(i, i), unit.get(n, n))
    order = {n: k for k, n in enumerate(nodes)}
    # members whose value is needed outside their group: the group's outputs
    external = {i for n in nodes for i in n.inputs if i in unit and unit[i] is not unit.get(n)}
    external |= {r for r in roots if r in unit}
    memo = {}
    for u in nx.lexicographical_topological_sort(dag, key=lambda u: min(order[m] for m in _members(u))):
        if isinstance(u, frozenset):
            _emit_group(sorted(u, key=order.get), memo, reduce_of.get(u), external)
        else:
            memo[u] = rebuild(u, [memo[i] for i in u.inputs])
    return [memo[r] for r in roots]


def _members(u):
    return u if isinstance(u, frozenset) else (u,)


def _emit_group(members, memo, reduction, external):
    """Build the fused node for members (topologically sorted); map each needed member to its output."""
    if reduction is not None:
        members = [m for m in members if m is not reduction]
    inside = set(members)
    steps, step_of, params = [], {}, []

    def operand(x):
        if x in inside:
            return Ref(step_of[x])
        new = memo[x]
        if new not in params:
            params.append(new)
        return Param(params.index(new))

    for m in members:
        if m.op.name == "fused":       # a single-output fused group feeding a reduction: inline its region
            base = len(steps)
            args = [operand(x) for x in m.inputs]
            inner = m.attrs["region"]
            for s in inner.steps:
                steps.append(s._replace(operands=tuple(args[x.index] if isinstance(x, Param) else Ref(base + x.index)
                                                       for x in s.operands)))
            step_of[m] = base + inner.outputs[0]
        else:
            steps.append(Step(m.op, tuple(sorted(m.attrs.items())), tuple(operand(x) for x in m.inputs)))
            step_of[m] = len(steps) - 1
    graph, loc = members[-1].graph, members[-1].loc
    if reduction is not None:
        region = Region(len(params), tuple(steps), (step_of[members[-1]],))
        attrs = {"region": region, "reduce": (reduction.op, reduction.attrs["axis"], reduction.attrs["keepdims"])}
        memo[reduction] = graph.add(REGISTRY["fused"], params, attrs, name="fused_" + reduction.op.name, loc=loc)
        return
    needed = [m for m in members if m in external]
    region = Region(len(params), tuple(steps), tuple(step_of[m] for m in needed))
    f = graph.add(REGISTRY["fused"], params, {"region": region, "reduce": None}, name="fused", loc=loc)
    if len(needed) == 1:
        memo[needed[0]] = f
        return
    for k, m in enumerate(needed):
        memo[m] = graph.add(REGISTRY["output"], (f,), {"index": k}, name=m.name, loc=m.loc)
