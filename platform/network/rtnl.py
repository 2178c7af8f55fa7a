"""A small decoder for rtnetlink notifications (RTM_NEW/DEL LINK, ADDR, ROUTE).

The status controller reads every notification the kernel sends, so decoding must be cheap:
this module unpacks only the headers and attributes kos publishes (``struct`` on the raw
buffer) and produces the same ``LinkInfo``/``AddressInfo``/``RouteInfo`` values as the
pyroute2-based dumps of ``kos.platform.network.netlink`` (the tests compare both on a real
kernel). Unknown message types and attributes are skipped.
"""

from __future__ import annotations

import socket
import struct

from kos.platform.network.netlink import (
    ARPHRD,
    FAMILIES,
    IFF_NAMES,
    IFF_UP,
    PROTOCOLS,
    ROUTE_TYPES,
    SCOPES,
    AddressInfo,
    Change,
    LinkInfo,
    RouteInfo,
)

_NLMSG = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTA = struct.Struct("=HH")
_U32 = struct.Struct("=I")

RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_DELADDR, RTM_NEWROUTE, RTM_DELROUTE = 16, 17, 20, 21, 24, 25
OPERSTATES = {0: "unknown", 1: "notpresent", 2: "down", 3: "lowerlayerdown", 4: "testing", 5: "dormant", 6: "up"}
_ADDR_FLAGS = {0x1: "secondary", 0x2: "nodad", 0x10: "deprecated", 0x20: "tentative", 0x80: "permanent"}


def _attrs(data: bytes, pos: int, end: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while pos + 4 <= end:
        length, kind = _RTA.unpack_from(data, pos)
        if length < 4:
            break
        out[kind & 0x3FFF] = data[pos + 4:pos + length]
        pos += (length + 3) & ~3
    return out


def _str(v: bytes | None) -> str:
    return v.split(b"\0", 1)[0].decode(errors="replace") if v else ""


def _u32(v: bytes | None) -> int:
    return _U32.unpack(v[:4])[0] if v and len(v) >= 4 else 0


def _ip(family: int, v: bytes | None) -> str:
    if not v:
        return ""
    try:
        return socket.inet_ntop(family, v)
    except (ValueError, OSError):
        return ""


def _link(data: bytes, pos: int, end: int) -> LinkInfo:
    _family, ifi_type, index, flags, _change = _IFINFO.unpack_from(data, pos)
    a = _attrs(data, pos + _IFINFO.size, end)
    kind = ""
    if 18 in a:  # IFLA_LINKINFO
        info = a[18]
        kind = _str(_attrs(info, 0, len(info)).get(1))  # IFLA_INFO_KIND
    mac = a.get(1, b"")
    return LinkInfo(
        index=index,
        name=_str(a.get(3)),
        type=ARPHRD.get(ifi_type, str(ifi_type)),
        kind=kind,
        hardware_address=":".join(f"{b:02x}" for b in mac),
        mtu=_u32(a.get(4)),
        operational_state=OPERSTATES.get(a[16][0], "unknown") if a.get(16) else "",
        up=bool(flags & IFF_UP),
        master_index=_u32(a.get(10)),
        flags=tuple(n for bit, n in IFF_NAMES.items() if flags & bit),
    )


def _address(data: bytes, pos: int, end: int) -> AddressInfo:
    family, prefixlen, flags, scope, index = _IFADDR.unpack_from(data, pos)
    a = _attrs(data, pos + _IFADDR.size, end)
    local = _ip(family, a.get(2))
    ip = local or _ip(family, a.get(1))
    flags_val = _u32(a[8]) if 8 in a else flags
    return AddressInfo(
        index=index,
        address=f"{ip}/{prefixlen}",
        local=local,
        broadcast=_ip(family, a.get(4)),
        family=FAMILIES.get(family, str(family)),
        scope=SCOPES.get(scope, str(scope)),
        flags=tuple(n for bit, n in _ADDR_FLAGS.items() if flags_val & bit),
    )


def _route(data: bytes, pos: int, end: int) -> RouteInfo:
    family, dst_len, _src_len, _tos, table, proto, scope, rtype, _flags = _RTMSG.unpack_from(data, pos)
    a = _attrs(data, pos + _RTMSG.size, end)
    dst = _ip(family, a.get(1))
    return RouteInfo(
        family=FAMILIES.get(family, str(family)),
        destination=f"{dst}/{dst_len}" if dst else "",
        source=_ip(family, a.get(7)),
        gateway=_ip(family, a.get(5)),
        oif=_u32(a.get(4)),
        table=_u32(a[15]) if 15 in a else table,
        priority=_u32(a.get(6)),
        scope=SCOPES.get(scope, str(scope)),
        type=ROUTE_TYPES.get(rtype, str(rtype)),
        protocol=PROTOCOLS.get(proto, str(proto)),
    )


def parse(data: bytes) -> list[Change]:
    """Every link/address/route notification in one ``recv`` buffer, in order."""
    out: list[Change] = []
    pos = 0
    while pos + _NLMSG.size <= len(data):
        length, mtype, _flags, _seq, _pid = _NLMSG.unpack_from(data, pos)
        if length < _NLMSG.size:
            break
        end = min(pos + length, len(data))
        body = pos + _NLMSG.size
        if mtype in (RTM_NEWLINK, RTM_DELLINK):
            out.append(Change("link", mtype == RTM_DELLINK, _link(data, body, end)))
        elif mtype in (RTM_NEWADDR, RTM_DELADDR):
            out.append(Change("address", mtype == RTM_DELADDR, _address(data, body, end)))
        elif mtype in (RTM_NEWROUTE, RTM_DELROUTE):
            out.append(Change("route", mtype == RTM_DELROUTE, _route(data, body, end)))
        pos += (length + 3) & ~3
    return out
