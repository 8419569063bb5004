"""gc.dask: compiled graphc functions on Dask -- batch inference over dask arrays
(`map_batches`) and synchronous data-parallel training on a cluster (`fit`).

Optional: it needs the `dask` extra (pip install 'graphc[dask]'). `import graphc` does not
import this package (graphc/__init__.py loads it on first use of gc.dask), and this package
imports dask only inside its functions, so `import graphc.dask` works without dask too and
the first call says how to install it.

Imports: graphc.core, graphc.function, graphc.nn, graphc.ops, graphc.passes, graphc.runtime;
never `graphc` itself (graphc/__init__ imports this package lazily).
"""
from .extra import INSTALL, require  # noqa: F401
from .batches import from_npy, map_batches
from .training import fit

__all__ = ["map_batches", "from_npy", "fit", "require", "INSTALL"]
