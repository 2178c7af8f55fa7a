"""Being a good neighbour to the event loop while a large config is parsed, decoded and
validated in a worker thread (the API must keep answering meanwhile):

* ``breathe()`` is called in the hot loops; in a worker thread every 1024th call sleeps
  0.2 ms, so the event loop thread gets the GIL at once instead of after the interpreter's
  5 ms switch interval;
* ``quiet_gc()`` suspends the cyclic garbage collector while a config is worked on: parsed
  configs are acyclic (reference counting frees them), and a full collection triggered by
  their allocations would traverse the whole heap holding the GIL (tens of ms on a node).
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_ticks = 0
_quiet = 0
_quiet_lock = threading.Lock()


def breathe(*, force: bool = False) -> None:
    """A point where a worker thread lets the event loop run (no-op on the main thread)."""
    global _ticks
    _ticks += 1
    if (force or _ticks & 1023 == 0) and threading.current_thread() is not threading.main_thread():
        time.sleep(0.0002)


@contextmanager
def quiet_gc() -> Iterator[None]:
    """No automatic cyclic GC inside the block (nested and concurrent blocks count; the
    collector is enabled again when the last one leaves, if it was enabled before)."""
    global _quiet
    with _quiet_lock:
        if _quiet == 0:
            quiet_gc.was_enabled = gc.isenabled()  # type: ignore[attr-defined]
            gc.disable()
        _quiet += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet -= 1
            if _quiet == 0 and quiet_gc.was_enabled:  # type: ignore[attr-defined]
                gc.enable()
