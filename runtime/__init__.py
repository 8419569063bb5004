"""graphc.runtime: executors. interp (numpy, the oracle), cpu (Numba); cuda comes later."""
import os
import sys

from graphc.graph import register_internal_dir

register_internal_dir(__file__)


def configure_numba():
    """Choices made before Numba compiles anything, unless the user made them (env vars).

    - Threading: Numba's default OpenMP layer keeps idle workers spinning, which starves
      OpenBLAS's threads on a small machine (DESIGN.md section 7); the workqueue layer's
      workers sleep.
    - Vector width: LLVM prefers 256-bit vectors even where AVX-512 exists; the float32
      math of the generated kernels runs faster in 512-bit registers (exp over 4M floats:
      1.8 ms vs 2.3 ms here). GRAPHC_AVX512=0 keeps LLVM's default.
    Numba reads these from the environment when it sets up its compiler, which is why
    this runs when graphc.runtime is first imported, before any kernel is compiled.
    """
    os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
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


configure_numba()
