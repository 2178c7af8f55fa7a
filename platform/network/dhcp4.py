"""A small DHCPv4 client (RFC 2131/2132, classless routes RFC 3442) over a UDP socket.

The wire format (``Message.encode``/``Message.decode``) and the lease extraction
(``Lease.from_ack``) are pure. ``Client`` talks to servers through a UDP socket opened in the
link's network namespace, bound to port 68 and to the device (``SO_BINDTODEVICE``), with the
broadcast flag set in requests so that servers broadcast their replies to a link that has no
address yet. ``acquire`` runs DISCOVER/OFFER/REQUEST/ACK; ``renew`` unicasts a REQUEST to the
lease's server (RENEWING), ``rebind`` broadcasts it (REBINDING); ``release`` says goodbye.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from dataclasses import dataclass, field

import anyio

from kos.platform.network.netns import socket_in

MAGIC = b"\x63\x82\x53\x63"
SERVER_PORT = 67
CLIENT_PORT = 68

DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE = 1, 2, 3, 4, 5, 6, 7

OPT_SUBNET, OPT_ROUTER, OPT_DNS, OPT_HOSTNAME, OPT_DOMAIN, OPT_MTU, OPT_BROADCAST = 1, 3, 6, 12, 15, 26, 28
OPT_NTP, OPT_REQUESTED_IP, OPT_LEASE_TIME, OPT_MSG_TYPE, OPT_SERVER_ID, OPT_PARAMS = 42, 50, 51, 53, 54, 55
OPT_T1, OPT_T2, OPT_CLIENT_ID, OPT_SEARCH, OPT_CLASSLESS = 58, 59, 61, 119, 121
OPT_END, OPT_PAD = 255, 0

PARAMS = bytes([OPT_SUBNET, OPT_ROUTER, OPT_DNS, OPT_HOSTNAME, OPT_DOMAIN, OPT_MTU, OPT_BROADCAST, OPT_NTP,
                OPT_LEASE_TIME, OPT_T1, OPT_T2, OPT_SEARCH, OPT_CLASSLESS])


class DHCPError(Exception):
    pass


def _mac_bytes(mac: str) -> bytes:
    return bytes(int(p, 16) for p in mac.split(":"))


@dataclass
class Message:
    op: int = 1  # 1 request, 2 reply
    xid: int = 0
    secs: int = 0
    flags: int = 0x8000  # broadcast
    ciaddr: str = "0.0.0.0"
    yiaddr: str = "0.0.0.0"
    siaddr: str = "0.0.0.0"
    giaddr: str = "0.0.0.0"
    chaddr: str = "00:00:00:00:00:00"
    options: dict[int, bytes] = field(default_factory=dict)

    @property
    def type(self) -> int:
        v = self.options.get(OPT_MSG_TYPE, b"")
        return v[0] if v else 0

    def encode(self) -> bytes:
        head = struct.pack(
            "!BBBBIHH4s4s4s4s16s64s128s",
            self.op, 1, 6, 0, self.xid, self.secs, self.flags,
            socket.inet_aton(self.ciaddr), socket.inet_aton(self.yiaddr), socket.inet_aton(self.siaddr),
            socket.inet_aton(self.giaddr), _mac_bytes(self.chaddr).ljust(16, b"\0"), b"", b"",
        )
        opts = bytearray(MAGIC)
        for code, value in self.options.items():
            # long values are split into several instances (RFC 3396)
            for i in range(0, max(len(value), 1), 255):
                chunk = value[i:i + 255]
                opts += bytes([code, len(chunk)]) + chunk
        opts.append(OPT_END)
        data = head + bytes(opts)
        return data.ljust(300, b"\0")

    @classmethod
    def decode(cls, data: bytes) -> Message:
        if len(data) < 240:
            raise DHCPError(f"DHCP message too short ({len(data)} bytes)")
        (op, _htype, hlen, _hops, xid, secs, flags, ci, yi, si, gi, ch) = struct.unpack("!BBBBIHH4s4s4s4s16s",
                                                                                         data[:44])
        if data[236:240] != MAGIC:
            raise DHCPError("not a DHCP message (bad magic cookie)")
        options: dict[int, bytes] = {}
        pos = 240
        while pos < len(data):
            code = data[pos]
            pos += 1
            if code == OPT_PAD:
                continue
            if code == OPT_END:
                break
            if pos >= len(data):
                raise DHCPError("truncated option")
            n = data[pos]
            pos += 1
            if pos + n > len(data):
                raise DHCPError(f"option {code} overruns the message")
            options[code] = options.get(code, b"") + data[pos:pos + n]
            pos += n
        return cls(
            op=op, xid=xid, secs=secs, flags=flags, ciaddr=socket.inet_ntoa(ci), yiaddr=socket.inet_ntoa(yi),
            siaddr=socket.inet_ntoa(si), giaddr=socket.inet_ntoa(gi),
            chaddr=":".join(f"{b:02x}" for b in ch[:min(hlen, 16)]), options=options,
        )


def _ips(value: bytes) -> list[str]:
    return [socket.inet_ntoa(value[i:i + 4]) for i in range(0, len(value) - len(value) % 4, 4)]


def _u32(value: bytes | None, default: int) -> int:
    return struct.unpack("!I", value[:4])[0] if value and len(value) >= 4 else default


def decode_domain_search(value: bytes) -> list[str]:
    """RFC 1035 names with compression pointers (option 119)."""
    out: list[str] = []
    pos = 0
    while pos < len(value):
        labels: list[str] = []
        p = pos
        jumped = False
        hops = 0
        while True:
            if p >= len(value):
                raise DHCPError("truncated domain search option")
            n = value[p]
            if n == 0:
                p += 1
                break
            if n & 0xC0 == 0xC0:
                if p + 1 >= len(value):
                    raise DHCPError("truncated compression pointer")
                target = ((n & 0x3F) << 8) | value[p + 1]
                if not jumped:
                    pos = p + 2
                jumped = True
                hops += 1
                if hops > 64 or target >= len(value):
                    raise DHCPError("bad compression pointer")
                p = target
                continue
            labels.append(value[p + 1:p + 1 + n].decode("ascii", "replace"))
            p += 1 + n
        if not jumped:
            pos = p
        out.append(".".join(labels))
    return out


def decode_classless_routes(value: bytes) -> list[tuple[str, str]]:
    """Option 121 -> [(destination CIDR, gateway)]."""
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(value):
        width = value[pos]
        if width > 32:
            raise DHCPError(f"classless route prefix length {width} > 32")
        n = (width + 7) // 8
        if pos + 1 + n + 4 > len(value):
            raise DHCPError("truncated classless route")
        dest = value[pos + 1:pos + 1 + n].ljust(4, b"\0")
        gw = value[pos + 1 + n:pos + 5 + n]
        out.append((f"{socket.inet_ntoa(dest)}/{width}", socket.inet_ntoa(gw)))
        pos += 5 + n
    return out


@dataclass
class Lease:
    address: str  # CIDR
    server: str
    lease_time: int
    renewal_time: int
    rebinding_time: int
    routers: list[str] = field(default_factory=list)
    routes: list[tuple[str, str]] = field(default_factory=list)  # classless (dest, gw)
    dns_servers: list[str] = field(default_factory=list)
    ntp_servers: list[str] = field(default_factory=list)
    hostname: str = ""
    domain: str = ""
    search: list[str] = field(default_factory=list)
    mtu: int = 0

    @classmethod
    def from_ack(cls, ack: Message) -> Lease:
        o = ack.options
        mask = o.get(OPT_SUBNET)
        prefix = ipaddress.IPv4Network(f"0.0.0.0/{socket.inet_ntoa(mask)}").prefixlen if mask else 24
        lease_time = _u32(o.get(OPT_LEASE_TIME), 3600)
        server = socket.inet_ntoa(o[OPT_SERVER_ID][:4]) if OPT_SERVER_ID in o else ack.siaddr
        return cls(
            address=f"{ack.yiaddr}/{prefix}",
            server=server,
            lease_time=lease_time,
            renewal_time=_u32(o.get(OPT_T1), lease_time // 2),
            rebinding_time=_u32(o.get(OPT_T2), lease_time * 7 // 8),
            routers=_ips(o.get(OPT_ROUTER, b"")),
            routes=decode_classless_routes(o[OPT_CLASSLESS]) if OPT_CLASSLESS in o else [],
            dns_servers=_ips(o.get(OPT_DNS, b"")),
            ntp_servers=_ips(o.get(OPT_NTP, b"")),
            hostname=o.get(OPT_HOSTNAME, b"").decode("ascii", "replace").strip("\0"),
            domain=o.get(OPT_DOMAIN, b"").decode("ascii", "replace").strip("\0"),
            search=decode_domain_search(o[OPT_SEARCH]) if OPT_SEARCH in o else [],
            mtu=struct.unpack("!H", o[OPT_MTU][:2])[0] if len(o.get(OPT_MTU, b"")) >= 2 else 0,
        )


class Client:
    """One DHCPv4 client for ``ifname`` (hardware address ``mac``) in ``netns``."""

    def __init__(self, netns: str | None, ifname: str, mac: str, *, hostname: str = "",
                 attempt_timeout: float = 2.0) -> None:
        self.netns = netns
        self.ifname = ifname
        self.mac = mac
        self.hostname = hostname
        self.attempt_timeout = attempt_timeout
        self._sock: socket.socket | None = None

    async def __aenter__(self) -> Client:
        ifname = self.ifname

        def make() -> socket.socket:
            s = socket_in(self.netns, socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
                s.bind(("0.0.0.0", CLIENT_PORT))
                s.setblocking(False)
            except BaseException:
                s.close()
                raise
            return s

        self._sock = await anyio.to_thread.run_sync(make)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _message(self, kind: int, xid: int, **options: bytes) -> Message:
        opts: dict[int, bytes] = {OPT_MSG_TYPE: bytes([kind]), OPT_CLIENT_ID: b"\x01" + _mac_bytes(self.mac)}
        if kind in (DISCOVER, REQUEST):
            opts[OPT_PARAMS] = PARAMS
            if self.hostname:
                opts[OPT_HOSTNAME] = self.hostname.encode()
        for k, v in options.items():
            opts[int(k.removeprefix("o"))] = v
        return Message(xid=xid, chaddr=self.mac, options=opts)

    async def _exchange(self, msg: Message, want: tuple[int, ...], dest: str = "255.255.255.255",
                        tries: int = 4) -> Message:
        assert self._sock is not None, "use 'async with Client(...)'"
        sock = self._sock
        for attempt in range(tries):
            sock.sendto(msg.encode(), (dest, SERVER_PORT))
            with anyio.move_on_after(self.attempt_timeout * (1 + attempt)):
                while True:
                    await anyio.wait_readable(sock)
                    try:
                        data = sock.recv(4096)
                    except BlockingIOError:
                        continue
                    try:
                        reply = Message.decode(data)
                    except DHCPError:
                        continue
                    if reply.op != 2 or reply.xid != msg.xid or reply.type not in want:
                        continue
                    return reply
        raise DHCPError(f"no DHCP reply on {self.ifname} after {tries} attempts")

    async def acquire(self) -> Lease:
        xid = int.from_bytes(os.urandom(4), "big")
        offer = await self._exchange(self._message(DISCOVER, xid), (OFFER,))
        server = offer.options.get(OPT_SERVER_ID, socket.inet_aton(offer.siaddr))
        req = self._message(REQUEST, xid, o50=socket.inet_aton(offer.yiaddr), o54=server)
        ack = await self._exchange(req, (ACK, NAK))
        if ack.type == NAK:
            raise DHCPError(f"server {socket.inet_ntoa(server[:4])} refused {offer.yiaddr} (NAK)")
        return Lease.from_ack(ack)

    async def _extend(self, lease: Lease, dest: str) -> Lease:
        xid = int.from_bytes(os.urandom(4), "big")
        msg = self._message(REQUEST, xid)
        msg.ciaddr = lease.address.split("/")[0]
        msg.flags = 0
        ack = await self._exchange(msg, (ACK, NAK), dest=dest, tries=2)
        if ack.type == NAK:
            raise DHCPError(f"server refused to extend the lease of {lease.address} (NAK)")
        return Lease.from_ack(ack)

    async def renew(self, lease: Lease) -> Lease:
        return await self._extend(lease, lease.server)

    async def rebind(self, lease: Lease) -> Lease:
        return await self._extend(lease, "255.255.255.255")

    def release(self, lease: Lease) -> None:
        """Give the lease back (DHCPRELEASE, unicast, best effort; does not wait, so it can be
        called while being cancelled)."""
        if self._sock is None:
            return
        msg = self._message(RELEASE, int.from_bytes(os.urandom(4), "big"), o54=socket.inet_aton(lease.server))
        msg.ciaddr = lease.address.split("/")[0]
        msg.flags = 0
        try:
            self._sock.sendto(msg.encode(), (lease.server, SERVER_PORT))
        except OSError:
            pass
