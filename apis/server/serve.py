"""Assembly of the API server: one grpclib server with the State, machine and security
services behind the dispatcher, over mutual TLS, or server-only TLS in maintenance mode.

``APIServer.start`` listens and serves every service; ``APIServer.listen`` then ``serve`` lets
machined answer a few calls (``Version``) while the services it hands ``serve`` still load,
other calls waiting for them (issue 17: the API answers first). This module imports neither
the services nor structlog (logged lines import it), so that the first answer comes early.

HTTP/2: a client may keep ``MAX_CONCURRENT_STREAMS`` calls open at once on one connection
(h2 announces 100 by default, so the 101st watch of a client would wait for one of the first
hundred to end; grpc-go servers announce no limit).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import tempfile
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import grpclib.const
from grpclib.const import Cardinality, Status
from grpclib.encoding.proto import ProtoCodec
from grpclib.exceptions import GRPCError
from grpclib.protocol import H2Protocol
from grpclib.server import Server
from h2.settings import SettingCodes

from kos.apis.protowire import RawMessage
from kos.apis.server.dispatch import Dispatcher, Node
from kos.platform.linux import memory
from kos.resources.lazy import logger

if TYPE_CHECKING:
    from kos.apis.server.machine import MachineService
    from kos.apis.server.security import SecurityService
    from kos.apis.server.state import StateService
    from kos.resources.pki import CertificateAndKey

log = logger("kos.apis")  # structlog on the first line logged (issue 17: machined's first answer)

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


class _Methods(dict[str, Any]):
    """grpclib's method table of one server. ``APIServer.listen`` may start a server with a
    few methods (machined answers ``Version`` while the rest of its API still loads: issue 17);
    until ``complete`` installs the full table, a call of any other method waits for it
    instead of being answered UNIMPLEMENTED, so a client never sees a node half-served."""

    def __init__(self, table: dict[str, Any]) -> None:
        super().__init__(table)
        self.done = asyncio.Event()
        self.closing = False

    def complete(self, table: dict[str, Any]) -> None:
        self.update(table)
        self.done.set()

    def get(self, key: str, default: Any = None) -> Any:  # what grpclib's request handler calls
        got = super().get(key)
        if got is not None or self.done.is_set():
            return default if got is None else got
        # server-streaming cardinality: grpclib checks only that a unary answer is one message,
        # which the real handler (with its real cardinality in the dispatcher) does anyway
        return grpclib.const.Handler(self._later(key), Cardinality.STREAM_STREAM, RawMessage, RawMessage)

    def _later(self, method: str) -> Callable[[Any], Awaitable[None]]:
        async def wait_for_table(stream: Any) -> None:
            await self.done.wait()
            handler = dict.get(self, method)
            if handler is None:
                if self.closing:
                    raise GRPCError(Status.UNAVAILABLE, "the API server closed before it served this method")
                raise GRPCError(Status.UNIMPLEMENTED, "Method not found")
            await handler.func(stream)

        return wait_for_table


class _Server(Server):
    """grpclib's server, remembering its connections so that ``close`` can drop them: grpclib
    cancels the running handlers but leaves the HTTP/2 connections open, so clients of a
    long-running stream would wait forever (and a maintenance-mode connection would outlive
    the switch to mutual TLS). Its method table is a ``_Methods``.

    The codec is given: grpclib's default would import google.rpc/protobuf to encode status
    details (kos sends none; not installed here, the failed import costs ~40 ms of start-up)."""

    def __init__(self, handlers: list[Any]) -> None:
        super().__init__(handlers, codec=ProtoCodec(), status_details_codec=None)
        self.methods = _Methods(self._mapping)
        self._mapping = self.methods
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


class Registrar(Protocol):
    """A service's handlers: ``register`` adds them to a dispatcher."""

    def register(self, d: Dispatcher) -> None: ...


@dataclass
class APIServer:
    """A started gRPC server; ``close()`` stops it (waiting at most ``grace`` seconds)."""

    server: _Server
    host: str
    port: int
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)
    node: Node | None = field(default=None, repr=False)

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
        server = await cls.listen(host, port, ssl_context, node=node)
        server.serve(state=state, machine=machine, security=security)
        return server

    @classmethod
    async def listen(
        cls, host: str, port: int, ssl_context: ssl.SSLContext, *, node: Node, early: Sequence[Registrar] = ()
    ) -> APIServer:
        """Listen, answering only ``early``'s methods; calls of any other method wait until
        ``serve`` installs the services (machined's first answer: issue 17)."""
        d = Dispatcher(node)
        for service in early:
            service.register(d)
        server = _Server([d])
        await server.start(host, port, ssl=ssl_context, reuse_address=True)
        sockets = getattr(server._server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        node.port = bound
        node.names = node.names | {f"{host}:{bound}"}
        return cls(server, host, bound, ssl_context, node)

    def serve(self, *, state: StateService, machine: MachineService, security: SecurityService | None = None) -> None:
        """Serve the State, machine and (optionally) security services from now on."""
        assert self.node is not None
        d = Dispatcher(self.node)
        state.register(d)
        machine.register(d)
        if security is not None:
            security.register(d)
        self.server.methods.complete(d.__mapping__())
        log.info("api listening", host=self.host, port=self.port, maintenance=self.node.maintenance)

    async def close(self, grace: float = 5.0) -> None:
        """Stop listening, cancel running calls, wait up to ``grace`` seconds for them to end,
        then close every client connection."""
        self.server.methods.closing = True
        self.server.methods.done.set()
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
