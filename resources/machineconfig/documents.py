"""Multi-document config: the non-v1alpha1 documents, keyed by ``apiVersion``/``kind`` (and
``name`` for named kinds), with Talos's field names and shapes (``apiVersion: v1alpha1``).

Network: ``HostnameConfig``, ``LinkConfig``, ``VLANConfig``, ``BondConfig``, ``BridgeConfig``
(``name``, common link fields ``up``/``mtu``/``addresses``/``routes``/``multicast``),
``DHCPv4Config``, ``Layer2VIPConfig``, ``ResolverConfig`` (nameservers with ``protocol`` /
``tlsServerName``, ``searchDomains``, ``hostDNS``), ``StaticHostConfig``, ``TimeSyncConfig``,
``NetworkDefaultActionConfig`` and ``NetworkRuleConfig`` (host firewall).
Runtime: ``SysctlConfig``, ``KernelModuleConfig``, ``KmsgLogConfig``,
``ExtensionServiceConfig``. CRI: ``RegistryMirrorConfig``, ``RegistryAuthConfig``,
``RegistryTLSConfig``. Security: ``TrustedRootsConfig``. Block: ``VolumeConfig``,
``UserVolumeConfig``, ``FilesystemTrimConfig``, ``DiskSMARTConfig``.

``DOCUMENT_KINDS`` maps a kind to its model class; add new kinds there. What the node does
with each field is in ``kos.controllers.system.fields``; semantic checks in ``validate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from kos.resources.core import spec_field
from kos.resources.machineconfig.schema import Model


@dataclass
class Document(Model):
    """Base of multi-doc documents: ``apiVersion``/``kind`` are fixed per class."""

    KIND: ClassVar[str] = ""
    API_VERSION: ClassVar[str] = "v1alpha1"
    NAMED: ClassVar[bool] = False

    api_version: str = spec_field(yaml="apiVersion", default="v1alpha1")
    kind: str = spec_field(default="")

    @property
    def doc_name(self) -> str:
        return str(getattr(self, "name", "")) if self.NAMED else ""

    @property
    def key(self) -> tuple[str, str, str]:
        """Identity of the document within a config (two with one key conflict)."""
        return (self.api_version, self.kind, self.doc_name)

    def describe(self) -> str:
        return f"{self.kind} {self.doc_name!r}" if self.NAMED else self.kind


@dataclass
class HostnameConfig(Document):
    KIND: ClassVar[str] = "HostnameConfig"

    hostname: str = spec_field(default="")
    auto: str = spec_field(default="")


@dataclass
class AddressConfig(Model):
    address: str = spec_field(default="")
    route_priority: int = spec_field(default=0)


@dataclass
class RouteConfig(Model):
    destination: str = spec_field(default="")
    gateway: str = spec_field(default="")
    source: str = spec_field(default="")
    mtu: int = spec_field(default=0)
    metric: int = spec_field(default=0)
    table: str = spec_field(default="")


class LinkDocument(Document):
    """A document creating or configuring a link: ``name`` plus the common link fields
    (every subclass declares ``up``, ``mtu``, ``addresses``, ``routes``, ``multicast``)."""

    NAMED: ClassVar[bool] = True
    name: str
    up: bool | None
    mtu: int
    addresses: list[AddressConfig]
    routes: list[RouteConfig]
    multicast: bool | None


@dataclass
class LinkConfig(LinkDocument):
    KIND: ClassVar[str] = "LinkConfig"

    name: str = spec_field(default="")
    up: bool | None = spec_field(default=None)
    mtu: int = spec_field(default=0)
    addresses: list[AddressConfig] = spec_field(default_factory=list)
    routes: list[RouteConfig] = spec_field(default_factory=list)
    multicast: bool | None = spec_field(default=None)


@dataclass
class VLANConfig(LinkDocument):
    KIND: ClassVar[str] = "VLANConfig"

    name: str = spec_field(default="")
    vlan_id: int = spec_field(yaml="vlanID", default=0)
    vlan_mode: str = spec_field(default="")
    parent: str = spec_field(default="")
    up: bool | None = spec_field(default=None)
    mtu: int = spec_field(default=0)
    addresses: list[AddressConfig] = spec_field(default_factory=list)
    routes: list[RouteConfig] = spec_field(default_factory=list)
    multicast: bool | None = spec_field(default=None)


@dataclass
class BondConfig(LinkDocument):
    KIND: ClassVar[str] = "BondConfig"

    name: str = spec_field(default="")
    hardware_addr: str = spec_field(default="")
    links: list[str] = spec_field(default_factory=list)
    bond_mode: str = spec_field(default="")
    miimon: int | None = spec_field(default=None)
    updelay: int | None = spec_field(default=None)
    downdelay: int | None = spec_field(default=None)
    use_carrier: bool | None = spec_field(default=None)
    xmit_hash_policy: str = spec_field(default="")
    arp_interval: int | None = spec_field(default=None)
    arp_ip_targets: list[str] = spec_field(default_factory=list)
    ns_ip6_targets: list[str] = spec_field(yaml="nsIp6Targets", default_factory=list)
    arp_validate: str = spec_field(default="")
    arp_all_targets: str = spec_field(default="")
    lacp_rate: str = spec_field(yaml="lacpRate", default="")
    fail_over_mac: str = spec_field(default="")
    ad_select: str = spec_field(default="")
    ad_actor_sys_prio: int | None = spec_field(default=None)
    ad_user_port_key: int | None = spec_field(default=None)
    ad_lacp_active: str = spec_field(yaml="adLACPActive", default="")
    primary_reselect: str = spec_field(default="")
    resend_igmp: int | None = spec_field(yaml="resendIGMP", default=None)
    min_links: int | None = spec_field(default=None)
    lp_interval: int | None = spec_field(default=None)
    packets_per_slave: int | None = spec_field(default=None)
    num_peer_notif: int | None = spec_field(default=None)
    tlb_logical_lb: int | None = spec_field(default=None)
    all_slaves_active: int | None = spec_field(default=None)
    peer_notif_delay: int | None = spec_field(default=None)
    missed_max: int | None = spec_field(default=None)
    up: bool | None = spec_field(default=None)
    mtu: int = spec_field(default=0)
    addresses: list[AddressConfig] = spec_field(default_factory=list)
    routes: list[RouteConfig] = spec_field(default_factory=list)
    multicast: bool | None = spec_field(default=None)


@dataclass
class BridgeSTP(Model):
    enabled: bool | None = spec_field(default=None)


@dataclass
class BridgeVLAN(Model):
    filtering: bool | None = spec_field(default=None)


@dataclass
class BridgeConfig(LinkDocument):
    KIND: ClassVar[str] = "BridgeConfig"

    name: str = spec_field(default="")
    hardware_addr: str = spec_field(default="")
    links: list[str] = spec_field(default_factory=list)
    stp: BridgeSTP = spec_field(default_factory=BridgeSTP)
    vlan: BridgeVLAN = spec_field(default_factory=BridgeVLAN)
    up: bool | None = spec_field(default=None)
    mtu: int = spec_field(default=0)
    addresses: list[AddressConfig] = spec_field(default_factory=list)
    routes: list[RouteConfig] = spec_field(default_factory=list)
    multicast: bool | None = spec_field(default=None)


@dataclass
class DHCPv4Config(Document):
    KIND: ClassVar[str] = "DHCPv4Config"
    NAMED: ClassVar[bool] = True

    name: str = spec_field(default="")
    route_metric: int = spec_field(default=0)
    ignore_hostname: bool | None = spec_field(default=None)
    client_identifier: str = spec_field(default="")
    duid_raw: str = spec_field(yaml="duidRaw", default="")


@dataclass
class Layer2VIPConfig(Document):
    """``name`` is the virtual IP, ``link`` the link announcing it."""

    KIND: ClassVar[str] = "Layer2VIPConfig"
    NAMED: ClassVar[bool] = True

    name: str = spec_field(default="")
    link: str = spec_field(default="")


@dataclass
class NameserverConfig(Model):
    address: str = spec_field(default="")
    protocol: str = spec_field(default="")
    tls_server_name: str = spec_field(yaml="tlsServerName", default="")


@dataclass
class SearchDomains(Model):
    domains: list[str] = spec_field(default_factory=list)
    disable_default: bool | None = spec_field(default=None)


@dataclass
class HostDNS(Model):
    enabled: bool | None = spec_field(default=None)
    forward_kube_dns_to_host: bool | None = spec_field(yaml="forwardKubeDNSToHost", default=None)
    resolve_member_names: bool | None = spec_field(default=None)


@dataclass
class ResolverConfig(Document):
    KIND: ClassVar[str] = "ResolverConfig"

    nameservers: list[NameserverConfig] = spec_field(default_factory=list)
    search_domains: SearchDomains = spec_field(default_factory=SearchDomains)
    host_dns: HostDNS = spec_field(yaml="hostDNS", default_factory=HostDNS)


@dataclass
class NTPConfig(Model):
    servers: list[str] = spec_field(default_factory=list)


@dataclass
class PTPConfig(Model):
    devices: list[str] = spec_field(default_factory=list)


@dataclass
class TimeSyncConfig(Document):
    KIND: ClassVar[str] = "TimeSyncConfig"

    enabled: bool | None = spec_field(default=None)
    boot_timeout: str = spec_field(default="")
    ntp: NTPConfig = spec_field(default_factory=NTPConfig)
    ptp: PTPConfig = spec_field(default_factory=PTPConfig)


@dataclass
class NetworkDefaultActionConfig(Document):
    KIND: ClassVar[str] = "NetworkDefaultActionConfig"

    ingress: str = spec_field(default="")


@dataclass
class RulePortSelector(Model):
    ports: list[int | str] = spec_field(default_factory=list)
    protocol: str = spec_field(default="")


@dataclass
class IngressRule(Model):
    subnet: str = spec_field(default="")
    except_: str = spec_field(yaml="except", default="")


@dataclass
class NetworkRuleConfig(Document):
    KIND: ClassVar[str] = "NetworkRuleConfig"
    NAMED: ClassVar[bool] = True

    name: str = spec_field(default="")
    port_selector: RulePortSelector = spec_field(default_factory=RulePortSelector)
    ingress: list[IngressRule] = spec_field(default_factory=list)


# --- runtime ---------------------------------------------------------------------------


@dataclass
class SysctlConfig(Document):
    KIND: ClassVar[str] = "SysctlConfig"

    params: dict[str, str] = spec_field(default_factory=dict)


@dataclass
class KernelModuleConfig(Document):
    KIND: ClassVar[str] = "KernelModuleConfig"
    NAMED: ClassVar[bool] = True

    name: str = spec_field(default="")
    parameters: list[str] = spec_field(default_factory=list)


@dataclass
class KmsgLogConfig(Document):
    KIND: ClassVar[str] = "KmsgLogConfig"
    NAMED: ClassVar[bool] = True

    name: str = spec_field(default="")
    url: str = spec_field(default="")


@dataclass
class ExtensionConfigFile(Model):
    content: str = spec_field(default="")
    mount_path: str = spec_field(default="")


@dataclass
class ExtensionServiceConfig(Document):
    KIND: ClassVar[str] = "ExtensionServiceConfig"
    NAMED: ClassVar[bool] = True

    name: str = spec_field(default="")
    config_files: list[ExtensionConfigFile] = spec_field(default_factory=list)
    environment: list[str] = spec_field(default_factory=list)


# --- CRI -------------------------------------------------------------------------------


@dataclass
class RegistryEndpoint(Model):
    url: str = spec_field(default="")
    override_path: bool | None = spec_field(default=None)


@dataclass
class RegistryMirrorConfig(Document):
    """``name`` is the registry host (``docker.io``) or ``*`` for every registry."""

    KIND: ClassVar[str] = "RegistryMirrorConfig"
    NAMED: ClassVar[bool] = True

    name: str = spec_field(default="")
    endpoints: list[RegistryEndpoint] = spec_field(default_factory=list)
    skip_fallback: bool | None = spec_field(default=None)


@dataclass
class RegistryAuthConfig(Document):
    """``name`` is the registry endpoint host (``my-mirror.local:5000``)."""

    KIND: ClassVar[str] = "RegistryAuthConfig"
    NAMED: ClassVar[bool] = True

    name: str = spec_field(default="")
    username: str = spec_field(default="")
    password: str = spec_field(default="", sensitive=True)
    auth: str = spec_field(default="", sensitive=True)
    identity_token: str = spec_field(default="", sensitive=True)


@dataclass
class ClientIdentity(Model):
    crt: str = spec_field(default="")
    key: str = spec_field(default="", sensitive=True)


@dataclass
class RegistryTLSConfig(Document):
    KIND: ClassVar[str] = "RegistryTLSConfig"
    NAMED: ClassVar[bool] = True

    name: str = spec_field(default="")
    client_identity: ClientIdentity = spec_field(default_factory=ClientIdentity)
    ca: str = spec_field(default="")
    insecure_skip_verify: bool | None = spec_field(default=None)


# --- security --------------------------------------------------------------------------


@dataclass
class TrustedRootsConfig(Document):
    KIND: ClassVar[str] = "TrustedRootsConfig"
    NAMED: ClassVar[bool] = True

    name: str = spec_field(default="")
    certificates: str = spec_field(default="")


# --- block -----------------------------------------------------------------------------


@dataclass
class DiskSelector(Model):
    match: str = spec_field(default="")


@dataclass
class Provisioning(Model):
    disk_selector: DiskSelector = spec_field(default_factory=DiskSelector)
    grow: bool | None = spec_field(default=None)
    min_size: int | str = spec_field(default="")
    max_size: int | str = spec_field(default="")


@dataclass
class XFSSpec(Model):
    min_allocation_group_size: int | str = spec_field(default="")


@dataclass
class SystemVolumeFilesystem(Model):
    xfs: XFSSpec = spec_field(default_factory=XFSSpec)


@dataclass
class Filesystem(Model):
    type: str = spec_field(default="")
    project_quota_support: bool | None = spec_field(default=None)
    xfs: XFSSpec = spec_field(default_factory=XFSSpec)


@dataclass
class EncryptionKeyStatic(Model):
    passphrase: str = spec_field(default="", sensitive=True)


@dataclass
class EncryptionKeyKMS(Model):
    endpoint: str = spec_field(default="")


@dataclass
class EncryptionKeyTPM(Model):
    check_secureboot_status_on_enroll: bool | None = spec_field(default=None)
    pcrs: list[int] = spec_field(default_factory=list)


@dataclass
class EncryptionKeyNodeID(Model):
    """``nodeID: {}``: a key derived from the node UUID and partition label."""


@dataclass
class EncryptionKey(Model):
    slot: int = spec_field(default=0)
    static: EncryptionKeyStatic | None = spec_field(default=None)
    node_id: EncryptionKeyNodeID | None = spec_field(yaml="nodeID", default=None)
    kms: EncryptionKeyKMS | None = spec_field(default=None)
    tpm: EncryptionKeyTPM | None = spec_field(default=None)
    lock_to_state: bool | None = spec_field(default=None)


@dataclass
class Encryption(Model):
    provider: str = spec_field(default="")
    keys: list[EncryptionKey] = spec_field(default_factory=list)
    cipher: str = spec_field(default="")
    key_size: int = spec_field(default=0)
    block_size: int = spec_field(default=0)
    options: list[str] = spec_field(default_factory=list)


@dataclass
class VolumeMount(Model):
    secure: bool | None = spec_field(default=None)
    disable_access_time: bool | None = spec_field(default=None)


@dataclass
class VolumeConfig(Document):
    """A system volume: ``name`` is STATE, EPHEMERAL, IMAGECACHE, ETCD, CRI, KUBELET or LOG."""

    KIND: ClassVar[str] = "VolumeConfig"
    NAMED: ClassVar[bool] = True

    name: str = spec_field(default="")
    volume_type: str = spec_field(default="")
    provisioning: Provisioning = spec_field(default_factory=Provisioning)
    filesystem: SystemVolumeFilesystem = spec_field(default_factory=SystemVolumeFilesystem)
    encryption: Encryption = spec_field(default_factory=Encryption)
    mount: VolumeMount = spec_field(default_factory=VolumeMount)
    trim: dict[str, Any] = spec_field(default_factory=dict)
    scrub: dict[str, Any] = spec_field(default_factory=dict)


@dataclass
class UserVolumeConfig(Document):
    """A user volume mounted at ``/var/mnt/<name>``."""

    KIND: ClassVar[str] = "UserVolumeConfig"
    NAMED: ClassVar[bool] = True

    name: str = spec_field(default="")
    volume_type: str = spec_field(default="")
    provisioning: Provisioning = spec_field(default_factory=Provisioning)
    filesystem: Filesystem = spec_field(default_factory=Filesystem)
    encryption: Encryption = spec_field(default_factory=Encryption)
    mount: VolumeMount = spec_field(default_factory=VolumeMount)
    trim: dict[str, Any] = spec_field(default_factory=dict)
    scrub: dict[str, Any] = spec_field(default_factory=dict)


@dataclass
class FilesystemTrimConfig(Document):
    KIND: ClassVar[str] = "FilesystemTrimConfig"

    interval: str = spec_field(default="")
    chunk_size: int | str = spec_field(default="")
    chunk_delay: str = spec_field(default="")
    min_length: int | str = spec_field(default="")


@dataclass
class DiskSMARTConfig(Document):
    KIND: ClassVar[str] = "DiskSMARTConfig"

    enabled: bool | None = spec_field(default=None)
    interval: str = spec_field(default="")


@dataclass
class StaticHostConfig(Document):
    KIND: ClassVar[str] = "StaticHostConfig"
    NAMED: ClassVar[bool] = True

    name: str = spec_field(default="")
    hostnames: list[str] = spec_field(default_factory=list)


DOCUMENT_KINDS: dict[str, type[Document]] = {
    cls.KIND: cls for cls in (
        HostnameConfig, LinkConfig, VLANConfig, BondConfig, BridgeConfig, DHCPv4Config, Layer2VIPConfig,
        ResolverConfig, StaticHostConfig, TimeSyncConfig, NetworkDefaultActionConfig, NetworkRuleConfig,
        SysctlConfig, KernelModuleConfig, KmsgLogConfig, ExtensionServiceConfig,
        RegistryMirrorConfig, RegistryAuthConfig, RegistryTLSConfig, TrustedRootsConfig,
        VolumeConfig, UserVolumeConfig, FilesystemTrimConfig, DiskSMARTConfig,
    )
}


def is_v1alpha1(data: Any) -> bool:
    """A v1alpha1 document has no ``kind`` (it has ``version``/``machine``/``cluster``)."""
    return isinstance(data, dict) and "kind" not in data and "apiVersion" not in data
