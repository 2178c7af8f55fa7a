"""``SyncConnection``: a synchronous gRPC client over HTTP/2 and TLS for one-shot reads
(unary and server-streaming calls), the path ``kosctl get`` takes.

Why not grpclib here: importing grpclib, h2, hpack and asyncio costs more than the whole rest
of ``kosctl get`` (issue 17, docs/operations.md); a command that sends two small requests
and reads their answers needs a socket, ``ssl`` and ``kos.apis.http2``. Everything else
(watches, client streams, the machine service, long-lived connections) stays on grpclib's
``kos.apis.client.Connection``.

Calls given together run at once on one connection (one TLS handshake), each on its own
HTTP/2 stream, so a ``-n`` fan-out over many nodes costs one round trip through the
endpoint, not one per node. Failures are ``APIError`` with the status a server sent
(``grpc-status``/``grpc-message``) or, for what happens outside a server's answer, the same
statuses and texts as ``Connection`` (``kos.apis.client.errors``): UNAVAILABLE for a refused,
unreachable or lost connection and TLS failures, DEADLINE_EXCEEDED naming what was waited for.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Sequence
from typing import NamedTuple
from urllib.parse import unquote

from grpclib.const import Status

from kos.apis import http2
from kos.apis.client.errors import (
    CERT_REFUSED_HINT,
    CERT_REQUIRED_HINT,
    LOST_MID_CALL,
    APIError,
    connect_error,
    deadline_text,
)
from kos.apis.endpoint import split_endpoint

DEFAULT_PORT = 50000  # kos.apis.client.config.DEFAULT_PORT (not imported: that module loads PyYAML)
MAX_MESSAGE = 64 << 20
"""The largest reply message accepted (a List sends one message per resource)."""

# https://github.com/grpc/grpc/blob/master/doc/http-grpc-status-mapping.md
_HTTP_STATUS = {"400": Status.INTERNAL, "401": Status.UNAUTHENTICATED, "403": Status.PERMISSION_DENIED,
                "404": Status.UNIMPLEMENTED, "429": Status.UNAVAILABLE, "502": Status.UNAVAILABLE,
                "503": Status.UNAVAILABLE, "504": Status.UNAVAILABLE}
BATCH = 100
"""Streams opened at once (HTTP/2 asks servers to allow at least 100; kos servers allow 4096)."""
_REFILL = 1 << 30  # receive window given back once this much arrived (windows start at 2^31-1)


def _literal(host: str) -> bool:
    """An IPv4 or IPv6 address (no name to resolve, none to send as TLS SNI)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            return True
        except OSError:
            continue
    return False


def _tcp(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection; an address literal skips the resolver (and its IDNA codec import)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
        return sock
    return socket.create_connection((host, port), timeout=timeout)


class Request(NamedTuple):
    method: str  # "/package.Service/Method"
    body: bytes  # the encoded request message
    node: str | None = None  # ``node`` metadata: the endpoint forwards the call there


class _Stream:
    __slots__ = ("request", "headers", "messages", "buf", "error", "done", "end", "received")

    def __init__(self, request: Request) -> None:
        self.request = request
        self.headers: list[tuple[str, str]] | None = None
        self.messages: list[bytes] = []
        self.buf = bytearray()
        self.error: APIError | None = None
        self.done = False
        self.end = False  # the header block ends the stream
        self.received = 0  # DATA bytes not yet given back as window


class SyncConnection:
    """One TLS connection to ``endpoint``, opened by the first call; ``ssl_context`` is built
    once by the caller (``kos.apis.tls.client_context``)."""

    def __init__(self, endpoint: str, ssl_context: ssl.SSLContext, *, timeout: float | None = 30.0,
                 connect_timeout: float = 10.0, metadata: dict[str, str] | None = None,
                 has_identity: bool = True) -> None:
        self.endpoint = endpoint
        self.host, self.port = split_endpoint(endpoint, DEFAULT_PORT)
        self.ssl = ssl_context
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.metadata = dict(metadata or {})
        self.has_identity = has_identity  # a client certificate is presented (else: --insecure)
        self._call_timeout = timeout
        self._sock: ssl.SSLSocket | None = None
        self._decoder = http2.Decoder()
        self._next_id = 1
        self._answered = False  # the server sent something on this connection
        self._gone = False  # the server sent GOAWAY: the next call connects again
        self._block = b""  # a header block waiting for CONTINUATION frames
        self._block_end = False
        self._conn_received = 0
        self._buf = bytearray()

    @classmethod
    def to(cls, endpoint: str, *, ca: bytes = b"", crt: bytes = b"", key: bytes = b"", insecure: bool = False,
           timeout: float | None = 30.0) -> SyncConnection:
        """A connection verifying the node against ``ca`` and presenting ``crt``/``key`` (a
        kosconfig context's), or with ``insecure`` TLS without either (maintenance mode)."""
        from kos.apis.tls import PEMPair, client_context

        identity = None if insecure or not crt else PEMPair(crt, key)
        ctx = client_context(ca or None, identity, insecure=insecure)
        return cls(endpoint, ctx, timeout=timeout, has_identity=identity is not None)

    def __enter__(self) -> SyncConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.sendall(http2.frame(http2.GOAWAY, 0, 0, bytes(8)))  # NO_ERROR
            except OSError:
                pass
            self._sock.close()
            self._sock = None
        self._decoder = http2.Decoder()
        self._next_id = 1
        self._answered = self._gone = self._block_end = False
        self._block = b""
        self._conn_received = 0
        self._buf = bytearray()

    # -- calls ---------------------------------------------------------------------------------

    def unary(self, method: str, body: bytes, *, node: str | None = None) -> bytes:
        reply = self.calls([Request(method, body, node)])[0]
        if isinstance(reply, APIError):
            raise reply
        return reply[0] if reply else b""

    def calls(self, requests: Sequence[Request], timeout: float | None = None) -> list[list[bytes] | APIError]:
        """Run every request at once (in batches of ``BATCH`` streams), all within ``timeout``
        (default: the connection's); per request its reply messages or its error."""
        timeout = self._call_timeout = timeout or self.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        out: list[list[bytes] | APIError] = []
        for i in range(0, len(requests), BATCH):
            out += self._batch(requests[i:i + BATCH], deadline, timeout)
        return out

    def _batch(self, requests: Sequence[Request], deadline: float | None,
               timeout: float | None) -> list[list[bytes] | APIError]:
        streams: dict[int, _Stream] = {}
        try:
            self._connect(deadline)
            left = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            out = b"".join(self._open(r, left, streams) for r in requests)
            assert self._sock is not None
            try:
                self._sock.sendall(out)
            except OSError as exc:
                raise self._lost(f"{type(exc).__name__}: {exc.strerror or exc}") from None
            self._read(streams, deadline, timeout)
            if self._gone:
                self.close()
        except APIError as exc:
            if not streams:
                return [APIError(r.node or self.endpoint, exc.status, exc.message) for r in requests]
            for s in streams.values():
                if not s.done:
                    self._finish(s, exc.status, exc.message)
            self.close()
        return [s.error if s.error is not None else s.messages for s in streams.values()]

    # -- connection ----------------------------------------------------------------------------

    def _fail(self, status: Status, message: str) -> APIError:
        self.close()
        return APIError(self.endpoint, status, message)

    def _connect(self, deadline: float | None) -> None:
        if self._sock is not None:
            return
        limit = self.connect_timeout if deadline is None else min(self.connect_timeout, deadline - time.monotonic())
        try:
            raw = _tcp(self.host, self.port, max(limit, 0.001))
        except OSError as exc:
            raise self._fail(Status.UNAVAILABLE, connect_error(self.host, self.port, exc, limit)) from None
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = self.ssl.wrap_socket(raw, server_hostname=None if _literal(self.host) else self.host)
        except ssl.SSLError as exc:
            raw.close()
            raise self._fail(Status.UNAVAILABLE, f"TLS handshake failed: {exc.reason or exc}") from None
        except TimeoutError:
            raw.close()
            raise self._fail(Status.UNAVAILABLE, f"the TLS handshake with {self.host}:{self.port} timed out after "
                             f"{limit:.3g} s: something accepts connections there but does not answer (not a kos "
                             "API, or the node is overloaded)") from None
        except OSError as exc:
            raw.close()
            raise self._fail(Status.UNAVAILABLE, connect_error(self.host, self.port, exc, limit)) from None
        if self._sock.selected_alpn_protocol() != "h2":
            raise self._fail(Status.UNAVAILABLE, f"{self.endpoint} does not speak HTTP/2 (ALPN h2): not a kos API")
        self._sock.sendall(
            http2.PREFACE
            + http2.settings({http2.SETTINGS_ENABLE_PUSH: 0, http2.SETTINGS_INITIAL_WINDOW_SIZE: http2.MAX_WINDOW})
            + http2.window_update(0, http2.MAX_WINDOW - http2.DEFAULT_WINDOW)
        )

    def _open(self, r: Request, timeout: float | None, streams: dict[int, _Stream]) -> bytes:
        sid = self._next_id
        self._next_id += 2
        streams[sid] = _Stream(r)
        headers = [(":method", "POST"), (":scheme", "https"), (":path", r.method),
                   (":authority", f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"),
                   ("content-type", "application/grpc"),
                   ("te", "trailers")]
        if timeout is not None:
            headers.append(("grpc-timeout", f"{max(int(timeout * 1000), 1)}m"))
        md = dict(self.metadata)
        if r.node:
            md["node"] = r.node
        headers += md.items()
        block = http2.encode_headers(headers)
        frames = []
        first = True
        while True:  # a block over one frame continues in CONTINUATION frames
            part, block = block[:http2.DEFAULT_MAX_FRAME], block[http2.DEFAULT_MAX_FRAME:]
            flags = 0 if block else http2.END_HEADERS
            frames.append(http2.frame(http2.HEADERS if first else http2.CONTINUATION, flags, sid, part))
            first = False
            if not block:
                break
        message = b"\0" + len(r.body).to_bytes(4, "big") + r.body
        if len(message) > http2.DEFAULT_WINDOW:
            raise ValueError(f"{r.method}: a request of {len(r.body)} bytes is more than this client sends")
        for i in range(0, len(message), http2.DEFAULT_MAX_FRAME):
            chunk = message[i:i + http2.DEFAULT_MAX_FRAME]
            last = i + http2.DEFAULT_MAX_FRAME >= len(message)
            frames.append(http2.frame(http2.DATA, http2.END_STREAM if last else 0, sid, chunk))
        return b"".join(frames)

    def _read(self, streams: dict[int, _Stream], deadline: float | None, timeout: float | None) -> None:
        sock = self._sock
        assert sock is not None
        while not all(s.done for s in streams.values()):
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._expire(streams, timeout)
                    return
                sock.settimeout(left)
            try:
                data = sock.recv(1 << 18)
            except TimeoutError:
                self._expire(streams, timeout)
                return
            except ssl.SSLError as exc:
                raise self._lost(f"TLS: {exc.reason or exc}") from None
            except OSError as exc:
                raise self._lost(f"{type(exc).__name__}: {exc.strerror or exc}") from None
            if not data:
                raise self._lost("Connection lost")
            self._answered = True
            self._buf += data
            try:
                frames = http2.split_frames(self._buf)
                reply = b"".join(self._frame(f, streams) for f in frames)
            except http2.ProtocolError as exc:
                raise self._fail(Status.INTERNAL, f"HTTP/2 protocol error from {self.endpoint}: {exc}") from None
            if reply:
                sock.sendall(reply)

    def _lost(self, reason: str) -> APIError:
        if self._answered:
            return self._fail(Status.UNAVAILABLE, f"{LOST_MID_CALL} ({reason})")
        hint = CERT_REFUSED_HINT if self.has_identity else CERT_REQUIRED_HINT
        return self._fail(Status.UNAVAILABLE, f"stream terminated: {reason}{hint}")

    def _expire(self, streams: dict[int, _Stream], timeout: float | None) -> None:
        cancel = b""
        for sid, s in streams.items():
            if not s.done:
                s.done = True
                s.error = APIError(s.request.node or self.endpoint, Status.DEADLINE_EXCEEDED,
                                   deadline_text(timeout, s.request.node, self.endpoint))
                cancel += http2.frame(http2.RST_STREAM, 0, sid, (8).to_bytes(4, "big"))  # CANCEL
        try:
            if self._sock is not None:
                self._sock.sendall(cancel)
        except OSError:
            self.close()

    # -- frames --------------------------------------------------------------------------------

    def _frame(self, f: tuple[int, int, int, bytes], streams: dict[int, _Stream]) -> bytes:
        ftype, flags, sid, payload = f
        if ftype == http2.SETTINGS:
            if not flags & http2.ACK:
                http2.parse_settings(payload)
                return http2.frame(http2.SETTINGS, http2.ACK, 0)
            return b""
        if ftype == http2.PING:
            return b"" if flags & http2.ACK else http2.frame(http2.PING, http2.ACK, 0, payload)
        if ftype == http2.GOAWAY:
            self._goaway(payload, streams)
            return b""
        if ftype in (http2.WINDOW_UPDATE, http2.PRIORITY) or sid == 0:
            return b""
        if ftype == http2.PUSH_PROMISE:
            raise http2.ProtocolError("PUSH_PROMISE although push is disabled")
        if ftype in (http2.HEADERS, http2.CONTINUATION):
            # every header block is decoded, a cancelled stream's too: HPACK's table spans the
            # connection (and CONTINUATION frames follow their HEADERS frame without interleaving)
            if ftype == http2.HEADERS:
                self._block = http2.unpad(flags, payload, priority=True)
                self._block_end = bool(flags & http2.END_STREAM)
            else:
                self._block += payload
            if flags & http2.END_HEADERS:
                headers = self._decoder.decode(self._block)
                self._block = b""
                s = streams.get(sid)
                if s is not None and not s.done:
                    s.end = self._block_end
                    self._headers(s, headers)
            return b""
        s = streams.get(sid)
        if s is None or s.done:  # a stream of an earlier call (cancelled): ignore its frames
            if ftype == http2.DATA:
                self._conn_received += len(payload)
            return b""
        if ftype == http2.DATA:
            return self._data(sid, s, flags, payload)
        if ftype == http2.RST_STREAM:
            code = int.from_bytes(payload[:4], "big")
            status = {7: Status.UNAVAILABLE, 8: Status.CANCELLED}.get(code, Status.INTERNAL)
            self._finish(s, status, f"the server reset the stream ({http2.error_name(code)})")
        return b""

    def _finish(self, s: _Stream, status: Status | None, message: str = "") -> None:
        s.done = True
        if status is not None and status != Status.OK:
            s.error = APIError(s.request.node or self.endpoint, status, message)

    def _headers(self, s: _Stream, headers: list[tuple[str, str]]) -> None:
        if s.headers is None:
            s.headers = headers
            h = dict(headers)
            code = h.get(":status", "")
            if code != "200":
                self._finish(s, _HTTP_STATUS.get(code, Status.UNKNOWN), f"Received :status = {code!r}")
                return
            if not s.end:
                if not h.get("content-type", "").startswith("application/grpc"):
                    self._finish(s, Status.UNKNOWN, f"Invalid content-type: {h.get('content-type')!r}")
                return
        elif not s.end:
            raise http2.ProtocolError("a second header block without END_STREAM")
        self._trailers(s, dict(headers))

    def _trailers(self, s: _Stream, h: dict[str, str]) -> None:
        raw = h.get("grpc-status")
        if raw is None:
            self._finish(s, Status.UNKNOWN, "Missing grpc-status header")
            return
        try:
            status = Status(int(raw))
        except ValueError:
            self._finish(s, Status.UNKNOWN, f"Invalid grpc-status: {raw!r}")
            return
        message = unquote(h.get("grpc-message", ""), encoding="utf-8", errors="replace")
        if status == Status.DEADLINE_EXCEEDED and not message:
            message = deadline_text(self._call_timeout, s.request.node, self.endpoint)
        if status == Status.OK and s.buf:
            status, message = Status.INTERNAL, "the stream ended inside a message"
        self._finish(s, status, message)

    def _data(self, sid: int, s: _Stream, flags: int, payload: bytes) -> bytes:
        if s.headers is None:
            raise http2.ProtocolError(f"DATA before HEADERS on stream {sid}")
        s.received += len(payload)
        self._conn_received += len(payload)
        s.buf += http2.unpad(flags, payload)
        buf = s.buf
        while len(buf) >= 5:
            if buf[0]:
                self._finish(s, Status.INTERNAL, "a compressed message (this client asks for none)")
                return b""
            length = int.from_bytes(buf[1:5], "big")
            if length > MAX_MESSAGE:
                self._finish(s, Status.RESOURCE_EXHAUSTED, f"a reply message of {length} bytes (limit {MAX_MESSAGE})")
                return b""
            if len(buf) < 5 + length:
                break
            s.messages.append(bytes(buf[5:5 + length]))
            del buf[:5 + length]
        if flags & http2.END_STREAM:
            self._finish(s, Status.UNKNOWN, "the stream ended without trailers (no grpc-status)")
            return b""
        out = b""
        if s.received >= _REFILL:
            out += http2.window_update(sid, s.received)
            s.received = 0
        if self._conn_received >= _REFILL:
            out += http2.window_update(0, self._conn_received)
            self._conn_received = 0
        return out

    def _goaway(self, payload: bytes, streams: dict[int, _Stream]) -> None:
        last = int.from_bytes(payload[:4], "big") & http2.MAX_WINDOW
        code = int.from_bytes(payload[4:8], "big")
        debug = payload[8:].decode("utf-8", "replace")
        why = http2.error_name(code) + (f": {debug}" if debug else "")
        self._gone = True
        for sid, s in streams.items():
            if not s.done and (sid > last or code):
                self._finish(s, Status.UNAVAILABLE, f"the server closed the connection ({why})")
