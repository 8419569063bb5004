"""Run by tests/test_cuda_compile.py in a process without the simulator: type and lower kernels
for a real GPU (compute capability 9.0) through numba-cuda's compiler, which needs no GPU.

Input (a pickle): [(module source, kernel name, numba argument types)]. Prints one line per
kernel, "ok NAME" or "FAIL NAME: error". (The last step, LLVM IR to PTX, needs NVVM, which
this machine may not have: lowering to LLVM IR already runs Numba's CUDA typing and lowering.)"""
import importlib.util
import os
import pickle
import sys
import tempfile

import numba.cuda.dispatcher as dispatcher
from numba import types
from numba.cuda.compiler import compile_cuda


class _Device:                # what compile_cuda asks of the current device
    compute_capability = (9, 0)


dispatcher.get_current_device = lambda: _Device()
jobs = pickle.load(open(sys.argv[1], "rb"))
modules = {}
folder = tempfile.mkdtemp()
for source, name, argtypes in jobs:
    if source not in modules:
        path = os.path.join(folder, f"m{len(modules)}.py")
        with open(path, "w") as f:
            f.write(source)
        spec = importlib.util.spec_from_file_location(f"m{len(modules)}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        modules[source] = mod
    try:
        cres = compile_cuda(getattr(modules[source], name).py_func, types.void, argtypes, cc=(9, 0))
        cres.library.get_llvm_str()
        print("ok", name)
    except Exception as e:
        print("FAIL", name + ":", type(e).__name__, str(e).replace("\n", " ")[:400])
