"""The kernel cache: generated modules as files, imported from disk.

A generated module is written under GRAPHC_CACHE_DIR (default: the user's
cache folder) with a file name that is the hash of its source and of the
versions of graphc, numba, numpy and the helper library the kernels call
(fastmath.py, gemm.py, conv_kernels.py, pool_kernels.py), so a changed
compiler never reuses an old file. Its kernels use `njit(cache=True)`, so
Numba keeps their machine code next to the file (in __pycache__) and a
second process starts warm.

What can go wrong, and what happens then:

- A file at the expected name is imported only if it holds exactly the
  source asked for (its header's hash is checked against that source, not
  against the file's own body): a stale, edited, truncated or corrupted file
  is rewritten, never imported.
- Files are written to a temporary name and then linked into place only if
  none is there yet (replaced, if the one there is damaged): a concurrent
  process sees the whole file or none, and the first file written stays, so
  its modification time -- which Numba's cache index records -- does not
  change under a process that already compiled against it.
- A cache folder that cannot be used (read-only, not creatable, a file where
  the folder should be) falls back to a private temporary folder for this
  process, with one warning: it compiles, it only does not start warm.
- Numba's own cache files (*.nbi, *.nbc) damaged: `discard_numba_cache`
  deletes this module's entries so they are compiled again (function.py
  calls it when the first call of a step fails).
- A module whose code fails while it is imported is taken out of
  sys.modules again, so a later call does not find it half-initialized.

`load` holds a lock: two threads compiling at once never see a module before
it has finished executing.
"""
import atexit
import functools
import glob
import hashlib
import importlib.util
import inspect
import os
import shutil
import sys
import tempfile
import threading
import warnings

import numba
import numpy as np

from . import fastmath

HEADER = "# graphc kernel module, sha256 of the rest: "

_lock = threading.RLock()        # one module is written and imported at a time (per process)
_fallback = None                 # the temporary folder used when the cache folder is unusable
_warned = False                  # the fallback's warning is given once per process


def cache_dir():
    path = os.environ.get("GRAPHC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "graphc")
    os.makedirs(path, exist_ok=True)
    return path


@functools.lru_cache(maxsize=None)
def _versions():
    """What a cached module's machine code depends on besides its text: the versions, and the
    helper library it calls (fastmath.py, the files of the helpers it re-exports: gemm.py,
    conv_kernels.py, ..., and of the Numba functions those call in turn: conv_direct.py,
    conv_depthwise.py). Numba's own cache of a jitted step holds the helpers' code linked in
    and would not see them change, so their source is part of every module's name."""
    import graphc
    from .target import FAST
    files = {fastmath.__file__}
    todo = [getattr(fastmath, name) for name in FAST]
    seen = set()
    while todo:                       # the helpers, and the jitted functions their modules hold
        fn = getattr(todo.pop(), "py_func", None)
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        files.add(inspect.getfile(fn))
        todo += [v for v in vars(sys.modules[fn.__module__]).values() if hasattr(v, "py_func")]
    lib = hashlib.sha256()
    for path in sorted(files):
        with open(path, "rb") as f:
            lib.update(f.read())
    return (f"graphc {graphc.__version__} numba {numba.__version__} numpy {np.__version__} "
            f"helpers {lib.hexdigest()[:16]}")


def module_key(source):
    return hashlib.sha256((_versions() + "\n" + source).encode()).hexdigest()[:32]


def module_name(source):
    """The name the module of `source` is imported under (one module object per process)."""
    return f"graphc_kernels_{module_key(source)}"


def loaded(source):
    """Has this process imported the module of `source` already (its kernels compiled)?"""
    return module_name(source) in sys.modules


def _digest(body):
    return hashlib.sha256(body.encode()).hexdigest()


def load(source):
    """Import the module with this source from the cache, writing it first if needed.

    Returns (module, path, wrote): wrote is True when the file had to be (re)written."""
    key = module_key(source)
    name = module_name(source)
    with _lock:
        module = sys.modules.get(name)
        if module is not None:            # imported (and checked) already by this process
            return module, module.__file__, False
        try:
            path, wrote = _write(cache_dir(), key, source)
        except OSError as e:              # read-only, not creatable, a file in the folder's place...
            path, wrote = _write(_fallback_dir(e), key, source)
        module = sys.modules.get(name)
        if module is None:
            module = _import(name, path)
    return module, module.__file__, wrote       # (a module imported earlier: its own file)


def reload(source):
    """Import the module again (new Numba dispatchers), e.g. after its Numba cache was discarded."""
    with _lock:
        sys.modules.pop(module_name(source), None)
        return load(source)


def _write(folder, key, source):
    """The module's file in folder, written there if it is missing or does not hold `source`."""
    path = os.path.join(folder, f"graphc_{key}.py")
    state = _state(path, source)
    if state == "ok":
        return path, False
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp_", suffix=".py")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(_text(source))
        if state == "damaged":
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)            # create it, unless another process did meanwhile
            except FileExistsError:
                if _state(path, source) != "ok":
                    os.replace(tmp, path)
            except OSError:                   # a file system without hard links
                os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path, True


def _import(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module            # during its execution too, as `import` does
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)       # never leave a half-initialized module behind
        raise
    return module


def _fallback_dir(error):
    """A temporary folder for this process's modules, and one warning saying why."""
    global _fallback, _warned
    if _fallback is None:
        _fallback = tempfile.mkdtemp(prefix="graphc-kernels-")
        atexit.register(shutil.rmtree, _fallback, ignore_errors=True)
    if not _warned:
        _warned = True
        warnings.warn(f"graphc: the kernel cache folder cannot be used ({error}); compiling into "
                      f"{_fallback} for this process instead (set GRAPHC_CACHE_DIR to a writable "
                      "folder to keep compiled kernels between runs)", RuntimeWarning, stacklevel=4)
    return _fallback


def _text(source):
    return f"{HEADER}{_digest(source)}\n{source}"


def _valid(path, source=None):
    """Is the file there, whole, and (when source is given) exactly the module of `source`?"""
    return _state(path, source) == "ok"


def _state(path, source=None):
    """"absent", "damaged" or "ok": is the file whole, and exactly the module of `source`?

    The header's hash is compared with the hash of the source asked for: a file that is
    merely self-consistent (another module, or an edited one with a recomputed header)
    is not the module wanted."""
    try:
        with open(path) as f:
            first = f.readline()
            rest = f.read()
    except FileNotFoundError:
        return "absent"
    except (OSError, UnicodeDecodeError):
        return "damaged"
    if not first.startswith(HEADER) or first[len(HEADER):].strip() != _digest(rest):
        return "damaged"
    return "ok" if source is None or rest == source else "damaged"


def discard_numba_cache(path):
    """Delete Numba's cache files (index *.nbi, data *.nbc) of the module at path.

    Returns True if there were any. Numba names them `<module file's stem>.<function>-<line>...`
    in a __pycache__ folder beside the module."""
    stem = os.path.splitext(os.path.basename(path))[0]
    files = glob.glob(os.path.join(os.path.dirname(path), "__pycache__", glob.escape(stem) + ".*.nb[ic]"))
    for f in files:
        try:
            os.unlink(f)
        except OSError:                   # discarded by another process first (or read-only:
            pass                          # then compiling again fails the same way, and says so)
    return bool(files)
