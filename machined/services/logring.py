"""Bounded log buffers: one fixed-size ring per service (and one for machined itself).

A ``LogRing`` preallocates ``capacity`` bytes and never grows; writes overwrite the oldest
bytes. Positions are absolute byte offsets (total bytes ever written), so a follower that
falls behind by more than the capacity simply resumes at the oldest byte still held.
``tail(n)`` returns the last n complete lines; ``follow()`` is an async iterator of chunks.

Writes are synchronous and must happen on the event loop's thread (the supervisor's pumps
and the structlog processor do).
"""

from __future__ import annotations

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


class RingLogProcessor:
    """A structlog processor copying every rendered event line into a ring (machined's log).

    Put it last but one, before the renderer's output is consumed, or use it with a renderer::

        structlog.configure(processors=[..., JSONRenderer(), RingLogProcessor(ring)])
    """

    def __init__(self, ring: LogRing) -> None:
        self.ring = ring

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any] | str | bytes) -> Any:
        if isinstance(event, str):
            self.ring.write(event.encode() + b"\n")
        elif isinstance(event, bytes):
            self.ring.write(event + b"\n")
        else:
            self.ring.write((" ".join(f"{k}={v}" for k, v in event.items()) + "\n").encode())
        return event
