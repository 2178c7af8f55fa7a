"""The boot prelude's network set-up in plain rtnetlink (stdlib ``socket`` and ``struct``):
bring a link up, add an address, add the default route.

``/sbin/init`` (``kos.platform.image.boot``) configures the first link from ``kos.ip=`` before
it execs machined. It used pyroute2 for that, whose import alone took about ten times a bare
Python start (some 3 s of a TCG VM's boot) and was thrown away by the exec. These three
requests need a few hundred bytes of rtnetlink, built here; machined's network controllers
(``kos.platform.network.netlink``) take the links over from the machine config later.

``Rtnl()`` is one ``NETLINK_ROUTE`` socket; every request asks for an acknowledgement and a
refusal raises ``OSError`` with the kernel's errno and a message naming the operation.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

RTM_NEWLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 20, 24
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
IFF_UP = 0x1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_GATEWAY = 5
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1
_HDR = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id


def _attr(kind: int, data: bytes) -> bytes:
    """One rtattr, padded to 4 bytes."""
    raw = struct.pack("=HH", 4 + len(data), kind) + data
    return raw + b"\0" * (-len(raw) % 4)


def _family(addr: str) -> tuple[int, bytes]:
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    return fam, socket.inet_pton(fam, addr)


class Rtnl:
    """One rtnetlink socket of the current network namespace (a context manager)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def request(self, kind: int, flags: int, body: bytes, what: str) -> None:
        """Send one request and wait for its acknowledgement; OSError on a refusal."""
        self.seq += 1
        msg = _HDR.pack(_HDR.size + len(body), kind, NLM_F_REQUEST | NLM_F_ACK | flags, self.seq, 0) + body
        self.sock.send(msg)
        while True:
            data = self.sock.recv(65536)
            pos = 0
            while pos + _HDR.size <= len(data):
                length, mtype, _, seq, _ = _HDR.unpack_from(data, pos)
                if length < _HDR.size:
                    raise OSError(errno.EPROTO, f"{what}: malformed netlink reply")
                if mtype == NLMSG_ERROR and seq == self.seq:
                    (code,) = struct.unpack_from("=i", data, pos + _HDR.size)
                    if code:
                        raise OSError(-code, f"{what}: {os.strerror(-code)}")
                    return
                pos += (length + 3) & ~3

    def link_up(self, index: int, name: str = "") -> None:
        body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP)
        self.request(RTM_NEWLINK, 0, body, f"set link {name or index} up")

    def address_add(self, index: int, address: str, prefixlen: int) -> None:
        fam, raw = _family(address)
        body = struct.pack("=BBBBI", fam, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
        body += _attr(IFA_LOCAL, raw) + _attr(IFA_ADDRESS, raw)
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body, f"add address {address}/{prefixlen}")

    def default_route(self, gateway: str) -> None:
        fam, raw = _family(gateway)
        body = struct.pack("=BBBBBBBBI", fam, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
        body += _attr(RTA_GATEWAY, raw)
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body, f"add default route via {gateway}")


def links() -> list[tuple[str, int]]:
    """(name, index) of the network links, sorted by name."""
    return sorted((name, index) for index, name in socket.if_nameindex())
