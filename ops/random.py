"""Counter-based random numbers: the same bits on every backend; and gc.random's functions.

A random op computes each element from a hash of (seed, stream, counter,
element index) -- no hidden generator state -- so the interpreter, the CPU
kernels and a GPU produce identical dropout masks for one seed. The counter
is a variable of the graph that every compiled function advances by one per
call (gc.function adds that update), so each call draws fresh numbers; the
stream tells apart the random ops of one graph.

The formula is written once, below, as plain functions of numpy uint64
values (`splitmix64`, `uniform_from_bits`, `normal_from_bits`): the numpy
reference calls them on whole arrays, and a backend compiles the very same
functions for one element (the CPU backend wraps them with numba.njit,
runtime/cpu/fastmath.py). The hash is splitmix64 (Steele, Lea and Flood's
finalizer), in uint64 arithmetic that wraps identically in numpy and Numba.
"""
import numpy as np

from graphc.core.errors import DTypeError
from graphc.core.graph import Node
from graphc.core.types import FLOATS, INTS, TensorType, as_dtype

from .base import Op, REGISTRY, constant_node, register
from .sources import variable

GOLDEN = 0x9E3779B97F4A7C15
COUNTER_STEP = 0xD1B54A32D192ED03
MASK64 = (1 << 64) - 1
COUNTER_NAME = "rng_counter"

# ---------------------------------------------------------------- the formula, for arrays and for one element


def splitmix64(z):
    """The splitmix64 finalizer of uint64 z (an array, or one np.uint64 in a kernel)."""
    z = z + np.uint64(GOLDEN)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniform_from_bits(bits):
    """The top 24 of the 64 bits as a float64 in [0, 1): exact in float32 too."""
    return np.float64(bits >> np.uint64(40)) * 5.9604644775390625e-08     # 2 ** -24


def normal_from_bits(bits):
    """A standard normal by Box-Muller from two 24-bit uniforms of one hash.
    (Self-contained: a backend compiles each of these functions on its own.)"""
    u1 = np.float64(bits >> np.uint64(40)) * 5.9604644775390625e-08
    u2 = np.float64(bits & np.uint64(0xFFFFFF)) * 5.9604644775390625e-08
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(6.283185307179586 * u2)


def call_offset(counter, key):
    """What one call (its counter) and one op (its key) add to every element index, mod 2**64."""
    return (int(counter) * COUNTER_STEP + key) & MASK64


def stream_key(seed, stream):
    """The per-op constant mixed into every element's hash."""
    with np.errstate(over="ignore"):
        return int(splitmix64(np.uint64(((seed & MASK64) * 0x100000001B3 + stream) & MASK64)))


# ---------------------------------------------------------------- the ops


class RandomOp(Op):
    """Inputs: like (only its shape is read) and the graph's counter variable."""
    kind = "opaque"
    no_grad = True
    from_bits = None

    def canonical(self, types, seed, stream, dtype="float32"):
        return {"seed": int(seed), "stream": int(stream), "dtype": as_dtype(dtype)}

    def infer(self, types, seed, stream, dtype):
        like, counter = types
        if dtype not in FLOATS:
            raise DTypeError(f"random numbers are float32 or float64, not {dtype}")
        if counter.shape != () or counter.dtype not in INTS:
            raise DTypeError(f"the counter must be an int scalar, got {counter}")
        return TensorType(like.shape, dtype)

    def ref(self, like, counter, seed, stream, dtype):
        with np.errstate(over="ignore"):
            offset = np.uint64(call_offset(counter, stream_key(seed, stream)))
            bits = splitmix64(np.arange(like.size, dtype=np.uint64) + offset)
            return type(self).from_bits(bits).astype(dtype).reshape(like.shape)


@register
class RandomUniform(RandomOp):
    """Uniform in [0, 1), 24 random bits per element (exact in float32)."""
    name = "random_uniform"
    from_bits = staticmethod(uniform_from_bits)


@register
class RandomNormal(RandomOp):
    """Standard normal by Box-Muller: two 24-bit uniforms from one 64-bit hash."""
    name = "random_normal"
    from_bits = staticmethod(normal_from_bits)


# ---------------------------------------------------------------- gc.random


def counter(graph):
    """The graph's call counter (a scalar int64 variable), created on first use."""
    node = getattr(graph, "rng_counter", None)
    if node is None:
        with graph:
            node = variable(np.int64(0), name=COUNTER_NAME)
        graph.rng_counter = node
    return node


def _draw(op, like, seed, dtype):
    if not isinstance(like, Node):
        like = constant_node(np.zeros(like, dtype))
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
    return list(dict.fromkeys(n.inputs[1] for n in nodes if isinstance(n.op, RandomOp)))
