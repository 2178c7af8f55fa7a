"""A connection to one API endpoint: raw unary and server-streaming calls with optional
``node`` metadata (the endpoint forwards the call to that node).

Errors are ``APIError(node, status, message)``; ``str()`` gives the one-line form kosctl prints.
A connection that ends under a call is told apart by whether the node ever answered on it:
a node that answered and then went away (killed, rebooted, network gone) is "lost in the
middle of the call"; one that closes the connection right after the TLS handshake refused
the client certificate (TLS 1.3 reports that only as a lost connection).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType

import anyio
from grpclib.client import Channel
from grpclib.const import Cardinality, Status
from grpclib.encoding.proto import ProtoCodec
from grpclib.exceptions import GRPCError, StreamTerminatedError
from grpclib.protocol import H2Protocol

from kos.apis.client.config import DEFAULT_PORT, Context
from kos.apis.client.errors import (
    CERT_REFUSED_HINT,
    CERT_REQUIRED_HINT,
    LOST_MID_CALL,
    connect_error,
    deadline_text,
)
from kos.apis.client.errors import (
    APIError as APIError,  # re-exported: health.py and older callers import it from here
)
from kos.apis.endpoint import split_endpoint
from kos.apis.tls import Identity, PEMPair, client_context
from kos.apis.wire import RawMessage


class _Protocol(H2Protocol):
    """grpclib's client protocol, remembering whether the server ever sent anything (its
    HTTP/2 SETTINGS come only once its side of the TLS handshake accepted us)."""

    answered = False

    def data_received(self, data: bytes) -> None:
        self.answered = True
        super().data_received(data)


class _Channel(Channel):
    """A grpclib channel whose connections are ``_Protocol``s."""

    _current: _Protocol | None = None

    def _protocol_factory(self) -> H2Protocol:
        base = super()._protocol_factory()
        self._current = _Protocol(base.handler, base.config, base.h2_config)
        return self._current

    @property
    def answered(self) -> bool:
        """Whether the node answered on the current (or last) connection."""
        return self._current is not None and self._current.answered


class Connection:
    def __init__(
        self,
        endpoint: str,
        *,
        ca: bytes | None = None,
        identity: Identity | None = None,
        insecure: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float | None = 30.0,
        metadata: dict[str, str] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.metadata = dict(metadata or {})  # sent with every call (a node passes kos-roles)
        self.host, self.port = split_endpoint(endpoint, DEFAULT_PORT)
        self.ssl = ssl_context or client_context(ca, identity, insecure=insecure)
        self.timeout = timeout
        self.has_identity = identity is not None or ssl_context is not None
        self._channel: _Channel | None = None

    @classmethod
    def from_context(
        cls, ctx: Context, *, endpoint: str | None = None, insecure: bool = False, timeout: float | None = 30.0
    ) -> Connection:
        if endpoint is None:
            if not ctx.endpoints:
                raise ValueError("context has no endpoints (kosctl config endpoint ADDR...)")
            endpoint = ctx.endpoints[0]
        identity = None if insecure or not ctx.crt else PEMPair(ctx.crt, ctx.key)
        return cls(endpoint, ca=ctx.ca or None, identity=identity, insecure=insecure, timeout=timeout)

    @property
    def channel(self) -> Channel:
        if self._channel is None:
            # an explicit codec: grpclib's default would import google.rpc/protobuf (~40 ms of
            # kosctl's start-up) for error details kos never sends
            self._channel = _Channel(self.host, self.port, ssl=self.ssl, codec=ProtoCodec())
        return self._channel

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _error(self, exc: Exception, node: str | None) -> APIError:
        who = node or self.endpoint
        if isinstance(exc, GRPCError):
            if exc.status == Status.DEADLINE_EXCEEDED and not exc.message:  # the server's deadline, no reason
                return APIError(who, exc.status, deadline_text(self.timeout, node, self.endpoint))
            return APIError(who, exc.status, exc.message or "")
        if isinstance(exc, StreamTerminatedError):
            hint = ""
            if "Connection lost" in str(exc) and self._channel is not None and self._channel.answered:
                return APIError(who, Status.UNAVAILABLE, f"{LOST_MID_CALL} ({exc})")
            if "Connection lost" in str(exc):  # TLS 1.3 reports a refused client certificate this way
                hint = CERT_REFUSED_HINT if self.has_identity else CERT_REQUIRED_HINT
            return APIError(who, Status.UNAVAILABLE, f"stream terminated: {exc}{hint}")
        if isinstance(exc, ssl.SSLError):
            return APIError(who, Status.UNAVAILABLE, f"TLS handshake failed: {exc.reason or exc}")
        if isinstance(exc, TimeoutError):  # the client's deadline passed (grpclib raises asyncio's)
            return APIError(who, Status.DEADLINE_EXCEEDED, deadline_text(self.timeout, node, self.endpoint))
        if isinstance(exc, OSError | ConnectionError):
            return APIError(who, Status.UNAVAILABLE, connect_error(self.host, self.port, exc))
        return APIError(who, Status.UNKNOWN, repr(exc))

    def _metadata(self, node: str | None) -> dict[str, str] | None:
        md = dict(self.metadata)
        if node:
            md["node"] = node
        return md or None

    async def unary(
        self, method: str, request: bytes, *, node: str | None = None, timeout: float | None = None
    ) -> bytes:
        try:
            async with self.channel.request(
                method, Cardinality.UNARY_UNARY, RawMessage, RawMessage,
                metadata=self._metadata(node), timeout=timeout or self.timeout,
            ) as s:
                await s.send_message(RawMessage(request), end=True)
                reply = await s.recv_message()
                await s.recv_trailing_metadata()
        except (GRPCError, StreamTerminatedError, OSError) as exc:
            raise self._error(exc, node) from None
        return b"" if reply is None else reply.data

    @asynccontextmanager
    async def stream(
        self, method: str, request: bytes, *, node: str | None = None, timeout: float | None = None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """A server stream; the iterator yields reply messages and raises APIError on failure."""
        try:
            cm = self.channel.request(
                method, Cardinality.UNARY_STREAM, RawMessage, RawMessage, metadata=self._metadata(node), timeout=timeout
            )
            s = await cm.__aenter__()
        except (GRPCError, StreamTerminatedError, OSError) as exc:
            raise self._error(exc, node) from None

        done = False

        async def replies() -> AsyncIterator[bytes]:
            nonlocal done
            try:
                while True:
                    msg = await s.recv_message()
                    if msg is None:
                        await s.recv_trailing_metadata()
                        done = True
                        return
                    yield msg.data
            except (GRPCError, StreamTerminatedError, OSError) as exc:
                done = True  # the server ended the stream (with an error status)
                raise self._error(exc, node) from None

        it = replies()
        try:
            try:
                await s.send_message(RawMessage(request), end=True)
            except (GRPCError, StreamTerminatedError, OSError) as exc:
                raise self._error(exc, node) from None
            yield it
        finally:
            await it.aclose()  # type: ignore[attr-defined]
            try:
                if not done:
                    with anyio.CancelScope(shield=True):
                        await s.cancel()
                await cm.__aexit__(None, None, None)
            except Exception:
                pass
