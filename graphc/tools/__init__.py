"""graphc.tools: the `graphc` command -- demo, bench, passes -- and the benchmark's workloads
and peers. A user program never needs it.

May import: everything in graphc (it sits on top).
"""
