"""The optional dependency: dask and distributed are imported here, on first use only."""
import importlib

INSTALL = "pip install 'graphc[dask]'"


def require(module):
    """Import a dask module, or raise ImportError saying how to install the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"gc.dask needs dask and distributed, which are not installed ({e}); "
                          f"install them with: {INSTALL}") from None
