"""Numba array layouts of the values of a CPU step, and which views Numba can make.

'C' for values that own C-contiguous memory or are C-contiguous views, else
'A' (any strides). A reshape is a view only of a C-contiguous value (Numba
reshapes nothing else); transposes and slices are views with other strides.
"""


def layouts(nodes, types):
    layout = {}
    for n in nodes:
        strided = n.op.view == "strided" and (n.op.name != "getitem" or len(types[n].shape) > 0)
        layout[n] = "A" if strided else "C"
    return layout


def aliases_in(layout, gathers=()):
    """The memory plan's `aliases` for these layouts (runtime/memory.py); the channel gathers
    that depthwise convolutions read in place (channel_gather.py) count as views."""
    def aliases(n):
        if n in gathers:
            return True
        if n.op.view == "strided":
            return layout[n] == "A"          # a getitem of one element is copied, not viewed
        if n.op.view == "reshape":
            return layout[n.inputs[0]] == "C"
        return False
    return aliases
