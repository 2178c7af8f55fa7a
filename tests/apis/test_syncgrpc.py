"""SyncConnection's HTTP/2 handling against a scripted peer (a socket pair, TLS left out):
what a server may legally do - split header blocks, HPACK's dynamic table across streams
(also streams the client already gave up), messages split over DATA frames, PING, trailers-only
answers, GOAWAY, RST_STREAM, a connection closed mid-call - ends in the replies or statuses
a gRPC client must see. The same client against real machined processes:
tests/apis/test_kosctl_lean.py."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator

import pytest
from grpclib.const import Status
from hpack import Encoder

from kos.apis import http2
from kos.apis.client import APIError, Request, SyncConnection

OK = [(":status", "200"), ("content-type", "application/grpc")]


def msg(data: bytes) -> bytes:
    return b"\0" + len(data).to_bytes(4, "big") + data


class Peer:
    """The server side of the pair: reads the client's preface and requests, then runs a script."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.enc = Encoder()
        self.buf = bytearray()
        self.got: list[tuple[int, int, int, bytes]] = []

    def frames(self, want: Callable[[list[tuple[int, int, int, bytes]]], bool]) -> None:
        while not want(self.got):
            data = self.sock.recv(65536)
            if not data:
                return
            self.buf += data
            if self.buf.startswith(http2.PREFACE):
                del self.buf[:len(http2.PREFACE)]
            self.got += http2.split_frames(self.buf)

    def headers(self, sid: int, headers: list[tuple[str, str]], end: bool = False, split: int = 0) -> bytes:
        block = self.enc.encode(headers)  # incremental indexing: the dynamic table grows
        if not split:
            return http2.frame(http2.HEADERS, http2.END_HEADERS | (http2.END_STREAM if end else 0), sid, block)
        return (http2.frame(http2.HEADERS, http2.END_STREAM if end else 0, sid, block[:split])
                + http2.frame(http2.CONTINUATION, http2.END_HEADERS, sid, block[split:]))

    def send(self, *data: bytes) -> None:
        self.sock.sendall(b"".join(data))


@pytest.fixture
def pair() -> Iterator[tuple[SyncConnection, Peer]]:
    a, b = socket.socketpair()
    conn = SyncConnection("127.0.0.1:1", ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), timeout=5)
    conn._sock = a  # type: ignore[assignment]  # the scripted peer speaks plain HTTP/2
    a.sendall(http2.PREFACE)
    try:
        yield conn, Peer(b)
    finally:
        conn.close()
        b.close()


def run(conn: SyncConnection, requests: list[Request], script: Callable[[], None],
        timeout: float | None = None) -> list[list[bytes] | APIError]:
    t = threading.Thread(target=script)
    t.start()
    try:
        return conn.calls(requests, timeout=timeout)
    finally:
        t.join(10)


def requests_sent(n: int) -> Callable[[list[tuple[int, int, int, bytes]]], bool]:
    return lambda got: sum(1 for f in got if f[0] == http2.DATA and f[1] & http2.END_STREAM) >= n


def test_replies_split_every_way_and_headers_indexed_across_streams(pair: tuple[SyncConnection, Peer]) -> None:
    conn, peer = pair
    big = bytes(range(256)) * 300  # over one frame

    def script() -> None:
        peer.frames(requests_sent(2))
        body = msg(b"one") + msg(big) + msg(b"")
        peer.send(http2.settings({}), http2.frame(http2.PING, 0, 0, b"12345678"),
                  peer.headers(1, OK, split=3), peer.headers(3, OK))
        for i in range(0, len(body), 7000):
            peer.send(http2.frame(http2.DATA, 0, 1, body[i:i + 7000]))
        peer.send(http2.frame(http2.DATA, http2.PADDED, 3, b"\x02" + msg(b"x") + b"\0\0"),
                  peer.headers(3, [("grpc-status", "0")], end=True),
                  peer.headers(1, [("grpc-status", "0"), ("grpc-message", "")], end=True, split=1))
        peer.frames(lambda got: any(f[0] == http2.PING and f[1] & http2.ACK for f in got))

    replies = run(conn, [Request("/s/A", b"a"), Request("/s/B", b"b", node="n2")], script)
    assert replies == [[b"one", big, b""], [b"x"]]
    assert any(f[0] == http2.SETTINGS and f[1] & http2.ACK for f in peer.got)
    sent = {f[2]: dict(http2.Decoder().decode(f[3])) for f in peer.got if f[0] == http2.HEADERS}
    assert sent[1][":path"] == "/s/A" and "node" not in sent[1] and sent[1]["te"] == "trailers"
    assert sent[3][":path"] == "/s/B" and sent[3]["node"] == "n2" and sent[3]["grpc-timeout"].endswith("m")


def test_errors_map_to_grpc_statuses(pair: tuple[SyncConnection, Peer]) -> None:
    conn, peer = pair

    def script() -> None:
        peer.frames(requests_sent(4))
        peer.send(peer.headers(1, [*OK, ("grpc-status", "7"), ("grpc-message", "access%20denied: %E2%9C%97")],
                               end=True),
                  peer.headers(3, [(":status", "503")], end=True),
                  http2.frame(http2.RST_STREAM, 0, 5, (7).to_bytes(4, "big")),
                  peer.headers(7, [*OK, ("grpc-status", "4")], end=True))

    r = run(conn, [Request("/s/A", b""), Request("/s/A", b"", "n1"), Request("/s/A", b""), Request("/s/A", b"", "n3")],
            script, timeout=3)
    assert [(e.status, e.message) for e in r if isinstance(e, APIError)] == [
        (Status.PERMISSION_DENIED, "access denied: \u2717"),
        (Status.UNAVAILABLE, "Received :status = '503'"),
        (Status.UNAVAILABLE, "the server reset the stream (REFUSED_STREAM)"),
        (Status.DEADLINE_EXCEEDED, "no answer within 3 s: the endpoint 127.0.0.1:1 forwards the call to node n3; "
         "is that node up and its address right (kosctl get members)? A node that does not answer at all "
         "(down, or the address is not in use) looks like this"),
    ]
    assert [e.node for e in r if isinstance(e, APIError)] == ["127.0.0.1:1", "n1", "127.0.0.1:1", "n3"]


def test_a_late_answer_to_a_cancelled_call_keeps_the_header_table(pair: tuple[SyncConnection, Peer]) -> None:
    conn, peer = pair

    def slow() -> None:
        peer.frames(requests_sent(1))

    [late] = run(conn, [Request("/s/A", b"", "n1")], slow, timeout=0.3)
    assert isinstance(late, APIError) and late.status == Status.DEADLINE_EXCEEDED
    peer.frames(lambda got: any(f[0] == http2.RST_STREAM and f[2] == 1 for f in got))  # the client cancelled it

    def script() -> None:
        peer.frames(requests_sent(2))
        # the cancelled stream's answer arrives now: its headers enter the table the next ones use
        peer.send(peer.headers(1, [*OK, ("x-late", "v" * 50)]), http2.frame(http2.DATA, 0, 1, msg(b"stale")),
                  peer.headers(1, [("grpc-status", "0")], end=True),
                  peer.headers(3, [*OK, ("x-late", "v" * 50)]), http2.frame(http2.DATA, 0, 3, msg(b"fresh")),
                  peer.headers(3, [("grpc-status", "0")], end=True))

    assert run(conn, [Request("/s/A", b"")], script) == [[b"fresh"]]


def test_goaway_and_a_lost_connection(pair: tuple[SyncConnection, Peer]) -> None:
    conn, peer = pair

    def script() -> None:
        peer.frames(requests_sent(2))
        peer.send(peer.headers(1, OK), http2.frame(http2.DATA, 0, 1, msg(b"part")),
                  http2.frame(http2.GOAWAY, 0, 0, (1).to_bytes(4, "big") + (0).to_bytes(4, "big")),
                  peer.headers(1, [("grpc-status", "0")], end=True))
        peer.sock.shutdown(socket.SHUT_RDWR)

    r = run(conn, [Request("/s/A", b""), Request("/s/A", b"")], script)
    assert r[0] == [b"part"]
    assert isinstance(r[1], APIError) and r[1].status == Status.UNAVAILABLE
    assert r[1].message == "the server closed the connection (NO_ERROR)"


def test_connection_lost_in_the_middle(pair: tuple[SyncConnection, Peer]) -> None:
    conn, peer = pair

    def script() -> None:
        peer.frames(requests_sent(1))
        peer.send(peer.headers(1, OK), http2.frame(http2.DATA, 0, 1, msg(b"half")[:6]))
        peer.sock.shutdown(socket.SHUT_RDWR)

    [r] = run(conn, [Request("/s/A", b"")], script)
    assert isinstance(r, APIError) and r.status == Status.UNAVAILABLE
    assert r.message.startswith("the connection to the node was lost in the middle of the call")


def test_refused_endpoint() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    [r] = SyncConnection.to(f"127.0.0.1:{port}", insecure=True).calls([Request("/s/A", b"", "n1")])
    assert isinstance(r, APIError) and r.node == "n1" and r.status == Status.UNAVAILABLE
    assert r.message.startswith(f"connection to 127.0.0.1:{port} refused: nothing listens there")
