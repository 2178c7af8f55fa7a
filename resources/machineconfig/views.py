"""Merged, read-only views over a config for the controllers that consume it: the v1alpha1
``machine.network`` section and the typed network documents describe the same things, and
these functions decide once how they combine (typed documents win where both could apply;
validation already rejects configuring one thing in both places).

* ``links(c)``: every statically configured link with its addresses, routes, MTU, DHCP
  (``DHCPv4Config`` documents turn DHCP on for their link), its Layer 2 VIP (v1alpha1 ``vip``
  or a ``Layer2VIPConfig``) and bridge ports (``bridge.interfaces`` plus interfaces naming
  the bridge in ``bridgePort.master``);
* ``hostname(c)``: the static hostname (or ``""``) and whether a stable one should be made;
* ``nameservers(c)`` / ``search_domains(c)`` / ``static_hosts(c)`` / ``time_servers(c)`` (a
  ``TimeSyncConfig`` document wins over ``machine.time``);
* ``host_dns(c)``: the host DNS cache switches (``ResolverConfig.hostDNS`` or the v1alpha1
  ``machine.features.hostDNS``; validation rejects setting both) and ``host_dns_errors``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from kos.resources.machineconfig.container import ConfigContainer
from kos.resources.machineconfig.documents import (
    DHCPv4Config,
    HostnameConfig,
    Layer2VIPConfig,
    LinkConfig,
    ResolverConfig,
    StaticHostConfig,
    TimeSyncConfig,
)


@dataclass(frozen=True)
class RouteView:
    destination: str = ""  # "" = default route
    gateway: str = ""
    source: str = ""
    metric: int = 0
    mtu: int = 0


@dataclass(frozen=True)
class LinkView:
    name: str
    up: bool = True
    mtu: int = 0
    addresses: tuple[str, ...] = ()
    routes: tuple[RouteView, ...] = ()
    dhcp: bool = False
    vip: str = ""
    bridge_ports: tuple[str, ...] = ()
    source: str = ""  # where it came from: "machine.network.interfaces[0]" or "LinkConfig[eth1]"


@dataclass(frozen=True)
class HostnameView:
    hostname: str = ""
    stable: bool = False
    source: str = ""


@dataclass(frozen=True)
class StaticHost:
    ip: str
    hostnames: tuple[str, ...] = field(default=())


def links(c: ConfigContainer) -> list[LinkView]:
    """Links configured by name (deviceSelector interfaces are resolved by the network
    controllers against discovered links and are not included); ignored interfaces are
    skipped; order: v1alpha1 interfaces, then LinkConfig documents."""
    out: list[LinkView] = []
    for i, iface in enumerate(c.config.machine.network.interfaces):
        if not iface.interface or iface.ignore:
            continue
        out.append(LinkView(
            name=iface.interface,
            mtu=iface.mtu,
            addresses=tuple(iface.addresses),
            routes=tuple(RouteView("" if r.network in ("0.0.0.0/0", "::/0") else r.network, r.gateway, r.source,
                                   r.metric, r.mtu) for r in iface.routes),
            dhcp=bool(iface.dhcp),
            vip=iface.vip.ip,
            bridge_ports=tuple(iface.bridge.interfaces),
            source=f"machine.network.interfaces[{i}]",
        ))
    for doc in c.documents_of(LinkConfig):
        out.append(LinkView(
            name=doc.name,
            up=doc.up is not False,
            mtu=doc.mtu,
            addresses=tuple(a.address for a in doc.addresses),
            routes=tuple(RouteView("" if r.destination in ("0.0.0.0/0", "::/0") else r.destination, r.gateway,
                                   r.source, r.metric, r.mtu) for r in doc.routes),
            source=f"LinkConfig[{doc.name}]",
        ))
    return _with_documents(c, out)


def _with_documents(c: ConfigContainer, out: list[LinkView]) -> list[LinkView]:
    """DHCPv4Config, Layer2VIPConfig and bridgePort.master applied to the link views (a link
    named only by one of them gets a view of its own)."""

    def at(name: str, source: str) -> int:
        idx = next((i for i, v in enumerate(out) if v.name == name), None)
        if idx is None:
            out.append(LinkView(name=name, source=source))
            idx = len(out) - 1
        return idx

    for d in c.documents_of(DHCPv4Config):
        i = at(d.name, f"DHCPv4Config[{d.name}]")
        out[i] = replace(out[i], dhcp=True)
    for vip in c.documents_of(Layer2VIPConfig):
        i = at(vip.link, f"Layer2VIPConfig[{vip.name}]")
        out[i] = replace(out[i], vip=vip.name)
    for iface in c.config.machine.network.interfaces:
        master = iface.bridge_port.master
        if master and iface.interface:
            i = at(master, f"machine.network.interfaces[{iface.interface}].bridgePort")
            if iface.interface not in out[i].bridge_ports:
                out[i] = replace(out[i], bridge_ports=(*out[i].bridge_ports, iface.interface))
    return out


def hostname(c: ConfigContainer) -> HostnameView:
    doc = c.document(HostnameConfig)
    if doc is not None:
        return HostnameView(doc.hostname, stable=doc.auto == "stable", source="HostnameConfig")
    static = c.config.machine.network.hostname
    if static:
        return HostnameView(static, source="machine.network.hostname")
    stable = bool(c.config.machine.features.stable_hostname)
    return HostnameView(stable=stable, source="machine.features.stableHostname")


def nameservers(c: ConfigContainer) -> list[str]:
    doc = c.document(ResolverConfig)
    if doc is not None and doc.nameservers:
        return [n.address for n in doc.nameservers]
    return list(c.config.machine.network.nameservers)


def search_domains(c: ConfigContainer) -> list[str]:
    doc = c.document(ResolverConfig)
    if doc is not None and doc.search_domains.domains:
        return list(doc.search_domains.domains)
    return list(c.config.machine.network.search_domains)


@dataclass(frozen=True)
class HostDNSView:
    enabled: bool = False
    forward_kube_dns_to_host: bool = False
    resolve_member_names: bool = False
    source: str = ""


_HOST_DNS_KEYS = {"enabled": "enabled", "forwardKubeDNSToHost": "forward_kube_dns_to_host",
                  "resolveMemberNames": "resolve_member_names"}


def host_dns_errors(c: ConfigContainer) -> list[tuple[str, object, str]]:
    """(path, value, expected) for every wrong value of ``machine.features.hostDNS``."""
    raw = c.config.machine.features.host_dns
    p = "machine.features.hostDNS"
    if raw in (None, {}):
        return []
    if not isinstance(raw, dict):
        return [(p, raw, "a mapping with enabled, forwardKubeDNSToHost, resolveMemberNames")]
    out: list[tuple[str, object, str]] = []
    for key, value in raw.items():
        if key not in _HOST_DNS_KEYS:
            out.append((f"{p}.{key}", value, f"one of the keys {', '.join(_HOST_DNS_KEYS)}"))
        elif not isinstance(value, bool):
            out.append((f"{p}.{key}", value, "true or false"))
    if not out and raw.get("enabled") is not True:
        for key in ("forwardKubeDNSToHost", "resolveMemberNames"):
            if raw.get(key) is True:
                out.append((f"{p}.{key}", True, f"false unless {p}.enabled is true"))
    return out


def host_dns(c: ConfigContainer) -> HostDNSView:
    doc = c.document(ResolverConfig)
    if doc is not None and doc.host_dns.encode():
        h = doc.host_dns
        return HostDNSView(bool(h.enabled), bool(h.enabled and h.forward_kube_dns_to_host),
                           bool(h.enabled and h.resolve_member_names), "ResolverConfig.hostDNS")
    raw = c.config.machine.features.host_dns
    if not isinstance(raw, dict) or host_dns_errors(c):
        return HostDNSView()
    on = raw.get("enabled") is True
    return HostDNSView(on, on and raw.get("forwardKubeDNSToHost") is True,
                       on and raw.get("resolveMemberNames") is True, "machine.features.hostDNS")


def static_hosts(c: ConfigContainer) -> list[StaticHost]:
    out = [StaticHost(h.ip, tuple(h.aliases)) for h in c.config.machine.network.extra_host_entries]
    out += [StaticHost(d.name, tuple(d.hostnames)) for d in c.documents_of(StaticHostConfig)]
    return out


def time_servers(c: ConfigContainer) -> list[str]:
    """Configured NTP servers ([] when time sync is disabled; callers apply their default)."""
    doc = c.document(TimeSyncConfig)
    if doc is not None:
        return [] if doc.enabled is False else list(doc.ntp.servers)
    t = c.config.machine.time
    return [] if t.disabled else list(t.servers)
