"""Errors raised by graphc.

Every error a user can cause is a `GraphError`. The subclasses also derive
from the matching builtin, so `except ValueError` keeps working for code that
does not know about graphc.

Messages name the op, the shapes or dtypes involved, and the user's own
file:line where the offending node was built (see `graphc.core.graph.user_location`),
with the other lines that asked for the same node (hash-consing shares it).
"""


class GraphError(Exception):
    """Base class of every error graphc raises on bad input."""


class ShapeError(GraphError, ValueError):
    """Shapes that do not fit an op, a feed, or an update."""


class DTypeError(GraphError, TypeError):
    """A dtype an op does not accept, or a feed/update of the wrong dtype."""


class ArgumentError(GraphError, TypeError):
    """A function called with the wrong number or names of arguments."""


class FeedError(GraphError, ValueError):
    """A placeholder that is needed but not fed, or fed something that is not one."""


class ForeignNodeError(GraphError, ValueError):
    """A node from another graph used where this graph's node is needed."""


class AxisError(GraphError, ValueError):
    """An axis out of range for the tensor's rank."""


class NumpyOnNodeError(GraphError, TypeError):
    """A numpy function or ufunc given a graph node (np.exp(x)): the gc function builds the op."""


class NumericsError(GraphError, FloatingPointError):
    """A NaN or inf where check_numerics=True was asked."""


SHOWN_LINES = 3    # at most this many other lines where a node was requested, then "and N more"


def where(loc):
    """Format a (file, line) location as ' (built at file:line)'. A graph.Location also names
    the other lines where the user asked for that node: ', also requested at file:line, ...'."""
    if loc is None:
        return ""
    also = getattr(loc, "also", ())
    text = ", ".join(f"{f}:{n}" for f, n in also[:SHOWN_LINES])
    more = f" and {len(also) - SHOWN_LINES} more" if len(also) > SHOWN_LINES else ""
    return f" (built at {loc[0]}:{loc[1]}" + (f", also requested at {text}{more}" if also else "") + ")"
