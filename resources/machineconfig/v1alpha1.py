"""The v1alpha1 machine config document (``version: v1alpha1``): ``machine`` and ``cluster``
sections with the field names and shapes of Talos's v1alpha1 config, so a Talos user (and a
Talos config using these fields) is at home. Sections kos does not act on yet are accepted
as opaque mappings so that such configs still load in strict mode.

Certificates and keys (``ca.crt``/``ca.key``...) are base64 of PEM, as in Talos.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from kos.resources.core import spec_field
from kos.resources.machineconfig.schema import Model
from kos.resources.pki import CertificateAndKey

Opaque = dict[str, Any]


@dataclass
class PEMEncodedCertificateAndKey(Model):
    crt: str = spec_field(default="")
    key: str = spec_field(default="", sensitive=True)

    @classmethod
    def from_pair(cls, pair: CertificateAndKey) -> PEMEncodedCertificateAndKey:
        return cls(base64.b64encode(pair.cert_pem).decode(), base64.b64encode(pair.key_pem).decode())

    def to_pair(self) -> CertificateAndKey:
        """Decode to PEM; raises ``ValueError`` naming which half is not base64."""
        return CertificateAndKey(_b64("crt", self.crt), _b64("key", self.key))


@dataclass
class PEMEncodedKey(Model):
    key: str = spec_field(default="", sensitive=True)

    def pem(self) -> bytes:
        return _b64("key", self.key)


def _b64(name: str, text: str) -> bytes:
    try:
        return base64.b64decode(text.encode(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{name}: not valid base64 ({exc})") from exc


# --- machine ---------------------------------------------------------------------------


@dataclass
class ExtraMount(Model):
    destination: str = spec_field(default="")
    type: str = spec_field(default="")
    source: str = spec_field(default="")
    options: list[str] = spec_field(default_factory=list)


@dataclass
class KubeletNodeIP(Model):
    valid_subnets: list[str] = spec_field(default_factory=list)


@dataclass
class Kubelet(Model):
    image: str = spec_field(default="")
    cluster_dns: list[str] = spec_field(yaml="clusterDNS", default_factory=list)
    extra_args: dict[str, str] = spec_field(default_factory=dict)
    extra_mounts: list[ExtraMount] = spec_field(default_factory=list)
    extra_config: Opaque = spec_field(default_factory=dict)
    default_runtime_seccomp_profile_enabled: bool | None = spec_field(default=None)
    register_with_fqdn: bool | None = spec_field(yaml="registerWithFQDN", default=None)
    node_ip: KubeletNodeIP = spec_field(yaml="nodeIP", default_factory=KubeletNodeIP)
    skip_node_registration: bool | None = spec_field(default=None)
    disable_manifests_directory: bool | None = spec_field(default=None)
    credential_provider_config: Opaque = spec_field(default_factory=dict)


@dataclass
class Route(Model):
    network: str = spec_field(default="")
    gateway: str = spec_field(default="")
    source: str = spec_field(default="")
    metric: int = spec_field(default=0)
    mtu: int = spec_field(default=0)


@dataclass
class VIP(Model):
    ip: str = spec_field(default="")
    equinix_metal: Opaque = spec_field(default_factory=dict)
    hcloud: Opaque = spec_field(default_factory=dict)


@dataclass
class STP(Model):
    enabled: bool | None = spec_field(default=None)


@dataclass
class BridgeVLAN(Model):
    vlan_filtering: bool | None = spec_field(default=None)


@dataclass
class Bridge(Model):
    interfaces: list[str] = spec_field(default_factory=list)
    stp: STP = spec_field(default_factory=STP)
    vlan: BridgeVLAN = spec_field(default_factory=BridgeVLAN)


@dataclass
class BridgePort(Model):
    """This interface is a port of the bridge named ``master``."""

    master: str = spec_field(default="")


@dataclass
class Interface(Model):
    interface: str = spec_field(default="")
    device_selector: Opaque = spec_field(default_factory=dict)
    addresses: list[str] = spec_field(default_factory=list)
    routes: list[Route] = spec_field(default_factory=list)
    bond: Opaque = spec_field(default_factory=dict)
    bridge: Bridge = spec_field(default_factory=Bridge)
    bridge_port: BridgePort = spec_field(default_factory=BridgePort)
    vlans: list[Opaque] = spec_field(default_factory=list)
    mtu: int = spec_field(default=0)
    dhcp: bool | None = spec_field(default=None)
    ignore: bool | None = spec_field(default=None)
    dummy: bool | None = spec_field(default=None)
    dhcp_options: Opaque = spec_field(default_factory=dict)
    wireguard: Opaque = spec_field(default_factory=dict)
    vip: VIP = spec_field(default_factory=VIP)


@dataclass
class ExtraHost(Model):
    ip: str = spec_field(default="")
    aliases: list[str] = spec_field(default_factory=list)


@dataclass
class Network(Model):
    hostname: str = spec_field(default="")
    interfaces: list[Interface] = spec_field(default_factory=list)
    nameservers: list[str] = spec_field(default_factory=list)
    search_domains: list[str] = spec_field(default_factory=list)
    extra_host_entries: list[ExtraHost] = spec_field(default_factory=list)
    kubespan: Opaque = spec_field(default_factory=dict)
    disable_search_domain: bool | None = spec_field(default=None)


@dataclass
class Partition(Model):
    size: int | str = spec_field(default=0)
    mountpoint: str = spec_field(default="")


@dataclass
class Disk(Model):
    device: str = spec_field(default="")
    partitions: list[Partition] = spec_field(default_factory=list)


@dataclass
class Install(Model):
    disk: str = spec_field(default="")
    disk_selector: Opaque = spec_field(default_factory=dict)
    extra_kernel_args: list[str] = spec_field(default_factory=list)
    image: str = spec_field(default="")
    extensions: list[Opaque] = spec_field(default_factory=list)
    wipe: bool | None = spec_field(default=None)
    legacy_bios_support: bool | None = spec_field(yaml="legacyBIOSSupport", default=None)
    bootloader: bool | None = spec_field(default=None)
    grub_use_uki_cmdline: bool | None = spec_field(yaml="grubUseUKICmdline", default=None)


@dataclass
class Time(Model):
    disabled: bool | None = spec_field(default=None)
    servers: list[str] = spec_field(default_factory=list)
    boot_timeout: str = spec_field(default="")


@dataclass
class MachineFile(Model):
    content: str = spec_field(default="")
    permissions: int = spec_field(default=0)
    path: str = spec_field(default="")
    op: str = spec_field(default="")


@dataclass
class KubePrism(Model):
    enabled: bool | None = spec_field(default=None)
    port: int = spec_field(default=0)


@dataclass
class ImageCache(Model):
    local_enabled: bool | None = spec_field(default=None)


@dataclass
class Features(Model):
    rbac: bool | None = spec_field(default=None)
    stable_hostname: bool | None = spec_field(default=None)
    apid_check_ext_key_usage: bool | None = spec_field(default=None)
    disk_quota_support: bool | None = spec_field(default=None)
    kubernetes_talos_api_access: Opaque = spec_field(yaml="kubernetesTalosAPIAccess", default_factory=dict)
    kube_prism: KubePrism = spec_field(default_factory=KubePrism)
    host_dns: Opaque = spec_field(yaml="hostDNS", default_factory=dict)
    image_cache: ImageCache = spec_field(default_factory=ImageCache)
    node_address_sort_algorithm: str = spec_field(default="")


@dataclass
class Machine(Model):
    type: str = spec_field(default="")
    token: str = spec_field(default="", sensitive=True)
    ca: PEMEncodedCertificateAndKey = spec_field(default_factory=PEMEncodedCertificateAndKey)
    accepted_cas: list[PEMEncodedCertificateAndKey] = spec_field(yaml="acceptedCAs", default_factory=list)
    cert_sans: list[str] = spec_field(yaml="certSANs", default_factory=list)
    control_plane: Opaque = spec_field(default_factory=dict)
    kubelet: Kubelet = spec_field(default_factory=Kubelet)
    pods: list[Opaque] = spec_field(default_factory=list)
    network: Network = spec_field(default_factory=Network)
    disks: list[Disk] = spec_field(default_factory=list)
    install: Install = spec_field(default_factory=Install)
    files: list[MachineFile] = spec_field(default_factory=list)
    env: dict[str, str] = spec_field(default_factory=dict)
    time: Time = spec_field(default_factory=Time)
    sysctls: dict[str, str] = spec_field(default_factory=dict)
    sysfs: dict[str, str] = spec_field(default_factory=dict)
    registries: Opaque = spec_field(default_factory=dict)
    system_disk_encryption: Opaque = spec_field(default_factory=dict)
    features: Features = spec_field(default_factory=Features)
    udev: Opaque = spec_field(default_factory=dict)
    logging: Opaque = spec_field(default_factory=dict)
    kernel: Opaque = spec_field(default_factory=dict)
    seccomp_profiles: list[Opaque] = spec_field(default_factory=list)
    node_labels: dict[str, str] = spec_field(default_factory=dict)
    node_annotations: dict[str, str] = spec_field(default_factory=dict)
    node_taints: dict[str, str] = spec_field(default_factory=dict)
    base_runtime_spec_overrides: Opaque = spec_field(default_factory=dict)


# --- cluster ---------------------------------------------------------------------------


@dataclass
class ControlPlane(Model):
    endpoint: str = spec_field(default="")
    local_api_server_port: int = spec_field(yaml="localAPIServerPort", default=0)


@dataclass
class CNI(Model):
    name: str = spec_field(default="")
    urls: list[str] = spec_field(default_factory=list)
    flannel: Opaque = spec_field(default_factory=dict)


@dataclass
class ClusterNetwork(Model):
    cni: CNI = spec_field(default_factory=CNI)
    dns_domain: str = spec_field(default="")
    pod_subnets: list[str] = spec_field(default_factory=list)
    service_subnets: list[str] = spec_field(default_factory=list)


@dataclass
class Authorizer(Model):
    """One entry of ``apiServer.authorizationConfig`` (Node and RBAC are always added)."""

    type: str = spec_field(default="")
    name: str = spec_field(default="")
    webhook: Opaque = spec_field(default_factory=dict)


@dataclass
class Component(Model):
    """apiServer / controllerManager / scheduler / proxy: shared shape."""

    image: str = spec_field(default="")
    extra_args: dict[str, str] = spec_field(default_factory=dict)
    extra_volumes: list[Opaque] = spec_field(default_factory=list)
    env: dict[str, str] = spec_field(default_factory=dict)
    resources: Opaque = spec_field(default_factory=dict)
    cert_sans: list[str] = spec_field(yaml="certSANs", default_factory=list)
    disable_pod_security_policy: bool | None = spec_field(default=None)
    admission_control: list[Opaque] = spec_field(default_factory=list)
    audit_policy: Opaque = spec_field(default_factory=dict)
    disabled: bool | None = spec_field(default=None)
    mode: str = spec_field(default="")
    config: Opaque = spec_field(default_factory=dict)


@dataclass
class APIServer(Component):
    """``cluster.apiServer``: a component plus the authorizers of ``authorizationConfig``."""

    authorization_config: list[Authorizer] = spec_field(default_factory=list)


@dataclass
class Etcd(Model):
    image: str = spec_field(default="")
    ca: PEMEncodedCertificateAndKey = spec_field(default_factory=PEMEncodedCertificateAndKey)
    extra_args: dict[str, str] = spec_field(default_factory=dict)
    advertised_subnets: list[str] = spec_field(default_factory=list)
    listen_subnets: list[str] = spec_field(default_factory=list)


@dataclass
class Discovery(Model):
    enabled: bool | None = spec_field(default=None)
    registries: Opaque = spec_field(default_factory=dict)


@dataclass
class InlineManifest(Model):
    name: str = spec_field(default="")
    contents: str = spec_field(default="")


@dataclass
class Cluster(Model):
    id: str = spec_field(default="")
    secret: str = spec_field(default="", sensitive=True)
    control_plane: ControlPlane = spec_field(default_factory=ControlPlane)
    cluster_name: str = spec_field(default="")
    network: ClusterNetwork = spec_field(default_factory=ClusterNetwork)
    token: str = spec_field(default="", sensitive=True)
    aescbc_encryption_secret: str = spec_field(default="", sensitive=True)
    secretbox_encryption_secret: str = spec_field(default="", sensitive=True)
    ca: PEMEncodedCertificateAndKey = spec_field(default_factory=PEMEncodedCertificateAndKey)
    accepted_cas: list[PEMEncodedCertificateAndKey] = spec_field(yaml="acceptedCAs", default_factory=list)
    aggregator_ca: PEMEncodedCertificateAndKey = spec_field(
        yaml="aggregatorCA", default_factory=PEMEncodedCertificateAndKey
    )
    service_account: PEMEncodedKey = spec_field(default_factory=PEMEncodedKey)
    api_server: APIServer = spec_field(yaml="apiServer", default_factory=APIServer)
    controller_manager: Component = spec_field(default_factory=Component)
    proxy: Component = spec_field(default_factory=Component)
    scheduler: Component = spec_field(default_factory=Component)
    discovery: Discovery = spec_field(default_factory=Discovery)
    etcd: Etcd = spec_field(default_factory=Etcd)
    core_dns: Opaque = spec_field(yaml="coreDNS", default_factory=dict)
    external_cloud_provider: Opaque = spec_field(default_factory=dict)
    extra_manifests: list[str] = spec_field(default_factory=list)
    extra_manifest_headers: dict[str, str] = spec_field(default_factory=dict)
    inline_manifests: list[InlineManifest] = spec_field(default_factory=list)
    admin_kubeconfig: Opaque = spec_field(default_factory=dict)
    allow_scheduling_on_control_planes: bool | None = spec_field(default=None)
    allow_scheduling_on_masters: bool | None = spec_field(default=None)


@dataclass
class Config(Model):
    """The v1alpha1 document."""

    version: str = spec_field(default="v1alpha1")
    debug: bool | None = spec_field(default=None)
    persist: bool | None = spec_field(default=None)
    machine: Machine = spec_field(default_factory=Machine)
    cluster: Cluster = spec_field(default_factory=Cluster)

    @property
    def machine_type(self) -> str:
        return "controlplane" if self.machine.type == "init" else self.machine.type


__all__ = [name for name in dir() if name[:1].isupper() and name != "Any"]
