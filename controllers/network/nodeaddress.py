"""``AddressStatuses`` -> ``NodeAddresses`` ``current``, ``routed``, ``default``,
``accumulative``.

* ``current``: global-scope addresses, not loopback, not link-local, sorted (IPv4 first,
  then by address);
* ``routed``: ``current`` without the VIPs of ``vip`` operators (they move between nodes);
* ``default``: the first of ``routed`` (or ``current``), what the node is known by;
* ``accumulative``: everything ``current`` ever held since machined started.

``node_addresses`` is the pure part.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

from kos.controllers.runtime.adapter import ControllerRuntime
from kos.controllers.runtime.controller import Controller, Input, Output, OutputKind
from kos.resources.core.resource import Resource
from kos.resources.network import ADDRESS_STATUSES, NAMESPACE, NODE_ADDRESSES, OPERATOR_SPECS, NodeAddressSpec


def _sort_key(cidr: str) -> tuple[int, int, int]:
    iface = ipaddress.ip_interface(cidr)
    return (iface.version, int(iface.ip), iface.network.prefixlen)


def node_addresses(
    statuses: Iterable[tuple[str, str, str]], vips: Iterable[str], previous_accumulative: Iterable[str] = ()
) -> dict[str, list[str]]:
    """``statuses``: (cidr, scope, link name). Returns addresses by NodeAddress id."""
    current: set[str] = set()
    for cidr, scope, link in statuses:
        try:
            iface = ipaddress.ip_interface(cidr)
        except ValueError:
            continue
        if scope != "global" or link == "lo" or iface.ip.is_loopback or iface.ip.is_link_local:
            continue
        current.add(str(iface))
    vip_ips = {str(ipaddress.ip_address(v)) for v in vips if v}
    routed = {c for c in current if str(ipaddress.ip_interface(c).ip) not in vip_ips}
    ordered_current = sorted(current, key=_sort_key)
    ordered_routed = sorted(routed, key=_sort_key)
    first = (ordered_routed or ordered_current)[:1]
    return {
        "current": ordered_current,
        "routed": ordered_routed,
        "default": first,
        "accumulative": sorted(set(previous_accumulative) | current, key=_sort_key),
    }


class NodeAddressController(Controller):
    name = "NodeAddressController"

    def inputs(self) -> Sequence[Input]:
        return (Input(ADDRESS_STATUSES.namespace, ADDRESS_STATUSES.type), Input(OPERATOR_SPECS.namespace,
                                                                                  OPERATOR_SPECS.type))

    def outputs(self) -> Sequence[Output]:
        return (Output(NODE_ADDRESSES.type, OutputKind.EXCLUSIVE),)

    async def run(self, rt: ControllerRuntime) -> None:
        accumulated: list[str] = []
        async for _ in rt.events():
            statuses = [(r.spec.address, r.spec.scope, r.spec.link_name) for r in await rt.list(ADDRESS_STATUSES)]
            vips = [r.spec.vip.ip for r in await rt.list(OPERATOR_SPECS) if r.spec.operator == "vip"]
            result = node_addresses(statuses, vips, accumulated)
            accumulated = result["accumulative"]
            for id, addrs in result.items():

                def fill(r: Resource[Any], addrs: list[str] = addrs) -> None:
                    r.spec = NodeAddressSpec(addresses=addrs)

                await rt.modify(Resource.new(NodeAddressSpec(), id, namespace=NAMESPACE), fill)
            rt.reset_restart_backoff()
