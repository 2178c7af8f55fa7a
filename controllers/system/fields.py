"""Every field of the machine config, and what the node does with it.

``FIELDS`` maps each YAML path of the config schema (v1alpha1 ``machine.*``/``cluster.*``,
``[]`` for list items, and ``<Kind>.<field>`` for multi-doc documents) to one of:

* ``Reads(module, name)``: the controller module that acts on it (``name`` is the attribute or
  key it reads; ``tests/system/test_fields.py`` checks the module really reads it);
* ``Unsupported(reason, ignored=...)``: not acted on by kos (``ignored(value)`` says which
  values that concerns: by default any non-empty one);
* ``Identity(reason)``: names the document (``version``, ``apiVersion``, ``kind``).

An entry may also carry ``here``: a function of the value and the node's ``Host`` returning
why this node cannot do what the field asks (a namespace node shares the host's kernel)
or ``None``. Opaque sections are checked below their keys too (``SUBFIELDS``, ``*`` matches
any key).

``not_acted_on(container, host)`` lists ``(path, reason)`` for every field the config sets
that this node will not act on: the ConfigFieldStatusController publishes them as
``ConfigFieldStatuses`` and ApplyConfiguration returns them as warnings, so nothing is
accepted silently. A field added to the schema without an entry fails the test.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kos.resources.machineconfig import DOCUMENT_KINDS, Config, ConfigContainer
from kos.resources.machineconfig.generate import DEFAULT_ETCD_IMAGE, DEFAULT_INSTALLER_IMAGE
from kos.resources.machineconfig.schema import Model


@dataclass(frozen=True)
class Host:
    """What this node can do (filled in by machined from its platform)."""

    shared_kernel: bool = False  # a namespace node: the kernel, /sys and the disks are the host's
    modules: bool = True  # the kernel loads modules (/proc/modules exists)
    boot_loader: bool = True  # booted from a kos system disk (its GRUB reads the extra kernel args)

    @classmethod
    def detect(cls, *, shared_kernel: bool) -> Host:
        from kos.platform.image.install import InstallError
        from kos.platform.image.installer import system_disk

        try:
            boot_loader = not shared_kernel and bool(system_disk())
        except (InstallError, OSError):
            boot_loader = False
        return cls(shared_kernel=shared_kernel, modules=os.path.exists("/proc/modules"), boot_loader=boot_loader)


Here = Callable[[Any, Host], "str | None"]


def _nonempty(v: Any) -> bool:
    return v not in (None, "", [], {}, 0, False)


@dataclass(frozen=True)
class Reads:
    module: str
    name: str
    here: Here | None = None
    note: str = ""  # for the docs: what ``here`` may refuse


@dataclass(frozen=True)
class Unsupported:
    reason: str
    ignored: Callable[[Any], bool] = _nonempty


@dataclass(frozen=True)
class Identity:
    reason: str


Entry = Reads | Unsupported | Identity

SYS = "kos.controllers.system.render"
K8S_KUBELET = "kos.controllers.k8s.kubelet"
K8S_NODE = "kos.controllers.k8s.node"
K8S_CP = "kos.controllers.k8s.controlplane"
K8S_APPLIER = "kos.controllers.k8s.applier"
NET_IFACES = "kos.controllers.network.interfaces"
VIEWS = "kos.resources.machineconfig.views"
SECRETS = "kos.controllers.secrets.root"
BLOCK = "kos.controllers.block.config"
ETCD = "kos.controllers.etcd.config"
PRISM = "kos.controllers.system.kubeprism"
HOST_DNS = "kos.controllers.network.hostdns"
NODE = "kos.controllers.system.node"
BOOTARGS = "kos.controllers.system.bootargs"

SHARED_KERNEL = "this node shares the host's kernel (namespace node)"


def _sysctls_here(v: Any, h: Host) -> str | None:
    if not h.shared_kernel or not isinstance(v, dict):
        return None
    other = sorted(k for k in v if not str(k).replace("/", ".").startswith("net."))
    if not other:
        return None
    return (f"{SHARED_KERNEL}: only net.* sysctls are per network namespace; not set here: {', '.join(other)} "
            "(see KernelParamStatuses)")


def _boot_args_here(v: Any, h: Host) -> str | None:
    if not _nonempty(v):
        return None
    if h.shared_kernel:
        return f"{SHARED_KERNEL}: it has no boot loader of its own (see BootArgsStatuses)"
    if not h.boot_loader:
        return "this node did not boot from a kos system disk, so there is no kos boot loader to write them to"
    return None


def _shared_kernel(what: str) -> Here:
    def here(v: Any, h: Host) -> str | None:
        return f"{SHARED_KERNEL}: {what}" if h.shared_kernel and _nonempty(v) else None

    return here


def _false(v: Any) -> bool:
    return v is False


def _true(v: Any) -> bool:
    return v is True


def _enabled(v: Any) -> bool:
    return isinstance(v, dict) and bool(v.get("enabled"))


def _component(name: str, *, cp: str, certs: bool = False, admission: bool = False, disabled: bool = True,
               ) -> dict[str, Entry]:
    p = f"cluster.{name}"
    out: dict[str, Entry] = {
        f"{p}.image": Reads(cp, "image"),
        f"{p}.extraArgs": Reads(cp, "extra_args"),
        f"{p}.resources": Unsupported("resource requests/limits of control-plane pods are not set by kos"),
        f"{p}.disablePodSecurityPolicy": Unsupported("PodSecurityPolicy no longer exists in Kubernetes >= 1.25",
                                                     ignored=_true),
        f"{p}.mode": Unsupported("kube-proxy runs in its default (iptables) mode"),
        f"{p}.config": Unsupported(f"a {name} component config file is not rendered by kos"),
    }
    if name == "proxy":
        out[f"{p}.extraVolumes"] = Unsupported("kube-proxy (a DaemonSet) takes no extra volumes in kos")
        out[f"{p}.env"] = Unsupported("kube-proxy (a DaemonSet) takes no extra environment in kos")
    else:
        out[f"{p}.extraVolumes"] = Reads(cp, "extra_volumes")
        out[f"{p}.env"] = Reads(cp, "env")
    out[f"{p}.certSANs"] = Reads(SECRETS, "cert_sans") if certs else \
        Unsupported(f"{name} has no serving certificate of its own (use cluster.apiServer.certSANs)")
    if admission:
        out[f"{p}.admissionControl"] = Reads(cp, "admission_control")
        out[f"{p}.auditPolicy"] = Reads(cp, "audit_policy")
    else:
        out[f"{p}.admissionControl"] = Unsupported("admission control is a kube-apiserver setting")
        out[f"{p}.auditPolicy"] = Unsupported("the audit policy is a kube-apiserver setting")
    out[f"{p}.disabled"] = Reads(cp, "disabled") if disabled else \
        Unsupported("the API server cannot be disabled on a control plane", ignored=_true)
    if name == "proxy":
        out[f"{p}.image"] = Reads(K8S_APPLIER, "image")
        out[f"{p}.extraArgs"] = Reads(K8S_APPLIER, "extra_args")
        out[f"{p}.disabled"] = Reads(K8S_APPLIER, "disabled")
    return out


_MODULES_REASON = (
    "loading kernel modules is not implemented: namespace nodes share the host's kernel (the development "
    "host's kernel has no loadable modules) and the image ships only the modules its initramfs loads")
_MODULES = Unsupported(_MODULES_REASON)
_KMSG = Unsupported("sending the kernel log to a URL is not implemented (the Dmesg RPC serves it: kosctl dmesg)")
_EXTENSIONS = Unsupported("system extensions (and their services) are not supported: the root file system is one "
                          "fixed squashfs")
_SKIP_FALLBACK = Unsupported("containerd 1.6 always falls back to the registry itself after the mirrors",
                             ignored=_true)
_IDENTITY_TOKEN = Unsupported("registry identity tokens are not exchanged (use username/password or auth)")
_TRUSTED_ROOTS = Unsupported("extra trusted roots are not added to the node's trust store (for a registry, use "
                             "RegistryTLSConfig.ca)")

_PEM_ACCEPTED = Unsupported("additional accepted CAs are not trusted by kos yet (only the primary CA is)")

_DHCP_OPTIONS = Unsupported("the DHCP client runs with its defaults (metric 1024, MAC client identifier, hostname "
                            "used)")
_NO_TRIM = Unsupported("filesystems are not trimmed periodically")
_AUTHZ = Unsupported("the API server authorizes with Node and RBAC only; extra authorizers are not configured")
_VLAN = Unsupported("VLANConfig documents are not turned into links: use machine.network.interfaces[].vlans "
                    "(this host's kernel has no 8021q module either)")
_BOND = Unsupported("BondConfig documents are not turned into links: use machine.network.interfaces[].bond "
                    "(this host's kernel has no bonding module either)")
_BRIDGE = Unsupported("BridgeConfig documents are not turned into links: use machine.network.interfaces[].bridge")
_FIREWALL = Unsupported("the host firewall (nftables rules from NetworkRuleConfig/NetworkDefaultActionConfig) is not "
                        "implemented: nothing is filtered")
_VOLUMES = Unsupported("system volumes follow the image's fixed layout (STATE and EPHEMERAL partitions)")
_USER_VOLUMES = Unsupported("user volumes are not provisioned (use machine.disks for extra partitions)")

FIELDS: dict[str, Entry] = {
    "version": Identity("the document version (only v1alpha1 exists)"),
    "debug": Unsupported("kos has no debug mode: machined always logs JSON to the console"),
    "persist": Unsupported("kos always stores the applied config on STATE", ignored=_false),
    # -- machine --
    "machine.type": Reads("kos.controllers.config.controller", "machine_type"),
    "machine.token": Reads(SECRETS, "token"),
    "machine.ca.crt": Reads(SECRETS, "ca"),
    "machine.ca.key": Reads(SECRETS, "ca"),
    "machine.acceptedCAs[].crt": _PEM_ACCEPTED,
    "machine.acceptedCAs[].key": _PEM_ACCEPTED,
    "machine.certSANs": Reads(SECRETS, "cert_sans"),
    "machine.controlPlane": Unsupported("controller-manager/scheduler placement per node is not supported: "
                                        "use cluster.controllerManager.disabled / cluster.scheduler.disabled"),
    "machine.kubelet.image": Reads(K8S_KUBELET, "image"),
    "machine.kubelet.clusterDNS": Reads(K8S_KUBELET, "cluster_dns"),
    "machine.kubelet.extraArgs": Reads(K8S_KUBELET, "extra_args"),
    "machine.kubelet.extraMounts[].destination": Reads(K8S_KUBELET, "destination"),
    "machine.kubelet.extraMounts[].type": Reads(K8S_KUBELET, "type"),
    "machine.kubelet.extraMounts[].source": Reads(K8S_KUBELET, "source"),
    "machine.kubelet.extraMounts[].options": Reads(K8S_KUBELET, "options"),
    "machine.kubelet.extraConfig": Reads(K8S_KUBELET, "extra_config"),
    "machine.kubelet.defaultRuntimeSeccompProfileEnabled": Reads(K8S_KUBELET,
                                                                 "default_runtime_seccomp_profile_enabled"),
    "machine.kubelet.registerWithFQDN": Reads(K8S_KUBELET, "register_with_fqdn"),
    "machine.kubelet.nodeIP.validSubnets": Reads(K8S_NODE, "valid_subnets"),
    "machine.kubelet.skipNodeRegistration": Reads(K8S_KUBELET, "skip_node_registration"),
    "machine.kubelet.disableManifestsDirectory": Reads(K8S_KUBELET, "disable_manifests_directory"),
    "machine.kubelet.credentialProviderConfig": Unsupported("kubelet image credential providers are not installed"),
    "machine.pods": Unsupported("extra static pods from the config are not run (use cluster.inlineManifests)"),
    "machine.network.hostname": Reads(VIEWS, "hostname"),
    "machine.network.interfaces[].interface": Reads(VIEWS, "interface"),
    "machine.network.interfaces[].deviceSelector": Reads(NET_IFACES, "device_selector"),
    "machine.network.interfaces[].addresses": Reads(VIEWS, "addresses"),
    "machine.network.interfaces[].routes[].network": Reads(VIEWS, "network"),
    "machine.network.interfaces[].routes[].gateway": Reads(VIEWS, "gateway"),
    "machine.network.interfaces[].routes[].source": Reads(VIEWS, "source"),
    "machine.network.interfaces[].routes[].metric": Reads(VIEWS, "metric"),
    "machine.network.interfaces[].routes[].mtu": Reads(VIEWS, "mtu"),
    "machine.network.interfaces[].bond": Reads(NET_IFACES, "bond"),
    "machine.network.interfaces[].bridge.interfaces": Reads(VIEWS, "interfaces"),
    "machine.network.interfaces[].bridge.stp.enabled": Unsupported("bridges are created with the kernel's STP default"),
    "machine.network.interfaces[].vlans": Reads(NET_IFACES, "vlans"),
    "machine.network.interfaces[].mtu": Reads(VIEWS, "mtu"),
    "machine.network.interfaces[].dhcp": Reads(VIEWS, "dhcp"),
    "machine.network.interfaces[].ignore": Reads(VIEWS, "ignore"),
    "machine.network.interfaces[].dummy": Reads(NET_IFACES, "dummy"),
    "machine.network.interfaces[].dhcpOptions": Reads(NET_IFACES, "dhcp_options"),
    "machine.network.interfaces[].wireguard": Reads(NET_IFACES, "wireguard"),
    "machine.network.interfaces[].vip.ip": Reads(VIEWS, "vip"),
    "machine.network.interfaces[].vip.equinixMetal": Unsupported("Equinix Metal VIP API calls are not made by kos"),
    "machine.network.interfaces[].vip.hcloud": Unsupported("Hetzner Cloud VIP API calls are not made by kos"),
    "machine.network.nameservers": Reads(VIEWS, "nameservers"),
    "machine.network.searchDomains": Reads(VIEWS, "search_domains"),
    "machine.network.extraHostEntries[].ip": Reads(VIEWS, "extra_host_entries"),
    "machine.network.extraHostEntries[].aliases": Reads(VIEWS, "aliases"),
    "machine.network.kubespan": Unsupported(
        "KubeSpan (the WireGuard mesh) is not implemented; the development host's kernel has no wireguard either",
        ignored=_enabled),
    "machine.network.disableSearchDomain": Unsupported("kos adds no search domain of its own", ignored=_true),
    "machine.disks[].device": Reads(BLOCK, "device"),
    "machine.disks[].partitions[].size": Reads(BLOCK, "size"),
    "machine.disks[].partitions[].mountpoint": Reads(BLOCK, "mountpoint"),
    "machine.install.disk": Reads(BLOCK, "disk"),
    "machine.install.diskSelector": Reads(BLOCK, "disk_selector"),
    "machine.install.extraKernelArgs": Reads(BOOTARGS, "extra_kernel_args", here=_boot_args_here,
                                             note="written to the system disk's boot entries, from the next boot; "
                                                  "not on namespace nodes or nodes booted without a kos disk"),
    "machine.install.image": Unsupported("the installer image is given to the Upgrade RPC (kosctl upgrade --image); "
                                         "installs use the booted image",
                                         ignored=lambda v: _nonempty(v) and v != DEFAULT_INSTALLER_IMAGE),
    "machine.install.extensions": Unsupported("system extensions are not supported: the root file system is one "
                                              "fixed squashfs"),
    "machine.install.wipe": Reads(BLOCK, "wipe"),
    "machine.install.legacyBIOSSupport": Unsupported("the disk image always boots on BIOS and UEFI", ignored=_false),
    "machine.install.bootloader": Unsupported("the boot loader is always installed", ignored=_false),
    "machine.files[].content": Reads(SYS, "content"),
    "machine.files[].permissions": Reads(SYS, "permissions"),
    "machine.files[].path": Reads(SYS, "path"),
    "machine.files[].op": Reads(SYS, "op"),
    "machine.env": Reads(SYS, "env"),
    "machine.time.disabled": Reads(VIEWS, "disabled"),
    "machine.time.servers": Reads(VIEWS, "servers"),
    "machine.time.bootTimeout": Unsupported("boot does not wait for time sync"),
    "machine.sysctls": Reads(SYS, "sysctls", here=_sysctls_here,
                             note="namespace nodes set only the net.* sysctls (per network namespace)"),
    "machine.sysfs": Reads(SYS, "sysfs", here=_shared_kernel("/sys belongs to the host; not set here "
                                                              "(see KernelParamStatuses)"),
                           note="not on namespace nodes (/sys is the host's)"),
    "machine.registries": Reads(SYS, "registries"),
    "machine.systemDiskEncryption": Unsupported(
        "system disk encryption (LUKS) is not implemented: the image has no cryptsetup"),
    "machine.features.rbac": Unsupported("the API's role-based access control is always on", ignored=_false),
    "machine.features.stableHostname": Reads(VIEWS, "stable_hostname"),
    "machine.features.apidCheckExtKeyUsage": Unsupported("client certificates' extended key usage is always "
                                                          "checked", ignored=_false),
    "machine.features.diskQuotaSupport": Unsupported("project quotas on EPHEMERAL are not enabled"),
    "machine.features.kubernetesTalosAPIAccess": Unsupported(
        "access to the kos API from Kubernetes pods (service-account certificates) is not implemented",
        ignored=_enabled),
    "machine.features.kubePrism.enabled": Reads(PRISM, "kube_prism"),
    "machine.features.kubePrism.port": Reads(PRISM, "port"),
    "machine.features.hostDNS": Reads(HOST_DNS, "host_dns"),
    "machine.features.nodeAddressSortAlgorithm": Unsupported("node addresses are sorted one way (v1)"),
    "machine.udev": Unsupported("the image runs no udevd (devices are probed directly), so udev rules have no "
                                "reader"),
    "machine.logging": Reads(SYS, "logging"),
    "machine.kernel": _MODULES,
    "machine.seccompProfiles": Unsupported("seccomp profiles are not written to the kubelet's seccomp directory"),
    "machine.nodeLabels": Reads(K8S_KUBELET, "node_labels"),
    "machine.nodeAnnotations": Reads(NODE, "node_annotations"),
    "machine.nodeTaints": Reads(K8S_KUBELET, "node_taints"),
    "machine.baseRuntimeSpecOverrides": Unsupported("containerd's base OCI runtime spec is not overridden"),
    # -- cluster --
    "cluster.id": Unsupported("cluster discovery identifies the cluster by its control-plane endpoint"),
    "cluster.secret": Unsupported("cluster discovery is authenticated with the machine token, not cluster.secret"),
    "cluster.controlPlane.endpoint": Reads(SECRETS, "endpoint"),
    "cluster.controlPlane.localAPIServerPort": Reads(K8S_CP, "local_api_server_port"),
    "cluster.clusterName": Reads(SECRETS, "cluster_name"),
    "cluster.network.cni.name": Reads(K8S_APPLIER, "cni"),
    "cluster.network.cni.urls": Reads(K8S_APPLIER, "urls"),
    "cluster.network.cni.flannel": Unsupported("flannel's extra arguments are not passed"),
    "cluster.network.dnsDomain": Reads(SECRETS, "dns_domain"),
    "cluster.network.podSubnets": Reads(SECRETS, "pod_subnets"),
    "cluster.network.serviceSubnets": Reads(SECRETS, "service_subnets"),
    "cluster.token": Reads(SECRETS, "token"),
    "cluster.aescbcEncryptionSecret": Unsupported("secrets are encrypted at rest with secretbox only "
                                                  "(cluster.secretboxEncryptionSecret)"),
    "cluster.secretboxEncryptionSecret": Reads(SECRETS, "secretbox_encryption_secret"),
    "cluster.ca.crt": Reads(SECRETS, "ca"),
    "cluster.ca.key": Reads(SECRETS, "ca"),
    "cluster.acceptedCAs[].crt": _PEM_ACCEPTED,
    "cluster.acceptedCAs[].key": _PEM_ACCEPTED,
    "cluster.aggregatorCA.crt": Reads(SECRETS, "aggregator_ca"),
    "cluster.aggregatorCA.key": Reads(SECRETS, "aggregator_ca"),
    "cluster.serviceAccount.key": Reads(SECRETS, "service_account"),
    **_component("apiServer", cp=K8S_CP, certs=True, admission=True, disabled=False),
    **_component("controllerManager", cp=K8S_CP),
    **_component("scheduler", cp=K8S_CP),
    **_component("proxy", cp=K8S_APPLIER),
    "cluster.discovery.enabled": Unsupported("kos's member discovery (its own registry on the control planes) "
                                             "always runs", ignored=_false),
    "cluster.discovery.registries": Unsupported("kos's member discovery uses its own registry on the control "
                                                "planes, not the Talos discovery service"),
    "cluster.etcd.image": Unsupported("etcd runs from the image's etcd binary (v3.4), not a container image",
                                      ignored=lambda v: _nonempty(v) and v != DEFAULT_ETCD_IMAGE),
    "cluster.etcd.ca.crt": Reads(SECRETS, "ca"),
    "cluster.etcd.ca.key": Reads(SECRETS, "ca"),
    "cluster.etcd.extraArgs": Reads(ETCD, "extra_args"),
    "cluster.etcd.advertisedSubnets": Reads(ETCD, "advertised_subnets"),
    "cluster.etcd.listenSubnets": Reads(ETCD, "listen_subnets"),
    "cluster.coreDNS": Reads(K8S_APPLIER, "core_dns"),
    "cluster.externalCloudProvider": Reads(K8S_CP, "external_cloud_provider"),
    "cluster.extraManifests": Reads(K8S_APPLIER, "extra_manifests"),
    "cluster.extraManifestHeaders": Unsupported("extra manifests are fetched without extra HTTP headers"),
    "cluster.inlineManifests[].name": Reads(K8S_APPLIER, "name"),
    "cluster.inlineManifests[].contents": Reads(K8S_APPLIER, "contents"),
    "cluster.adminKubeconfig": Unsupported("the admin kubeconfig's lifetime is fixed"),
    "cluster.allowSchedulingOnControlPlanes": Reads(K8S_KUBELET, "allow_scheduling_on_control_planes"),
    "cluster.allowSchedulingOnMasters": Reads(K8S_KUBELET, "allow_scheduling_on_masters"),
    # -- multi-doc documents --
    "HostnameConfig.hostname": Reads(VIEWS, "hostname"),
    "HostnameConfig.auto": Reads(VIEWS, "auto"),
    "LinkConfig.name": Reads(VIEWS, "name"),
    "LinkConfig.up": Reads(VIEWS, "up"),
    "LinkConfig.mtu": Reads(VIEWS, "mtu"),
    "LinkConfig.addresses[].address": Reads(VIEWS, "address"),
    "LinkConfig.addresses[].routePriority": Unsupported("address route priorities are not applied"),
    "LinkConfig.routes[].destination": Reads(VIEWS, "destination"),
    "LinkConfig.routes[].gateway": Reads(VIEWS, "gateway"),
    "LinkConfig.routes[].source": Reads(VIEWS, "source"),
    "LinkConfig.routes[].mtu": Reads(VIEWS, "mtu"),
    "LinkConfig.routes[].metric": Reads(VIEWS, "metric"),
    "LinkConfig.routes[].table": Unsupported("routes from LinkConfig go to the main table"),
    "ResolverConfig.nameservers[].address": Reads(VIEWS, "address"),
    "ResolverConfig.searchDomains.domains": Reads(VIEWS, "domains"),
    "ResolverConfig.searchDomains.disableDefault": Unsupported("kos adds no default search domain", ignored=_true),
    "StaticHostConfig.name": Reads(VIEWS, "name"),
    "StaticHostConfig.hostnames": Reads(VIEWS, "hostnames"),
    # Talos v1.12+ documents of the machine-level settings
    "SysctlConfig.params": Reads(SYS, "params", here=_sysctls_here,
                                 note="namespace nodes set only the net.* sysctls (per network namespace)"),
    "KernelModuleConfig.name": _MODULES,
    "KernelModuleConfig.parameters": _MODULES,
    "KmsgLogConfig.name": _KMSG,
    "KmsgLogConfig.url": _KMSG,
    "ExtensionServiceConfig.name": _EXTENSIONS,
    "ExtensionServiceConfig.configFiles[].content": _EXTENSIONS,
    "ExtensionServiceConfig.configFiles[].mountPath": _EXTENSIONS,
    "ExtensionServiceConfig.environment": _EXTENSIONS,
    "RegistryMirrorConfig.name": Reads(SYS, "name"),
    "RegistryMirrorConfig.endpoints[].url": Reads(SYS, "url"),
    "RegistryMirrorConfig.endpoints[].overridePath": Reads(SYS, "override_path"),
    "RegistryMirrorConfig.skipFallback": _SKIP_FALLBACK,
    "RegistryAuthConfig.name": Reads(SYS, "name"),
    "RegistryAuthConfig.username": Reads(SYS, "username"),
    "RegistryAuthConfig.password": Reads(SYS, "password"),
    "RegistryAuthConfig.auth": Reads(SYS, "auth"),
    "RegistryAuthConfig.identityToken": _IDENTITY_TOKEN,
    "RegistryTLSConfig.name": Reads(SYS, "name"),
    "RegistryTLSConfig.clientIdentity.crt": Reads(SYS, "client_identity"),
    "RegistryTLSConfig.clientIdentity.key": Reads(SYS, "client_identity"),
    "RegistryTLSConfig.ca": Reads(SYS, "ca"),
    "RegistryTLSConfig.insecureSkipVerify": Reads(SYS, "insecure_skip_verify"),
    "TrustedRootsConfig.name": _TRUSTED_ROOTS,
    "TrustedRootsConfig.certificates": _TRUSTED_ROOTS,
    "ResolverConfig.hostDNS.enabled": Reads(HOST_DNS, "enabled"),
    "ResolverConfig.hostDNS.forwardKubeDNSToHost": Reads(HOST_DNS, "forward_kube_dns_to_host"),
    "ResolverConfig.hostDNS.resolveMemberNames": Reads(HOST_DNS, "resolve_member_names"),
    # -- Talos multi-doc kinds parsed and validated by resources.machineconfig (issue 16 part 3) --
    "LinkConfig.multicast": Unsupported("the multicast flag is left as the kernel sets it"),
    "machine.network.interfaces[].bridge.vlan.vlanFiltering": Unsupported("bridges are created without VLAN "
                                                                          "filtering", ignored=_true),
    "machine.network.interfaces[].bridgePort.master": Reads(VIEWS, "master"),
    "machine.install.grubUseUKICmdline": Unsupported("kos boots with its own GRUB command line (no UKI)",
                                                     ignored=_true),
    "machine.features.imageCache.localEnabled": Unsupported("there is no local image cache: images are pulled (or "
                                                            "imported from the image)", ignored=_true),
    "cluster.apiServer.authorizationConfig[].type": _AUTHZ,
    "cluster.apiServer.authorizationConfig[].name": _AUTHZ,
    "cluster.apiServer.authorizationConfig[].webhook": _AUTHZ,
    "VLANConfig.name": _VLAN,
    "VLANConfig.vlanID": _VLAN,
    "VLANConfig.vlanMode": _VLAN,
    "VLANConfig.parent": _VLAN,
    "VLANConfig.up": _VLAN,
    "VLANConfig.mtu": _VLAN,
    "VLANConfig.addresses[].address": _VLAN,
    "VLANConfig.addresses[].routePriority": _VLAN,
    "VLANConfig.routes[].destination": _VLAN,
    "VLANConfig.routes[].gateway": _VLAN,
    "VLANConfig.routes[].source": _VLAN,
    "VLANConfig.routes[].mtu": _VLAN,
    "VLANConfig.routes[].metric": _VLAN,
    "VLANConfig.routes[].table": _VLAN,
    "VLANConfig.multicast": _VLAN,
    "BondConfig.name": _BOND,
    "BondConfig.hardwareAddr": _BOND,
    "BondConfig.links": _BOND,
    "BondConfig.bondMode": _BOND,
    "BondConfig.miimon": _BOND,
    "BondConfig.updelay": _BOND,
    "BondConfig.downdelay": _BOND,
    "BondConfig.useCarrier": _BOND,
    "BondConfig.xmitHashPolicy": _BOND,
    "BondConfig.arpInterval": _BOND,
    "BondConfig.arpIpTargets": _BOND,
    "BondConfig.nsIp6Targets": _BOND,
    "BondConfig.arpValidate": _BOND,
    "BondConfig.arpAllTargets": _BOND,
    "BondConfig.lacpRate": _BOND,
    "BondConfig.failOverMac": _BOND,
    "BondConfig.adSelect": _BOND,
    "BondConfig.adActorSysPrio": _BOND,
    "BondConfig.adUserPortKey": _BOND,
    "BondConfig.adLACPActive": _BOND,
    "BondConfig.primaryReselect": _BOND,
    "BondConfig.resendIGMP": _BOND,
    "BondConfig.minLinks": _BOND,
    "BondConfig.lpInterval": _BOND,
    "BondConfig.packetsPerSlave": _BOND,
    "BondConfig.numPeerNotif": _BOND,
    "BondConfig.tlbLogicalLb": _BOND,
    "BondConfig.allSlavesActive": _BOND,
    "BondConfig.peerNotifDelay": _BOND,
    "BondConfig.missedMax": _BOND,
    "BondConfig.up": _BOND,
    "BondConfig.mtu": _BOND,
    "BondConfig.addresses[].address": _BOND,
    "BondConfig.addresses[].routePriority": _BOND,
    "BondConfig.routes[].destination": _BOND,
    "BondConfig.routes[].gateway": _BOND,
    "BondConfig.routes[].source": _BOND,
    "BondConfig.routes[].mtu": _BOND,
    "BondConfig.routes[].metric": _BOND,
    "BondConfig.routes[].table": _BOND,
    "BondConfig.multicast": _BOND,
    "BridgeConfig.name": _BRIDGE,
    "BridgeConfig.hardwareAddr": _BRIDGE,
    "BridgeConfig.links": _BRIDGE,
    "BridgeConfig.stp.enabled": _BRIDGE,
    "BridgeConfig.vlan.filtering": _BRIDGE,
    "BridgeConfig.up": _BRIDGE,
    "BridgeConfig.mtu": _BRIDGE,
    "BridgeConfig.addresses[].address": _BRIDGE,
    "BridgeConfig.addresses[].routePriority": _BRIDGE,
    "BridgeConfig.routes[].destination": _BRIDGE,
    "BridgeConfig.routes[].gateway": _BRIDGE,
    "BridgeConfig.routes[].source": _BRIDGE,
    "BridgeConfig.routes[].mtu": _BRIDGE,
    "BridgeConfig.routes[].metric": _BRIDGE,
    "BridgeConfig.routes[].table": _BRIDGE,
    "BridgeConfig.multicast": _BRIDGE,
    "DHCPv4Config.name": Reads(VIEWS, "name"),
    "DHCPv4Config.routeMetric": _DHCP_OPTIONS,
    "DHCPv4Config.ignoreHostname": _DHCP_OPTIONS,
    "DHCPv4Config.clientIdentifier": _DHCP_OPTIONS,
    "DHCPv4Config.duidRaw": _DHCP_OPTIONS,
    "Layer2VIPConfig.name": Reads(VIEWS, "name"),
    "Layer2VIPConfig.link": Reads(VIEWS, "link"),
    "ResolverConfig.nameservers[].protocol": Unsupported("resolv.conf speaks plain DNS only: DoT/DoH are not used",
                                                         ignored=lambda v: v not in (None, "", "Do53")),
    "ResolverConfig.nameservers[].tlsServerName": Unsupported("resolv.conf speaks plain DNS only: DoT/DoH are not "
                                                              "used"),
    "TimeSyncConfig.enabled": Reads(VIEWS, "enabled"),
    "TimeSyncConfig.ntp.servers": Reads(VIEWS, "servers"),
    "TimeSyncConfig.bootTimeout": Unsupported("boot does not wait for time sync"),
    "TimeSyncConfig.ptp.devices": Unsupported("PTP clock sources are not implemented (NTP only)"),
    "NetworkDefaultActionConfig.ingress": _FIREWALL,
    "NetworkRuleConfig.name": _FIREWALL,
    "NetworkRuleConfig.portSelector.ports": _FIREWALL,
    "NetworkRuleConfig.portSelector.protocol": _FIREWALL,
    "NetworkRuleConfig.ingress[].subnet": _FIREWALL,
    "NetworkRuleConfig.ingress[].except": _FIREWALL,
    "VolumeConfig.name": _VOLUMES,
    "VolumeConfig.volumeType": _VOLUMES,
    "VolumeConfig.provisioning.diskSelector.match": _VOLUMES,
    "VolumeConfig.provisioning.grow": _VOLUMES,
    "VolumeConfig.provisioning.minSize": _VOLUMES,
    "VolumeConfig.provisioning.maxSize": _VOLUMES,
    "VolumeConfig.filesystem.xfs.minAllocationGroupSize": _VOLUMES,
    "VolumeConfig.encryption.provider": _VOLUMES,
    "VolumeConfig.encryption.keys[].slot": _VOLUMES,
    "VolumeConfig.encryption.keys[].static": _VOLUMES,
    "VolumeConfig.encryption.keys[].nodeID": _VOLUMES,
    "VolumeConfig.encryption.keys[].kms": _VOLUMES,
    "VolumeConfig.encryption.keys[].tpm": _VOLUMES,
    "VolumeConfig.encryption.keys[].lockToState": _VOLUMES,
    "VolumeConfig.encryption.cipher": _VOLUMES,
    "VolumeConfig.encryption.keySize": _VOLUMES,
    "VolumeConfig.encryption.blockSize": _VOLUMES,
    "VolumeConfig.encryption.options": _VOLUMES,
    "VolumeConfig.mount.secure": _VOLUMES,
    "VolumeConfig.mount.disableAccessTime": _VOLUMES,
    "VolumeConfig.trim": _VOLUMES,
    "VolumeConfig.scrub": _VOLUMES,
    "UserVolumeConfig.name": _USER_VOLUMES,
    "UserVolumeConfig.volumeType": _USER_VOLUMES,
    "UserVolumeConfig.provisioning.diskSelector.match": _USER_VOLUMES,
    "UserVolumeConfig.provisioning.grow": _USER_VOLUMES,
    "UserVolumeConfig.provisioning.minSize": _USER_VOLUMES,
    "UserVolumeConfig.provisioning.maxSize": _USER_VOLUMES,
    "UserVolumeConfig.filesystem.type": _USER_VOLUMES,
    "UserVolumeConfig.filesystem.projectQuotaSupport": _USER_VOLUMES,
    "UserVolumeConfig.filesystem.xfs.minAllocationGroupSize": _USER_VOLUMES,
    "UserVolumeConfig.encryption.provider": _USER_VOLUMES,
    "UserVolumeConfig.encryption.keys[].slot": _USER_VOLUMES,
    "UserVolumeConfig.encryption.keys[].static": _USER_VOLUMES,
    "UserVolumeConfig.encryption.keys[].nodeID": _USER_VOLUMES,
    "UserVolumeConfig.encryption.keys[].kms": _USER_VOLUMES,
    "UserVolumeConfig.encryption.keys[].tpm": _USER_VOLUMES,
    "UserVolumeConfig.encryption.keys[].lockToState": _USER_VOLUMES,
    "UserVolumeConfig.encryption.cipher": _USER_VOLUMES,
    "UserVolumeConfig.encryption.keySize": _USER_VOLUMES,
    "UserVolumeConfig.encryption.blockSize": _USER_VOLUMES,
    "UserVolumeConfig.encryption.options": _USER_VOLUMES,
    "UserVolumeConfig.mount.secure": _USER_VOLUMES,
    "UserVolumeConfig.mount.disableAccessTime": _USER_VOLUMES,
    "UserVolumeConfig.trim": _USER_VOLUMES,
    "UserVolumeConfig.scrub": _USER_VOLUMES,
    "FilesystemTrimConfig.interval": _NO_TRIM,
    "FilesystemTrimConfig.chunkSize": _NO_TRIM,
    "FilesystemTrimConfig.chunkDelay": _NO_TRIM,
    "FilesystemTrimConfig.minLength": _NO_TRIM,
    "DiskSMARTConfig.enabled": Unsupported("disk SMART data is not collected"),
    "DiskSMARTConfig.interval": Unsupported("disk SMART data is not collected"),
}

SUBFIELDS: dict[str, Entry] = {
    "machine.registries.mirrors.*.skipFallback": _SKIP_FALLBACK,
    "machine.registries.config.*.auth.identityToken": _IDENTITY_TOKEN,
}
"""Keys inside opaque sections whose values kos does not act on."""

IDENTITY_KEYS = ("apiVersion", "kind")


def entry(path: str) -> Entry | None:
    """The registry entry of a schema path (document ``apiVersion``/``kind`` are identities)."""
    if path in FIELDS:
        return FIELDS[path]
    kind, _, key = path.partition(".")
    if key in IDENTITY_KEYS and kind[:1].isupper():
        return Identity("identifies the document")
    return None


def _values(data: Any, parts: list[str]) -> Iterator[Any]:
    if not parts:
        yield data
        return
    head, rest = parts[0], parts[1:]
    is_list = head.endswith("[]")
    key = head.removesuffix("[]")
    if not isinstance(data, dict):
        return
    items = list(data.values()) if key == "*" else ([data[key]] if key in data else [])
    for v in items:
        if is_list:
            for x in v if isinstance(v, list) else []:
                yield from _values(x, rest)
        else:
            yield from _values(v, rest)


def _documents(c: ConfigContainer) -> Iterator[tuple[str, dict[str, Any]]]:
    if c.v1alpha1 is not None:
        yield "", c.v1alpha1.encode()
    for doc in c.documents:
        yield doc.kind, doc.encode()


def not_acted_on(c: ConfigContainer, host: Host) -> list[tuple[str, str]]:
    """Every field ``c`` sets that this node will not act on, with the reason (sorted by path)."""
    out: dict[str, str] = {}
    for prefix, data in _documents(c):
        for path, e in [*FIELDS.items(), *SUBFIELDS.items()]:
            kind, _, rest = path.partition(".")
            if prefix:
                if kind != prefix:
                    continue
                parts = rest.split(".")
            else:
                if kind[:1].isupper():
                    continue
                parts = path.split(".")
            for v in _values(data, parts):
                reason: str | None = None
                if isinstance(e, Unsupported) and e.ignored(v):
                    reason = e.reason
                elif isinstance(e, Reads) and e.here is not None:
                    reason = e.here(v, host)
                if reason:
                    out[path.replace("[]", "")] = reason
    return sorted(out.items())


def schema_paths() -> list[str]:
    """Every leaf field of the config schema: the v1alpha1 document's (nested models walked,
    ``[]`` for list items), then each multi-doc kind's as ``<Kind>.<field>``."""

    def walk(cls: type[Model], prefix: str) -> list[str]:
        out: list[str] = []
        hints = typing.get_type_hints(cls)
        for key, attr in cls.yaml_keys().items():
            tp = hints[attr]
            path = f"{prefix}.{key}" if prefix else key
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if isinstance(tp, type) and issubclass(tp, Model):
                out += walk(tp, path)
            elif typing.get_origin(tp) is list and isinstance(args[0], type) and issubclass(args[0], Model):
                out += walk(args[0], path + "[]")
            else:
                out.append(path)
        return out

    return walk(Config, "") + [p for kind, cls in DOCUMENT_KINDS.items() for p in walk(cls, kind)]


def fields_reference() -> str:
    """The markdown table of docs/config.md: every schema path (in schema order) and what the
    node does with it, then the keys inside opaque sections that are not acted on."""
    rows = ["| field | on a node |", "|---|---|"]

    def cell(e: Entry) -> str:
        if isinstance(e, Reads):
            text = f"acted on (`{e.module.removeprefix('kos.')}`)"
            return f"{text}; {e.note}" if e.note else text
        if isinstance(e, Identity):
            return f"identifies the document: {e.reason}"
        return f"**not acted on**: {e.reason}"

    for path in schema_paths():
        e = entry(path)
        rows.append(f"| `{path}` | {cell(e) if e is not None else '**missing**'} |")
    for path, e in SUBFIELDS.items():
        rows.append(f"| `{path}` | {cell(e)} |")
    return "\n".join(rows) + "\n"
