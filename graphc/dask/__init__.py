"""gc.dask: compiled graphc functions on Dask -- batch inference over dask arrays
(`map_batches`) and synchronous data-parallel training on a cluster (`fit`).

Optional: it needs the `dask` extra (pip install 'graphc[dask]'). `import graphc` does not
import this package (graphc/__init__.py loads it on first use of gc.dask), and this package
imports dask only inside its functions, so `import graphc.dask` works without dask too and
the first call says how to install it.

Imports: graphc.core, graphc.function, graphc.nn, graphc.ops, graphc.passes, graphc.runtime;
never `graphc` itself (graphc/__init__ imports this package lazily).
"""
import importlib

INSTALL = "pip install 'graphc[dask]'"


def require(module):
    """Import a dask module, or raise ImportError saying how to install the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"gc.dask needs dask and distributed, which are not installed ({e}); "
                          f"install them with: {INSTALL}") from None


from .batches import map_batches  # noqa: E402
from .training import fit  # noqa: E402

__all__ = ["map_batches", "fit", "require", "INSTALL"]
