"""Assembly of the API server: one grpclib server with the State, machine and security
services behind the dispatcher, over mutual TLS, or server-only TLS in maintenance mode.

HTTP/2: a client may keep ``MAX_CONCURRENT_STREAMS`` calls open at once on one connection
(h2 announces 100 by default, so the 101st watch of a client would wait for one of the first
hundred to end; grpc-go servers announce no limit).
"""

from __future__ import annotations

import os
import ssl
import tempfile
import weakref
from dataclasses import dataclass, field
from typing import Any

import anyio
import structlog
from grpclib.protocol import H2Protocol
from grpclib.server import Server
from h2.settings import SettingCodes

from kos.apis.server.dispatch import Dispatcher, Node
from kos.apis.server.machine import MachineService
from kos.apis.server.security import SecurityService
from kos.apis.server.state import StateService
from kos.platform.linux import memory
from kos.resources.pki import CertificateAndKey

log = structlog.get_logger("kos.apis")

MAX_CONCURRENT_STREAMS = 4096
"""Calls one client connection may have open at once (watches are long-lived)."""


class _H2Protocol(H2Protocol):
    """grpclib's server protocol announcing ``MAX_CONCURRENT_STREAMS`` right after h2's
    initial SETTINGS (the client's ACK of it reaches us before any stream it opens later).
    A closed connection schedules a heap trim for when the connections stop coming and going
    (``memory.release_soon``): RSS goes back down after a burst of clients."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        h2 = self.connection._connection
        h2.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS})
        self.connection.flush()

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        memory.release_soon()


class _Server(Server):
    """grpclib's server, remembering its connections so that ``close`` can drop them: grpclib
    cancels the running handlers but leaves the HTTP/2 connections open, so clients of a
    long-running stream would wait forever (and a maintenance-mode connection would outlive
    the switch to mutual TLS)."""

    def __init__(self, handlers: list[Any]) -> None:
        super().__init__(handlers)
        self.protocols: weakref.WeakSet[Any] = weakref.WeakSet()

    def _protocol_factory(self) -> Any:
        base = super()._protocol_factory()  # grpclib's handler bookkeeping
        proto = _H2Protocol(base.handler, base.config, base.h2_config)
        self.protocols.add(proto)
        return proto

    def drop_connections(self) -> None:
        for proto in list(self.protocols):
            conn = getattr(proto, "connection", None)
            transport = getattr(conn, "_transport", None)
            if transport is not None:
                transport.close()


@dataclass
class APIServer:
    """A started gRPC server; ``close()`` stops it (waiting at most ``grace`` seconds)."""

    server: _Server
    host: str
    port: int
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)

    def reload_identity(self, identity: CertificateAndKey, client_ca: bytes | None = None) -> None:
        """Serve ``identity`` from the next TLS handshake on (rotation without a restart);
        ``client_ca`` adds CA certificates accepted for client certificates. Open
        connections keep the certificate they were established with."""
        if self.ssl_context is None:
            raise RuntimeError("reload_identity: this server was started without a TLS context")
        reload_context(self.ssl_context, identity, client_ca)

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
        server = _Server([d])
        await server.start(host, port, ssl=ssl_context, reuse_address=True)
        sockets = getattr(server._server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        node.port = bound
        node.names = node.names | {f"{host}:{bound}"}
        log.info("api listening", host=host, port=bound, maintenance=node.maintenance)
        return cls(server, host, bound, ssl_context)

    async def close(self, grace: float = 5.0) -> None:
        """Stop listening, cancel running calls, wait up to ``grace`` seconds for them to end,
        then close every client connection."""
        self.server.close()
        with anyio.move_on_after(grace):
            await self.server.wait_closed()
        self.server.drop_connections()


def reload_context(ctx: ssl.SSLContext, identity: CertificateAndKey, client_ca: bytes | None = None) -> None:
    """Load a new certificate chain (and optionally more client CAs) into a live context."""
    with tempfile.TemporaryDirectory(prefix="kos-tls-") as tmp:
        crt, key = os.path.join(tmp, "crt.pem"), os.path.join(tmp, "key.pem")
        identity.to_files(crt, key)
        ctx.load_cert_chain(crt, key)
    if client_ca:
        ctx.load_verify_locations(cadata=client_ca.decode())
