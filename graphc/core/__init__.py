"""graphc.core: the IR and nothing else -- errors, tensor types, the graph of hash-consed
nodes, regions (sub-graphs) and the variable store.

May import: the standard library, numpy, and each other. Nothing here imports ops/,
passes/, runtime/ or the rest of graphc: op facts reach the IR through tables the op
modules fill (graph.OPERATORS for node operators, ops.REGISTRY for ops by name).
"""
