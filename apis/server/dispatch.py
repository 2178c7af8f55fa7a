"""Every RPC goes through here: role check, optional forwarding to another node, then the
handler, with raw protobuf bytes in and out (``kos.apis.wire.RawMessage``).

A handler is ``async def h(call: Call) -> None``; ``Call`` carries the grpclib stream, the
caller's effective roles and the request bytes (checked against the size limit). A request
with ``node`` metadata naming another node is forwarded there over mutual TLS with this
node's impersonator certificate and the caller's roles in ``kos-roles``; responses of the
machine service come back tagged with that node (``NodeMetadata.hostname``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpclib.const
import grpclib.server
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from kos.apis import auth, limits
from kos.apis.endpoint import split_endpoint as split_endpoint
from kos.apis.limits import MAX_REQUEST_BYTES as MAX_REQUEST_BYTES
from kos.apis.protowire import RawMessage, length_delimited
from kos.resources.core import ECHO_CHARS, MESSAGE_CHARS, cap
from kos.resources.lazy import logger

if TYPE_CHECKING:
    from kos.apis.server.forwarding import ForwardChannels

log = logger("kos.apis")  # structlog is imported on the first line logged (machined's first answer: issue 17)

Stream = grpclib.server.Stream[RawMessage, RawMessage]


@dataclass
class Call:
    stream: Stream
    method: str
    roles: frozenset[str]

    request_data: bytes | None = field(default=None, init=False, repr=False)

    async def request(self) -> bytes:
        """The (single) request message; read from the stream once, so a handler that looks at it
        and hands the call on to another handler (``PodLogsAPI``) leaves it there to read."""
        if self.request_data is None:
            msg = await self.stream.recv_message()
            data = b"" if msg is None else msg.data
            limits.check_size(self.method, len(data))
            self.request_data = data
        return self.request_data

    async def send(self, data: bytes) -> None:
        await self.stream.send_message(RawMessage(data))


Handler = Callable[[Call], Awaitable[None]]


@dataclass
class Node:
    """What the dispatcher knows about the node it runs on."""

    names: frozenset[str]
    port: int
    maintenance: bool = False
    forward_ssl: Any = None  # ssl.SSLContext for node-to-node calls (None: no forwarding)
    forward_channels: ForwardChannels | None = None  # shared per target node; made on the first forwarded call

    def channels(self) -> ForwardChannels:
        """The node-to-node channels (``kos.apis.server.forwarding``, imported on first use: a
        maintenance node never forwards)."""
        if self.forward_channels is None:
            from kos.apis.server.forwarding import ForwardChannels

            self.forward_channels = ForwardChannels()
        return self.forward_channels


@dataclass
class Dispatcher:
    node: Node
    handlers: dict[str, tuple[Handler, Cardinality]] = field(default_factory=dict)

    def add(self, method: str, handler: Handler, cardinality: Cardinality) -> None:
        self.handlers[method] = (handler, cardinality)

    def __mapping__(self) -> dict[str, grpclib.const.Handler]:
        return {
            method: grpclib.const.Handler(self._wrap(method, h, card), card, RawMessage, RawMessage)
            for method, (h, card) in self.handlers.items()
        }

    def _roles(self, stream: Stream) -> frozenset[str]:
        if self.node.maintenance:
            return frozenset({auth.MAINTENANCE})
        peer = auth.roles_from_peercert(stream.peer.cert())
        return auth.effective_roles(peer, dict(stream.metadata or {}))

    def _wrap(self, method: str, handler: Handler, card: Cardinality) -> Callable[[Stream], Awaitable[None]]:
        async def run(stream: Stream) -> None:
            roles = self._roles(stream)
            try:
                auth.check_method(method, roles)
            except auth.AccessDenied as exc:
                log.info("access denied", method=method, roles=sorted(roles), peer=_peer(stream))
                raise GRPCError(Status.PERMISSION_DENIED, str(exc)) from None
            call = Call(stream, method, roles)
            target = dict(stream.metadata or {}).get(auth.NODE_METADATA)
            if target and target not in self.node.names:
                await self._forward(call, str(target), card)
                return
            try:
                await handler(call)
            except GRPCError as exc:
                # the one place every status leaves: no message quotes more than ``cap`` allows
                if exc.message and len(exc.message) > MESSAGE_CHARS:
                    raise GRPCError(exc.status, cap(exc.message), exc.details) from None
                raise
            except GeneratorExit:
                raise
            except auth.AccessDenied as exc:
                log.info("access denied", method=method, roles=sorted(roles), peer=_peer(stream), reason=str(exc))
                raise GRPCError(Status.PERMISSION_DENIED, str(exc)) from None
            except NotImplementedError as exc:
                raise GRPCError(Status.UNIMPLEMENTED, cap(str(exc)) or f"{method} is not implemented") from None
            except Exception as exc:
                log.warning("rpc failed", method=method, error=repr(exc))
                raise GRPCError(Status.UNKNOWN, cap(f"{type(exc).__name__}: {exc}")) from None

        return run

    async def _forward(self, call: Call, target: str, card: Cardinality) -> None:
        if self.node.maintenance or self.node.forward_ssl is None:
            raise GRPCError(Status.UNAVAILABLE, f"node {cap(target, ECHO_CHARS)}: this node does not forward requests")
        if card in (Cardinality.STREAM_UNARY, Cardinality.STREAM_STREAM):
            raise GRPCError(Status.UNIMPLEMENTED, f"{call.method}: client streams are not forwarded to other nodes")
        shown = cap(target, ECHO_CHARS)
        try:
            host, port = split_endpoint(target, self.node.port)
        except ValueError as exc:
            raise GRPCError(Status.INVALID_ARGUMENT, f"node metadata: {cap(str(exc), 300)}") from None
        request = await call.request()
        tag = call.method.startswith(auth.MACHINE)
        try:
            md = {auth.ROLES_METADATA: ",".join(sorted(call.roles))}
            # one connection per target node, shared by every forwarded call (ForwardChannels)
            async with self.node.channels().channel(host, port, self.node.forward_ssl) as channel:
                await _connect(channel)
                async with channel.request(call.method, card, RawMessage, RawMessage, metadata=md) as s:
                    await s.send_message(RawMessage(request), end=True)
                    async for msg in _replies(s):
                        await call.send(msg.data + (_node_tag(target) if tag else b""))
        except GRPCError as exc:
            raise GRPCError(exc.status, cap(f"node {shown}: {exc.message}")) from None
        except StreamTerminatedError as exc:
            raise GRPCError(
                Status.UNAVAILABLE, f"node {shown}: the connection to it was lost in the middle of the call ({exc}): "
                "the node went away or restarted, or the network between the nodes failed",
            ) from None
        except OSError as exc:  # TimeoutError: _connect's
            from kos.apis.client import connect_error

            timeout = FORWARD_CONNECT_TIMEOUT if isinstance(exc, TimeoutError) else None
            raise GRPCError(Status.UNAVAILABLE, f"node {shown}: {connect_error(host, port, exc, timeout)}") from None


FORWARD_CONNECT_TIMEOUT = 10.0
"""How long a forwarded call waits for its target node to accept a connection: a node that
does not answer at all (down, or an address nobody uses) is reported as such, well before
the client's own deadline (kosctl's is 30 s) would end the call without a reason."""


async def _connect(channel: Any) -> None:
    """Open (or reuse) the channel's connection within ``FORWARD_CONNECT_TIMEOUT`` (else
    TimeoutError)."""
    import asyncio

    await asyncio.wait_for(channel.__connect__(), FORWARD_CONNECT_TIMEOUT)


def _peer(stream: Stream) -> str:
    try:
        addr = stream.peer.addr()
    except Exception:
        return "?"
    return f"{addr[0]}:{addr[1]}" if addr else "?"


async def _replies(s: Any) -> Any:
    while True:
        msg = await s.recv_message()
        if msg is None:
            return
        yield msg


def _node_tag(node: str) -> bytes:
    """``NodeMetadata metadata = 1 {hostname = node}``; appended, it merges into the message."""
    return length_delimited(b"\x0a", length_delimited(b"\x0a", node.encode()))
