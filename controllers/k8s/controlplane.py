"""Control-plane static pods: kube-apiserver, kube-controller-manager, kube-scheduler.

``configs_from_machine(cfg)`` turns the machine config into the three ``*ConfigSpec``s;
``render_apiserver`` / ``render_controller_manager`` / ``render_scheduler`` turn a config plus
explicit certificate material (``ControlPlaneMaterial``, PEM text) into a v1 Pod (a dict) and
the files it needs, by path relative to the secrets dir. Pods reference files only (never
embed keys); the file writer stores ``*.key`` and kubeconfigs with mode 0600.

Every component mounts its own secrets sub-directory (``<secrets_dir>/<component>``) read-only
at the same path inside the container, so flag paths are host paths.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass
from typing import Any

import yaml

from kos.resources.k8s import (
    APISERVER_ID,
    CONTROLLER_MANAGER_ID,
    SCHEDULER_ID,
    APIServerConfigSpec,
    ControllerManagerConfigSpec,
    SchedulerConfigSpec,
)
from kos.resources.machineconfig.v1alpha1 import Config
from kos.resources.pki import render_kubeconfig
from kos.resources.secrets import EtcdCertsSpec, KubernetesCertsSpec, KubernetesRootSpec
from kos.resources.versions import KUBERNETES_VERSION

DEFAULT_VERSION = KUBERNETES_VERSION
DEFAULT_IMAGES = {
    APISERVER_ID: f"registry.k8s.io/kube-apiserver:{DEFAULT_VERSION}",
    CONTROLLER_MANAGER_ID: f"registry.k8s.io/kube-controller-manager:{DEFAULT_VERSION}",
    SCHEDULER_ID: f"registry.k8s.io/kube-scheduler:{DEFAULT_VERSION}",
}
PORTS = {APISERVER_ID: 6443, CONTROLLER_MANAGER_ID: 10257, SCHEDULER_ID: 10259}
DEFAULT_ADMISSION_PLUGINS = ["NodeRestriction"]
AUDIT_LOG_DIR = "/var/log/audit/kube"
LOCAL_ETCD = "https://localhost:2379"

DEFAULT_AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "rules": [{"level": "Metadata"}],
}

# flags naming files kos writes: extraArgs may not point them elsewhere
PROTECTED_FLAGS = {
    APISERVER_ID: {"etcd-cafile", "etcd-certfile", "etcd-keyfile", "tls-cert-file", "tls-private-key-file",
                   "client-ca-file", "service-account-key-file", "service-account-signing-key-file",
                   "encryption-provider-config", "kubelet-client-certificate", "kubelet-client-key",
                   "proxy-client-cert-file", "proxy-client-key-file", "requestheader-client-ca-file"},
    CONTROLLER_MANAGER_ID: {"kubeconfig", "authentication-kubeconfig", "authorization-kubeconfig",
                            "cluster-signing-cert-file", "cluster-signing-key-file", "root-ca-file",
                            "service-account-private-key-file"},
    SCHEDULER_ID: {"kubeconfig", "authentication-kubeconfig", "authorization-kubeconfig"},
}

CONFIG_PATHS = {APISERVER_ID: "cluster.apiServer", CONTROLLER_MANAGER_ID: "cluster.controllerManager",
                SCHEDULER_ID: "cluster.scheduler"}


class ControlPlaneRenderError(ValueError):
    """Config or material the control plane cannot run with (names field and value)."""


@dataclass(frozen=True)
class ControlPlaneMaterial:
    """PEM text of everything the control plane's files hold."""

    ca_cert: str
    ca_key: str
    apiserver_cert: str
    apiserver_key: str
    apiserver_kubelet_client_cert: str
    apiserver_kubelet_client_key: str
    front_proxy_ca_cert: str
    front_proxy_client_cert: str
    front_proxy_client_key: str
    service_account_public_key: str
    service_account_private_key: str
    controller_manager_cert: str
    controller_manager_key: str
    scheduler_cert: str
    scheduler_key: str
    etcd_ca_cert: str
    etcd_client_cert: str
    etcd_client_key: str
    secretbox_secret: str

    @classmethod
    def from_secrets(cls, certs: KubernetesCertsSpec, root: KubernetesRootSpec,
                     etcd: EtcdCertsSpec) -> ControlPlaneMaterial:
        """From the secrets resources; the API server talks to etcd with etcd's admin client
        certificate (EtcdCerts has no separate apiserver client)."""
        return cls(
            ca_cert=certs.ca_cert or root.ca_cert, ca_key=root.ca_key,
            apiserver_cert=certs.apiserver_cert, apiserver_key=certs.apiserver_key,
            apiserver_kubelet_client_cert=certs.apiserver_kubelet_client_cert,
            apiserver_kubelet_client_key=certs.apiserver_kubelet_client_key,
            front_proxy_ca_cert=certs.front_proxy_ca_cert or root.aggregator_ca_cert,
            front_proxy_client_cert=certs.front_proxy_client_cert,
            front_proxy_client_key=certs.front_proxy_client_key,
            service_account_public_key=certs.service_account_public_key,
            service_account_private_key=certs.service_account_private_key,
            controller_manager_cert=certs.controller_manager_cert, controller_manager_key=certs.controller_manager_key,
            scheduler_cert=certs.scheduler_cert, scheduler_key=certs.scheduler_key,
            etcd_ca_cert=etcd.ca_cert, etcd_client_cert=etcd.admin_cert, etcd_client_key=etcd.admin_key,
            secretbox_secret=root.secretbox_encryption_secret,
        )

    def missing(self) -> list[str]:
        return [k for k, v in self.__dict__.items() if not v]


# --- machine config -> component configs ------------------------------------------------


def _volumes_to_str(path: str, vols: list[dict[str, Any]]) -> list[str]:
    out = []
    for i, v in enumerate(vols):
        host, mount = v.get("hostPath", ""), v.get("mountPath", "")
        if not str(host).startswith("/") or not str(mount).startswith("/"):
            raise ControlPlaneRenderError(
                f"{path}.extraVolumes[{i}]: hostPath {host!r} / mountPath {mount!r}: expected absolute paths")
        name = v.get("name") or f"extra-{i}"
        out.append(f"{name}:{host}:{mount}:{'ro' if v.get('readonly') else 'rw'}")
    return out


def configs_from_machine(cfg: Config, *, advertised_address: str = "") -> tuple[
        APIServerConfigSpec, ControllerManagerConfigSpec, SchedulerConfigSpec]:
    """The three component configs from ``cluster.*`` (defaults filled in)."""
    c = cfg.cluster
    services = list(c.network.service_subnets) or ["10.96.0.0/12"]
    pods = list(c.network.pod_subnets) or ["10.244.0.0/16"]
    for path, subnets in (("cluster.network.serviceSubnets", services), ("cluster.network.podSubnets", pods)):
        for s in subnets:
            try:
                ipaddress.ip_network(s)
            except ValueError as exc:
                raise ControlPlaneRenderError(f"{path}: {s!r} is invalid, expected a CIDR ({exc})") from None
    plugins = list(DEFAULT_ADMISSION_PLUGINS)
    for a in c.api_server.admission_control:
        name = a.get("name")
        if isinstance(name, str) and name and name not in plugins:
            plugins.append(name)
    audit = yaml.safe_dump(dict(c.api_server.audit_policy), sort_keys=False) if c.api_server.audit_policy else ""
    port = c.control_plane.local_api_server_port or 6443
    api = APIServerConfigSpec(
        image=c.api_server.image or DEFAULT_IMAGES[APISERVER_ID],
        extra_args=dict(c.api_server.extra_args),
        extra_volumes=_volumes_to_str("cluster.apiServer", list(c.api_server.extra_volumes)),
        env=dict(c.api_server.env),
        port=port,
        cloud_provider="external" if c.external_cloud_provider.get("enabled") else "",
        control_plane_endpoint=c.control_plane.endpoint,
        etcd_servers=[LOCAL_ETCD],
        service_cidrs=services,
        advertised_address=advertised_address,
        admission_plugins=plugins,
        audit_policy=audit,
    )
    cm = ControllerManagerConfigSpec(
        image=c.controller_manager.image or DEFAULT_IMAGES[CONTROLLER_MANAGER_ID],
        extra_args=dict(c.controller_manager.extra_args),
        extra_volumes=_volumes_to_str("cluster.controllerManager", list(c.controller_manager.extra_volumes)),
        env=dict(c.controller_manager.env),
        enabled=not c.controller_manager.disabled,
        pod_cidrs=pods, service_cidrs=services, allocate_node_cidrs=True,
        cluster_name=c.cluster_name,
    )
    sched = SchedulerConfigSpec(
        image=c.scheduler.image or DEFAULT_IMAGES[SCHEDULER_ID],
        extra_args=dict(c.scheduler.extra_args),
        extra_volumes=_volumes_to_str("cluster.scheduler", list(c.scheduler.extra_volumes)),
        env=dict(c.scheduler.env),
        enabled=not c.scheduler.disabled,
    )
    return api, cm, sched


# --- rendering -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    """A static pod and its files (relative to the secrets dir)."""

    pod: dict[str, Any]
    files: dict[str, str]

    def pod_yaml(self) -> str:
        return str(yaml.safe_dump(self.pod, sort_keys=False))


def _merge_args(component: str, base: dict[str, str], extra: dict[str, str]) -> list[str]:
    flags = dict(base)
    for name, value in sorted(extra.items()):
        key = name.removeprefix("--")
        if key in PROTECTED_FLAGS[component]:
            raise ControlPlaneRenderError(
                f"{CONFIG_PATHS[component]}.extraArgs.{name}: {value!r} is refused, kos manages --{key}")
        flags[key] = value
    return [f"--{k}={v}" for k, v in sorted(flags.items())]


def _pod(component: str, image: str, args: list[str], secrets_dir: str, *, extra_volumes: list[str],
         env: dict[str, str], extra_host_dirs: tuple[tuple[str, str, bool], ...] = ()) -> dict[str, Any]:
    port = PORTS[component]
    sdir = f"{secrets_dir}/{component}"
    volumes: list[dict[str, Any]] = [{"name": "secrets", "hostPath": {"path": sdir, "type": "Directory"}}]
    mounts: list[dict[str, Any]] = [{"name": "secrets", "mountPath": sdir, "readOnly": True}]
    for name, path, ro in extra_host_dirs:
        volumes.append({"name": name, "hostPath": {"path": path, "type": "DirectoryOrCreate"}})
        mounts.append({"name": name, "mountPath": path, "readOnly": ro})
    for v in extra_volumes:
        name, host, mount, mode = v.split(":")
        volumes.append({"name": name, "hostPath": {"path": host}})
        mounts.append({"name": name, "mountPath": mount, "readOnly": mode == "ro"})
    container: dict[str, Any] = {
        "name": component,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": [f"/usr/local/bin/{component}"],
        "args": args,
        "ports": [{"name": "https", "containerPort": port, "protocol": "TCP"}],
        "livenessProbe": {
            "httpGet": {"host": "localhost", "path": "/livez" if component == APISERVER_ID else "/healthz",
                        "port": port, "scheme": "HTTPS"},
            "initialDelaySeconds": 15, "periodSeconds": 10, "timeoutSeconds": 15, "failureThreshold": 8,
        },
        # as kubeadm: up to 4 min to come up before the liveness probe counts (a slow machine's
        # apiserver serves after ~70 s and finishes its post-start hooks later; killing it at
        # ~95 s, as the liveness probe alone does, restarts it forever)
        "startupProbe": {
            "httpGet": {"host": "localhost", "path": "/livez" if component == APISERVER_ID else "/healthz",
                        "port": port, "scheme": "HTTPS"},
            "initialDelaySeconds": 10, "periodSeconds": 10, "timeoutSeconds": 15, "failureThreshold": 24,
        },
        "resources": {"requests": {"cpu": "200m" if component == APISERVER_ID else "50m",
                                   "memory": "512Mi" if component == APISERVER_ID else "256Mi"}},
        "volumeMounts": mounts,
    }
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in sorted(env.items())]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": component,
            "namespace": "kube-system",
            "labels": {"tier": "control-plane", "k8s-app": component, "component": component},
        },
        "spec": {
            "hostNetwork": True,
            "priorityClassName": "system-cluster-critical",
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [container],
            "volumes": volumes,
        },
    }


def encryption_config(secret_b64: str) -> str:
    """EncryptionConfiguration: secrets encrypted with secretbox (then identity for reads)."""
    try:
        raw = base64.b64decode(secret_b64.encode(), validate=True)
    except (binascii.Error, ValueError):
        raise ControlPlaneRenderError("cluster.secretboxEncryptionSecret: not valid base64") from None
    if len(raw) != 32:
        raise ControlPlaneRenderError(
            f"cluster.secretboxEncryptionSecret: decodes to {len(raw)} bytes, expected 32")
    doc = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [{
            "resources": ["secrets"],
            "providers": [{"secretbox": {"keys": [{"name": "key2", "secret": secret_b64}]}}, {"identity": {}}],
        }],
    }
    return str(yaml.safe_dump(doc, sort_keys=False))


def _require(m: ControlPlaneMaterial, *names: str) -> None:
    missing = [n for n in names if not getattr(m, n)]
    if missing:
        raise ControlPlaneRenderError(f"certificate material missing: {', '.join(missing)}")


def render_apiserver(cfg: APIServerConfigSpec, m: ControlPlaneMaterial, *, secrets_dir: str) -> Rendered:
    _require(m, "ca_cert", "apiserver_cert", "apiserver_key", "apiserver_kubelet_client_cert",
             "apiserver_kubelet_client_key", "front_proxy_ca_cert", "front_proxy_client_cert",
             "front_proxy_client_key", "service_account_public_key", "service_account_private_key",
             "etcd_ca_cert", "etcd_client_cert", "etcd_client_key", "secretbox_secret")
    if not cfg.etcd_servers:
        raise ControlPlaneRenderError("etcd servers: empty, expected at least one https:// URL")
    d = f"{secrets_dir}/{APISERVER_ID}"
    issuer = cfg.control_plane_endpoint or f"https://localhost:{cfg.port}"
    audit = cfg.audit_policy or yaml.safe_dump(DEFAULT_AUDIT_POLICY, sort_keys=False)
    files = {
        f"{APISERVER_ID}/ca.crt": m.ca_cert,
        f"{APISERVER_ID}/apiserver.crt": m.apiserver_cert,
        f"{APISERVER_ID}/apiserver.key": m.apiserver_key,
        f"{APISERVER_ID}/apiserver-kubelet-client.crt": m.apiserver_kubelet_client_cert,
        f"{APISERVER_ID}/apiserver-kubelet-client.key": m.apiserver_kubelet_client_key,
        f"{APISERVER_ID}/front-proxy-ca.crt": m.front_proxy_ca_cert,
        f"{APISERVER_ID}/front-proxy-client.crt": m.front_proxy_client_cert,
        f"{APISERVER_ID}/front-proxy-client.key": m.front_proxy_client_key,
        f"{APISERVER_ID}/service-account.pub": m.service_account_public_key,
        f"{APISERVER_ID}/service-account.key": m.service_account_private_key,
        f"{APISERVER_ID}/etcd-ca.crt": m.etcd_ca_cert,
        f"{APISERVER_ID}/etcd-client.crt": m.etcd_client_cert,
        f"{APISERVER_ID}/etcd-client.key": m.etcd_client_key,
        f"{APISERVER_ID}/encryptionconfig.yaml": encryption_config(m.secretbox_secret),
        f"{APISERVER_ID}/auditpolicy.yaml": audit,
    }
    base = {
        "allow-privileged": "true",
        "api-audiences": issuer,
        "audit-log-maxage": "30",
        "audit-log-maxbackup": "5",
        "audit-log-maxsize": "50",
        "audit-log-path": f"{AUDIT_LOG_DIR}/kube-apiserver.log",
        "audit-policy-file": f"{d}/auditpolicy.yaml",
        "authorization-mode": "Node,RBAC",
        "bind-address": "0.0.0.0",
        "client-ca-file": f"{d}/ca.crt",
        "enable-admission-plugins": ",".join(cfg.admission_plugins or DEFAULT_ADMISSION_PLUGINS),
        "enable-aggregator-routing": "true",
        "enable-bootstrap-token-auth": "true",
        "encryption-provider-config": f"{d}/encryptionconfig.yaml",
        "etcd-cafile": f"{d}/etcd-ca.crt",
        "etcd-certfile": f"{d}/etcd-client.crt",
        "etcd-keyfile": f"{d}/etcd-client.key",
        "etcd-servers": ",".join(cfg.etcd_servers),
        "kubelet-client-certificate": f"{d}/apiserver-kubelet-client.crt",
        "kubelet-client-key": f"{d}/apiserver-kubelet-client.key",
        "kubelet-preferred-address-types": "InternalIP,ExternalIP,Hostname",
        "profiling": "false",
        "proxy-client-cert-file": f"{d}/front-proxy-client.crt",
        "proxy-client-key-file": f"{d}/front-proxy-client.key",
        "requestheader-allowed-names": "front-proxy-client",
        "requestheader-client-ca-file": f"{d}/front-proxy-ca.crt",
        "requestheader-extra-headers-prefix": "X-Remote-Extra-",
        "requestheader-group-headers": "X-Remote-Group",
        "requestheader-username-headers": "X-Remote-User",
        "secure-port": str(cfg.port),
        "service-account-issuer": issuer,
        "service-account-key-file": f"{d}/service-account.pub",
        "service-account-signing-key-file": f"{d}/service-account.key",
        "service-cluster-ip-range": ",".join(cfg.service_cidrs),
        "tls-cert-file": f"{d}/apiserver.crt",
        "tls-min-version": "VersionTLS12",
        "tls-private-key-file": f"{d}/apiserver.key",
    }
    if cfg.advertised_address:
        base["advertise-address"] = cfg.advertised_address
    # kube-apiserver 1.32 has no --cloud-provider (removed in 1.31): nothing to pass it
    args = _merge_args(APISERVER_ID, base, cfg.extra_args)
    pod = _pod(APISERVER_ID, cfg.image, args, secrets_dir, extra_volumes=list(cfg.extra_volumes), env=cfg.env,
               extra_host_dirs=(("audit", AUDIT_LOG_DIR, False),))
    pod["spec"]["containers"][0]["ports"][0]["containerPort"] = cfg.port
    for probe in ("livenessProbe", "startupProbe"):
        pod["spec"]["containers"][0][probe]["httpGet"]["port"] = cfg.port
    return Rendered(pod, files)


def _local_kubeconfig(component: str, user: str, cert: str, key: str, ca: str, port: int) -> str:
    return render_kubeconfig(cluster="local", server=f"https://localhost:{port}", ca_pem=ca, user=user,
                             client_cert_pem=cert, client_key_pem=key)


def render_controller_manager(cfg: ControllerManagerConfigSpec, m: ControlPlaneMaterial, *, secrets_dir: str,
                              apiserver_port: int = 6443) -> Rendered:
    _require(m, "ca_cert", "ca_key", "controller_manager_cert", "controller_manager_key",
             "service_account_private_key")
    c = CONTROLLER_MANAGER_ID
    d = f"{secrets_dir}/{c}"
    files = {
        f"{c}/ca.crt": m.ca_cert,
        f"{c}/ca.key": m.ca_key,
        f"{c}/service-account.key": m.service_account_private_key,
        f"{c}/kubeconfig": _local_kubeconfig(c, "system:kube-controller-manager", m.controller_manager_cert,
                                             m.controller_manager_key, m.ca_cert, apiserver_port),
    }
    base = {
        "allocate-node-cidrs": "true" if cfg.allocate_node_cidrs else "false",
        "authentication-kubeconfig": f"{d}/kubeconfig",
        "authorization-kubeconfig": f"{d}/kubeconfig",
        "bind-address": "127.0.0.1",
        "cluster-signing-cert-file": f"{d}/ca.crt",
        "cluster-signing-key-file": f"{d}/ca.key",
        "configure-cloud-routes": "false",
        "controllers": "*,bootstrapsigner,tokencleaner",
        "kubeconfig": f"{d}/kubeconfig",
        "leader-elect": "true",
        "profiling": "false",
        "root-ca-file": f"{d}/ca.crt",
        "service-account-private-key-file": f"{d}/service-account.key",
        "service-cluster-ip-range": ",".join(cfg.service_cidrs),
        "tls-min-version": "VersionTLS12",
        "use-service-account-credentials": "true",
    }
    if cfg.allocate_node_cidrs:
        base["cluster-cidr"] = ",".join(cfg.pod_cidrs)
    if cfg.cluster_name:
        base["cluster-name"] = cfg.cluster_name
    args = _merge_args(c, base, cfg.extra_args)
    return Rendered(_pod(c, cfg.image, args, secrets_dir, extra_volumes=list(cfg.extra_volumes), env=cfg.env), files)


def render_scheduler(cfg: SchedulerConfigSpec, m: ControlPlaneMaterial, *, secrets_dir: str,
                     apiserver_port: int = 6443) -> Rendered:
    _require(m, "ca_cert", "scheduler_cert", "scheduler_key")
    c = SCHEDULER_ID
    d = f"{secrets_dir}/{c}"
    files = {f"{c}/kubeconfig": _local_kubeconfig(c, "system:kube-scheduler", m.scheduler_cert, m.scheduler_key,
                                                  m.ca_cert, apiserver_port)}
    base = {
        "authentication-kubeconfig": f"{d}/kubeconfig",
        "authorization-kubeconfig": f"{d}/kubeconfig",
        "bind-address": "127.0.0.1",
        "kubeconfig": f"{d}/kubeconfig",
        "leader-elect": "true",
        "profiling": "false",
        "tls-min-version": "VersionTLS12",
    }
    args = _merge_args(c, base, cfg.extra_args)
    return Rendered(_pod(c, cfg.image, args, secrets_dir, extra_volumes=list(cfg.extra_volumes), env=cfg.env), files)


def is_secret_file(rel_path: str) -> bool:
    """Files written 0600: private keys, kubeconfigs (they embed keys), the encryption config."""
    name = rel_path.rsplit("/", 1)[-1]
    return name.endswith(".key") or name == "kubeconfig" or name == "encryptionconfig.yaml"
