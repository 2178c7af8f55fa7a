"""Network resources (namespaces ``network-config`` and ``network``).

Desired state is written per *layer* into ``network-config``: each config source (defaults,
kernel cmdline, platform, operators such as DHCPv4/VIP, machine configuration) writes its own
``LinkSpecs``/``AddressSpecs``/``RouteSpecs``/``HostnameSpecs``/``ResolverSpecs``/
``TimeServerSpecs``/``OperatorSpecs`` with ids ``<layer>/<id>`` and the ``layer`` field set.
Merge controllers reduce the layers into the same types in ``network`` (ids without the layer
prefix); apply controllers push the merged specs to the kernel and files; status controllers
publish what the kernel really has as ``*Statuses`` in ``network``.

Types owned here (all ``*.net.kos.dev``):

* ``LinkSpecs`` / ``LinkStatuses`` (id: link name)
* ``AddressSpecs`` / ``AddressStatuses`` (id: ``<link>/<cidr>``)
* ``RouteSpecs`` / ``RouteStatuses`` (id: ``<table>/<family>/<gateway>/<destination>/<metric>``)
* ``HostnameSpecs`` / ``HostnameStatuses`` (id ``hostname``)
* ``ResolverSpecs`` / ``ResolverStatuses`` (id ``resolvers``)
* ``TimeServerSpecs`` / ``TimeServerStatuses`` (id ``timeservers``), ``TimeStatuses`` (id ``node``)
* ``OperatorSpecs`` (id ``<operator>/<link>``, operators ``dhcp4`` and ``vip``)
* ``NodeAddresses`` (ids ``default``, ``current``, ``routed``, ``accumulative``)
* ``NetworkStatuses`` (id ``status``)
* ``EtcFileStatuses`` (ids ``resolv.conf``, ``hosts``, ``hostname``, ``resolv.conf.upstream``)
* ``HostDNSConfigs`` / ``HostDNSStatuses`` (id ``config``): the host DNS cache
  (``machine.features.hostDNS``) to run and what it does
* ``NetworkApplyErrors`` (id ``<kind>/<spec id>``): a merged spec the kernel refused or kos
  cannot apply here (unknown link, unsupported link kind, out-of-range MTU, ...)
* ``PlatformNetworkConfigs`` (id ``platform``): what the platform (metal/nocloud/container/
  qemu) found out about the network; the platform config controller turns it into the
  ``platform`` layer.

``filter_addresses`` is the pure subnet filter used for etcd ``advertisedSubnets`` and kubelet
``nodeIP.validSubnets``.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

from kos.resources.core import Kind, Spec, resource_type, spec_field

CONFIG_NAMESPACE = "network-config"
NAMESPACE = "network"


class ConfigLayer(enum.IntEnum):
    """Where a layered spec came from; a higher value wins on conflict."""

    DEFAULT = 0
    CMDLINE = 1
    PLATFORM = 2
    OPERATOR = 3
    CONFIGURATION = 4

    def __str__(self) -> str:
        return self.name.lower()


def layered_id(layer: ConfigLayer, id: str) -> str:
    """The id of a layered spec in ``network-config``: ``<layer>/<id>``."""
    return f"{layer}/{id}"


def split_layered_id(layered: str) -> tuple[str, str]:
    """``"cmdline/eth0"`` -> ``("cmdline", "eth0")``."""
    layer, _, rest = layered.partition("/")
    return layer, rest


# Link kinds the config accepts. The host kernel used for development lacks vlan, bond,
# wireguard and dummy; those are accepted and reported in NetworkApplyErrors/LinkStatuses.
LINK_KINDS = ("", "bridge", "veth", "vxlan", "macvlan", "vlan", "bond", "wireguard", "dummy")
MTU_MIN = 68
MTU_MAX = 65535


@resource_type(
    "LinkSpecs.net.kos.dev",
    namespace=NAMESPACE,
    print_columns=[("Kind", "{.kind}"), ("Up", "{.up}"), ("MTU", "{.mtu}"), ("Layer", "{.layer}")],
)
@dataclass
class LinkSpecSpec(Spec):
    """Desired state of one link. ``logical`` links (kind set) are created by kos; physical
    links (kind empty) only get configured. ``mtu`` 0 means "leave as is"."""

    name: str = spec_field(1, default="")
    logical: bool = spec_field(2, default=False)
    up: bool = spec_field(3, default=False)
    mtu: int = spec_field(4, default=0)
    kind: str = spec_field(5, default="")
    master: str = spec_field(6, default="")  # bridge/bond this link is enslaved to
    hardware_address: str = spec_field(7, yaml="hardwareAddr", default="")
    veth_peer: str = spec_field(8, yaml="vethPeer", default="")
    parent: str = spec_field(9, default="")  # vlan/macvlan parent, vxlan underlay device
    vlan_id: int = spec_field(10, yaml="vlanId", default=0)
    vxlan_id: int = spec_field(11, yaml="vxlanId", default=0)
    vxlan_remote: str = spec_field(12, yaml="vxlanRemote", default="")
    vxlan_port: int = spec_field(13, yaml="vxlanPort", default=0)
    macvlan_mode: str = spec_field(14, yaml="macvlanMode", default="")
    bond_mode: str = spec_field(15, yaml="bondMode", default="")
    layer: ConfigLayer = spec_field(16, default=ConfigLayer.DEFAULT)


@resource_type(
    "LinkStatuses.net.kos.dev",
    namespace=NAMESPACE,
    aliases=["link", "links"],
    print_columns=[
        ("Type", "{.type}"),
        ("Kind", "{.kind}"),
        ("Hw Addr", "{.hardwareAddr}"),
        ("Oper State", "{.operationalState}"),
        ("Link State", "{.linkState}"),
    ],
)
@dataclass
class LinkStatusSpec(Spec):
    """A link as the kernel reports it (from RTM_NEWLINK/DELLINK events)."""

    index: int = spec_field(1, default=0)
    type: str = spec_field(2, default="")  # ether, loopback, none, ...
    kind: str = spec_field(3, default="")  # IFLA_INFO_KIND: bridge, veth, ...
    hardware_address: str = spec_field(4, yaml="hardwareAddr", default="")
    mtu: int = spec_field(5, default=0)
    operational_state: str = spec_field(6, yaml="operationalState", default="")
    link_state: bool = spec_field(7, yaml="linkState", default=False)  # IFF_UP
    master_index: int = spec_field(8, yaml="masterIndex", default=0)
    master: str = spec_field(9, default="")
    physical: bool = spec_field(10, default=False)
    flags: list[str] = spec_field(11, default_factory=list)


@resource_type(
    "AddressSpecs.net.kos.dev",
    namespace=NAMESPACE,
    print_columns=[("Address", "{.address}"), ("Link", "{.linkName}"), ("Layer", "{.layer}")],
)
@dataclass
class AddressSpecSpec(Spec):
    """An address to put on a link. Lifetimes in seconds, 0 = forever."""

    address: str = spec_field(1, default="")  # CIDR, e.g. 10.5.0.2/24
    link_name: str = spec_field(2, yaml="linkName", default="")
    family: str = spec_field(3, default="inet4")
    scope: str = spec_field(4, default="global")
    valid_lifetime: int = spec_field(5, yaml="validLifetime", default=0)
    preferred_lifetime: int = spec_field(6, yaml="preferredLifetime", default=0)
    layer: ConfigLayer = spec_field(7, default=ConfigLayer.DEFAULT)


@resource_type(
    "AddressStatuses.net.kos.dev",
    namespace=NAMESPACE,
    aliases=["address", "addresses"],
    print_columns=[("Address", "{.address}"), ("Link", "{.linkName}")],
)
@dataclass
class AddressStatusSpec(Spec):
    """An address the kernel has (RTM_NEWADDR/DELADDR)."""

    address: str = spec_field(1, default="")
    local: str = spec_field(2, default="")
    broadcast: str = spec_field(3, default="")
    link_index: int = spec_field(4, yaml="linkIndex", default=0)
    link_name: str = spec_field(5, yaml="linkName", default="")
    family: str = spec_field(6, default="inet4")
    scope: str = spec_field(7, default="")
    flags: list[str] = spec_field(8, default_factory=list)


@resource_type(
    "RouteSpecs.net.kos.dev",
    namespace=NAMESPACE,
    print_columns=[
        ("Destination", "{.destination}"),
        ("Gateway", "{.gateway}"),
        ("Link", "{.outLinkName}"),
        ("Metric", "{.priority}"),
        ("Layer", "{.layer}"),
    ],
)
@dataclass
class RouteSpecSpec(Spec):
    """A route. ``destination`` empty = default route; ``table`` 254 = main."""

    family: str = spec_field(1, default="inet4")
    destination: str = spec_field(2, default="")
    source: str = spec_field(3, default="")
    gateway: str = spec_field(4, default="")
    out_link_name: str = spec_field(5, yaml="outLinkName", default="")
    table: int = spec_field(6, default=254)
    priority: int = spec_field(7, default=1024)
    scope: str = spec_field(8, default="global")
    type: str = spec_field(9, default="unicast")
    protocol: str = spec_field(10, default="static")
    mtu: int = spec_field(11, default=0)
    layer: ConfigLayer = spec_field(12, default=ConfigLayer.DEFAULT)


@resource_type(
    "RouteStatuses.net.kos.dev",
    namespace=NAMESPACE,
    aliases=["route", "routes"],
    print_columns=[
        ("Destination", "{.destination}"),
        ("Gateway", "{.gateway}"),
        ("Link", "{.outLinkName}"),
        ("Metric", "{.priority}"),
    ],
)
@dataclass
class RouteStatusSpec(Spec):
    """A route the kernel has (RTM_NEWROUTE/DELROUTE)."""

    family: str = spec_field(1, default="inet4")
    destination: str = spec_field(2, default="")
    source: str = spec_field(3, default="")
    gateway: str = spec_field(4, default="")
    out_link_index: int = spec_field(5, yaml="outLinkIndex", default=0)
    out_link_name: str = spec_field(6, yaml="outLinkName", default="")
    table: int = spec_field(7, default=254)
    priority: int = spec_field(8, default=0)
    scope: str = spec_field(9, default="")
    type: str = spec_field(10, default="")
    protocol: str = spec_field(11, default="")


@resource_type(
    "HostnameSpecs.net.kos.dev",
    namespace=NAMESPACE,
    print_columns=[("Hostname", "{.hostname}"), ("Domainname", "{.domainname}"), ("Layer", "{.layer}")],
)
@dataclass
class HostnameSpecSpec(Spec):
    hostname: str = spec_field(1, default="")
    domainname: str = spec_field(2, default="")
    layer: ConfigLayer = spec_field(3, default=ConfigLayer.DEFAULT)


@resource_type(
    "HostnameStatuses.net.kos.dev",
    namespace=NAMESPACE,
    print_columns=[("Hostname", "{.hostname}"), ("Domainname", "{.domainname}")],
)
@dataclass
class HostnameStatusSpec(Spec):
    """The hostname in effect (id ``hostname``)."""

    hostname: str = spec_field(1, default="")
    domainname: str = spec_field(2, default="")


@resource_type(
    "ResolverSpecs.net.kos.dev",
    namespace=NAMESPACE,
    print_columns=[("Resolvers", "{.dnsServers}"), ("Layer", "{.layer}")],
)
@dataclass
class ResolverSpecSpec(Spec):
    dns_servers: list[str] = spec_field(1, yaml="dnsServers", default_factory=list)
    search_domains: list[str] = spec_field(2, yaml="searchDomains", default_factory=list)
    layer: ConfigLayer = spec_field(3, default=ConfigLayer.DEFAULT)


@resource_type("ResolverStatuses.net.kos.dev", namespace=NAMESPACE, print_columns=[("Resolvers", "{.dnsServers}")])
@dataclass
class ResolverStatusSpec(Spec):
    dns_servers: list[str] = spec_field(1, yaml="dnsServers", default_factory=list)
    search_domains: list[str] = spec_field(2, yaml="searchDomains", default_factory=list)


@resource_type(
    "TimeServerSpecs.net.kos.dev",
    namespace=NAMESPACE,
    print_columns=[("Timeservers", "{.timeServers}"), ("Layer", "{.layer}")],
)
@dataclass
class TimeServerSpecSpec(Spec):
    time_servers: list[str] = spec_field(1, yaml="timeServers", default_factory=list)
    layer: ConfigLayer = spec_field(2, default=ConfigLayer.DEFAULT)


@resource_type(
    "TimeServerStatuses.net.kos.dev", namespace=NAMESPACE, print_columns=[("Timeservers", "{.timeServers}")]
)
@dataclass
class TimeServerStatusSpec(Spec):
    time_servers: list[str] = spec_field(1, yaml="timeServers", default_factory=list)


@dataclass
class DHCP4OperatorSpec(Spec):
    route_metric: int = spec_field(1, yaml="routeMetric", default=1024)
    skip_hostname_request: bool = spec_field(2, yaml="skipHostnameRequest", default=False)


@dataclass
class VIPOperatorSpec(Spec):
    ip: str = spec_field(1, default="")
    gratuitous_arp: bool = spec_field(2, yaml="gratuitousARP", default=True)


OPERATORS = ("dhcp4", "vip")


@resource_type(
    "OperatorSpecs.net.kos.dev",
    namespace=NAMESPACE,
    print_columns=[("Operator", "{.operator}"), ("Link", "{.linkName}"), ("Layer", "{.layer}")],
)
@dataclass
class OperatorSpecSpec(Spec):
    """Run an operator (``dhcp4`` or ``vip``) on a link; its results go to the operator layer."""

    operator: str = spec_field(1, default="")
    link_name: str = spec_field(2, yaml="linkName", default="")
    require_up: bool = spec_field(3, yaml="requireUp", default=True)
    dhcp4: DHCP4OperatorSpec = spec_field(4, default_factory=DHCP4OperatorSpec)
    vip: VIPOperatorSpec = spec_field(5, default_factory=VIPOperatorSpec)
    layer: ConfigLayer = spec_field(6, default=ConfigLayer.DEFAULT)


@resource_type(
    "TimeStatuses.net.kos.dev",
    namespace=NAMESPACE,
    print_columns=[("Synced", "{.synced}"), ("Offset", "{.offset}"), ("Server", "{.server}")],
)
@dataclass
class TimeStatusSpec(Spec):
    """Time sync state (id ``node``): ``synced`` once a server answered; ``offset`` of the
    local clock in seconds (after any step); ``adjusted``: whether kos may set the clock
    (never in container mode, where it only measures)."""

    synced: bool = spec_field(1, default=False)
    offset: float = spec_field(2, default=0.0)
    delay: float = spec_field(3, default=0.0)
    server: str = spec_field(4, default="")
    stratum: int = spec_field(5, default=0)
    adjusted: bool = spec_field(6, default=False)
    steps: int = spec_field(7, default=0)
    error: str = spec_field(8, default="")


NODE_ADDRESS_IDS = ("default", "current", "routed", "accumulative")


@resource_type("NodeAddresses.net.kos.dev", namespace=NAMESPACE, print_columns=[("Addresses", "{.addresses}")])
@dataclass
class NodeAddressSpec(Spec):
    """The node's addresses (CIDR prefixes, sorted). ``default``: the first one (what the
    node is known by); ``current``: all global-scope addresses now; ``routed``: current minus
    addresses that are not routable (VIPs, link-local); ``accumulative``: every address seen
    since boot."""

    addresses: list[str] = spec_field(1, default_factory=list)


@resource_type(
    "NetworkStatuses.net.kos.dev",
    namespace=NAMESPACE,
    print_columns=[
        ("Address", "{.addressReady}"),
        ("Connectivity", "{.connectivityReady}"),
        ("Hostname", "{.hostnameReady}"),
        ("Etc", "{.etcFilesReady}"),
    ],
)
@dataclass
class NetworkStatusSpec(Spec):
    address_ready: bool = spec_field(1, yaml="addressReady", default=False)
    connectivity_ready: bool = spec_field(2, yaml="connectivityReady", default=False)
    hostname_ready: bool = spec_field(3, yaml="hostnameReady", default=False)
    etc_files_ready: bool = spec_field(4, yaml="etcFilesReady", default=False)


@resource_type("EtcFileStatuses.net.kos.dev", namespace=NAMESPACE, print_columns=[("Path", "{.path}")])
@dataclass
class EtcFileStatusSpec(Spec):
    """A file kos rendered (atomically) for the network: path and content digest."""

    path: str = spec_field(1, default="")
    sha256: str = spec_field(2, default="")


HOST_DNS_ADDRESS = "127.0.0.53"  # where the host DNS cache listens; resolv.conf points here
KUBE_DNS_HOST_ADDRESS = "169.254.116.108"  # where pods' CoreDNS reaches it (forwardKubeDNSToHost)


@dataclass
class HostDNSName(Spec):
    """A name the host DNS cache answers itself (a cluster member's hostname)."""

    name: str = spec_field(1, default="")
    addresses: list[str] = spec_field(2, default_factory=list)


@resource_type(
    "HostDNSConfigs.net.kos.dev",
    namespace=NAMESPACE,
    print_columns=[("Listen", "{.listenAddresses}"), ("Upstreams", "{.upstreams}")],
)
@dataclass
class HostDNSConfigSpec(Spec):
    """The host DNS cache to run (id ``config``; absent when ``hostDNS.enabled`` is not true):
    ``host:port`` listen addresses, upstream resolver addresses in order, member names."""

    listen_addresses: list[str] = spec_field(1, yaml="listenAddresses", default_factory=list)
    upstreams: list[str] = spec_field(2, default_factory=list)
    forward_kube_dns_to_host: bool = spec_field(3, yaml="forwardKubeDNSToHost", default=False)
    resolve_member_names: bool = spec_field(4, yaml="resolveMemberNames", default=False)
    names: list[HostDNSName] = spec_field(5, default_factory=list)


@resource_type(
    "HostDNSStatuses.net.kos.dev",
    namespace=NAMESPACE,
    print_columns=[("Listening", "{.listening}"), ("Healthy", "{.healthyUpstreams}"), ("Error", "{.error}")],
)
@dataclass
class HostDNSStatusSpec(Spec):
    """What the host DNS cache does (id ``config``): where it listens, which upstreams answered
    the last query sent to them, counters, and why it is not listening (``error``)."""

    listening: list[str] = spec_field(1, default_factory=list)
    upstreams: list[str] = spec_field(2, default_factory=list)
    healthy_upstreams: list[str] = spec_field(3, yaml="healthyUpstreams", default_factory=list)
    queries: int = spec_field(4, default=0)
    cache_hits: int = spec_field(5, yaml="cacheHits", default=0)
    cache_entries: int = spec_field(6, yaml="cacheEntries", default=0)
    upstream_failures: int = spec_field(7, yaml="upstreamFailures", default=0)
    error: str = spec_field(8, default="")


@resource_type(
    "NetworkApplyErrors.net.kos.dev",
    namespace=NAMESPACE,
    print_columns=[("Object", "{.object}"), ("Error", "{.error}")],
)
@dataclass
class NetworkApplyErrorSpec(Spec):
    """Why a merged spec is not (fully) in the kernel. Removed once it applies."""

    object: str = spec_field(1, default="")  # e.g. "link/bond0"
    error: str = spec_field(2, default="")


@resource_type("PlatformNetworkConfigs.net.kos.dev", namespace=NAMESPACE)
@dataclass
class PlatformNetworkConfigSpec(Spec):
    """Network facts from the platform (id ``platform``)."""

    links: list[LinkSpecSpec] = spec_field(1, default_factory=list)
    addresses: list[AddressSpecSpec] = spec_field(2, default_factory=list)
    routes: list[RouteSpecSpec] = spec_field(3, default_factory=list)
    hostname: str = spec_field(4, default="")
    domainname: str = spec_field(5, default="")
    dns_servers: list[str] = spec_field(6, yaml="dnsServers", default_factory=list)
    time_servers: list[str] = spec_field(7, yaml="timeServers", default_factory=list)
    operators: list[OperatorSpecSpec] = spec_field(8, default_factory=list)


LINK_SPECS = Kind(NAMESPACE, LinkSpecSpec.definition.type)
LINK_STATUSES = Kind(NAMESPACE, LinkStatusSpec.definition.type)
ADDRESS_SPECS = Kind(NAMESPACE, AddressSpecSpec.definition.type)
ADDRESS_STATUSES = Kind(NAMESPACE, AddressStatusSpec.definition.type)
ROUTE_SPECS = Kind(NAMESPACE, RouteSpecSpec.definition.type)
ROUTE_STATUSES = Kind(NAMESPACE, RouteStatusSpec.definition.type)
HOSTNAME_SPECS = Kind(NAMESPACE, HostnameSpecSpec.definition.type)
HOSTNAME_STATUSES = Kind(NAMESPACE, HostnameStatusSpec.definition.type)
RESOLVER_SPECS = Kind(NAMESPACE, ResolverSpecSpec.definition.type)
RESOLVER_STATUSES = Kind(NAMESPACE, ResolverStatusSpec.definition.type)
TIMESERVER_SPECS = Kind(NAMESPACE, TimeServerSpecSpec.definition.type)
TIMESERVER_STATUSES = Kind(NAMESPACE, TimeServerStatusSpec.definition.type)
TIME_STATUSES = Kind(NAMESPACE, TimeStatusSpec.definition.type)
OPERATOR_SPECS = Kind(NAMESPACE, OperatorSpecSpec.definition.type)
NODE_ADDRESSES = Kind(NAMESPACE, NodeAddressSpec.definition.type)
NETWORK_STATUSES = Kind(NAMESPACE, NetworkStatusSpec.definition.type)
ETC_FILE_STATUSES = Kind(NAMESPACE, EtcFileStatusSpec.definition.type)
APPLY_ERRORS = Kind(NAMESPACE, NetworkApplyErrorSpec.definition.type)
PLATFORM_CONFIGS = Kind(NAMESPACE, PlatformNetworkConfigSpec.definition.type)
HOST_DNS_CONFIGS = Kind(NAMESPACE, HostDNSConfigSpec.definition.type)
HOST_DNS_STATUSES = Kind(NAMESPACE, HostDNSStatusSpec.definition.type)
HOST_DNS_ID = "config"


def config_kind(kind: Kind) -> Kind:
    """The layered (``network-config``) twin of a merged kind."""
    return Kind(CONFIG_NAMESPACE, kind.type)


def route_id(spec: RouteSpecSpec | RouteStatusSpec) -> str:
    """``<table>/<family>/<gateway>/<destination>/<metric>`` ("" parts kept empty)."""
    dst = spec.destination or "default"
    return f"{spec.table}/{spec.family}/{spec.gateway}/{dst}/{spec.priority}"


def address_id(link: str, address: str) -> str:
    return f"{link}/{address}"


def filter_addresses(addresses: list[str], include: list[str], exclude: list[str]) -> list[str]:
    """Keep the CIDR ``addresses`` whose IP lies in one of ``include`` (all when empty) and in
    none of ``exclude``. Subnets may be given with a leading ``!`` in ``include`` (Talos style),
    which adds them to the exclusions. Order of ``addresses`` is kept; unparsable addresses are
    dropped; an unparsable subnet raises ``ValueError`` naming it."""
    inc: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    exc: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for raw in include:
        target = exc if raw.startswith("!") else inc
        target.append(_subnet(raw.removeprefix("!")))
    for raw in exclude:
        exc.append(_subnet(raw.removeprefix("!")))
    out: list[str] = []
    for a in addresses:
        try:
            ip = ipaddress.ip_interface(a).ip
        except ValueError:
            continue
        if inc and not any(ip.version == n.version and ip in n for n in inc):
            continue
        if any(ip.version == n.version and ip in n for n in exc):
            continue
        out.append(a)
    return out


def _subnet(raw: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(raw, strict=False)
    except ValueError as e:
        raise ValueError(f"subnet filter {raw!r}: expected a CIDR such as 10.0.0.0/8 ({e})") from None
