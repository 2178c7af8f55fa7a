"""``NetlinkStatusController``: what the kernel has, as ``LinkStatuses``, ``AddressStatuses``
and ``RouteStatuses`` in ``network``.

It subscribes to the RTNLGRP link/address/route multicast groups of the node's network
namespace (``Netlink.changes``); every burst of notifications queues one reconcile (coalesced
by the controller runtime), which re-reads links, addresses and routes and writes only what
changed. No polling. The subscription is opened before the first dump, so no change between
the two is missed.

Ids: links by name; addresses ``<link>/<cidr>``; routes
``<table>/<family>/<gateway>/<destination>/<metric>/<link>`` (the local table included).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio

from kos.controllers.runtime.adapter import ControllerRuntime
from kos.controllers.runtime.controller import Controller, Input, Output, OutputKind
from kos.platform.network.netlink import AddressInfo, LinkInfo, Netlink, RouteInfo
from kos.resources.core.resource import Resource
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


class NetlinkStatusController(Controller):
    name = "NetlinkStatusController"

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns

    def inputs(self) -> Sequence[Input]:
        return ()

    def outputs(self) -> Sequence[Output]:
        return [Output(k.type, OutputKind.EXCLUSIVE) for k in (LINK_STATUSES, ADDRESS_STATUSES, ROUTE_STATUSES)]

    async def run(self, rt: ControllerRuntime) -> None:
        async with Netlink(self.netns) as nl, nl.changes() as changes, anyio.create_task_group() as tg:

            async def follow() -> None:
                async for _ in changes:
                    rt.queue_reconcile()

            tg.start_soon(follow)
            async for _ in rt.events():
                await self.sync(rt, nl)

    async def sync(self, rt: ControllerRuntime, nl: Netlink) -> None:
        links = await nl.links()
        addresses = await nl.addresses()
        routes = await nl.routes()
        names = {link.index: link.name for link in links}
        rt.start_tracking_outputs()
        for link in links:
            await _put(rt, link.name, link_status(link, names))
        for a in addresses:
            s = address_status(a, names)
            await _put(rt, address_id(s.link_name, s.address), s)
        for r in routes:
            rs = route_status(r, names)
            await _put(rt, route_status_id(rs), rs)
        await rt.cleanup_outputs(LINK_STATUSES, ADDRESS_STATUSES, ROUTE_STATUSES)


async def _put(rt: ControllerRuntime, id: str, spec: Any) -> None:
    def fill(r: Resource[Any]) -> None:
        r.spec = spec

    await rt.modify(Resource.new(type(spec)(), id, namespace=NAMESPACE), fill)
