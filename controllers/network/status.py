"""``NetlinkStatusController``: what the kernel has, as ``LinkStatuses``, ``AddressStatuses``
and ``RouteStatuses`` in ``network``.

It subscribes to the RTNLGRP link/address/route multicast groups of the node's network
namespace (``Netlink.changes``) before one full dump, then keeps a ``KernelView`` current from
the parsed notifications; every burst queues one reconcile (coalesced by the controller
runtime) that writes only the resources that differ from what it published last. No polling.
Link changes, removed IPv4 addresses and notification overruns trigger a full re-read, because
the kernel flushes the IPv4 routes that depended on them without notifications.

Ids: links by name; addresses ``<link>/<cidr>``; routes
``<table>/<family>/<gateway>/<destination>/<metric>/<link>`` (the local table included).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio

from kos.controllers.runtime import Controller, ControllerRuntime, Input, Output, OutputKind
from kos.platform.network.netlink import AddressInfo, Change, LinkInfo, Netlink, RouteInfo
from kos.resources.core import Kind, NotFoundError, Pointer, Resource
from kos.resources.network import (
    ADDRESS_STATUSES,
    LINK_STATUSES,
    NAMESPACE,
    ROUTE_STATUSES,
    AddressStatusSpec,
    LinkStatusSpec,
    RouteStatusSpec,
    address_id,
)


def link_status(link: LinkInfo, names: dict[int, str]) -> LinkStatusSpec:
    return LinkStatusSpec(
        index=link.index, type=link.type, kind=link.kind, hardware_address=link.hardware_address, mtu=link.mtu,
        operational_state=link.operational_state, link_state=link.up, master_index=link.master_index,
        master=names.get(link.master_index, ""), physical=link.physical, flags=list(link.flags),
    )


def address_status(a: AddressInfo, names: dict[int, str]) -> AddressStatusSpec:
    return AddressStatusSpec(
        address=a.address, local=a.local, broadcast=a.broadcast, link_index=a.index,
        link_name=names.get(a.index, ""), family=a.family, scope=a.scope, flags=list(a.flags),
    )


def route_status(r: RouteInfo, names: dict[int, str]) -> RouteStatusSpec:
    return RouteStatusSpec(
        family=r.family, destination=r.destination, source=r.source, gateway=r.gateway, out_link_index=r.oif,
        out_link_name=names.get(r.oif, ""), table=r.table, priority=r.priority, scope=r.scope, type=r.type,
        protocol=r.protocol,
    )


def route_status_id(r: RouteStatusSpec) -> str:
    return f"{r.table}/{r.family}/{r.gateway}/{r.destination or 'default'}/{r.priority}/{r.out_link_name}"


def _route_key(r: RouteInfo) -> tuple[Any, ...]:
    return (r.family, r.table, r.destination, r.priority, r.oif, r.gateway, r.type)


class KernelView:
    """What the kernel has, kept current from a dump plus the change notifications."""

    def __init__(self) -> None:
        self.links: dict[int, LinkInfo] = {}
        self.addresses: dict[tuple[int, str], AddressInfo] = {}
        self.routes: dict[tuple[Any, ...], RouteInfo] = {}
        self.delta: dict[tuple[Kind, str], Any] = {}

    async def load(self, nl: Netlink) -> None:
        self.links = {link.index: link for link in await nl.links()}
        self.addresses = {(a.index, a.address): a for a in await nl.addresses()}
        self.routes = {_route_key(r): r for r in await nl.routes()}

    def apply(self, changes: list[Change]) -> bool:
        """Apply notifications, recording the status resources they change in ``delta``
        ((kind, id) -> spec, None = gone). Returns False when a full reload is needed (a link
        changed or an IPv4 address went away: the kernel flushes the IPv4 routes depending on
        them without telling)."""
        reload = False
        names = {index: link.name for index, link in self.links.items()}
        for c in changes:
            if isinstance(c.info, LinkInfo):
                if c.deleted:
                    self.links.pop(c.info.index, None)
                else:
                    old = self.links.get(c.info.index)
                    reload = reload or old is None or old.up != c.info.up or old.flags != c.info.flags
                    self.links[c.info.index] = c.info
                reload = reload or c.deleted or names.get(c.info.index) != c.info.name
                if not reload:
                    self.delta[(LINK_STATUSES, c.info.name)] = link_status(c.info, names)
            elif isinstance(c.info, AddressInfo):
                key = (c.info.index, c.info.address)
                s = address_status(c.info, names)
                if c.deleted:
                    self.addresses.pop(key, None)
                    # the kernel flushes IPv4 routes through a removed address without telling
                    reload = reload or c.info.family == "inet4"
                else:
                    self.addresses[key] = c.info
                self.delta[(ADDRESS_STATUSES, address_id(s.link_name, s.address))] = None if c.deleted else s
            else:
                rkey = _route_key(c.info)
                rs = route_status(c.info, names)
                if c.deleted:
                    self.routes.pop(rkey, None)
                else:
                    self.routes[rkey] = c.info
                self.delta[(ROUTE_STATUSES, route_status_id(rs))] = None if c.deleted else rs
        return not reload

    def resources(self) -> dict[tuple[Kind, str], Any]:
        names = {link.index: link.name for link in self.links.values()}
        out: dict[tuple[Kind, str], Any] = {}
        for link in self.links.values():
            out[(LINK_STATUSES, link.name)] = link_status(link, names)
        for a in self.addresses.values():
            s = address_status(a, names)
            out[(ADDRESS_STATUSES, address_id(s.link_name, s.address))] = s
        for r in self.routes.values():
            rs = route_status(r, names)
            out[(ROUTE_STATUSES, route_status_id(rs))] = rs
        return out


class NetlinkStatusController(Controller):
    name = "network.NetlinkStatusController"

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns

    def inputs(self) -> Sequence[Input]:
        return ()

    def outputs(self) -> Sequence[Output]:
        return [Output(k.type, OutputKind.EXCLUSIVE) for k in (LINK_STATUSES, ADDRESS_STATUSES, ROUTE_STATUSES)]

    async def run(self, rt: ControllerRuntime) -> None:
        view = KernelView()
        pending: list[Change] = []
        reload = True
        async with Netlink(self.netns) as nl, nl.changes() as changes, anyio.create_task_group() as tg:

            async def follow() -> None:
                nonlocal reload
                async for batch in changes:
                    if batch is None:
                        reload = True
                    else:
                        pending.extend(batch)
                    rt.queue_reconcile()

            tg.start_soon(follow)
            published = await self.existing(rt)
            async for _ in rt.events():
                batch = pending[:]
                pending.clear()
                view.delta.clear()
                if reload or not view.apply(batch):
                    reload = False
                    await view.load(nl)
                    published = await self.publish(rt, published, view.resources())
                else:
                    await self.publish_delta(rt, published, view.delta)

    async def existing(self, rt: ControllerRuntime) -> dict[tuple[Kind, str], Any]:
        out: dict[tuple[Kind, str], Any] = {}
        for kind in (LINK_STATUSES, ADDRESS_STATUSES, ROUTE_STATUSES):
            for r in await rt.list(kind):
                if r.metadata.owner == self.name:
                    out[(kind, r.metadata.id)] = r.spec
        return out

    async def publish(self, rt: ControllerRuntime, published: dict[tuple[Kind, str], Any],
                      want: dict[tuple[Kind, str], Any]) -> dict[tuple[Kind, str], Any]:
        """Write only what differs from what was published; destroy what disappeared."""
        for key, spec in want.items():
            if published.get(key) != spec:
                await _put(rt, key[1], spec)
        for kind, id in published.keys() - want.keys():
            try:
                await rt.destroy(Pointer(kind.namespace, kind.type, id))
            except NotFoundError:
                pass
        rt.reset_restart_backoff()
        return want


    async def publish_delta(self, rt: ControllerRuntime, published: dict[tuple[Kind, str], Any],
                            delta: dict[tuple[Kind, str], Any]) -> None:
        """Write the resources some notifications changed (``published`` is updated in place)."""
        for (kind, id), spec in delta.items():
            if spec is None:
                if published.pop((kind, id), None) is not None:
                    try:
                        await rt.destroy(Pointer(kind.namespace, kind.type, id))
                    except NotFoundError:
                        pass
            elif published.get((kind, id)) != spec:
                await _put(rt, id, spec)
                published[(kind, id)] = spec
        rt.reset_restart_backoff()


async def _put(rt: ControllerRuntime, id: str, spec: Any) -> None:
    def fill(r: Resource[Any]) -> None:
        r.spec = spec

    await rt.modify(Resource.new(type(spec)(), id, namespace=NAMESPACE), fill)
