"""The kernel cache: generated modules as files, imported from disk.

A generated module is written under GRAPHC_CACHE_DIR (default: the user's
cache folder) with a file name that is the hash of its source and of the
versions of graphc, numba, numpy and the fast-math library, so a changed
compiler never reuses an old file. Its kernels use `njit(cache=True)`, so
Numba keeps their machine code next to the file and a second process starts
warm.

Files are written to a temporary name and renamed (atomic on POSIX): a
concurrent process sees the whole file or none. The first line holds the
hash of the rest; a file whose content does not match (truncated, edited,
corrupted) is rewritten, never imported.
"""
import hashlib
import importlib.util
import os
import sys
import tempfile

import numba
import numpy as np

from . import fastmath

HEADER = "# graphc kernel module, sha256 of the rest: "


def cache_dir():
    path = os.environ.get("GRAPHC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "graphc")
    os.makedirs(path, exist_ok=True)
    return path


def _versions():
    import graphc
    with open(fastmath.__file__, "rb") as f:
        lib = hashlib.sha256(f.read()).hexdigest()[:16]
    return f"graphc {graphc.__version__} numba {numba.__version__} numpy {np.__version__} fastmath {lib}"


def module_key(source):
    return hashlib.sha256((_versions() + "\n" + source).encode()).hexdigest()[:32]


def _digest(body):
    return hashlib.sha256(body.encode()).hexdigest()


def load(source):
    """Import the module with this source from the cache, writing it first if needed.

    Returns (module, path, wrote): wrote is True when the file had to be (re)written."""
    key = module_key(source)
    path = os.path.join(cache_dir(), f"graphc_{key}.py")
    text = f"{HEADER}{_digest(source)}\n{source}"
    wrote = False
    if not _valid(path):
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp_", suffix=".py")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
        wrote = True
    name = f"graphc_kernels_{key}"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module, path, wrote


def _valid(path):
    """Is the file there and whole (its content matches the hash in its first line)?"""
    try:
        with open(path) as f:
            first = f.readline()
            rest = f.read()
    except (OSError, UnicodeDecodeError):
        return False
    return first.startswith(HEADER) and first[len(HEADER):].strip() == _digest(rest)
