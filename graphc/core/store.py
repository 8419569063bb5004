"""The variable store: the current value of every variable of a graph, and where it lives.

A variable node carries a `slot` (attrs["slot"]), a number unique to it; the
store is keyed by that slot, not by the node, so the copies of a variable that
compiled programs make in their scratch graphs (Graph.scratch_copy) read and
write the same value as the user's node.

Each value lives somewhere: "host" (a numpy array) or a device a backend
registered. A device backend keeps its variables resident there across calls
(`put(var, array, "cuda")`) and the store copies a value back to the host only
when someone asks for it (`store[var]`, gc.get_value). The interpreter and the
CPU backend work on host values, so they can take turns on one graph with a
device backend: each asks for the value where it needs it.
"""
import itertools

HOST = "host"
_slots = itertools.count()


def new_slot():
    return next(_slots)


class VariableStore:
    def __init__(self):
        self._value = {}       # slot -> array (a numpy array on the host, else the device's own array)
        self._where = {}       # slot -> HOST or a device name
        self._devices = {}     # device name -> (to_host, to_device) callables

    @staticmethod
    def _slot(var):
        return var.attrs["slot"]

    def register_device(self, name, to_host, to_device):
        """A backend's copies between its device and the host (numpy)."""
        self._devices[name] = (to_host, to_device)

    def where(self, var):
        """HOST or the name of the device holding var's current value."""
        return self._where[self._slot(var)]

    def get(self, var, where=HOST):
        """var's value on `where`, copied there first if it lives elsewhere (it then lives on both:
        the copy is recorded as the current place only for the host, which every backend reads)."""
        slot = self._slot(var)
        here = self._where[slot]
        if here == where:
            return self._value[slot]
        value = self._value[slot]
        if here != HOST:
            value = self._devices[here][0](value)
            self._value[slot], self._where[slot] = value, HOST
        if where != HOST:
            value = self._devices[where][1](value)
        return value

    def host_values(self, slots):
        """The host values of the variables with these slots, in order: what a host backend
        passes its step on every call, so the common case (all on the host) is one lookup each."""
        where, value = self._where, self._value
        for s in slots:
            if where[s] != HOST:
                value[s], where[s] = self._devices[where[s]][0](value[s]), HOST
        return [value[s] for s in slots]

    def put(self, var, value, where=HOST):
        slot = self._slot(var)
        self._value[slot] = value
        self._where[slot] = where

    # dict-like access on the host: g.values[v], g.values[v] = array, v in g.values
    def __getitem__(self, var):
        return self.get(var)

    def __setitem__(self, var, value):
        self.put(var, value)

    def __contains__(self, var):
        return getattr(var, "attrs", {}).get("slot") in self._value

    def __len__(self):
        return len(self._value)
