"""Machine config interfaces -> ``ConfiguredLink`` for the configuration layer.

``views.links`` covers named interfaces and ``LinkConfig`` documents; this module adds what the
v1alpha1 ``machine.network.interfaces[]`` can say beyond that, from its raw fields:

* ``deviceSelector`` (``hardwareAddr`` glob, ``physical``): resolved against the links the
  kernel has (``LinkStatuses``); the first match by name is used, no match = not configured yet.
  ``busPath``, ``pciID`` and ``driver`` are not supported (an error names the field);
* ``bond`` (``interfaces``, ``mode``) -> a ``bond`` link with its ports enslaved;
* ``vlans[]`` (``vlanId``, ``addresses``, ``routes``, ``mtu``, ``dhcp``, ``vip``) -> ``vlan``
  links ``<parent>.<vlanId>``;
* ``dummy: true`` -> a ``dummy`` link; a non-empty ``wireguard`` -> a ``wireguard`` link (keys
  and peers are not applied);
* ``dhcpOptions.routeMetric`` -> the DHCP operator's route metric.

Kinds this kernel lacks (vlan, bond, dummy, wireguard on the development host) are accepted
here and reported by the link apply controller (``NetworkApplyErrors``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

from kos.controllers.network.layers import ConfiguredLink, LayerError

SELECTOR_FIELDS = ("hardwareAddr", "physical")
UNSUPPORTED_SELECTOR_FIELDS = ("busPath", "pciID", "driver", "permanentAddr")

Route = tuple[str, str, str, int, int]


def _routes(where: str, raw: Any) -> tuple[Route, ...]:
    out: list[Route] = []
    for i, r in enumerate(raw or []):
        if hasattr(r, "network"):  # the typed v1alpha1 Route
            dst, gw, src, metric, mtu = r.network, r.gateway, r.source, r.metric, r.mtu
        elif isinstance(r, dict):
            dst, gw, src = r.get("network", ""), r.get("gateway", ""), r.get("source", "")
            metric, mtu = r.get("metric", 0), r.get("mtu", 0)
        else:
            raise LayerError(f"{where}.routes[{i}]", r, "a route mapping (network, gateway, metric, ...)")
        if not isinstance(metric, int) or not isinstance(mtu, int):
            raise LayerError(f"{where}.routes[{i}].metric", metric, "integers for metric and mtu")
        out.append(("" if dst in ("0.0.0.0/0", "::/0") else str(dst or ""), str(gw or ""), str(src or ""), metric, mtu))
    return tuple(out)


def select_link(where: str, selector: dict[str, Any], links: Sequence[tuple[str, str, bool]]) -> str | None:
    """``links``: (name, MAC, physical) of the kernel's links. The first (by name) matching
    every field, or None."""
    for key in selector:
        if key in UNSUPPORTED_SELECTOR_FIELDS:
            raise LayerError(f"{where}.deviceSelector.{key}", selector[key],
                             f"one of the supported selector fields ({', '.join(SELECTOR_FIELDS)})")
        if key not in SELECTOR_FIELDS:
            raise LayerError(f"{where}.deviceSelector.{key}", selector[key],
                             f"a known selector field ({', '.join(SELECTOR_FIELDS)})")
    for name, mac, physical in sorted(links):
        if "hardwareAddr" in selector and not fnmatch.fnmatch(mac.lower(), str(selector["hardwareAddr"]).lower()):
            continue
        if "physical" in selector and bool(selector["physical"]) != physical:
            continue
        return name
    return None


def _int(where: str, value: Any, expected: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise LayerError(where, value, expected)
    return value


def interface_links(
    index: int, iface: Any, links: Sequence[tuple[str, str, bool]], view: Any | None
) -> list[ConfiguredLink]:
    """One ``machine.network.interfaces[index]`` (typed v1alpha1 Interface) -> links.
    ``view`` is its ``views.LinkView`` when it is named."""
    where = f"machine.network.interfaces[{index}]"
    if iface.ignore:
        return []
    name = iface.interface
    if not name:
        if not iface.device_selector:
            return []
        found = select_link(where, dict(iface.device_selector), links)
        if found is None:
            return []
        name = found
    kind = ""
    if iface.dummy:
        kind = "dummy"
    elif iface.wireguard:
        kind = "wireguard"
    bond = dict(iface.bond or {})
    bond_ports = tuple(str(p) for p in bond.get("interfaces", []) or [])
    metric = 0
    if iface.dhcp_options:
        metric = _int(f"{where}.dhcpOptions.routeMetric", dict(iface.dhcp_options).get("routeMetric", 0),
                      "an integer route metric")
    out = [ConfiguredLink(
        name=name, source=where, mtu=iface.mtu, kind=kind,
        addresses=tuple(view.addresses) if view is not None else tuple(iface.addresses),
        routes=tuple((r.destination, r.gateway, r.source, r.metric, r.mtu) for r in view.routes)
        if view is not None else _routes(where, iface.routes),
        dhcp=bool(iface.dhcp), vip=iface.vip.ip, bridge_ports=tuple(iface.bridge.interfaces),
        bond_ports=bond_ports, bond_mode=str(bond.get("mode", "") or ""), dhcp_metric=metric,
    )]
    for j, raw in enumerate(iface.vlans or []):
        vw = f"{where}.vlans[{j}]"
        if not isinstance(raw, dict):
            raise LayerError(vw, raw, "a VLAN mapping (vlanId, addresses, routes, ...)")
        vid = _int(f"{vw}.vlanId", raw.get("vlanId"), "a VLAN id between 1 and 4094")
        vip = raw.get("vip") or {}
        out.append(ConfiguredLink(
            name=f"{name}.{vid}", source=vw, kind="vlan", parent=name, vlan_id=vid,
            mtu=_int(f"{vw}.mtu", raw.get("mtu", 0), "an MTU"),
            addresses=tuple(str(a) for a in raw.get("addresses", []) or []),
            routes=_routes(vw, raw.get("routes")), dhcp=bool(raw.get("dhcp")),
            vip=str(vip.get("ip", "")) if isinstance(vip, dict) else "",
        ))
    return out


def configured_links(container: Any, links: Sequence[tuple[str, str, bool]] = ()) -> list[ConfiguredLink]:
    """Every link the machine config configures (v1alpha1 interfaces, then LinkConfig documents)."""
    from kos.resources.machineconfig import views

    named = {v.source: v for v in views.links(container)}
    out: list[ConfiguredLink] = []
    for i, iface in enumerate(container.config.machine.network.interfaces):
        out += interface_links(i, iface, links, named.get(f"machine.network.interfaces[{i}]"))
    for source, v in named.items():
        if source.startswith("machine.network.interfaces["):
            continue
        out.append(ConfiguredLink(
            name=v.name, source=v.source, up=v.up, mtu=v.mtu, addresses=tuple(v.addresses),
            routes=tuple((r.destination, r.gateway, r.source, r.metric, r.mtu) for r in v.routes),
            dhcp=v.dhcp, vip=v.vip, bridge_ports=tuple(v.bridge_ports),
        ))
    return out
