"""The netlink adapter: read and change links, addresses and routes of one network
namespace, and wait for the kernel's change notifications.

``Netlink(netns_path)`` wraps one pyroute2 ``IPRoute`` socket opened in that namespace;
every call runs in a worker thread (``anyio.to_thread``) behind a capacity limiter of one,
so the event loop never blocks and the socket is never used by two threads at once. Results
are small frozen dataclasses (``LinkInfo``, ``AddressInfo``, ``RouteInfo``) so controllers
never see pyroute2 messages. Kernel refusals raise ``NetlinkError`` with the errno and a
message naming the operation.

``changes()`` is an async context manager yielding an async iterator that produces the parsed
RTNLGRP link/address/route notifications (``Change``) per wake-up (a raw ``NETLINK_ROUTE``
socket bound to the multicast groups, read when readable; no polling), or ``None`` when the
kernel dropped some (then re-read everything with ``links()``/``addresses()``/``routes()``).
"""

from __future__ import annotations

import errno as _errno
import ipaddress
import socket
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
from pyroute2 import IPRoute  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import NetlinkError as _PyNetlinkError  # type: ignore[import-untyped]
from pyroute2.netlink.rtnl.marshal import MarshalRtnl  # type: ignore[import-untyped]

from kos.platform.network.netns import socket_in

T = TypeVar("T")
Op = tuple[str, Callable[[Any], object]]  # (what, fn(ipr)): one kernel operation for run_ops

SCOPES = {0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere"}
SCOPE_IDS = {v: k for k, v in SCOPES.items()}
PROTOCOLS = {0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static", 16: "dhcp"}
PROTOCOL_IDS = {v: k for k, v in PROTOCOLS.items()}
ROUTE_TYPES = {1: "unicast", 2: "local", 3: "broadcast", 4: "anycast", 5: "multicast", 6: "blackhole",
               7: "unreachable", 8: "prohibit"}
ROUTE_TYPE_IDS = {v: k for k, v in ROUTE_TYPES.items()}
ARPHRD = {1: "ether", 772: "loopback", 65534: "none", 768: "ipip", 776: "sit", 778: "gre"}
FAMILIES: dict[int, str] = {int(socket.AF_INET): "inet4", int(socket.AF_INET6): "inet6"}
BOND_MODES = {"balance-rr": 0, "active-backup": 1, "balance-xor": 2, "broadcast": 3, "802.3ad": 4,
              "balance-tlb": 5, "balance-alb": 6}
IFF_UP = 0x1
IFF_NAMES = {0x1: "UP", 0x2: "BROADCAST", 0x8: "LOOPBACK", 0x10: "POINTOPOINT", 0x40: "RUNNING",
              0x100: "PROMISC", 0x1000: "MULTICAST", 0x10000: "LOWER_UP"}

# multicast groups (linux/rtnetlink.h RTMGRP_*)
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400
GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE


class NetlinkError(Exception):
    """The kernel refused an operation (``errno`` is the kernel's error number)."""

    def __init__(self, errno: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno

    @property
    def unsupported(self) -> bool:
        return self.errno in (_errno.EOPNOTSUPP, _errno.ENOTSUP)


@dataclass(frozen=True)
class LinkInfo:
    index: int
    name: str
    type: str = "ether"
    kind: str = ""
    hardware_address: str = ""
    mtu: int = 0
    operational_state: str = ""
    up: bool = False
    master_index: int = 0
    flags: tuple[str, ...] = ()

    @property
    def physical(self) -> bool:
        return self.kind == "" and self.type == "ether"


@dataclass(frozen=True)
class AddressInfo:
    index: int
    address: str  # CIDR
    local: str = ""
    broadcast: str = ""
    family: str = "inet4"
    scope: str = "global"
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class RouteInfo:
    family: str = "inet4"
    destination: str = ""  # "" = default
    source: str = ""
    gateway: str = ""
    oif: int = 0
    table: int = 254
    priority: int = 0
    scope: str = "global"
    type: str = "unicast"
    protocol: str = "static"


@dataclass
class LinkCreate:
    """What ``link_create`` needs: name, kind and kind-specific parameters."""

    name: str
    kind: str
    veth_peer: str = ""
    parent_index: int = 0
    vlan_id: int = 0
    vxlan_id: int = 0
    vxlan_remote: str = ""
    vxlan_port: int = 0
    macvlan_mode: str = ""
    bond_mode: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _attr(msg: Any, name: str, default: Any = None) -> Any:
    v = msg.get_attr(name)
    return default if v is None else v


def _link_info(msg: Any) -> LinkInfo:
    kind = ""
    li = msg.get_attr("IFLA_LINKINFO")
    if li is not None:
        kind = li.get_attr("IFLA_INFO_KIND") or ""
    flags = int(msg["flags"])
    return LinkInfo(
        index=int(msg["index"]),
        name=str(_attr(msg, "IFLA_IFNAME", "")),
        type=ARPHRD.get(int(msg["ifi_type"]), str(msg["ifi_type"])),
        kind=str(kind),
        hardware_address=str(_attr(msg, "IFLA_ADDRESS", "")),
        mtu=int(_attr(msg, "IFLA_MTU", 0)),
        operational_state=str(_attr(msg, "IFLA_OPERSTATE", "")).lower(),
        up=bool(flags & IFF_UP),
        master_index=int(_attr(msg, "IFLA_MASTER", 0)),
        flags=tuple(n for bit, n in IFF_NAMES.items() if flags & bit),
    )


def _addr_info(msg: Any) -> AddressInfo:
    family = FAMILIES.get(int(msg["family"]), str(msg["family"]))
    addr = _attr(msg, "IFA_ADDRESS", "") or _attr(msg, "IFA_LOCAL", "")
    local = str(_attr(msg, "IFA_LOCAL", ""))
    # on point-to-point links IFA_ADDRESS is the peer; the configured address is IFA_LOCAL
    ip = local or str(addr)
    flags_val = int(_attr(msg, "IFA_FLAGS", msg["flags"]))
    flag_names = {0x1: "secondary", 0x2: "nodad", 0x10: "deprecated", 0x20: "tentative", 0x80: "permanent"}
    return AddressInfo(
        index=int(msg["index"]),
        address=f"{ip}/{msg['prefixlen']}",
        local=local,
        broadcast=str(_attr(msg, "IFA_BROADCAST", "")),
        family=family,
        scope=SCOPES.get(int(msg["scope"]), str(msg["scope"])),
        flags=tuple(n for bit, n in flag_names.items() if flags_val & bit),
    )


def _route_info(msg: Any) -> RouteInfo:
    family = FAMILIES.get(int(msg["family"]), str(msg["family"]))
    dst = _attr(msg, "RTA_DST", "")
    return RouteInfo(
        family=family,
        destination=f"{dst}/{msg['dst_len']}" if dst else "",
        source=str(_attr(msg, "RTA_PREFSRC", "")),
        gateway=str(_attr(msg, "RTA_GATEWAY", "")),
        oif=int(_attr(msg, "RTA_OIF", 0)),
        table=int(_attr(msg, "RTA_TABLE", msg["table"])),
        priority=int(_attr(msg, "RTA_PRIORITY", 0)),
        scope=SCOPES.get(int(msg["scope"]), str(msg["scope"])),
        type=ROUTE_TYPES.get(int(msg["type"]), str(msg["type"])),
        protocol=PROTOCOLS.get(int(msg["proto"]), str(msg["proto"])),
    )


class Netlink:
    """One netlink socket in ``netns`` (a path such as ``/run/netns/x``; None = our own)."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._ipr: Any = None
        self._limiter = anyio.CapacityLimiter(1)

    async def __aenter__(self) -> Netlink:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        if self._ipr is None:
            netns = self.netns
            self._ipr = await anyio.to_thread.run_sync(
                lambda: IPRoute(netns=netns) if netns else IPRoute(), limiter=self._limiter
            )

    async def close(self) -> None:
        ipr, self._ipr = self._ipr, None
        if ipr is not None:
            await anyio.to_thread.run_sync(ipr.close, limiter=self._limiter)

    async def _call(self, what: str, fn: Callable[[Any], T]) -> T:
        await self.open()
        ipr = self._ipr

        def run() -> T:
            try:
                return fn(ipr)
            except _PyNetlinkError as e:
                code = int(e.code)
                raise NetlinkError(code, f"{what}: {_errno.errorcode.get(code, code)} ({e})") from None
            except (struct.error, TypeError, ValueError) as e:  # pyroute2 could not encode the request
                raise NetlinkError(_errno.EINVAL, f"{what}: invalid parameters ({e})") from None

        return await anyio.to_thread.run_sync(run, limiter=self._limiter)

    # -- reads ---------------------------------------------------------------------------------
    async def links(self) -> list[LinkInfo]:
        return await self._call("dump links", lambda ipr: [_link_info(m) for m in ipr.get_links()])

    async def addresses(self) -> list[AddressInfo]:
        return await self._call("dump addresses", lambda ipr: [_addr_info(m) for m in ipr.get_addr()])

    async def routes(self) -> list[RouteInfo]:
        return await self._call("dump routes", lambda ipr: [_route_info(m) for m in ipr.route("dump")])

    # -- links ---------------------------------------------------------------------------------
    async def link_create(self, req: LinkCreate) -> None:
        kw: dict[str, Any] = {"ifname": req.name, "kind": req.kind}
        if req.kind == "veth":
            kw["peer"] = req.veth_peer or f"{req.name}-peer"
        elif req.kind == "vlan":
            kw.update(link=req.parent_index, vlan_id=req.vlan_id)
        elif req.kind == "macvlan":
            kw.update(link=req.parent_index, macvlan_mode=req.macvlan_mode or "bridge")
        elif req.kind == "vxlan":
            kw["vxlan_id"] = req.vxlan_id
            if req.parent_index:
                kw["vxlan_link"] = req.parent_index
            if req.vxlan_remote:
                kw["vxlan_group"] = req.vxlan_remote
            kw["vxlan_port"] = req.vxlan_port or 4789
        elif req.kind == "bond" and req.bond_mode:
            if req.bond_mode not in BOND_MODES:
                raise NetlinkError(_errno.EINVAL, f"create bond {req.name!r}: mode {req.bond_mode!r} is invalid, "
                                                  f"expected one of {', '.join(BOND_MODES)}")
            kw["bond_mode"] = BOND_MODES[req.bond_mode]
        kw.update(req.extra)
        await self._call(f"create {req.kind or 'link'} {req.name!r}", lambda ipr: ipr.link("add", **kw))

    async def link_set(
        self, index: int, *, up: bool | None = None, mtu: int | None = None, master: int | None = None,
        hardware_address: str | None = None,
    ) -> None:
        kw: dict[str, Any] = {"index": index}
        if mtu:
            kw["mtu"] = mtu
        if master is not None:
            kw["master"] = master
        if hardware_address:
            kw["address"] = hardware_address
        if len(kw) > 1:
            await self._call(f"set link {index} {kw}", lambda ipr: ipr.link("set", **kw))
        if up is not None:
            state = "up" if up else "down"
            await self._call(f"set link {index} {state}", lambda ipr: ipr.link("set", index=index, state=state))

    async def link_delete(self, index: int) -> None:
        await self._call(f"delete link {index}", lambda ipr: ipr.link("del", index=index))

    # -- batches -------------------------------------------------------------------------------
    async def run_ops(self, ops: list[Op]) -> list[NetlinkError | None]:
        """Run many operations in one worker-thread call (no event-loop round trip per
        operation); returns, per operation, None or the kernel's refusal."""
        if not ops:
            return []
        await self.open()
        ipr = self._ipr

        def run() -> list[NetlinkError | None]:
            out: list[NetlinkError | None] = []
            for what, fn in ops:
                try:
                    fn(ipr)
                    out.append(None)
                except _PyNetlinkError as e:
                    code = int(e.code)
                    out.append(NetlinkError(code, f"{what}: {_errno.errorcode.get(code, code)} ({e})"))
                except (struct.error, TypeError, ValueError) as e:
                    out.append(NetlinkError(_errno.EINVAL, f"{what}: invalid parameters ({e})"))
            return out

        return await anyio.to_thread.run_sync(run, limiter=self._limiter)

    # -- addresses -----------------------------------------------------------------------------
    @staticmethod
    def address_add_op(index: int, cidr: str, *, scope: str = "", valid: int = 0, preferred: int = 0) -> Op:
        """Add (or refresh) an address. ``scope`` "" = host for loopback addresses, else global."""
        iface = ipaddress.ip_interface(cidr)
        kw: dict[str, Any] = {"index": index, "address": str(iface.ip), "prefixlen": iface.network.prefixlen}
        kw["scope"] = SCOPE_IDS.get(scope or ("host" if iface.ip.is_loopback else "global"), 0)
        if iface.version == 4 and iface.network.prefixlen < 31:
            kw["broadcast"] = str(iface.network.broadcast_address)
        if valid:
            kw["IFA_CACHEINFO"] = {"ifa_valid": valid, "ifa_preferred": preferred or valid, "cstamp": 0, "tstamp": 0}
        return (f"add address {cidr} to link {index}", lambda ipr: ipr.addr("replace", **kw))

    @staticmethod
    def address_delete_op(index: int, cidr: str) -> Op:
        iface = ipaddress.ip_interface(cidr)
        return (
            f"delete address {cidr} from link {index}",
            lambda ipr: ipr.addr("del", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen),
        )

    async def address_add(self, index: int, cidr: str, *, scope: str = "", valid: int = 0, preferred: int = 0) -> None:
        await self._call(*self.address_add_op(index, cidr, scope=scope, valid=valid, preferred=preferred))

    async def address_delete(self, index: int, cidr: str) -> None:
        await self._call(*self.address_delete_op(index, cidr))

    # -- routes --------------------------------------------------------------------------------
    @staticmethod
    def _route_kw(r: RouteInfo) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "family": socket.AF_INET6 if r.family == "inet6" else socket.AF_INET,
            "dst": r.destination or ("::/0" if r.family == "inet6" else "0.0.0.0/0"),
            "table": r.table,
            "priority": r.priority,
        }
        if r.gateway:
            kw["gateway"] = r.gateway
        if r.oif:
            kw["oif"] = r.oif
        if r.source:
            kw["prefsrc"] = r.source
        kw["scope"] = SCOPE_IDS.get(r.scope, 0)
        kw["proto"] = PROTOCOL_IDS.get(r.protocol, 4)
        kw["type"] = ROUTE_TYPE_IDS.get(r.type, 1)
        return kw

    @classmethod
    def route_replace_op(cls, r: RouteInfo) -> Op:
        kw = cls._route_kw(r)
        return (f"replace route {r.destination or 'default'} via {r.gateway or '-'}",
                lambda ipr: ipr.route("replace", **kw))

    @classmethod
    def route_delete_op(cls, r: RouteInfo) -> Op:
        kw = cls._route_kw(r)
        kw.pop("proto", None)
        return (f"delete route {r.destination or 'default'} via {r.gateway or '-'}",
                lambda ipr: ipr.route("del", **kw))

    async def route_replace(self, r: RouteInfo) -> None:
        await self._call(*self.route_replace_op(r))

    async def route_delete(self, r: RouteInfo) -> None:
        await self._call(*self.route_delete_op(r))

    # -- events --------------------------------------------------------------------------------
    @asynccontextmanager
    async def changes(self, groups: int = GROUPS) -> AsyncIterator[AsyncIterator[list[Change] | None]]:
        """Subscribe to link/address/route notifications. Yields an iterator producing, per
        wake-up, the parsed changes in kernel order, or ``None`` when the kernel dropped
        notifications (socket buffer overrun: re-read everything). Subscribed before this
        returns, so nothing between subscribing and the caller's first dump is lost."""
        netns = self.netns

        def make() -> socket.socket:
            s = socket_in(netns, socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
            s.bind((0, groups))
            s.setblocking(False)
            return s

        sock = await anyio.to_thread.run_sync(make)
        from kos.platform.network.rtnl import parse  # (imports this module)

        async def iterate() -> AsyncIterator[list[Change] | None]:
            while True:
                await anyio.wait_readable(sock)
                out: list[Change] = []
                overrun = False
                while True:
                    try:
                        data = sock.recv(1 << 20)
                    except BlockingIOError:
                        break
                    except OSError as e:
                        if e.errno == _errno.ENOBUFS:
                            overrun = True
                            continue
                        raise
                    if not data:
                        break
                    out.extend(parse(data))
                if overrun:
                    yield None
                elif out:
                    yield out

        try:
            yield iterate()
        finally:
            sock.close()


@dataclass(frozen=True)
class Change:
    """One notification: ``what`` is link/address/route, ``deleted`` for RTM_DEL*."""

    what: str
    deleted: bool
    info: LinkInfo | AddressInfo | RouteInfo


_RTM = {16: ("link", False), 17: ("link", True), 20: ("address", False), 21: ("address", True),
        24: ("route", False), 25: ("route", True)}


def pyroute2_changes(data: bytes) -> list[Change]:
    """The same decoding as ``rtnl.parse`` through pyroute2's marshal (slower; used by the
    tests as the reference)."""
    return [c for c in map(_change, MarshalRtnl().parse(data)) if c is not None]


def _change(msg: Any) -> Change | None:
    kind = _RTM.get(int(msg["header"]["type"]))
    if kind is None:
        return None
    what, deleted = kind
    info: LinkInfo | AddressInfo | RouteInfo
    if what == "link":
        info = _link_info(msg)
    elif what == "address":
        info = _addr_info(msg)
    else:
        info = _route_info(msg)
    return Change(what, deleted, info)
