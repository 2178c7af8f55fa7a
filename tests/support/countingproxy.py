"""A TCP proxy that counts the connections it accepts: put it in front of a real server to
see how many connections a client opens (one kept connection vs one per call)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass
class CountingProxy:
    host: str
    port: int = 0
    accepted: int = 0
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)

    def drop_all(self) -> None:
        """Cut every proxied connection (as a server restart would)."""
        for w in self._writers:
            w.close()
        self._writers.clear()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def counting_proxy(host: str, target_host: str, target_port: int) -> AsyncIterator[CountingProxy]:
    proxy = CountingProxy(host)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        proxy.accepted += 1
        r2, w2 = await asyncio.open_connection(target_host, target_port)
        proxy._writers += [writer, w2]
        await asyncio.gather(_pipe(reader, w2), _pipe(r2, writer))

    server = await asyncio.start_server(handle, host, 0)
    proxy.port = server.sockets[0].getsockname()[1]
    try:
        yield proxy
    finally:
        proxy.drop_all()
        server.close()
