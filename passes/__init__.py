"""graphc.passes: graph -> graph transforms (autodiff, optimizations, the pipeline)."""
from graphc.graph import register_internal_dir

register_internal_dir(__file__)
