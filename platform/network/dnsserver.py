"""The host DNS cache: a forwarding, caching DNS server on UDP and TCP (``HostDNSServer``).

It listens on ``listen`` addresses (``127.0.0.53:53``, and ``169.254.116.108:53`` for pods when
kube-dns forwards to the host) inside the network namespace ``netns`` (None = the caller's),
answers names from ``names`` (cluster members) itself, serves cached replies (aged: TTLs go
down while cached) and forwards the rest to ``upstreams`` in order, over UDP (over TCP when the
client asked over TCP and the UDP reply was truncated).

Bounded everywhere: messages up to 64 KiB (UDP replies cut to the client's EDNS size, at most
4096), ``cache_size`` entries (least recently used go first; TTLs capped at ``max_ttl``),
``max_inflight`` queries being forwarded (more get SERVFAIL at once), ``max_tcp`` client
connections with an idle timeout, ``timeout`` per upstream attempt. All I/O is asynchronous;
only socket creation inside another namespace runs in a worker thread.
"""

from __future__ import annotations

import errno
import ipaddress
import secrets
import socket
import struct
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import anyio
from anyio.abc import SocketListener, SocketStream, TaskStatus, UDPSocket

from kos.platform.network import dnswire as w
from kos.platform.network.netns import run_in_netns

CacheKey = tuple[str, int, int, bool]


def split_hostport(s: str, default_port: int = 53) -> tuple[str, int]:
    """``"1.2.3.4"``, ``"1.2.3.4:5353"``, ``"fd00::1"``, ``"[fd00::1]:53"`` -> (host, port)."""
    if s.startswith("["):
        host, _, rest = s[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else default_port
    elif s.count(":") == 1:
        host, _, p = s.partition(":")
        port = int(p)
    else:
        host, port = s, default_port
    ipaddress.ip_address(host)
    if not 0 < port < 65536:
        raise ValueError(f"{s!r}: port {port} out of range")
    return host, port


@dataclass
class _Entry:
    reply: bytes
    ttl_offsets: list[int]
    stored: float
    expires: float


class Cache:
    """Replies by (name, type, class, EDNS), least recently used evicted beyond ``size``."""

    def __init__(self, size: int, *, max_ttl: int = 3600) -> None:
        self.size, self.max_ttl = size, max_ttl
        self._d: OrderedDict[CacheKey, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._d)

    def get(self, key: CacheKey, now: float) -> bytes | None:
        e = self._d.get(key)
        if e is None:
            return None
        if now >= e.expires:
            del self._d[key]
            return None
        self._d.move_to_end(key)
        return w.aged(e.reply, e.ttl_offsets, int(now - e.stored))

    def put(self, key: CacheKey, reply: bytes, parsed: w.Reply, now: float) -> None:
        ttl = cache_ttl(parsed)
        if ttl is None or self.size <= 0:
            return
        ttl = min(ttl, self.max_ttl)
        if ttl <= 0:
            return
        self._d[key] = _Entry(reply, parsed.ttl_offsets, now, now + ttl)
        self._d.move_to_end(key)
        while len(self._d) > self.size:
            self._d.popitem(last=False)

    def clear(self) -> None:
        self._d.clear()


def cache_ttl(r: w.Reply) -> int | None:
    """How long a reply may be cached: the smallest answer TTL; for NXDOMAIN / no-data the
    SOA's negative TTL (RFC 2308); None for errors, truncated replies and no-SOA negatives."""
    if r.truncated:
        return None
    if r.rcode == w.RCODE_NOERROR and r.min_ttl is not None:
        return r.min_ttl
    if r.rcode in (w.RCODE_NOERROR, w.RCODE_NXDOMAIN):
        return r.soa_negative_ttl
    return None


@dataclass
class Stats:
    queries: int = 0
    cache_hits: int = 0
    local_answers: int = 0
    forwarded: int = 0
    upstream_failures: int = 0
    refused_busy: int = 0
    internal_errors: int = 0  # queries answered SERVFAIL because answering them raised
    upstream_ok: dict[str, bool] = field(default_factory=dict)


class UpstreamError(Exception):
    pass


class HostDNSServer:
    def __init__(self, *, listen: Sequence[tuple[str, int]], upstreams: Sequence[tuple[str, int]] = (),
                 names: Mapping[str, Sequence[str]] | None = None, netns: str | None = None,
                 cache_size: int = 4096, max_ttl: int = 3600, max_inflight: int = 256, max_tcp: int = 64,
                 timeout: float = 2.0, tcp_idle: float = 10.0, name_ttl: int = 10) -> None:
        self.listen = list(listen)
        self.netns = netns
        self.cache = Cache(cache_size, max_ttl=max_ttl)
        self.max_inflight, self.max_tcp = max_inflight, max_tcp
        self.timeout, self.tcp_idle, self.name_ttl = timeout, tcp_idle, name_ttl
        self.stats = Stats()
        self._inflight = 0
        self._tcp = 0
        self.upstreams: list[tuple[str, int]] = []
        self.names: dict[str, list[str]] = {}
        self.update(upstreams=upstreams, names=names or {})

    def update(self, *, upstreams: Sequence[tuple[str, int]], names: Mapping[str, Sequence[str]]) -> None:
        """New upstreams / local names (a change of upstreams empties the cache)."""
        mine = set(self.listen)
        ups = [u for u in upstreams if u not in mine]  # never forward to ourselves
        if ups != self.upstreams:
            self.cache.clear()
        self.upstreams = ups
        self.names = {k.lower().rstrip("."): list(v) for k, v in names.items()}
        self.stats.upstream_ok = {f"{h}:{p}": self.stats.upstream_ok.get(f"{h}:{p}", True) for h, p in ups}

    # -- answering -----------------------------------------------------------------------------
    async def answer(self, query: bytes, *, tcp: bool) -> bytes | None:
        """The reply to one query (None: do not answer, e.g. the bytes are a response). A bug
        met while answering costs that query a SERVFAIL, never the server."""
        try:
            return await self._answer(query, tcp=tcp)
        except Exception:
            self.stats.internal_errors += 1
            try:
                return w.error_reply(query, w.parse_query(query), w.RCODE_SERVFAIL)
            except w.DNSFormatError:
                return None

    async def _answer(self, query: bytes, *, tcp: bool) -> bytes | None:
        self.stats.queries += 1
        try:
            q = w.parse_query(query)
        except w.DNSFormatError:
            return w.formerr_reply(query)
        if q.opcode != 0:
            return w.error_reply(query, q, w.RCODE_NOTIMP)
        local = self.names.get(q.question.name)
        if local is not None and q.question.qclass == w.CLASS_IN:
            self.stats.local_answers += 1
            return self._fit(w.address_reply(query, q, local, ttl=self.name_ttl), q, tcp)
        key: CacheKey = (q.question.name, q.question.qtype, q.question.qclass, q.edns)
        now = time.monotonic()
        hit = self.cache.get(key, now)
        if hit is not None:
            self.stats.cache_hits += 1
            return self._fit(w.with_id(hit, q.id), q, tcp)
        if not self.upstreams:
            return w.error_reply(query, q, w.RCODE_SERVFAIL)
        if self._inflight >= self.max_inflight:
            self.stats.refused_busy += 1
            return w.error_reply(query, q, w.RCODE_SERVFAIL)
        self._inflight += 1
        try:
            reply, parsed = await self._forward(query, q, tcp=tcp)
        except UpstreamError:
            return w.error_reply(query, q, w.RCODE_SERVFAIL)
        finally:
            self._inflight -= 1
        self.stats.forwarded += 1
        self.cache.put(key, reply, parsed, time.monotonic())
        return self._fit(w.with_id(reply, q.id), q, tcp)

    @staticmethod
    def _fit(reply: bytes, q: w.Query, tcp: bool) -> bytes:
        if not tcp and len(reply) > q.udp_size:
            return w.truncated(reply)
        return reply

    async def _forward(self, query: bytes, q: w.Query, *, tcp: bool) -> tuple[bytes, w.Reply]:
        for host, port in list(self.upstreams):
            name = f"{host}:{port}"
            id_ = secrets.randbelow(65536)
            out = w.with_id(query, id_)
            try:
                with anyio.fail_after(self.timeout):
                    reply = await self._udp_exchange(host, port, out, id_, q.question)
                    parsed = w.parse_reply(reply)
                    if parsed.truncated and tcp:
                        reply = await self._tcp_exchange(host, port, out, id_, q.question)
                        parsed = w.parse_reply(reply)
            except (OSError, TimeoutError, w.DNSFormatError, UpstreamError):
                self.stats.upstream_failures += 1
                self.stats.upstream_ok[name] = False
                continue
            self.stats.upstream_ok[name] = True
            if parsed.rcode in (w.RCODE_SERVFAIL, w.RCODE_REFUSED) and (host, port) != self.upstreams[-1]:
                continue  # another upstream may know
            return reply, parsed
        raise UpstreamError("no upstream answered")

    def _socket(self, family: int, type_: int) -> socket.socket:
        return run_in_netns(self.netns, lambda: socket.socket(family, type_))

    async def _new_socket(self, family: int, type_: int) -> socket.socket:
        if self.netns is None:
            s = socket.socket(family, type_)
        else:
            s = await anyio.to_thread.run_sync(self._socket, family, type_)
        s.setblocking(False)
        return s

    async def _udp_exchange(self, host: str, port: int, out: bytes, id_: int, question: w.Question) -> bytes:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = await self._new_socket(family, socket.SOCK_DGRAM)
        try:
            sock.connect((host, port))  # the kernel drops datagrams from anyone else
            sock.send(out)
            while True:
                await anyio.wait_readable(sock)
                try:
                    data = sock.recv(w.MAX_MESSAGE)
                except BlockingIOError:
                    continue
                if self._matches(data, id_, question):
                    return data
        finally:
            sock.close()

    async def _tcp_exchange(self, host: str, port: int, out: bytes, id_: int, question: w.Question) -> bytes:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = await self._new_socket(family, socket.SOCK_STREAM)
        try:
            err = sock.connect_ex((host, port))
            if err not in (0, errno.EINPROGRESS):
                raise OSError(err, f"connect {host}:{port}: {errno.errorcode.get(err, err)}")
            await anyio.wait_writable(sock)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, f"connect {host}:{port}: {errno.errorcode.get(err, err)}")
        except BaseException:
            sock.close()
            raise
        stream = await SocketStream.from_socket(sock)
        try:
            await stream.send(struct.pack("!H", len(out)) + out)
            data = await _read_message(stream)
        finally:
            with anyio.CancelScope(shield=True):  # a timed-out exchange still closes its socket
                await stream.aclose()
        if data is None or not self._matches(data, id_, question):
            raise UpstreamError(f"{host}:{port}: no matching reply over TCP")
        return data

    @staticmethod
    def _matches(data: bytes, id_: int, question: w.Question) -> bool:
        if len(data) < 12 or struct.unpack_from("!H", data, 0)[0] != id_:
            return False
        try:
            r = w.parse_reply(data)
        except w.DNSFormatError:
            return False
        return r.question is None or r.question == question

    # -- serving -------------------------------------------------------------------------------
    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Bind every listener (an OSError if one cannot be bound), then serve until cancelled."""
        udp: list[UDPSocket] = []
        tcp: list[SocketListener] = []
        try:
            for host, port in self.listen:
                usock, tsock = await anyio.to_thread.run_sync(self._bind, host, port)
                udp.append(await UDPSocket.from_socket(usock))
                tcp.append(await SocketListener.from_socket(tsock))
            async with anyio.create_task_group() as tg:
                for u in udp:
                    tg.start_soon(self._serve_udp, u, tg)
                for t in tcp:
                    tg.start_soon(self._serve_tcp, t)
                task_status.started()
        finally:
            with anyio.CancelScope(shield=True):  # closed now, even when cancelled: a new server may bind
                for u in udp:
                    await u.aclose()
                for t in tcp:
                    await t.aclose()

    def _bind(self, host: str, port: int) -> tuple[socket.socket, socket.socket]:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET

        def make() -> tuple[socket.socket, socket.socket]:
            u = socket.socket(family, socket.SOCK_DGRAM)
            t = socket.socket(family, socket.SOCK_STREAM)
            try:
                u.bind((host, port))
                t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                t.bind((host, port))
                t.listen(128)
            except OSError as e:
                u.close()
                t.close()
                raise OSError(e.errno, f"listen {host}:{port}: {e.strerror}") from None
            u.setblocking(False)
            t.setblocking(False)
            return u, t

        return run_in_netns(self.netns, make)

    async def _serve_udp(self, sock: UDPSocket, tg: anyio.abc.TaskGroup) -> None:
        send_lock = anyio.Lock()  # one writer at a time on an anyio socket
        while True:
            data, addr = await sock.receive()
            if len(data) > w.UDP_MAX:
                continue
            tg.start_soon(self._udp_one, sock, send_lock, data, addr)

    async def _udp_one(self, sock: UDPSocket, lock: anyio.Lock, data: bytes, addr: tuple[str, int]) -> None:
        reply = await self.answer(data, tcp=False)
        if reply is not None:
            try:
                async with lock:
                    await sock.sendto(reply, addr[0], addr[1])
            except OSError:
                pass

    async def _serve_tcp(self, listener: SocketListener) -> None:
        await listener.serve(self._tcp_conn)

    async def _tcp_conn(self, stream: SocketStream) -> None:
        async with stream:
            if self._tcp >= self.max_tcp:
                return
            self._tcp += 1
            try:
                while True:
                    data: bytes | None = None
                    with anyio.move_on_after(self.tcp_idle):
                        data = await _read_message(stream)
                    if data is None:
                        return
                    reply = await self.answer(data, tcp=True)
                    if reply is None:
                        return
                    await stream.send(struct.pack("!H", len(reply)) + reply)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError):
                return
            finally:
                self._tcp -= 1


async def _read_exact(stream: SocketStream, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = await stream.receive(n - len(buf))
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            return None
        buf += chunk
    return bytes(buf)


async def _read_message(stream: SocketStream) -> bytes | None:
    """One length-prefixed DNS message (RFC 1035 4.2.2), None at end of stream."""
    head = await _read_exact(stream, 2)
    if head is None:
        return None
    (length,) = struct.unpack("!H", head)
    if length < 12:
        return None
    return await _read_exact(stream, length)
