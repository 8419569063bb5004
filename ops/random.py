"""Counter-based random numbers: the same bits on every backend.

A random op computes each element from a hash of (seed, stream, counter,
element index) -- no hidden generator state -- so the interpreter, the CPU
kernels and a GPU produce identical dropout masks for one seed. The counter
is a variable of the graph that every compiled function advances by one per
call (gc.function adds that update), so each call draws fresh numbers; the
stream tells apart the random ops of one graph.

The hash is splitmix64 (Steele, Lea and Flood's finalizer), in uint64
arithmetic that wraps identically in numpy and in Numba.
"""
import numpy as np

from graphc.errors import DTypeError
from graphc.types import FLOATS, INTS, TensorType, as_dtype

from .base import Op, register

GOLDEN = 0x9E3779B97F4A7C15
COUNTER_STEP = 0xD1B54A32D192ED03
MASK64 = (1 << 64) - 1


def splitmix64(z):
    """The splitmix64 finalizer on a uint64 array (or Python int, masked to 64 bits)."""
    if isinstance(z, int):
        z = (z + GOLDEN) & MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)
    z = z + np.uint64(GOLDEN)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def stream_key(seed, stream):
    """The per-op constant mixed into every element's hash."""
    return splitmix64(((seed & MASK64) * 0x100000001B3 + stream) & MASK64)


def unit(bits):
    """24 of the bits as a float64 in [0, 1): exact in float32 too."""
    return bits.astype(np.float64) * 2.0 ** -24


def random_bits(size, counter, key):
    """uint64 hash of every element index for this call (the counter) and op (the key)."""
    with np.errstate(over="ignore"):
        idx = np.arange(size, dtype=np.uint64)
        offset = np.uint64((int(counter) * COUNTER_STEP + key) & MASK64)
        return splitmix64(idx + offset)


class RandomOp(Op):
    """Inputs: like (only its shape is read) and the graph's counter variable."""
    kind = "opaque"
    no_grad = True

    def canonical(self, types, seed, stream, dtype="float32"):
        return {"seed": int(seed), "stream": int(stream), "dtype": as_dtype(dtype)}

    def infer(self, types, seed, stream, dtype):
        like, counter = types
        if dtype not in FLOATS:
            raise DTypeError(f"random numbers are float32 or float64, not {dtype}")
        if counter.shape != () or counter.dtype not in INTS:
            raise DTypeError(f"the counter must be an int scalar, got {counter}")
        return TensorType(like.shape, dtype)


@register
class RandomUniform(RandomOp):
    """Uniform in [0, 1), 24 random bits per element (exact in float32)."""
    name = "random_uniform"

    def ref(self, like, counter, seed, stream, dtype):
        bits = random_bits(like.size, counter, stream_key(seed, stream))
        return unit(bits >> np.uint64(40)).astype(dtype).reshape(like.shape)


@register
class RandomNormal(RandomOp):
    """Standard normal by Box-Muller: two 24-bit uniforms from one 64-bit hash."""
    name = "random_normal"

    def ref(self, like, counter, seed, stream, dtype):
        bits = random_bits(like.size, counter, stream_key(seed, stream))
        u1, u2 = unit(bits >> np.uint64(40)), unit(bits & np.uint64(0xFFFFFF))
        z = np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)
        return z.astype(dtype).reshape(like.shape)
