"""graphc.view: pictures of graphs for learners -- DOT (dot.py) and the report page
(report.py, report_page.py, svg.py, profile.py: gc.report).

May import: graphc.core, graphc.ops (for what an op shows); the report also graphc.passes
and graphc.runtime, inside its functions (import graphc loads no Numba). Nothing below it
imports it, except the DumpDot instrument of passes/pipeline.py, inside the instrument.
"""
