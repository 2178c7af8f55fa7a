"""Giving freed heap memory back to the kernel after a burst of work.

glibc's malloc keeps what a burst freed (many client connections' TLS and HTTP/2 buffers,
spread over its per-thread arenas) and returns only the top of each heap by itself, so a
long-running process stays at its peak RSS. ``trim()`` is ``malloc_trim(0)``: every arena,
free pages inside the heaps too. ``release_soon()`` schedules one trim (in a worker thread)
``delay`` seconds after the last call: callers note the end of a piece of work (a connection
closed) and an idle process trims once, a busy one not at all. Nothing runs periodically.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools

_handle: asyncio.TimerHandle | None = None


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> object | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


def trim() -> bool:
    """Return free heap memory to the kernel; False where malloc_trim does not exist."""
    fn = _malloc_trim()
    if fn is None:
        return False
    return bool(fn(0))  # type: ignore[operator]


def release_soon(delay: float = 5.0) -> None:
    """Trim ``delay`` seconds after the last call (no-op outside an event loop)."""
    global _handle
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    if _handle is not None:
        _handle.cancel()
    _handle = loop.call_later(delay, _run, loop)


def _run(loop: asyncio.AbstractEventLoop) -> None:
    global _handle
    _handle = None
    if not loop.is_closed():
        loop.run_in_executor(None, trim)
