"""graphc.view: pictures of graphs for learners -- DOT now, the report page later.

May import: graphc.core, graphc.ops (for what an op shows). Nothing below it imports it,
except the DumpDot instrument of passes/pipeline.py, inside the instrument.
"""
