"""The fixed CUDA kernels, by op: {op name: launcher}. A launcher is called as
`launch_<op>(*inputs, *outputs, **node.attrs)` on C-contiguous device arrays and picks its
grid from the sizes (runtime/cuda/launch.py). The generated step imports the launchers it
calls from here by name."""
from . import conv_kernels, matmul_kernels, nn_kernels, pool_kernels, random_kernels, shape_kernels

LAUNCH = {}
for _module in (nn_kernels, matmul_kernels, random_kernels, shape_kernels, conv_kernels, pool_kernels):
    assert not set(_module.LAUNCH) & set(LAUNCH), "two launchers for one op"
    LAUNCH.update(_module.LAUNCH)
globals().update({f.__name__: f for f in LAUNCH.values()})
