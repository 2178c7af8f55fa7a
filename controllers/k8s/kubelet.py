"""The kubelet, rendered: machine config -> ``KubeletConfigSpec`` -> ``KubeletSpecSpec``.

``kubelet_config_from_machine(cfg)`` reads ``machine.kubelet`` / ``cluster.network``;
``render_kubelet_spec(...)`` produces the kubelet's command line, a complete
KubeletConfiguration (kubelet.config.k8s.io/v1beta1) and the bootstrap kubeconfig holding
the bootstrap token. Pure functions: explicit inputs, no I/O.

Paths on the node (``KubeletPaths``) are parameters so tests and namespace clusters can
place them anywhere; the defaults are the usual ``/etc/kubernetes`` / ``/var/lib/kubelet``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import yaml

from kos.resources.k8s import KubeletConfigSpec, KubeletSpecSpec
from kos.resources.machineconfig.v1alpha1 import Config, ExtraMount
from kos.resources.pki import render_kubeconfig
from kos.resources.versions import KUBERNETES_VERSION

DEFAULT_KUBELET_IMAGE = f"ghcr.io/siderolabs/kubelet:{KUBERNETES_VERSION}"
CONTAINERD_SOCKET = "unix:///run/containerd/containerd.sock"

# flags kos sets itself; extraArgs may not override them (the node would not join)
PROTECTED_ARGS = ("bootstrap-kubeconfig", "kubeconfig", "config", "cert-dir", "hostname-override")

SYSTEM_RESERVED = {"cpu": "50m", "memory": "192Mi", "pid": "100", "ephemeral-storage": "256Mi"}
EVICTION_HARD = {"memory.available": "100Mi", "nodefs.available": "10%", "nodefs.inodesFree": "5%",
                 "imagefs.available": "15%"}


class KubeletRenderError(ValueError):
    """Config the kubelet cannot run with (the message names the field and value)."""


@dataclass(frozen=True)
class KubeletPaths:
    config: str = "/etc/kubernetes/kubelet.yaml"
    bootstrap_kubeconfig: str = "/etc/kubernetes/bootstrap-kubeconfig"
    kubeconfig: str = "/etc/kubernetes/kubeconfig-kubelet"
    ca_file: str = "/etc/kubernetes/pki/ca.crt"
    cert_dir: str = "/var/lib/kubelet/pki"
    static_pod_dir: str = "/etc/kubernetes/manifests"
    root_dir: str = "/var/lib/kubelet"
    # the node's upstream resolvers (controllers.network.etcfiles): the kubelet's resolvConf while
    # the host DNS cache owns resolv.conf (127.0.0.53 is not reachable from a pod's network)
    upstream_resolv_conf: str = "/etc/resolv.conf.upstream"


def service_ip(subnet: str, index: int) -> str:
    """The ``index``-th address of a service subnet (``10.96.0.0/12``, 10 -> ``10.96.0.10``)."""
    try:
        net = ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        raise KubeletRenderError(f"cluster.network.serviceSubnets: {subnet!r} is not a CIDR") from None
    if index >= net.num_addresses:
        raise KubeletRenderError(f"cluster.network.serviceSubnets: {subnet!r} has fewer than {index + 1} addresses")
    return str(net.network_address + index)


KUBEPRISM_DEFAULT_PORT = 7445  # machine.features.kubePrism.port when unset (as controllers.system.kubeprism)


def kube_prism_url(cfg: Config) -> str:
    """``https://127.0.0.1:<port>`` when KubePrism is on (the kubelet then reaches the API server
    through it, as on Talos), else ""."""
    kp = cfg.machine.features.kube_prism
    return f"https://127.0.0.1:{kp.port or KUBEPRISM_DEFAULT_PORT}" if kp.enabled else ""


def cluster_dns(service_subnets: list[str]) -> list[str]:
    """kube-dns's service IP: the 10th address of each service subnet (first IPv4, then IPv6)."""
    return [service_ip(s, 10) for s in service_subnets]


def mount_to_str(m: ExtraMount) -> str:
    return f"{m.destination}:{m.source}:{m.type}:{','.join(m.options)}"


def mount_from_str(s: str) -> ExtraMount:
    dest, source, typ, opts = s.split(":", 3)
    return ExtraMount(destination=dest, source=source, type=typ, options=[o for o in opts.split(",") if o])


def kubelet_config_from_machine(cfg: Config) -> KubeletConfigSpec:
    """What the machine config says about the kubelet (``machine.kubelet``, ``cluster.network``)."""
    k = cfg.machine.kubelet
    net = cfg.cluster.network
    subnets = net.service_subnets or ["10.96.0.0/12"]
    dns = list(k.cluster_dns) or cluster_dns(subnets)
    for i, m in enumerate(k.extra_mounts):
        if not m.destination.startswith("/"):
            raise KubeletRenderError(
                f"machine.kubelet.extraMounts[{i}].destination: {m.destination!r} is invalid, "
                "expected an absolute path")
        if ":" in m.destination or ":" in m.source:
            raise KubeletRenderError(f"machine.kubelet.extraMounts[{i}]: ':' is not allowed in source/destination")
    extra_config = yaml.safe_dump(dict(k.extra_config), sort_keys=True) if k.extra_config else ""
    return KubeletConfigSpec(
        image=k.image or DEFAULT_KUBELET_IMAGE,
        cluster_dns=dns,
        cluster_domain=net.dns_domain or "cluster.local",
        extra_args=dict(k.extra_args),
        extra_mounts=[mount_to_str(m) for m in k.extra_mounts],
        extra_config=extra_config,
        cloud_provider_external=bool(cfg.cluster.external_cloud_provider.get("enabled")),
        default_runtime_seccomp_enabled=bool(k.default_runtime_seccomp_profile_enabled),
        skip_node_registration=bool(k.skip_node_registration),
        disable_manifests_directory=bool(k.disable_manifests_directory),
        node_labels=dict(cfg.machine.node_labels),
        node_taints=node_taints(cfg),
        register_with_fqdn=bool(k.register_with_fqdn),
    )


CONTROL_PLANE_TAINT = "node-role.kubernetes.io/control-plane"


def node_taints(cfg: Config) -> dict[str, str]:
    """``machine.nodeTaints``, plus on control planes ``node-role.kubernetes.io/control-plane:NoSchedule``
    unless ``cluster.allowSchedulingOnControlPlanes`` (or its deprecated alias
    ``allowSchedulingOnMasters``) is true, as Talos does; the kubelet registers with them."""
    taints = dict(cfg.machine.node_taints)
    c = cfg.cluster
    allow = c.allow_scheduling_on_control_planes
    if allow is None:
        allow = c.allow_scheduling_on_masters
    if cfg.machine_type == "controlplane" and not allow:
        taints.setdefault(CONTROL_PLANE_TAINT, ":NoSchedule")
    return taints


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], v)
        else:
            out[key] = v
    return out


def render_kubelet_configuration(cfg: KubeletConfigSpec, paths: KubeletPaths) -> dict[str, Any]:
    """A complete KubeletConfiguration; ``extraConfig`` is merged over it (apiVersion/kind and
    the authentication CA file stay kos's)."""
    conf: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": "0.0.0.0",
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True, "cacheTTL": "2m0s"},
            "x509": {"clientCAFile": paths.ca_file},
        },
        "authorization": {"mode": "Webhook", "webhook": {"cacheAuthorizedTTL": "5m0s",
                                                         "cacheUnauthorizedTTL": "30s"}},
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": "/",
        "clusterDomain": cfg.cluster_domain,
        "clusterDNS": list(cfg.cluster_dns),
        "containerRuntimeEndpoint": CONTAINERD_SOCKET,
        "rotateCertificates": True,
        "serverTLSBootstrap": True,
        "protectKernelDefaults": True,
        "failSwapOn": False,
        "streamingConnectionIdleTimeout": "5m0s",
        "systemReserved": dict(SYSTEM_RESERVED),
        "evictionHard": dict(EVICTION_HARD),
        "shutdownGracePeriod": "30s",
        "shutdownGracePeriodCriticalPods": "10s",
        "seccompDefault": cfg.default_runtime_seccomp_enabled,
        "logging": {"format": "json"},
        "registerNode": not cfg.skip_node_registration,
        "tlsMinVersion": "VersionTLS12",
        # the root filesystem is read-only: FlexVolume drivers live beside the kubelet's state
        "volumePluginDir": f"{paths.root_dir}/volumeplugins",
    }
    if cfg.host_dns:
        conf["resolvConf"] = paths.upstream_resolv_conf
    if cfg.static_pod_list_url:
        conf["staticPodURL"] = cfg.static_pod_list_url
    # kos's own control-plane static pods are files in this dir, so it is always served
    conf["staticPodPath"] = paths.static_pod_dir
    if cfg.node_taints:
        conf["registerWithTaints"] = [_taint(k, v) for k, v in sorted(cfg.node_taints.items())]
    if cfg.extra_config:
        extra = yaml.safe_load(cfg.extra_config) or {}
        if not isinstance(extra, dict):
            raise KubeletRenderError("machine.kubelet.extraConfig: expected a mapping of KubeletConfiguration fields")
        for locked in ("apiVersion", "kind"):
            extra.pop(locked, None)
        conf = _deep_merge(conf, extra)
        conf["authentication"]["x509"]["clientCAFile"] = paths.ca_file
    return conf


def _taint(key: str, value: str) -> dict[str, str]:
    val, _, effect = value.rpartition(":")
    if not effect:
        raise KubeletRenderError(f"machine.nodeTaints[{key}]: {value!r} is invalid, expected value:Effect or :Effect")
    out = {"key": key, "effect": effect}
    if val:
        out["value"] = val
    return out


def kubelet_args(cfg: KubeletConfigSpec, paths: KubeletPaths, *, nodename: str, node_ips: list[str]) -> list[str]:
    """The kubelet's flags: kos's own, then ``extraArgs`` (sorted; protected flags refused)."""
    flags: dict[str, str] = {
        "bootstrap-kubeconfig": paths.bootstrap_kubeconfig,
        "kubeconfig": paths.kubeconfig,
        "config": paths.config,
        "cert-dir": paths.cert_dir,
        "root-dir": paths.root_dir,
        "hostname-override": nodename,
    }
    if node_ips:
        flags["node-ip"] = ",".join(node_ips)
    if cfg.cloud_provider_external:
        flags["cloud-provider"] = "external"
    if cfg.node_labels:
        flags["node-labels"] = ",".join(f"{k}={v}" for k, v in sorted(cfg.node_labels.items()))
    for name, value in sorted(cfg.extra_args.items()):
        key = name.removeprefix("--")
        if key in PROTECTED_ARGS:
            raise KubeletRenderError(
                f"machine.kubelet.extraArgs.{name}: {value!r} is refused, kos sets --{key} itself")
        flags[key] = value
    return [f"--{k}={v}" for k, v in flags.items()]


def bootstrap_kubeconfig(*, endpoint: str, ca_pem: str, token: str) -> str:
    """The kubelet's TLS-bootstrap kubeconfig: the bootstrap token as the user."""
    if not token or "." not in token:
        raise KubeletRenderError("cluster.token: expected a bootstrap token of the form abcdef.0123456789abcdef")
    return render_kubeconfig(cluster="kos-bootstrap", server=endpoint, ca_pem=ca_pem,
                             user="kubelet-bootstrap", token=token)


def render_kubelet_spec(cfg: KubeletConfigSpec, *, nodename: str, node_ips: list[str], endpoint: str,
                        ca_pem: str, bootstrap_token: str, paths: KubeletPaths) -> KubeletSpecSpec:
    """Everything the kubelet service needs, from explicit inputs."""
    if not nodename:
        raise KubeletRenderError("nodename: empty, expected the node's hostname")
    conf = render_kubelet_configuration(cfg, paths)
    return KubeletSpecSpec(
        image=cfg.image,
        args=kubelet_args(cfg, paths, nodename=nodename, node_ips=node_ips),
        config=yaml.safe_dump(conf, sort_keys=False),
        bootstrap_kubeconfig=bootstrap_kubeconfig(endpoint=endpoint, ca_pem=ca_pem, token=bootstrap_token),
        ca_crt=ca_pem,
        expected_nodename=nodename,
        extra_mounts=list(cfg.extra_mounts),
    )
