"""Semantic validation of a loaded config for a runtime mode (``metal``, ``cloud``,
``container``). Every error names the YAML path, the value and the expectation; all errors
are collected and raised together as ``ConfigErrors``; warnings are returned."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from urllib.parse import urlsplit

from kos.resources.machineconfig.checks import Checks as _V
from kos.resources.machineconfig.container import ConfigContainer
from kos.resources.machineconfig.cooperate import quiet_gc
from kos.resources.machineconfig.documents import HostnameConfig, LinkDocument, ResolverConfig, StaticHostConfig
from kos.resources.machineconfig.docvalidate import validate_documents
from kos.resources.machineconfig.errors import MISSING, ConfigError, ConfigErrors
from kos.resources.machineconfig.v1alpha1 import Config, Interface
from kos.resources.machineconfig.views import host_dns_errors

MODES = ("metal", "cloud", "container")
MACHINE_TYPES = ("controlplane", "worker", "init")
CNI_NAMES = ("flannel", "custom", "none")
FILE_OPS = ("create", "append", "overwrite")
TOKEN_RE = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_RE = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")


def check(data: str | bytes, mode: str, what: str = "configuration") -> str | None:
    """Strict load and validation of config text; the error message, or None when valid.
    Arguments and result are plain values, so this can run in another process (the config
    manager checks large inputs there: parsing them cannot then hold the API's GIL)."""
    try:
        with quiet_gc():
            ConfigContainer.load(data, strict=True).validate(mode)
    except ConfigErrors as exc:
        return str(ConfigErrors(exc.errors, what=what, dropped=exc.dropped))
    return None


def validate(container: ConfigContainer, mode: str = "metal") -> list[ConfigError]:
    """Check the config for ``mode``; raise ``ConfigErrors`` with all errors, return warnings."""
    if mode not in MODES:
        raise ConfigErrors([ConfigError("<mode>", mode, f"one of {', '.join(MODES)}")], what="validate")
    v = _V()
    if container.v1alpha1 is not None:
        _validate_v1alpha1(v, container.v1alpha1, mode)
        for path, value, expected in host_dns_errors(container):
            v.err(path, value, expected)
    _validate_documents(v, container, mode)
    if v.errors:
        raise ConfigErrors(v.errors, dropped=v.errors.dropped)
    return [*container.warnings, *v.warnings]


def _validate_v1alpha1(v: _V, cfg: Config, mode: str) -> None:
    m = cfg.machine
    if cfg.version != "v1alpha1":
        v.err("version", cfg.version, "'v1alpha1'")
    if m.type not in MACHINE_TYPES:
        v.err("machine.type", m.type or MISSING, "one of controlplane, worker")
    elif m.type == "init":
        v.warn("machine.type", m.type, "controlplane ('init' is deprecated and treated as controlplane)")
    control_plane = cfg.machine_type == "controlplane"
    if v.required("machine.token", m.token, "the machine token (trustd token)") and not TOKEN_RE.match(m.token):
        v.err("machine.token", m.token, "a token of the form [a-z0-9]{6}.[a-z0-9]{16}")
    v.pem_pair("machine.ca", m.ca, need_key=control_plane, what="OS API CA")
    for i, san in enumerate(m.cert_sans):
        if not san.strip():
            v.err(f"machine.certSANs[{i}]", san, "a non-empty DNS name or IP address")
    for i, sub in enumerate(m.kubelet.node_ip.valid_subnets):
        v.cidr(f"machine.kubelet.nodeIP.validSubnets[{i}]", sub, allow_negation=True)
    for i, mount in enumerate(m.kubelet.extra_mounts):
        p = f"machine.kubelet.extraMounts[{i}]"
        if not mount.destination.startswith("/"):
            v.err(f"{p}.destination", mount.destination or MISSING, "an absolute path")
    _validate_network(v, cfg, mode)
    # install
    if mode == "metal":
        if not m.install.disk and not m.install.disk_selector:
            v.err("machine.install.disk", MISSING, "an install disk (e.g. /dev/sda) or machine.install.diskSelector "
                  "in metal mode")
        if m.install.disk and m.install.disk_selector:
            v.err("machine.install.diskSelector", m.install.disk_selector,
                  "not both machine.install.disk and machine.install.diskSelector")
    if m.install.disk and not m.install.disk.startswith("/dev/"):
        v.err("machine.install.disk", m.install.disk, "a device path under /dev/, e.g. /dev/sda")
    if mode == "container" and (m.install.disk or m.install.wipe):
        v.warn("machine.install", m.install.encode(), "no install settings in container mode (they are ignored)")
    for i, d in enumerate(m.disks):
        if not d.device.startswith("/dev/"):
            v.err(f"machine.disks[{i}].device", d.device or MISSING, "a device path under /dev/")
        for j, part in enumerate(d.partitions):
            if not part.mountpoint.startswith("/var/"):
                v.err(f"machine.disks[{i}].partitions[{j}].mountpoint", part.mountpoint or MISSING,
                      "a mount point under /var/")
    for i, srv in enumerate(m.time.servers):
        if not srv.strip() or " " in srv:
            v.err(f"machine.time.servers[{i}]", srv, "an NTP server host name or address")
    if m.time.disabled and m.time.servers:
        v.err("machine.time.servers", m.time.servers, "no servers when machine.time.disabled is true")
    for i, fl in enumerate(m.files):
        p = f"machine.files[{i}]"
        if not fl.path.startswith("/"):
            v.err(f"{p}.path", fl.path or MISSING, "an absolute path")
        if fl.op not in FILE_OPS:
            v.err(f"{p}.op", fl.op or MISSING, f"one of {', '.join(FILE_OPS)}")
        if not 0 <= fl.permissions <= 0o7777:
            v.err(f"{p}.permissions", fl.permissions, "file mode bits between 0 and 0o7777")
    for key in m.sysctls:
        if not re.match(r"^[a-z0-9_./-]+$", key):
            v.err(f"machine.sysctls.{key}", key, "a sysctl name such as net.ipv4.ip_forward")
    for key in m.env:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            v.err(f"machine.env.{key}", key, "an environment variable name")
    _validate_cluster(v, cfg, control_plane)


def _validate_cluster(v: _V, cfg: Config, control_plane: bool) -> None:
    c = cfg.cluster
    ep = c.control_plane.endpoint
    if v.required("cluster.controlPlane.endpoint", ep, "the Kubernetes API endpoint URL, e.g. https://10.5.0.2:6443"):
        try:
            u = urlsplit(ep)
            ok = u.scheme == "https" and bool(u.hostname) and (u.port is None or u.port > 0)
        except ValueError:
            ok = False
        if not ok:
            v.err("cluster.controlPlane.endpoint", ep, "an https URL with a host, e.g. https://10.5.0.2:6443")
    # Talos writes no clusterName into worker configs: required on control planes only
    if (c.cluster_name or control_plane) and v.required("cluster.clusterName", c.cluster_name,
                                                        "the cluster name") and (
        len(c.cluster_name) > 253 or not DNS1123_SUBDOMAIN_RE.match(c.cluster_name)
    ):
        v.err("cluster.clusterName", c.cluster_name, "lower-case letters, digits, '-' and '.' (DNS-1123)")
    n = c.network
    if n.dns_domain and (len(n.dns_domain) > 253 or not DNS1123_SUBDOMAIN_RE.match(n.dns_domain)):
        v.err("cluster.network.dnsDomain", n.dns_domain, "a DNS domain such as cluster.local")
    for name, subnets in (("podSubnets", n.pod_subnets), ("serviceSubnets", n.service_subnets)):
        for i, s in enumerate(subnets):
            v.cidr(f"cluster.network.{name}[{i}]", s)
    _check_overlap(v, n.pod_subnets, n.service_subnets)
    for i, a in enumerate(c.api_server.authorization_config):
        p = f"cluster.apiServer.authorizationConfig[{i}]"
        v.one_of(f"{p}.type", a.type, ("Node", "RBAC", "Webhook"), required=True)
        v.required(f"{p}.name", a.name, "a name for the authorizer")
        if a.type == "Webhook" and not a.webhook:
            v.err(f"{p}.webhook", MISSING, "the webhook configuration of a Webhook authorizer")
        if a.type != "Webhook" and a.webhook:
            v.err(f"{p}.webhook", a.webhook, f"no webhook configuration for a {a.type} authorizer")
    if n.cni.name and n.cni.name not in CNI_NAMES:
        v.err("cluster.network.cni.name", n.cni.name, f"one of {', '.join(CNI_NAMES)}")
    if n.cni.name == "custom" and not n.cni.urls:
        v.err("cluster.network.cni.urls", MISSING, "at least one manifest URL when cni.name is custom")
    if n.cni.name in ("flannel", "none") and n.cni.urls:
        v.err("cluster.network.cni.urls", n.cni.urls, f"no URLs when cni.name is {n.cni.name} (set name: custom)")
    if c.token and not TOKEN_RE.match(c.token):
        v.err("cluster.token", c.token, "a bootstrap token of the form [a-z0-9]{6}.[a-z0-9]{16}")
    for i, s in enumerate(c.etcd.advertised_subnets):
        v.cidr(f"cluster.etcd.advertisedSubnets[{i}]", s, allow_negation=True)
    for i, s in enumerate(c.etcd.listen_subnets):
        v.cidr(f"cluster.etcd.listenSubnets[{i}]", s, allow_negation=True)
    if c.allow_scheduling_on_masters is not None and c.allow_scheduling_on_control_planes is not None and (
        c.allow_scheduling_on_masters != c.allow_scheduling_on_control_planes
    ):
        v.err("cluster.allowSchedulingOnMasters", c.allow_scheduling_on_masters,
              "the same value as cluster.allowSchedulingOnControlPlanes (deprecated alias) or unset")
    if control_plane:
        v.pem_pair("cluster.ca", c.ca, need_key=True, what="Kubernetes CA")
        v.pem_pair("cluster.aggregatorCA", c.aggregator_ca, need_key=True, what="aggregator CA")
        v.pem_pair("cluster.etcd.ca", c.etcd.ca, need_key=True, what="etcd CA")
        if not c.service_account.key:
            v.err("cluster.serviceAccount.key", MISSING, "the base64 PEM service-account private key")
        v.required("cluster.token", c.token, "the bootstrap token")
        v.required("cluster.secretboxEncryptionSecret", c.secretbox_encryption_secret or c.aescbc_encryption_secret,
                   "the secretbox encryption secret (base64 of 32 bytes)")
        if c.secretbox_encryption_secret:
            try:
                if len(base64.b64decode(c.secretbox_encryption_secret, validate=True)) != 32:
                    raise ValueError("length")
            except (binascii.Error, ValueError):
                v.err("cluster.secretboxEncryptionSecret", c.secretbox_encryption_secret, "base64 of 32 bytes")
    else:
        v.pem_pair("cluster.ca", c.ca, need_key=False, what="Kubernetes CA")
        for path, key in (("machine.ca.key", cfg.machine.ca.key), ("cluster.ca.key", c.ca.key),
                          ("cluster.etcd.ca.key", c.etcd.ca.key), ("cluster.aggregatorCA.key", c.aggregator_ca.key),
                          ("cluster.serviceAccount.key", c.service_account.key)):
            if key:
                v.warn(path, "******", "no CA or service-account private key on a worker")


def _check_overlap(v: _V, pods: list[str], services: list[str]) -> None:
    for i, p in enumerate(pods):
        for j, s in enumerate(services):
            try:
                a, b = ipaddress.ip_network(p, strict=False), ipaddress.ip_network(s, strict=False)
            except ValueError:
                continue
            if a.version == b.version and a.overlaps(b):
                v.err(f"cluster.network.serviceSubnets[{j}]", s, f"a subnet not overlapping podSubnets[{i}] ({p})")


def _validate_interface(v: _V, p: str, iface: Interface) -> None:
    if iface.interface and iface.device_selector:
        v.err(f"{p}.deviceSelector", iface.device_selector, "either interface or deviceSelector, not both")
    if not iface.interface and not iface.device_selector:
        v.err(f"{p}.interface", MISSING, "an interface name (e.g. eth0) or a deviceSelector")
    for j, a in enumerate(iface.addresses):
        v.address_cidr(f"{p}.addresses[{j}]", a)
    for j, r in enumerate(iface.routes):
        if r.network:
            v.cidr(f"{p}.routes[{j}].network", r.network)
        if r.gateway:
            v.ip(f"{p}.routes[{j}].gateway", r.gateway)
        if r.source:
            v.ip(f"{p}.routes[{j}].source", r.source)
        if not r.network and not r.gateway:
            v.err(f"{p}.routes[{j}]", r.encode(), "a network and/or a gateway")
        if r.metric < 0:
            v.err(f"{p}.routes[{j}].metric", r.metric, "a non-negative metric")
    v.mtu(f"{p}.mtu", iface.mtu)
    if iface.vip.ip:
        v.ip(f"{p}.vip.ip", iface.vip.ip)
    if iface.bond and iface.bridge.interfaces:
        v.err(f"{p}.bridge", iface.bridge.encode(), "either bond or bridge on one interface, not both")
    if iface.ignore and (iface.addresses or iface.routes or iface.dhcp):
        v.err(f"{p}.ignore", True, "no addresses, routes or dhcp on an ignored interface")


def _validate_network(v: _V, cfg: Config, mode: str) -> None:
    net = cfg.machine.network
    if net.hostname:
        v.hostname("machine.network.hostname", net.hostname)
    names: dict[str, int] = {}
    for i, iface in enumerate(net.interfaces):
        p = f"machine.network.interfaces[{i}]"
        _validate_interface(v, p, iface)
        if iface.interface:
            if iface.interface in names:
                v.err(f"{p}.interface", iface.interface,
                      f"a unique interface name (also at machine.network.interfaces[{names[iface.interface]}])")
            names.setdefault(iface.interface, i)
    if mode == "container" and net.interfaces:
        v.warn("machine.network.interfaces", [i.interface for i in net.interfaces],
               "no interface config in container mode (the container runtime owns networking)")
    for i, ns in enumerate(net.nameservers):
        v.ip(f"machine.network.nameservers[{i}]", ns)
    for i, d in enumerate(net.search_domains):
        v.hostname(f"machine.network.searchDomains[{i}]", d)
    for i, h in enumerate(net.extra_host_entries):
        v.ip(f"machine.network.extraHostEntries[{i}].ip", h.ip)
        if not h.aliases:
            v.err(f"machine.network.extraHostEntries[{i}].aliases", MISSING, "at least one alias")


def _validate_documents(v: _V, container: ConfigContainer, mode: str) -> None:
    cfg = container.v1alpha1
    for doc in container.documents_of(HostnameConfig):
        if doc.hostname and doc.auto:
            v.err("HostnameConfig.auto", doc.auto, "either hostname or auto, not both")
        if not doc.hostname and not doc.auto:
            v.err("HostnameConfig.hostname", MISSING, "a hostname or auto: stable|off")
        if doc.auto and doc.auto not in ("stable", "off"):
            v.err("HostnameConfig.auto", doc.auto, "one of stable, off")
        if doc.hostname:
            v.hostname("HostnameConfig.hostname", doc.hostname)
        if doc.hostname and cfg is not None and cfg.machine.network.hostname:
            v.err("HostnameConfig.hostname", doc.hostname,
                  f"the hostname set in one place only (machine.network.hostname is {cfg.machine.network.hostname!r})")
    v1_links = {i.interface for i in cfg.machine.network.interfaces} if cfg is not None else set()
    for link in container.documents:
        if not isinstance(link, LinkDocument):
            continue
        p = f"{link.KIND}[{link.name}]"
        if link.name in v1_links:
            v.err(f"{p}.name", link.name, "a link not also configured in machine.network.interfaces")
        if mode == "container":
            v.warn(p, link.name, "no link config in container mode (the container runtime owns networking)")
    for res in container.documents_of(ResolverConfig):
        for j, ns in enumerate(res.nameservers):
            v.ip(f"ResolverConfig.nameservers[{j}].address", ns.address)
        if cfg is not None and cfg.machine.network.nameservers and res.nameservers:
            v.err("ResolverConfig.nameservers", [n.address for n in res.nameservers],
                  "nameservers set in one place only (machine.network.nameservers is also set)")
    for sh in container.documents_of(StaticHostConfig):
        v.ip(f"StaticHostConfig[{sh.name}].name", sh.name)
        if not sh.hostnames:
            v.err(f"StaticHostConfig[{sh.name}].hostnames", MISSING, "at least one hostname")
    validate_documents(v, container)
