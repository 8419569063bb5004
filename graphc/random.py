"""gc.random: uniform, normal and Bernoulli draws as graph nodes.

Every draw is a node whose values come from a hash of (seed, stream, call
counter, element index) -- see ops/random.py -- so every backend produces the
same numbers for one seed, and each call of a compiled function draws new
ones (gc.function advances the graph's counter after every call).
"""
import numpy as np

from graphc.ops import REGISTRY

from .graph import Node

COUNTER_NAME = "rng_counter"


def counter(graph):
    """The graph's call counter (a scalar int64 variable), created on first use."""
    node = getattr(graph, "rng_counter", None)
    if node is None:
        from .api import variable
        with graph:
            node = variable(np.int64(0), name=COUNTER_NAME)
        graph.rng_counter = node
    return node


def _like(shape_or_like, dtype):
    if isinstance(shape_or_like, Node):
        return shape_or_like
    from .api import constant
    return constant(np.zeros(shape_or_like, dtype))


def _draw(op, like, seed, dtype):
    like = _like(like, dtype)
    g = like.graph
    # each draw of a graph gets its own stream, numbered in the order the graph builds them,
    # so the same program gives the same numbers (and the same kernel source) every run
    g.random_streams = getattr(g, "random_streams", 0) + 1
    return g.add(REGISTRY[op], (like, counter(g)),
                 {"seed": 0 if seed is None else seed, "stream": g.random_streams, "dtype": dtype})


def uniform(like, low=0.0, high=1.0, seed=None, dtype="float32"):
    """Uniform numbers in [low, high), shaped like a node `like` (or a shape tuple)."""
    u = _draw("random_uniform", like, seed, dtype)
    return u if (low, high) == (0.0, 1.0) else u * (high - low) + low


def normal(like, mean=0.0, std=1.0, seed=None, dtype="float32"):
    """Normal numbers, shaped like a node `like` (or a shape tuple)."""
    z = _draw("random_normal", like, seed, dtype)
    return z if (mean, std) == (0.0, 1.0) else z * std + mean


def bernoulli(like, p, seed=None):
    """A bool mask, True with probability p (e.g. the kept units of dropout)."""
    return uniform(like, seed=seed) < p


def counters_in(nodes):
    """The counter variables that the random ops among nodes read."""
    return list(dict.fromkeys(n.inputs[1] for n in nodes if n.op.name in ("random_uniform", "random_normal")))

