"""graphc.runtime: executors. interp (numpy, the oracle); cpu and cuda come later."""
from graphc.graph import register_internal_dir

register_internal_dir(__file__)
