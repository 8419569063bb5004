"""graphc.passes: graph -> graph transforms (autodiff, optimizations) and the pipeline.

May import: graphc.core, graphc.ops, networkx, numpy; graphc.view only inside the
DumpDot instrument. Never runtime/: passes know nothing of backends.
"""
