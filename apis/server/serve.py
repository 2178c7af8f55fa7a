"""Assembly of the API server: one grpclib server with the State, machine and security
services behind the dispatcher, over mutual TLS, or server-only TLS in maintenance mode.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import anyio
import structlog
from grpclib.server import Server

from kos.apis.server.dispatch import Dispatcher, Node
from kos.apis.server.machine import MachineService
from kos.apis.server.security import SecurityService
from kos.apis.server.state import StateService

log = structlog.get_logger("kos.apis")


@dataclass
class APIServer:
    """A started gRPC server; ``close()`` stops it (waiting at most ``grace`` seconds)."""

    server: Server
    host: str
    port: int

    @classmethod
    async def start(
        cls,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext,
        *,
        node: Node,
        state: StateService,
        machine: MachineService,
        security: SecurityService | None = None,
    ) -> APIServer:
        d = Dispatcher(node)
        state.register(d)
        machine.register(d)
        if security is not None:
            security.register(d)
        server = Server([d])
        await server.start(host, port, ssl=ssl_context, reuse_address=True)
        sockets = getattr(server._server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        node.port = bound
        node.names = node.names | {f"{host}:{bound}"}
        log.info("api listening", host=host, port=bound, maintenance=node.maintenance)
        return cls(server, host, bound)

    async def close(self, grace: float = 5.0) -> None:
        self.server.close()
        with anyio.move_on_after(grace):
            await self.server.wait_closed()
