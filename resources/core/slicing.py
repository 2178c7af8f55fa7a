"""Long loops on the event loop, in slices: ``TimeSlice.checkpoint()`` yields to other tasks
once the current slice has used ``seconds`` of wall time, so matching a query against every
resource of a kind or encoding a long List never holds the loop for more than about a slice.
"""

from __future__ import annotations

import time

import anyio
import anyio.lowlevel

SLICE_SECONDS = 0.0005
"""Work done between two yields to the event loop."""


class TimeSlice:
    __slots__ = ("seconds", "_start")

    def __init__(self, seconds: float = SLICE_SECONDS) -> None:
        self.seconds = seconds
        self._start = time.monotonic()

    async def checkpoint(self) -> None:
        """Yield to the event loop if this slice is used up (cheap when it is not)."""
        if time.monotonic() - self._start >= self.seconds:
            await anyio.lowlevel.checkpoint()
            self._start = time.monotonic()
