"""Root secrets from the active machine config (config -> OSRootSecrets, EtcdRootSecrets,
KubernetesRootSecrets).

``root_secrets(cfg)`` is pure. Every node gets ``OSRootSecrets`` (workers: the CA
certificate without its key, as their config carries no key); control planes also get the
etcd and Kubernetes roots. Certificates/keys in the config are base64 PEM; a value that does
not decode is a ``ValueError`` naming the YAML path, and the controller then keeps the
previous secrets (the apply path validates before storing, so this only guards a broken
STATE file).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from kos.controllers.runtime import Controller, ControllerRuntime, Input, Output
from kos.resources import secrets as s
from kos.resources.config import ACTIVE_ID, MachineConfigSpec, is_control_plane
from kos.resources.config import NAMESPACE as CONFIG_NS
from kos.resources.core import Resource
from kos.resources.machineconfig.v1alpha1 import Config, PEMEncodedCertificateAndKey, PEMEncodedKey

log = structlog.get_logger("kos.controllers.secrets.root")


@dataclass
class RootSecrets:
    os: s.OSRootSpec
    etcd: s.EtcdRootSpec | None
    k8s: s.KubernetesRootSpec | None


def _pem(value: PEMEncodedCertificateAndKey, path: str) -> tuple[str, str]:
    out = []
    for half, text in (("crt", value.crt), ("key", value.key)):
        if not text:
            out.append("")
            continue
        try:
            out.append(PEMEncodedKey(text).pem().decode())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}.{half}: not a base64-encoded PEM ({exc})") from None
    return out[0], out[1]


def root_secrets(cfg: Config) -> RootSecrets:
    """The root secrets a node with this config holds."""
    m, c = cfg.machine, cfg.cluster
    os_crt, os_key = _pem(m.ca, "machine.ca")
    os_root = s.OSRootSpec(ca_cert=os_crt, ca_key=os_key, cert_sans=list(m.cert_sans), token=m.token)
    k8s_crt, k8s_key = _pem(c.ca, "cluster.ca")
    if not is_control_plane(cfg.machine_type):
        # a worker's kubelet needs the Kubernetes CA certificate (never its key), the bootstrap
        # token and the endpoint; it has no etcd root
        k8s_worker = s.KubernetesRootSpec(
            ca_cert=k8s_crt, bootstrap_token=c.token, endpoint=c.control_plane.endpoint, cluster_name=c.cluster_name,
            dns_domain=c.network.dns_domain or "cluster.local",
            service_subnets=list(c.network.service_subnets) or ["10.96.0.0/12"],
            pod_subnets=list(c.network.pod_subnets) or ["10.244.0.0/16"],
        )
        return RootSecrets(os_root, None, k8s_worker if k8s_crt else None)
    etcd_crt, etcd_key = _pem(c.etcd.ca, "cluster.etcd.ca")
    agg_crt, agg_key = _pem(c.aggregator_ca, "cluster.aggregatorCA")
    sa_key = ""
    if c.service_account.key:
        try:
            sa_key = c.service_account.pem().decode()
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"cluster.serviceAccount.key: not a base64-encoded PEM ({exc})") from None
    k8s = s.KubernetesRootSpec(
        ca_cert=k8s_crt, ca_key=k8s_key, aggregator_ca_cert=agg_crt, aggregator_ca_key=agg_key,
        service_account_key=sa_key, bootstrap_token=c.token, secretbox_encryption_secret=c.secretbox_encryption_secret,
        endpoint=c.control_plane.endpoint, cluster_name=c.cluster_name,
        dns_domain=c.network.dns_domain or "cluster.local",
        service_subnets=list(c.network.service_subnets) or ["10.96.0.0/12"],
        pod_subnets=list(c.network.pod_subnets) or ["10.244.0.0/16"],
        cert_sans=list(c.api_server.cert_sans),
    )
    return RootSecrets(os_root, s.EtcdRootSpec(ca_cert=etcd_crt, ca_key=etcd_key), k8s)


def _set(spec: Any) -> Any:
    def apply(r: Resource[Any]) -> None:
        r.spec = spec.copy()

    return apply


class RootSecretsController(Controller):
    """Active MachineConfig -> the root secrets (removed when the config goes away or, for the
    etcd/Kubernetes roots, when the node is not a control plane)."""

    name = "secrets.RootSecretsController"

    def inputs(self) -> Sequence[Input]:
        return (Input(CONFIG_NS, MachineConfigSpec.definition.type, ACTIVE_ID),)

    def outputs(self) -> Sequence[Output]:
        return (Output(s.OS_ROOT.type), Output(s.ETCD_ROOT.type), Output(s.K8S_ROOT.type))

    async def run(self, rt: ControllerRuntime) -> None:
        async for _ in rt.events():
            mc = await rt.get_or_none(Resource.new(MachineConfigSpec(), ACTIVE_ID).pointer)
            roots: RootSecrets | None = None
            if mc is not None:
                try:
                    roots = root_secrets(mc.spec.container().config)
                except ValueError as exc:
                    log.error("machine config has invalid secrets; keeping the current ones", error=str(exc))
                    continue
            rt.start_tracking_outputs()
            if roots is not None:
                await rt.modify(Resource.new(s.OSRootSpec(), s.OS_ROOT_ID), _set(roots.os))
                if roots.etcd is not None:
                    await rt.modify(Resource.new(s.EtcdRootSpec(), s.ETCD_ROOT_ID), _set(roots.etcd))
                if roots.k8s is not None:
                    await rt.modify(Resource.new(s.KubernetesRootSpec(), s.K8S_ROOT_ID), _set(roots.k8s))
            await rt.cleanup_outputs(s.OS_ROOT, s.ETCD_ROOT, s.K8S_ROOT)
