"""The CUDA backend's tests run under Numba's CUDA simulator unless told otherwise: Numba reads
NUMBA_ENABLE_CUDASIM when it is first imported, so it is set here, before any test imports it.
On a machine with a GPU, `NUMBA_ENABLE_CUDASIM=0 make test` (or pytest) runs them on the GPU."""
import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
