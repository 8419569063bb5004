"""How the CPU backend configures Numba: once, when the first CPU function is built.

Numba reads these settings from the environment when it sets up its compiler
and threading layer, i.e. before the first kernel compiles, not when it is
imported; so importing graphc changes nothing in the process, and a program
that never compiles for the CPU keeps Numba's defaults.
"""
import os
import sys

_done = False


def configure_once():
    global _done
    if not _done:
        configure_numba()
        _done = True


def configure_numba():
    """Choices made before Numba compiles anything, unless the user made them (env vars).

    - Threading: Numba's OpenMP layer with OMP_WAIT_POLICY=PASSIVE. Its workers spin when
      idle by default, which starves OpenBLAS's threads on a small machine (DESIGN.md
      section 7); passive, they sleep. Measured with `graphc bench`: W1 3.0 ms and W2 3.2 ms
      against 3.7 and 7.3 ms with the workqueue layer, the fallback when OpenMP is missing.
    - Vector width: LLVM prefers 256-bit vectors even where AVX-512 exists; the float32
      math of the generated kernels runs faster in 512-bit registers (exp over 4M floats:
      1.8 ms vs 2.3 ms here). GRAPHC_AVX512=0 keeps LLVM's default.
    Numba reads these from the environment when it sets up its compiler, which is why
    this runs when graphc.runtime is first imported, before any kernel is compiled.
    """
    if "NUMBA_THREADING_LAYER" not in os.environ:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")     # read when libgomp loads
        os.environ["NUMBA_THREADING_LAYER"] = "omp" if _has_openmp() else "workqueue"
    if "NUMBA_CPU_FEATURES" not in os.environ and os.environ.get("GRAPHC_AVX512", "1") != "0":
        try:
            import llvmlite.binding as ll
        except ImportError:          # pragma: no cover - numba (and llvmlite) are dependencies
            return
        features = ll.get_host_cpu_features()
        if features.get("avx512f"):
            os.environ["NUMBA_CPU_FEATURES"] = features.flatten() + ",-prefer-256-bit"
    if "numba" in sys.modules:
        sys.modules["numba"].config.reload_config()


def _has_openmp():
    """Is Numba's OpenMP threading layer loadable here (it needs libgomp)?"""
    import ctypes.util
    return ctypes.util.find_library("gomp") is not None
