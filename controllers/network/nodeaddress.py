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

import functools
import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

from kos.controllers.runtime import Controller, ControllerRuntime, Input, Output, OutputKind
from kos.resources.core import Resource
from kos.resources.network import ADDRESS_STATUSES, NAMESPACE, NODE_ADDRESSES, OPERATOR_SPECS, NodeAddressSpec

_Key = tuple[int, int, int]


@functools.lru_cache(maxsize=4096)
def _parse(cidr: str) -> tuple[str, _Key, bool] | None:
    """(normalised CIDR, sort key, usable as a node address) or None if it does not parse."""
    try:
        iface = ipaddress.ip_interface(cidr)
    except ValueError:
        return None
    usable = not (iface.ip.is_loopback or iface.ip.is_link_local)
    return str(iface), (iface.version, int(iface.ip), iface.network.prefixlen), usable


def node_addresses(
    statuses: Iterable[tuple[str, str, str]], vips: Iterable[str], previous_accumulative: Iterable[str] = ()
) -> dict[str, list[str]]:
    """``statuses``: (cidr, scope, link name). Returns addresses by NodeAddress id."""
    keys: dict[str, _Key] = {}
    current: set[str] = set()
    for cidr, scope, link in statuses:
        parsed = _parse(cidr)
        if parsed is None or scope != "global" or link == "lo" or not parsed[2]:
            continue
        current.add(parsed[0])
        keys[parsed[0]] = parsed[1]
    vip_ips = {str(ipaddress.ip_address(v)) for v in vips if v}
    routed = {c for c in current if c.split("/", 1)[0] not in vip_ips}
    accumulative = set(current)
    for c in previous_accumulative:
        parsed = _parse(c)
        if parsed is not None:
            accumulative.add(parsed[0])
            keys[parsed[0]] = parsed[1]
    ordered_current = sorted(current, key=keys.__getitem__)
    ordered_routed = sorted(routed, key=keys.__getitem__)
    return {
        "current": ordered_current,
        "routed": ordered_routed,
        "default": (ordered_routed or ordered_current)[:1],
        "accumulative": sorted(accumulative, key=keys.__getitem__),
    }


class NodeAddressController(Controller):
    name = "network.NodeAddressController"

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
