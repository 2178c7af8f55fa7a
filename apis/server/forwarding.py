"""The connections a node keeps to the nodes it forwards requests to (``node`` metadata).

One grpclib ``Channel`` (one HTTP/2 connection over mutual TLS) per target node, shared by
every forwarded call to that node whoever the client is, so the endpoint's memory grows with
the number of target nodes, not with clients x targets (each connection holds TLS and HTTP/2
state and buffers). HTTP/2 multiplexes the calls; a channel carrying ``streams_per_channel``
calls at once (below the concurrent-stream limit kos servers announce, 4096) gets a sibling
for the overflow rather than queueing calls behind long watches. A channel unused for
``idle_close`` seconds is closed; a lost connection is replaced by grpclib on the next call;
a new TLS context (renewed node certificate) starts over with new channels.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from grpclib.client import Channel

from kos.platform.linux import memory


@dataclass(eq=False)
class _Held:
    channel: Channel
    active: int = 0
    last_used: float = field(default_factory=time.monotonic)


class ForwardChannels:
    def __init__(self, *, streams_per_channel: int = 1000, idle_close: float = 60.0) -> None:
        if streams_per_channel < 1 or idle_close <= 0:
            raise ValueError("streams_per_channel must be >= 1 and idle_close > 0")
        self.streams_per_channel = streams_per_channel
        self.idle_close = idle_close
        self._held: dict[tuple[str, int], list[_Held]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._retiring: list[_Held] = []

    def count(self) -> int:
        """Open channels (for tests and figures)."""
        return sum(len(v) for v in self._held.values())

    @asynccontextmanager
    async def channel(self, host: str, port: int, ssl_context: ssl.SSLContext) -> AsyncIterator[Channel]:
        """A channel to ``host:port`` for one call, shared with other calls to it."""
        if ssl_context is not self._ssl:  # renewed certificate: new channels; calls in flight finish
            for group in self._held.values():
                for old in group:
                    if old.active:
                        self._retiring.append(old)
                    else:
                        old.channel.close()
            self._held.clear()
            self._ssl = ssl_context
        held = self._pick((host, port), ssl_context)
        held.active += 1
        try:
            yield held.channel
        finally:
            held.active -= 1
            held.last_used = time.monotonic()
            if held in self._retiring and not held.active:
                self._retiring.remove(held)
                held.channel.close()
            self._schedule_reap()

    def _pick(self, key: tuple[str, int], ssl_context: ssl.SSLContext) -> _Held:
        group = self._held.setdefault(key, [])
        for held in group:
            if held.active < self.streams_per_channel:
                return held
        held = _Held(Channel(key[0], key[1], ssl=ssl_context))
        group.append(held)
        return held

    def _schedule_reap(self) -> None:
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.idle_close, self._reap)

    def _reap(self) -> None:
        self._timer = None
        now = time.monotonic()
        for key, group in list(self._held.items()):
            for held in list(group):
                if held.active == 0 and now - held.last_used >= self.idle_close:
                    held.channel.close()
                    group.remove(held)
            if not group:
                del self._held[key]
                memory.release_soon()
        if self._held:
            self._schedule_reap()

    def close(self) -> None:
        for held in [h for group in self._held.values() for h in group] + self._retiring:
            held.channel.close()
        self._held.clear()
        self._retiring.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
