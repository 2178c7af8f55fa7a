"""``gen config``: from a secrets bundle and a few options, the control-plane and worker
machine configs and a client config holding an ``os:admin`` certificate. Worker configs
carry CA certificates only, never CA or service-account private keys."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from kos.resources.machineconfig.clientconfig import ClientConfig, Context
from kos.resources.machineconfig.container import ConfigContainer
from kos.resources.machineconfig.patch import Patch, apply_patches
from kos.resources.machineconfig.secrets import SecretsBundle
from kos.resources.machineconfig.v1alpha1 import (
    CNI,
    APIServer,
    Cluster,
    ClusterNetwork,
    Component,
    Config,
    ControlPlane,
    Discovery,
    Etcd,
    Features,
    Install,
    Kubelet,
    KubePrism,
    Machine,
    PEMEncodedCertificateAndKey,
)
from kos.resources.pki import issue_certificate
from kos.resources.versions import KUBERNETES_VERSION

DEFAULT_KUBERNETES_VERSION = KUBERNETES_VERSION.removeprefix("v")
DEFAULT_INSTALLER_IMAGE = "ghcr.io/kos-dev/installer:v0.1.0"
DEFAULT_ETCD_IMAGE = "gcr.io/etcd-development/etcd:v3.4.23"
DEFAULT_API_PORT = 6443
ADMIN_ROLE = "os:admin"


class GenerateError(ValueError):
    """Bad gen-config input (the message names the option and the expectation)."""


@dataclass
class GenOptions:
    cluster_name: str
    endpoint: str
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
    install_disk: str = "/dev/sda"
    install_image: str = DEFAULT_INSTALLER_IMAGE
    additional_sans: list[str] = field(default_factory=list)
    dns_domain: str = "cluster.local"
    pod_subnets: list[str] = field(default_factory=lambda: ["10.244.0.0/16"])
    service_subnets: list[str] = field(default_factory=lambda: ["10.96.0.0/12"])
    admin_cert_ttl: datetime.timedelta = datetime.timedelta(days=365)


@dataclass
class Generated:
    controlplane: ConfigContainer
    worker: ConfigContainer
    client: ClientConfig


def normalize_endpoint(endpoint: str) -> str:
    """``10.5.0.2`` / ``https://10.5.0.2`` / ``host:6443`` -> ``https://host:port`` (default 6443)."""
    text = endpoint.strip()
    if not text:
        raise GenerateError("endpoint: empty, expected a URL such as https://10.5.0.2:6443")
    if "://" not in text:
        try:
            if ipaddress.ip_address(text).version == 6:
                text = f"[{text}]"
        except ValueError:
            pass
        text = "https://" + text
    try:
        u = urlsplit(text)
        port = u.port
    except ValueError as exc:
        raise GenerateError(f"endpoint: {endpoint!r} has an invalid port, expected https://HOST[:PORT]") from exc
    if u.scheme != "https" or not u.hostname or u.path not in ("", "/"):
        raise GenerateError(f"endpoint: {endpoint!r} is invalid, expected https://HOST[:PORT]")
    host = u.hostname
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    return f"https://{host}:{port or DEFAULT_API_PORT}"


def endpoint_host(endpoint: str) -> str:
    host = urlsplit(endpoint).hostname
    return host or ""


def _ver(v: str) -> str:
    return v if v.startswith("v") else "v" + v


def _check(opts: GenOptions) -> None:
    from kos.resources.machineconfig.validate import DNS1123_SUBDOMAIN_RE

    if not DNS1123_SUBDOMAIN_RE.match(opts.cluster_name):
        raise GenerateError(
            f"cluster name: {opts.cluster_name!r} is invalid, expected lower-case letters, digits, '-' and '.'"
        )
    parts = opts.kubernetes_version.removeprefix("v").split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise GenerateError(f"kubernetes version: {opts.kubernetes_version!r} is invalid, expected X.Y.Z like 1.30.0")
    if opts.install_disk and not opts.install_disk.startswith("/dev/"):
        raise GenerateError(f"install disk: {opts.install_disk!r} is invalid, expected a /dev/ path")
    for san in opts.additional_sans:
        if not san.strip():
            raise GenerateError("additional SANs: empty name, expected DNS names or IP addresses")


def generate(opts: GenOptions, bundle: SecretsBundle, *, patches: list[Patch] | None = None,
             controlplane_patches: list[Patch] | None = None, worker_patches: list[Patch] | None = None) -> Generated:
    """Build both machine configs and the client config; patches are applied to the configs'
    YAML data and the result must load strictly."""
    _check(opts)
    endpoint = normalize_endpoint(opts.endpoint)
    host = endpoint_host(endpoint)
    cp = ConfigContainer(_machine_config(opts, bundle, endpoint, host, control_plane=True))
    wk = ConfigContainer(_machine_config(opts, bundle, endpoint, host, control_plane=False))
    if patches or controlplane_patches:
        cp = ConfigContainer.from_data(apply_patches(cp.to_data(), [*(patches or []), *(controlplane_patches or [])]))
    if patches or worker_patches:
        wk = ConfigContainer.from_data(apply_patches(wk.to_data(), [*(patches or []), *(worker_patches or [])]))
    return Generated(cp, wk, client_config(opts.cluster_name, [host], bundle, ttl=opts.admin_cert_ttl))


def client_config(context: str, endpoints: list[str], bundle: SecretsBundle, *,
                  ttl: datetime.timedelta = datetime.timedelta(days=365)) -> ClientConfig:
    """A client config with one context whose certificate carries the ``os:admin`` role."""
    os_ca = bundle.certs.os.to_pair()
    admin = issue_certificate(os_ca, common_name="admin", organizations=[ADMIN_ROLE], client=True, ttl=ttl)
    ctx = Context(endpoints=list(endpoints), nodes=[], ca=os_ca.cert_pem, crt=admin.cert_pem, key=admin.key_pem)
    return ClientConfig(context=context, contexts={context: ctx})


def _public(pair: PEMEncodedCertificateAndKey) -> PEMEncodedCertificateAndKey:
    return PEMEncodedCertificateAndKey(pair.crt, "")


def _machine_config(opts: GenOptions, b: SecretsBundle, endpoint: str, host: str, *, control_plane: bool) -> Config:
    kv = _ver(opts.kubernetes_version)
    machine = Machine(
        type="controlplane" if control_plane else "worker",
        token=b.trustd_info.token,
        ca=b.certs.os if control_plane else _public(b.certs.os),
        cert_sans=list(opts.additional_sans),
        kubelet=Kubelet(image=f"ghcr.io/siderolabs/kubelet:{kv}", default_runtime_seccomp_profile_enabled=True,
                        disable_manifests_directory=True),
        install=Install(disk=opts.install_disk, image=opts.install_image, wipe=False),
        features=Features(rbac=True, stable_hostname=True, apid_check_ext_key_usage=True, disk_quota_support=True,
                          kube_prism=KubePrism(enabled=True, port=7445),
                          # as talosctl gen config since Talos 1.8: the node's DNS cache, CoreDNS forwarding to it
                          host_dns={"enabled": True, "forwardKubeDNSToHost": True}),
    )
    cluster = Cluster(
        id=b.cluster.id,
        secret=b.cluster.secret,
        control_plane=ControlPlane(endpoint=endpoint),
        cluster_name=opts.cluster_name,
        network=ClusterNetwork(cni=CNI(name="flannel"), dns_domain=opts.dns_domain,
                               pod_subnets=list(opts.pod_subnets), service_subnets=list(opts.service_subnets)),
        token=b.secrets.bootstrap_token,
        ca=b.certs.k8s if control_plane else _public(b.certs.k8s),
        discovery=Discovery(enabled=True),
    )
    if control_plane:
        cluster.secretbox_encryption_secret = b.secrets.secretbox_encryption_secret
        cluster.aggregator_ca = b.certs.k8s_aggregator
        cluster.service_account = b.certs.k8s_service_account
        cluster.api_server = APIServer(image=f"registry.k8s.io/kube-apiserver:{kv}",
                                       cert_sans=list(dict.fromkeys([host, *opts.additional_sans])))
        cluster.controller_manager = Component(image=f"registry.k8s.io/kube-controller-manager:{kv}")
        cluster.scheduler = Component(image=f"registry.k8s.io/kube-scheduler:{kv}")
        cluster.etcd = Etcd(image=DEFAULT_ETCD_IMAGE, ca=b.certs.etcd)
    cluster.proxy = Component(image=f"registry.k8s.io/kube-proxy:{kv}")
    return Config(version="v1alpha1", debug=False, persist=True, machine=machine, cluster=cluster)
