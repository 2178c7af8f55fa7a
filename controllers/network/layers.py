"""The network config layers as pure functions: each source -> a ``Layer`` (the specs one
source asks for).

* ``default_layer``: loopback up with 127.0.0.1/8 and ::1/128, DHCPv4 on the first physical
  link (by name) when no other layer configures an address or operator, a stable
  generated hostname ``kos-<6 hex>`` from the machine id (or the first MAC), name servers
  1.1.1.1 and 8.8.8.8, time server time.cloudflare.com.
* ``cmdline_layer``: ``ip=``/``kos.hostname=`` (``kos.controllers.network.cmdline``).
* ``platform_layer``: the platform's ``PlatformNetworkConfigs`` resource.
* ``configuration_layer``: the machine config through ``resources.machineconfig.views``.

``Layer.items(layer)`` lists (kind, id, spec) with the ``layer`` field set, ready to be
written as ``<layer>/<id>`` into ``network-config``. Bad values raise ``LayerError`` naming
where the value came from, the value and what was expected.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from kos.controllers.network.cmdline import CmdlineNetwork
from kos.resources.core import Kind, Spec
from kos.resources.network import (
    ADDRESS_SPECS,
    HOSTNAME_SPECS,
    LINK_KINDS,
    LINK_SPECS,
    MTU_MAX,
    MTU_MIN,
    OPERATOR_SPECS,
    RESOLVER_SPECS,
    ROUTE_SPECS,
    TIMESERVER_SPECS,
    AddressSpecSpec,
    ConfigLayer,
    DHCP4OperatorSpec,
    HostnameSpecSpec,
    LinkSpecSpec,
    OperatorSpecSpec,
    PlatformNetworkConfigSpec,
    ResolverSpecSpec,
    RouteSpecSpec,
    TimeServerSpecSpec,
    VIPOperatorSpec,
    address_id,
    route_id,
)

DEFAULT_NAMESERVERS = ("1.1.1.1", "8.8.8.8")
DEFAULT_TIME_SERVERS = ("time.cloudflare.com",)

_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)


class LayerError(ValueError):
    def __init__(self, where: str, value: object, expected: str) -> None:
        super().__init__(f"{where}: {value!r} is invalid, expected {expected}")
        self.where = where


def validate_hostname(name: str) -> None:
    """RFC 1123 host name (labels of 1-63 letters/digits/'-', total <= 253)."""
    if not name or len(name) > 253:
        raise ValueError("a host name of 1-253 characters")
    for label in name.split("."):
        if not _LABEL_RE.match(label):
            raise ValueError("DNS labels of letters, digits and '-' (1-63 characters, no leading/trailing '-')")


def stable_hostname(basis: str) -> str:
    """``kos-`` + 6 hex digits of sha256(basis): the same machine always gets the same name."""
    return "kos-" + hashlib.sha256(basis.encode()).hexdigest()[:6]


@dataclass
class Layer:
    links: list[LinkSpecSpec] = field(default_factory=list)
    addresses: list[AddressSpecSpec] = field(default_factory=list)
    routes: list[RouteSpecSpec] = field(default_factory=list)
    hostname: HostnameSpecSpec | None = None
    resolvers: ResolverSpecSpec | None = None
    time_servers: TimeServerSpecSpec | None = None
    operators: list[OperatorSpecSpec] = field(default_factory=list)

    def items(self, layer: ConfigLayer) -> list[tuple[Kind, str, Spec]]:
        out: list[tuple[Kind, str, Spec]] = []
        for link in self.links:
            out.append((LINK_SPECS, link.name, link))
        for a in self.addresses:
            out.append((ADDRESS_SPECS, address_id(a.link_name, a.address), a))
        for r in self.routes:
            out.append((ROUTE_SPECS, route_id(r), r))
        if self.hostname is not None:
            out.append((HOSTNAME_SPECS, "hostname", self.hostname))
        if self.resolvers is not None:
            out.append((RESOLVER_SPECS, "resolvers", self.resolvers))
        if self.time_servers is not None:
            out.append((TIMESERVER_SPECS, "timeservers", self.time_servers))
        for op in self.operators:
            out.append((OPERATOR_SPECS, f"{op.operator}/{op.link_name}", op))
        for _, _, spec in out:
            spec.layer = layer  # type: ignore[attr-defined]
        return out


def _cidr(where: str, value: str) -> tuple[str, str]:
    """Normalised CIDR and family; a bare address gets /32 or /128."""
    try:
        iface = ipaddress.ip_interface(value)
    except ValueError:
        raise LayerError(where, value, "an address in CIDR form such as 10.5.0.2/24") from None
    return str(iface), "inet6" if iface.version == 6 else "inet4"


def _ip(where: str, value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise LayerError(where, value, "an IP address") from None


def _mtu(where: str, value: int) -> int:
    if value and not MTU_MIN <= value <= MTU_MAX:
        raise LayerError(where, value, f"an MTU between {MTU_MIN} and {MTU_MAX} (or 0 to keep the kernel's)")
    return value


def address_spec(where: str, link: str, value: str) -> AddressSpecSpec:
    cidr, family = _cidr(where, value)
    scope = "host" if ipaddress.ip_interface(cidr).ip.is_loopback else "global"
    return AddressSpecSpec(address=cidr, link_name=link, family=family, scope=scope)


def route_spec(
    where: str, link: str, destination: str, gateway: str, *, source: str = "", metric: int = 0, mtu: int = 0,
    protocol: str = "static",
) -> RouteSpecSpec:
    family = "inet4"
    dst = ""
    if destination:
        try:
            net = ipaddress.ip_network(destination, strict=False)
        except ValueError:
            raise LayerError(f"{where}.network", destination, "a destination in CIDR form such as 10.0.0.0/8") from None
        dst = "" if net.prefixlen == 0 else str(net)
        family = "inet6" if net.version == 6 else "inet4"
    gw = _ip(f"{where}.gateway", gateway) if gateway else ""
    if gw and not destination:
        family = "inet6" if ipaddress.ip_address(gw).version == 6 else "inet4"
    src = _ip(f"{where}.source", source) if source else ""
    return RouteSpecSpec(
        family=family, destination=dst, gateway=gw, source=src, out_link_name=link,
        priority=metric or 1024, mtu=_mtu(f"{where}.mtu", mtu), protocol=protocol,
        scope="link" if not gw and dst else "global",
    )


def hostname_spec(where: str, value: str) -> HostnameSpecSpec:
    try:
        validate_hostname(value)
    except ValueError as e:
        raise LayerError(where, value, str(e)) from None
    host, _, domain = value.partition(".")
    return HostnameSpecSpec(hostname=host, domainname=domain)


# -- default -------------------------------------------------------------------------------------
def default_layer(
    physical_links: Sequence[tuple[str, str]], *, machine_id: str = "", others_configure: bool = False
) -> Layer:
    """``physical_links``: (name, MAC) of the physical links the kernel has."""
    layer = Layer(
        links=[LinkSpecSpec(name="lo", up=True)],
        addresses=[
            AddressSpecSpec(address="127.0.0.1/8", link_name="lo", family="inet4", scope="host"),
            AddressSpecSpec(address="::1/128", link_name="lo", family="inet6", scope="host"),
        ],
    )
    layer.resolvers = ResolverSpecSpec(dns_servers=list(DEFAULT_NAMESERVERS))
    layer.time_servers = TimeServerSpecSpec(time_servers=list(DEFAULT_TIME_SERVERS))
    ordered = sorted(physical_links)
    if ordered and not others_configure:
        first = ordered[0][0]
        layer.links.append(LinkSpecSpec(name=first, up=True))
        layer.operators.append(OperatorSpecSpec(operator="dhcp4", link_name=first, dhcp4=DHCP4OperatorSpec()))
    basis = machine_id or (ordered[0][1] if ordered else "")
    if basis:
        layer.hostname = HostnameSpecSpec(hostname=stable_hostname(basis))
    return layer


# -- kernel cmdline --------------------------------------------------------------------------------
def cmdline_layer(net: CmdlineNetwork, physical_links: Sequence[str]) -> Layer:
    layer = Layer()
    if net.empty:
        return layer
    link = net.link_name or (sorted(physical_links)[0] if physical_links else "")
    if link and (net.address or net.dhcp):
        layer.links.append(LinkSpecSpec(name=link, up=True))
    if net.address and link:
        layer.addresses.append(address_spec("ip= client-ip", link, net.address))
        if net.gateway:
            layer.routes.append(route_spec("ip= gw-ip", link, "", net.gateway))
    if net.dhcp and link:
        layer.operators.append(OperatorSpecSpec(operator="dhcp4", link_name=link))
    if net.hostname:
        layer.hostname = HostnameSpecSpec(hostname=net.hostname, domainname=net.domainname)
    if net.dns_servers:
        layer.resolvers = ResolverSpecSpec(dns_servers=list(net.dns_servers))
    if net.ntp_servers:
        layer.time_servers = TimeServerSpecSpec(time_servers=list(net.ntp_servers))
    return layer


# -- platform --------------------------------------------------------------------------------------
def platform_layer(p: PlatformNetworkConfigSpec) -> Layer:
    layer = Layer(
        links=[s.copy() for s in p.links],
        addresses=[s.copy() for s in p.addresses],
        routes=[s.copy() for s in p.routes],
        operators=[s.copy() for s in p.operators],
    )
    if p.hostname:
        layer.hostname = HostnameSpecSpec(hostname=p.hostname, domainname=p.domainname)
    if p.dns_servers:
        layer.resolvers = ResolverSpecSpec(dns_servers=list(p.dns_servers))
    if p.time_servers:
        layer.time_servers = TimeServerSpecSpec(time_servers=list(p.time_servers))
    return layer


# -- machine configuration -------------------------------------------------------------------------
@dataclass(frozen=True)
class ConfiguredLink:
    """The subset of ``views.LinkView`` the configuration layer uses."""

    name: str
    source: str
    up: bool = True
    mtu: int = 0
    kind: str = ""
    addresses: tuple[str, ...] = ()
    routes: tuple[tuple[str, str, str, int, int], ...] = ()  # destination, gateway, source, metric, mtu
    dhcp: bool = False
    vip: str = ""
    bridge_ports: tuple[str, ...] = ()
    bond_ports: tuple[str, ...] = ()
    bond_mode: str = ""
    parent: str = ""  # vlan parent
    vlan_id: int = 0
    dhcp_metric: int = 0


def configuration_layer(
    links: Iterable[ConfiguredLink],
    *,
    hostname: str = "",
    hostname_source: str = "machine.network.hostname",
    nameservers: Sequence[str] = (),
    search_domains: Sequence[str] = (),
    time_servers: Sequence[str] = (),
) -> Layer:
    layer = Layer()
    for link in links:
        where = link.source
        if link.kind not in LINK_KINDS:
            raise LayerError(f"{where}.kind", link.kind, f"one of {', '.join(k for k in LINK_KINDS if k)}")
        kind = "bridge" if link.bridge_ports else "bond" if link.bond_ports else link.kind
        if kind == "vlan" and not 1 <= link.vlan_id <= 4094:
            raise LayerError(f"{where}.vlanId", link.vlan_id, "a VLAN id between 1 and 4094")
        layer.links.append(LinkSpecSpec(
            name=link.name, up=link.up, mtu=_mtu(f"{where}.mtu", link.mtu), kind=kind, logical=bool(kind),
            bond_mode=link.bond_mode, parent=link.parent, vlan_id=link.vlan_id,
        ))
        for port in (*link.bridge_ports, *link.bond_ports):
            layer.links.append(LinkSpecSpec(name=port, up=True, master=link.name))
        for i, a in enumerate(link.addresses):
            layer.addresses.append(address_spec(f"{where}.addresses[{i}]", link.name, a))
        for i, (dst, gw, src, metric, mtu) in enumerate(link.routes):
            layer.routes.append(route_spec(f"{where}.routes[{i}]", link.name, dst, gw, source=src, metric=metric,
                                           mtu=mtu))
        if link.dhcp:
            layer.operators.append(OperatorSpecSpec(
                operator="dhcp4", link_name=link.name,
                dhcp4=DHCP4OperatorSpec(route_metric=link.dhcp_metric or DHCP4OperatorSpec().route_metric),
            ))
        if link.vip:
            layer.operators.append(OperatorSpecSpec(
                operator="vip", link_name=link.name, vip=VIPOperatorSpec(ip=_ip(f"{where}.vip.ip", link.vip)),
            ))
    if hostname:
        layer.hostname = hostname_spec(hostname_source, hostname)
    if nameservers or search_domains:
        layer.resolvers = ResolverSpecSpec(
            dns_servers=[_ip(f"machine.network.nameservers[{i}]", n) for i, n in enumerate(nameservers)],
            search_domains=list(search_domains),
        )
    if time_servers:
        layer.time_servers = TimeServerSpecSpec(time_servers=list(time_servers))
    return layer
