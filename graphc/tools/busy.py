"""A competing CPU-bound process for `graphc bench --busy`.

    with competing(1) as pids:
        ...                        # the benchmark runs here, beside one spinning process

Each helper is a separate Python process that spins on one core (a plain Python loop:
no threads, no BLAS, no memory traffic to speak of), as another user's job on a shared
machine would. It is always stopped: on leaving the block (also by an exception or
Ctrl-C), at interpreter exit (atexit) and, should this process die without running
either (SIGKILL), by itself: it checks about every 50 ms whether its parent is still
the one that started it, and exits when not.
"""
import atexit
import os
import subprocess
import sys
from contextlib import contextmanager

# the helper's program: spin; every ~50 ms look whether the parent is still there
SPIN = """\
import os, sys
parent = int(sys.argv[1])
while True:
    for _ in range(200_000):
        pass
    if os.getppid() != parent:
        break
"""

_running = set()          # Popen objects not yet stopped (for atexit)


def start(n=1):
    """Start n spinning helper processes; returns their Popen objects."""
    procs = []
    for _ in range(n):
        p = subprocess.Popen([sys.executable, "-c", SPIN, str(os.getpid())],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, close_fds=True)
        _running.add(p)
        procs.append(p)
    return procs


def stop(procs, timeout=5.0):
    """Terminate the helpers and wait for them (kill the ones that do not go)."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:           # pragma: no cover - SIGTERM ends the loop
            p.kill()
            p.wait()
        _running.discard(p)


@contextmanager
def competing(n=1):
    """Run the block beside n CPU-bound helper processes; yields their pids."""
    procs = start(n)
    try:
        yield [p.pid for p in procs]
    finally:
        stop(procs)


@atexit.register
def _stop_all():
    stop(list(_running))
