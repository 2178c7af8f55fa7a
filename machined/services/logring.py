"""Bounded log buffers: one fixed-size ring per service (and one for machined itself).

A ``LogRing`` preallocates ``capacity`` bytes and never grows; writes overwrite the oldest
bytes. Positions are absolute byte offsets (total bytes ever written), so a follower that
falls behind by more than the capacity simply resumes at the oldest byte still held.
``tail(n)`` returns the last n complete lines; ``follow()`` is an async iterator of chunks.

Writes are synchronous and must happen on the event loop's thread (the supervisor's pumps
do). machined's own log (``OwnLog``, the structlog processor ``machined.main`` installs, served
as log ``machined`` by the Logs RPC) is written from any thread and before the loop runs: it
hands lines to the loop's thread, holding the first ones until the ring exists.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import anyio

DEFAULT_CAPACITY = 1 << 20


class LogRing:
    """A byte ring buffer of fixed capacity with tail and follow."""

    __slots__ = ("_buf", "_cap", "_written", "_changed", "_closed")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity <= 0:
            raise ValueError(f"log ring capacity must be positive, got {capacity}")
        self._buf = bytearray(capacity)
        self._cap = capacity
        self._written = 0
        self._changed = anyio.Event()
        self._closed = False

    @property
    def capacity(self) -> int:
        return self._cap

    @property
    def written(self) -> int:
        """Total bytes ever written (the absolute end offset)."""
        return self._written

    @property
    def oldest(self) -> int:
        """Absolute offset of the oldest byte still held."""
        return max(0, self._written - self._cap)

    def __len__(self) -> int:
        return self._written - self.oldest

    def write(self, data: bytes) -> None:
        n = len(data)
        if not n:
            return
        if n > self._cap:
            self._written += n - self._cap
            data = data[n - self._cap :]
            n = self._cap
        pos = self._written % self._cap
        first = min(n, self._cap - pos)
        self._buf[pos : pos + first] = data[:first]
        if first < n:
            self._buf[: n - first] = data[first:]
        self._written += n
        self._wake()

    def close(self) -> None:
        """Wake followers for good: ``follow`` ends once it has read everything."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        ev, self._changed = self._changed, anyio.Event()
        ev.set()

    def read(self, start: int) -> tuple[bytes, int]:
        """Bytes from absolute offset ``start`` (clamped to the oldest held) to the end."""
        start = max(start, self.oldest)
        end = self._written
        if start >= end:
            return b"", end
        a, b = start % self._cap, end % self._cap
        if a < b:
            return bytes(self._buf[a:b]), end
        return bytes(self._buf[a:]) + bytes(self._buf[:b]), end

    def contents(self) -> bytes:
        """Everything held, starting at a line boundary when the ring has wrapped."""
        data, _ = self.read(0)
        if self.oldest > 0:
            nl = data.find(b"\n")
            data = data[nl + 1 :] if nl >= 0 else b""
        return data

    def tail(self, lines: int) -> list[bytes]:
        """The last ``lines`` lines (without newlines); a trailing partial line counts."""
        if lines <= 0:
            return []
        data = self.contents()
        parts = data.split(b"\n")
        if parts and parts[-1] == b"":
            parts.pop()
        return parts[-lines:]

    def _tail_offset(self, lines: int | None) -> int:
        if lines is None:
            return self.oldest
        chunk = b"\n".join(self.tail(lines))
        if not chunk:
            return self._written
        held, end = self.read(0)
        trailing_nl = held.endswith(b"\n")
        return end - len(chunk) - (1 if trailing_nl else 0)

    async def follow(self, tail_lines: int | None = None) -> AsyncIterator[bytes]:
        """Yield what is held (or its last ``tail_lines`` lines), then new data as it arrives.
        Ends when the ring is closed and drained."""
        pos = self._tail_offset(tail_lines)
        while True:
            changed = self._changed
            data, pos = self.read(pos)
            if data:
                yield data
                continue
            if self._closed:
                return
            await changed.wait()


class LogStore:
    """Rings by name, created on first use with the store's capacity."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._rings: dict[str, LogRing] = {}

    def ring(self, name: str) -> LogRing:
        r = self._rings.get(name)
        if r is None:
            r = self._rings[name] = LogRing(self.capacity)
        return r

    def names(self) -> list[str]:
        return sorted(self._rings)

    def __contains__(self, name: object) -> bool:
        return name in self._rings


def _line(event: MutableMapping[str, Any] | str | bytes) -> bytes:
    if isinstance(event, str):
        return event.encode() + b"\n"
    if isinstance(event, bytes):
        return event + b"\n"
    return (" ".join(f"{k}={v}" for k, v in event.items()) + "\n").encode()


MACHINED = "machined"
"""The log name of machined's own log (``kosctl logs machined``)."""


class OwnLog:
    """A structlog processor (after the renderer) copying machined's log lines into a ring,
    from any thread. The ring is made on the first line logged on an event loop's thread;
    lines logged before (or from a thread while there is no loop) wait in a bounded queue.
    A ring whose loop has ended is replaced by a fresh one on the next loop."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, pending: int = 1000) -> None:
        self.capacity = capacity
        self.ring: LogRing | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: deque[bytes] = deque(maxlen=pending)
        self._lock = threading.Lock()

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any] | str | bytes) -> Any:
        self.write(_line(event))
        return event

    def write(self, line: bytes) -> None:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None and (self._loop is None or self._loop is loop or self._loop.is_closed()):
            if self._loop is not loop:
                self.ring, self._loop = LogRing(self.capacity), loop
            assert self.ring is not None
            with self._lock:
                held = list(self._pending)
                self._pending.clear()
            for old in held:
                self.ring.write(old)
            self.ring.write(line)
            return
        if self._loop is not None and self.ring is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self.ring.write, line)
                return
            except RuntimeError:  # the loop closed meanwhile
                pass
        with self._lock:
            self._pending.append(line)


OWN_LOG = OwnLog()
"""machined's own log: installed by ``machined.main``, read by ``Supervisor.log(MACHINED)``."""


class RingLogProcessor:
    """A structlog processor copying every rendered event line into a ring (machined's log).

    Put it last but one, before the renderer's output is consumed, or use it with a renderer::

        structlog.configure(processors=[..., JSONRenderer(), RingLogProcessor(ring)])
    """

    def __init__(self, ring: LogRing) -> None:
        self.ring = ring

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any] | str | bytes) -> Any:
        self.ring.write(_line(event))
        return event
