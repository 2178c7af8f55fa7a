"""Real certificate material for the k8s tests, issued the way the secrets controllers do
(Kubernetes CA, front-proxy CA, etcd CA, service-account key) with kos.resources.pki."""

from __future__ import annotations

import base64
import os

from kos.controllers.k8s.controlplane import ControlPlaneMaterial
from kos.resources.pki import (
    CertificateAndKey,
    generate_ca,
    generate_private_key,
    issue_certificate,
    private_key_pem,
    public_key_pem,
)

SERVICE_SUBNET = "10.96.0.0/12"
ENDPOINT = "https://10.5.0.2:6443"
TOKEN = "abcdef.0123456789abcdef"


class Material:
    def __init__(self) -> None:
        self.k8s_ca = generate_ca("kubernetes", organization="kubernetes")
        self.front_proxy_ca = generate_ca("front-proxy")
        self.etcd_ca = generate_ca("etcd", organization="etcd")
        sa = generate_private_key("ecdsa")
        self.sa_key = private_key_pem(sa).decode()
        self.sa_pub = public_key_pem(sa).decode()
        self.secretbox = base64.b64encode(os.urandom(32)).decode()
        self.apiserver = issue_certificate(
            self.k8s_ca, common_name="kube-apiserver", server=True,
            dns_names=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                       "kubernetes.default.svc.cluster.local"],
            ip_addresses=["127.0.0.1", "10.96.0.1", "10.5.0.2"])
        self.kubelet_client = issue_certificate(self.k8s_ca, common_name="apiserver-kubelet-client",
                                                organizations=["system:masters"], client=True)
        self.front_proxy_client = issue_certificate(self.front_proxy_ca, common_name="front-proxy-client", client=True)
        self.cm = issue_certificate(self.k8s_ca, common_name="system:kube-controller-manager", client=True)
        self.scheduler = issue_certificate(self.k8s_ca, common_name="system:kube-scheduler", client=True)
        self.etcd_client = issue_certificate(self.etcd_ca, common_name="kube-apiserver-etcd-client", client=True)

    def control_plane(self) -> ControlPlaneMaterial:
        s = _s
        return ControlPlaneMaterial(
            ca_cert=s(self.k8s_ca, 0), ca_key=s(self.k8s_ca, 1),
            apiserver_cert=s(self.apiserver, 0), apiserver_key=s(self.apiserver, 1),
            apiserver_kubelet_client_cert=s(self.kubelet_client, 0),
            apiserver_kubelet_client_key=s(self.kubelet_client, 1),
            front_proxy_ca_cert=s(self.front_proxy_ca, 0),
            front_proxy_client_cert=s(self.front_proxy_client, 0),
            front_proxy_client_key=s(self.front_proxy_client, 1),
            service_account_public_key=self.sa_pub, service_account_private_key=self.sa_key,
            controller_manager_cert=s(self.cm, 0), controller_manager_key=s(self.cm, 1),
            scheduler_cert=s(self.scheduler, 0), scheduler_key=s(self.scheduler, 1),
            etcd_ca_cert=s(self.etcd_ca, 0), etcd_client_cert=s(self.etcd_client, 0),
            etcd_client_key=s(self.etcd_client, 1), secretbox_secret=self.secretbox,
        )


def _s(pair: CertificateAndKey, i: int) -> str:
    return (pair.cert_pem if i == 0 else pair.key_pem).decode()


_CACHED: Material | None = None


def material() -> Material:
    """One set per test session (ECDSA issuing is fast, but 10 certs per test add up)."""
    global _CACHED
    if _CACHED is None:
        _CACHED = Material()
    return _CACHED
