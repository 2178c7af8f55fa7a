"""Semantic checks of the multi-doc documents added for Talos compatibility (the rules Talos
applies to each kind, with kos's paths ``Kind[name].field``): link documents (one link per
name across LinkConfig/VLANConfig/BondConfig/BridgeConfig), DHCPv4, Layer 2 VIPs, the
resolver's protocols and host DNS, time sync, the host firewall, sysctls, kernel modules,
kmsg log destinations, extension services, registries, trusted roots and volumes; plus the
conflicts with the v1alpha1 fields that configure the same thing."""

from __future__ import annotations

import ipaddress
import re

from kos.resources.machineconfig.checks import Checks
from kos.resources.machineconfig.container import ConfigContainer
from kos.resources.machineconfig.documents import (
    BondConfig,
    BridgeConfig,
    DHCPv4Config,
    DiskSMARTConfig,
    Document,
    Encryption,
    ExtensionServiceConfig,
    FilesystemTrimConfig,
    KernelModuleConfig,
    KmsgLogConfig,
    Layer2VIPConfig,
    LinkDocument,
    NetworkDefaultActionConfig,
    NetworkRuleConfig,
    Provisioning,
    RegistryAuthConfig,
    RegistryMirrorConfig,
    ResolverConfig,
    SysctlConfig,
    TimeSyncConfig,
    TrustedRootsConfig,
    UserVolumeConfig,
    VLANConfig,
    VolumeConfig,
)
from kos.resources.machineconfig.errors import MISSING

BOND_MODES = ("balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb")
SYSTEM_VOLUMES = ("STATE", "EPHEMERAL", "IMAGECACHE", "ETCD", "CRI", "KUBELET", "LOG")
FILESYSTEMS = ("xfs", "ext4", "btrfs")
PROTOCOLS = ("tcp", "udp", "icmp", "icmpv6")
SYSCTL_RE = re.compile(r"^[a-zA-Z0-9_./-]{1,256}$")
USER_VOLUME_RE = re.compile(r"^[A-Za-z0-9-]{1,34}$")
PORT_RANGE_RE = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")
ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def _p(doc: Document) -> str:
    return f"{doc.KIND}[{doc.doc_name}]" if doc.NAMED else doc.KIND


def validate_documents(v: Checks, c: ConfigContainer) -> None:
    _links(v, c)
    for d in c.documents_of(DHCPv4Config):
        p = _p(d)
        v.one_of(f"{p}.clientIdentifier", d.client_identifier, ("none", "mac", "duid"))
        if d.duid_raw and d.client_identifier != "duid":
            v.err(f"{p}.duidRaw", d.duid_raw, "duidRaw only with clientIdentifier: duid")
        if d.client_identifier == "duid" and not d.duid_raw:
            v.err(f"{p}.duidRaw", MISSING, "the raw DUID when clientIdentifier is duid")
    for vip in c.documents_of(Layer2VIPConfig):
        v.ip(f"{_p(vip)}.name", vip.name)
        v.required(f"{_p(vip)}.link", vip.link, "the link announcing the virtual IP")
    _resolver(v, c)
    _time(v, c)
    for da in c.documents_of(NetworkDefaultActionConfig):
        v.one_of("NetworkDefaultActionConfig.ingress", da.ingress, ("accept", "block"), required=True)
    for rule in c.documents_of(NetworkRuleConfig):
        _rule(v, rule)
    for sc in c.documents_of(SysctlConfig):
        for key in sc.params:
            if not SYSCTL_RE.match(key):
                v.err(f"SysctlConfig.params.{key[:64]}", key, "a sysctl name such as net.ipv4.ip_forward")
    for km in c.documents_of(KernelModuleConfig):
        if not re.match(r"^[A-Za-z0-9_-]{1,64}$", km.name):
            v.err(f"{_p(km)}.name", km.name, "a kernel module name such as br_netfilter")
    for kl in c.documents_of(KmsgLogConfig):
        if v.url(f"{_p(kl)}.url", kl.url, ("tcp", "udp"), port=True) and kl.url.split("://", 1)[1].strip("/") \
                .count("/"):
            v.err(f"{_p(kl)}.url", kl.url, "a URL without a path, e.g. tcp://10.0.0.1:5140")
    for ext in c.documents_of(ExtensionServiceConfig):
        p = _p(ext)
        if not ext.config_files and not ext.environment:
            v.err(p, ext.name, "configFiles and/or environment")
        for i, f in enumerate(ext.config_files):
            v.required(f"{p}.configFiles[{i}].content", f.content, "the file content")
            if not f.mount_path.startswith("/"):
                v.err(f"{p}.configFiles[{i}].mountPath", f.mount_path or MISSING, "an absolute path")
        for i, e in enumerate(ext.environment):
            if not ENV_RE.match(e):
                v.err(f"{p}.environment[{i}]", e, "NAME=value")
    for m in c.documents_of(RegistryMirrorConfig):
        for i, ep in enumerate(m.endpoints):
            v.url(f"{_p(m)}.endpoints[{i}].url", ep.url, ("https", "http"))
    for a in c.documents_of(RegistryAuthConfig):
        if a.username and a.identity_token:
            v.err(f"{_p(a)}.identityToken", "******", "either username/password or identityToken, not both")
        if a.auth and (a.username or a.identity_token):
            v.err(f"{_p(a)}.auth", "******", "one of auth, username/password or identityToken")
    for t in c.documents_of(TrustedRootsConfig):
        if "-----BEGIN CERTIFICATE-----" not in t.certificates:
            v.err(f"{_p(t)}.certificates", t.certificates[:40] or MISSING, "PEM CERTIFICATE blocks")
    _volumes(v, c)
    for tr in c.documents_of(FilesystemTrimConfig):
        v.duration("FilesystemTrimConfig.interval", tr.interval)
        v.duration("FilesystemTrimConfig.chunkDelay", tr.chunk_delay)
        v.byte_size("FilesystemTrimConfig.chunkSize", tr.chunk_size)
        v.byte_size("FilesystemTrimConfig.minLength", tr.min_length)
    for sm in c.documents_of(DiskSMARTConfig):
        v.duration("DiskSMARTConfig.interval", sm.interval)


def _links(v: Checks, c: ConfigContainer) -> None:
    owner: dict[str, str] = {}
    for d in c.documents:
        if not isinstance(d, LinkDocument):
            continue
        p = _p(d)
        if d.name in owner and owner[d.name] != p:
            v.err(f"{p}.name", d.name, f"one document per link (also {owner[d.name]})")
        owner.setdefault(d.name, p)
        v.mtu(f"{p}.mtu", d.mtu)
        for j, a in enumerate(d.addresses):
            v.address_cidr(f"{p}.addresses[{j}].address", a.address)
        for j, r in enumerate(d.routes):
            if r.destination:
                v.cidr(f"{p}.routes[{j}].destination", r.destination)
            for field, value in (("gateway", r.gateway), ("source", r.source)):
                if value:
                    v.ip(f"{p}.routes[{j}].{field}", value)
            if not r.destination and not r.gateway:
                v.err(f"{p}.routes[{j}]", r.encode(), "a destination and/or a gateway")
    for vl in c.documents_of(VLANConfig):
        p = _p(vl)
        if not 1 <= vl.vlan_id <= 4094:
            v.err(f"{p}.vlanID", vl.vlan_id or MISSING, "a VLAN ID between 1 and 4094")
        v.required(f"{p}.parent", vl.parent, "the parent link")
        v.one_of(f"{p}.vlanMode", vl.vlan_mode, ("802.1q", "802.1ad"))
    for b in c.documents_of(BondConfig):
        p = _p(b)
        if not b.links:
            v.err(f"{p}.links", MISSING, "at least one link to aggregate")
        v.one_of(f"{p}.bondMode", b.bond_mode, BOND_MODES, required=True)
        if b.bond_mode == "802.3ad":
            for name, delay in (("miimon", b.miimon), ("updelay", b.updelay), ("downdelay", b.downdelay)):
                if delay is None:
                    v.warn(f"{p}.{name}", MISSING, f"{name} set for an 802.3ad bond")
        v.one_of(f"{p}.xmitHashPolicy", b.xmit_hash_policy, ("layer2", "layer3+4", "layer2+3", "encap2+3",
                                                              "encap3+4"))
        v.one_of(f"{p}.lacpRate", b.lacp_rate, ("slow", "fast"))
        v.one_of(f"{p}.arpValidate", b.arp_validate, ("none", "active", "backup", "all", "filter", "filter-active",
                                                      "filter-backup"))
        v.one_of(f"{p}.arpAllTargets", b.arp_all_targets, ("any", "all"))
        v.one_of(f"{p}.failOverMac", b.fail_over_mac, ("none", "active", "follow"))
        v.one_of(f"{p}.adSelect", b.ad_select, ("stable", "bandwidth", "count"))
        v.one_of(f"{p}.adLACPActive", b.ad_lacp_active, ("on", "off"))
        v.one_of(f"{p}.primaryReselect", b.primary_reselect, ("always", "better", "failure"))
        for i, t in enumerate(b.arp_ip_targets[:16]):
            v.ip(f"{p}.arpIpTargets[{i}]", t)
        for i, t in enumerate(b.ns_ip6_targets[:16]):
            v.ip(f"{p}.nsIp6Targets[{i}]", t)
        if len(b.arp_ip_targets) > 16 or len(b.ns_ip6_targets) > 16:
            v.err(f"{p}.arpIpTargets", len(b.arp_ip_targets) + len(b.ns_ip6_targets), "at most 16 targets")
    for br in c.documents_of(BridgeConfig):
        for i, link in enumerate(br.links):
            if not link:
                v.err(f"{_p(br)}.links[{i}]", link, "a link name")


def _resolver(v: Checks, c: ConfigContainer) -> None:
    cfg = c.v1alpha1
    for r in c.documents_of(ResolverConfig):
        encrypted = 0
        for j, ns in enumerate(r.nameservers):
            p = f"ResolverConfig.nameservers[{j}]"
            v.one_of(f"{p}.protocol", ns.protocol, ("Do53", "DoT", "DoH"))
            if ns.protocol in ("DoT", "DoH"):
                encrypted += 1
                v.required(f"{p}.tlsServerName", ns.tls_server_name, f"the TLS server name for {ns.protocol}")
            elif ns.tls_server_name:
                v.err(f"{p}.tlsServerName", ns.tls_server_name, "no TLS server name for plain DNS (Do53)")
        if encrypted and encrypted == len(r.nameservers):
            v.warn("ResolverConfig.nameservers", encrypted, "at least one plain-DNS nameserver (DoT/DoH need a "
                   "correct clock to check certificates)")
        h = r.host_dns
        if h.enabled is False or (h.enabled is None and (h.forward_kube_dns_to_host or h.resolve_member_names)):
            for field, on in (("forwardKubeDNSToHost", h.forward_kube_dns_to_host),
                              ("resolveMemberNames", h.resolve_member_names)):
                if on:
                    v.err(f"ResolverConfig.hostDNS.{field}", True, "hostDNS.enabled: true for this")
        if cfg is not None:
            if r.search_domains.domains and cfg.machine.network.search_domains:
                v.err("ResolverConfig.searchDomains", r.search_domains.domains,
                      "search domains set in one place only (machine.network.searchDomains is also set)")
            if h.encode() and cfg.machine.features.host_dns:
                v.err("ResolverConfig.hostDNS", h.encode(),
                      "host DNS set in one place only (machine.features.hostDNS is also set)")


def _time(v: Checks, c: ConfigContainer) -> None:
    cfg = c.v1alpha1
    for t in c.documents_of(TimeSyncConfig):
        v.duration("TimeSyncConfig.bootTimeout", t.boot_timeout)
        if t.ntp.servers and t.ptp.devices:
            v.err("TimeSyncConfig.ptp", t.ptp.devices, "either ntp or ptp, not both")
        for i, s in enumerate(t.ntp.servers):
            if s.startswith("/dev/"):
                v.err(f"TimeSyncConfig.ntp.servers[{i}]", s, "an NTP server (PTP devices go in ptp.devices)")
            elif not s.strip() or " " in s:
                v.err(f"TimeSyncConfig.ntp.servers[{i}]", s, "an NTP server host name or address")
        for i, d in enumerate(t.ptp.devices):
            if not re.match(r"^/dev/ptp[A-Za-z0-9_]*$", d):
                v.err(f"TimeSyncConfig.ptp.devices[{i}]", d, "a PTP device under /dev/ptp*")
        if cfg is not None:
            mt = cfg.machine.time
            for field, set_ in (("disabled", mt.disabled), ("servers", mt.servers), ("bootTimeout", mt.boot_timeout)):
                if set_:
                    v.err("TimeSyncConfig", field, f"time sync set in one place only (machine.time.{field} is "
                                                   "also set)")


def _rule(v: Checks, rule: NetworkRuleConfig) -> None:
    p = _p(rule)
    if not rule.port_selector.ports:
        v.err(f"{p}.portSelector.ports", MISSING, "at least one port or port range")
    for i, port in enumerate(rule.port_selector.ports):
        text = str(port)
        m = PORT_RANGE_RE.match(text)
        lo, hi = (int(m.group(1)), int(m.group(2) or m.group(1))) if m else (-1, -1)
        if not m or not 0 <= lo <= hi <= 65535:
            v.err(f"{p}.portSelector.ports[{i}]", port, "a port (0-65535) or a range lo-hi")
    v.one_of(f"{p}.portSelector.protocol", rule.port_selector.protocol, PROTOCOLS, required=True)
    for i, ing in enumerate(rule.ingress):
        v.cidr(f"{p}.ingress[{i}].subnet", ing.subnet)
        if ing.except_:
            v.cidr(f"{p}.ingress[{i}].except", ing.except_)
            try:
                if not ipaddress.ip_network(ing.except_, strict=False).subnet_of(
                        ipaddress.ip_network(ing.subnet, strict=False)):  # type: ignore[arg-type]
                    v.err(f"{p}.ingress[{i}].except", ing.except_, f"a subnet inside {ing.subnet}")
            except (ValueError, TypeError):
                pass


def _provisioning(v: Checks, p: str, prov: Provisioning, *, need_selector: bool) -> None:
    if need_selector and not prov.disk_selector.match:
        v.err(f"{p}.provisioning.diskSelector.match", MISSING, "a disk selector expression, e.g. "
              "disk.transport == \"nvme\"")
    if len(prov.disk_selector.match) > 4096:
        v.err(f"{p}.provisioning.diskSelector.match", prov.disk_selector.match, "an expression of at most 4096 "
              "characters")
    v.byte_size(f"{p}.provisioning.minSize", prov.min_size)
    v.byte_size(f"{p}.provisioning.maxSize", prov.max_size, percent=True)


def _encryption(v: Checks, p: str, enc: Encryption) -> None:
    if not enc.provider and not enc.keys:
        return
    v.one_of(f"{p}.encryption.provider", enc.provider, ("luks2",), required=True)
    if not enc.keys:
        v.err(f"{p}.encryption.keys", MISSING, "at least one key")
    slots: set[int] = set()
    for i, k in enumerate(enc.keys):
        if k.slot in slots:
            v.err(f"{p}.encryption.keys[{i}].slot", k.slot, "a key slot used once")
        slots.add(k.slot)
        if k.static is None and k.node_id is None and k.kms is None and k.tpm is None:
            v.err(f"{p}.encryption.keys[{i}]", k.slot, "a key type: static, nodeID, kms or tpm")


def _volumes(v: Checks, c: ConfigContainer) -> None:
    for vol in c.documents_of(VolumeConfig):
        p = _p(vol)
        if vol.name not in SYSTEM_VOLUMES:
            v.err(f"{p}.name", vol.name, "one of " + ", ".join(SYSTEM_VOLUMES))
        v.one_of(f"{p}.volumeType", vol.volume_type, ("partition", "memory"))
        if vol.name == "STATE" and vol.provisioning.encode():
            v.err(f"{p}.provisioning", vol.provisioning.encode(), "no provisioning for the STATE volume")
        if vol.name in ("STATE", "IMAGECACHE") and vol.mount.encode():
            v.err(f"{p}.mount", vol.mount.encode(), f"no mount options for the {vol.name} volume")
        if vol.volume_type == "memory":
            if vol.encryption.encode():
                v.err(f"{p}.encryption", vol.encryption.provider, "no encryption for a memory volume")
            if not vol.provisioning.min_size:
                v.err(f"{p}.provisioning.minSize", MISSING, "the size of the memory volume")
        _provisioning(v, p, vol.provisioning, need_selector=False)
        _encryption(v, p, vol.encryption)
        v.byte_size(f"{p}.filesystem.xfs.minAllocationGroupSize", vol.filesystem.xfs.min_allocation_group_size)
    for uv in c.documents_of(UserVolumeConfig):
        p = _p(uv)
        if not USER_VOLUME_RE.match(uv.name):
            v.err(f"{p}.name", uv.name, "1 to 34 ASCII letters, digits and hyphens")
        v.one_of(f"{p}.volumeType", uv.volume_type, ("directory", "disk", "partition"))
        if uv.volume_type == "directory":
            for section in ("provisioning", "encryption", "filesystem"):
                if getattr(uv, section).encode():
                    v.err(f"{p}.{section}", section, f"no {section} for a directory volume")
        else:
            _provisioning(v, p, uv.provisioning, need_selector=True)
            if uv.volume_type == "disk" and uv.provisioning.max_size:
                v.err(f"{p}.provisioning.maxSize", uv.provisioning.max_size, "no size for a whole-disk volume")
            v.one_of(f"{p}.filesystem.type", uv.filesystem.type, FILESYSTEMS)
            fs_type = uv.filesystem.type or "xfs"
            if uv.filesystem.project_quota_support and fs_type != "xfs":
                v.err(f"{p}.filesystem.projectQuotaSupport", True, "project quotas only on xfs")
            if uv.filesystem.xfs.encode() and fs_type != "xfs":
                v.err(f"{p}.filesystem.xfs", uv.filesystem.xfs.encode(), "xfs options only on xfs")
            _encryption(v, p, uv.encryption)
