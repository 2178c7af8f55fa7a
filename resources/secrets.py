"""Secrets resources (namespace ``secrets``); every type is sensitive.

Root secrets come straight from the machine config (``kos.controllers.secrets.root``):

* ``OSRootSecrets`` (id ``os``): the OS (API) CA certificate and, on control planes only, its
  key; the certSANs the config asks for; the machine (trustd) token workers present.
* ``EtcdRootSecrets`` (id ``etcd``): the etcd CA certificate and key.
* ``KubernetesRootSecrets`` (id ``k8s``): Kubernetes CA, aggregator (front-proxy) CA,
  service-account key, bootstrap token, secretbox secret, control-plane endpoint, cluster name,
  DNS domain, service/pod subnets and the apiserver certSANs.

Derived from root secrets and node addresses (``kos.controllers.secrets``):

* ``CertSANs`` (ids ``os`` and ``k8s``): DNS names and IPs certificates must carry.
* ``APICerts`` (id ``api``): CA bundle, the node API server certificate and a client
  certificate (``os:admin``) used for node-to-node forwarding.
* ``EtcdCerts`` (id ``etcd``): etcd CA, server, peer and admin-client certificates.
* ``KubernetesCerts`` (id ``k8s-certs``): apiserver, apiserver-kubelet-client, front-proxy CA
  and client, service-account key pair, controller-manager/scheduler/admin client certificates.

All certificate and key fields are PEM text.
"""

from __future__ import annotations

from dataclasses import dataclass

from kos.resources.core import Kind, Spec, resource_type, spec_field

NAMESPACE = "secrets"

OS_ROOT_ID = "os"
ETCD_ROOT_ID = "etcd"
K8S_ROOT_ID = "k8s"
CERT_SANS_OS_ID = "os"
CERT_SANS_K8S_ID = "k8s"
API_CERTS_ID = "api"
ETCD_CERTS_ID = "etcd"
K8S_CERTS_ID = "k8s-certs"


@resource_type("OSRootSecrets.secrets.kos.dev", namespace=NAMESPACE, sensitive=True,
               print_columns=[("Cert SANs", "{.certSANs}")])
@dataclass
class OSRootSpec(Spec):
    """The OS CA (key empty on workers), extra API certificate SANs and the machine token."""

    ca_cert: str = spec_field(1, yaml="caCert", default="")
    ca_key: str = spec_field(2, yaml="caKey", default="", sensitive=True)
    cert_sans: list[str] = spec_field(3, yaml="certSANs", default_factory=list)
    token: str = spec_field(4, default="", sensitive=True)

    @property
    def can_issue(self) -> bool:
        """Whether this node holds the CA key (control planes) and can sign certificates."""
        return bool(self.ca_cert and self.ca_key)


@resource_type("EtcdRootSecrets.secrets.kos.dev", namespace=NAMESPACE, sensitive=True)
@dataclass
class EtcdRootSpec(Spec):
    """The etcd CA."""

    ca_cert: str = spec_field(1, yaml="caCert", default="")
    ca_key: str = spec_field(2, yaml="caKey", default="", sensitive=True)


@resource_type("KubernetesRootSecrets.secrets.kos.dev", namespace=NAMESPACE, sensitive=True,
               print_columns=[("Endpoint", "{.endpoint}"), ("Cluster", "{.clusterName}")])
@dataclass
class KubernetesRootSpec(Spec):
    """Kubernetes root material and the cluster facts certificates depend on."""

    ca_cert: str = spec_field(1, yaml="caCert", default="")
    ca_key: str = spec_field(2, yaml="caKey", default="", sensitive=True)
    aggregator_ca_cert: str = spec_field(3, yaml="aggregatorCACert", default="")
    aggregator_ca_key: str = spec_field(4, yaml="aggregatorCAKey", default="", sensitive=True)
    service_account_key: str = spec_field(5, yaml="serviceAccountKey", default="", sensitive=True)
    bootstrap_token: str = spec_field(6, yaml="bootstrapToken", default="", sensitive=True)
    secretbox_encryption_secret: str = spec_field(7, yaml="secretboxEncryptionSecret", default="", sensitive=True)
    endpoint: str = spec_field(8, default="")
    cluster_name: str = spec_field(9, yaml="clusterName", default="")
    dns_domain: str = spec_field(10, yaml="dnsDomain", default="cluster.local")
    service_subnets: list[str] = spec_field(11, yaml="serviceSubnets", default_factory=list)
    pod_subnets: list[str] = spec_field(12, yaml="podSubnets", default_factory=list)
    cert_sans: list[str] = spec_field(13, yaml="certSANs", default_factory=list)


@resource_type("CertSANs.secrets.kos.dev", namespace=NAMESPACE, sensitive=True,
               print_columns=[("DNS", "{.dnsNames}"), ("IPs", "{.ips}")])
@dataclass
class CertSANSpec(Spec):
    """Subject alternative names a certificate must carry (sorted, unique)."""

    dns_names: list[str] = spec_field(1, yaml="dnsNames", default_factory=list)
    ips: list[str] = spec_field(2, default_factory=list)
    fqdn: str = spec_field(3, default="")


@resource_type("APICerts.secrets.kos.dev", namespace=NAMESPACE, sensitive=True)
@dataclass
class APICertsSpec(Spec):
    """The node API (apid) certificates: CA bundle, server pair, forwarding client pair."""

    ca_cert: str = spec_field(1, yaml="caCert", default="")
    server_cert: str = spec_field(2, yaml="serverCert", default="")
    server_key: str = spec_field(3, yaml="serverKey", default="", sensitive=True)
    client_cert: str = spec_field(4, yaml="clientCert", default="")
    client_key: str = spec_field(5, yaml="clientKey", default="", sensitive=True)


@resource_type("EtcdCerts.secrets.kos.dev", namespace=NAMESPACE, sensitive=True)
@dataclass
class EtcdCertsSpec(Spec):
    """etcd's certificates: CA, server (client URLs), peer, and an admin client (etcdctl)."""

    ca_cert: str = spec_field(1, yaml="caCert", default="")
    server_cert: str = spec_field(2, yaml="serverCert", default="")
    server_key: str = spec_field(3, yaml="serverKey", default="", sensitive=True)
    peer_cert: str = spec_field(4, yaml="peerCert", default="")
    peer_key: str = spec_field(5, yaml="peerKey", default="", sensitive=True)
    admin_cert: str = spec_field(6, yaml="adminCert", default="")
    admin_key: str = spec_field(7, yaml="adminKey", default="", sensitive=True)


@resource_type("KubernetesCerts.secrets.kos.dev", namespace=NAMESPACE, sensitive=True)
@dataclass
class KubernetesCertsSpec(Spec):
    """Certificates a control plane's Kubernetes components need."""

    ca_cert: str = spec_field(1, yaml="caCert", default="")
    apiserver_cert: str = spec_field(2, yaml="apiServerCert", default="")
    apiserver_key: str = spec_field(3, yaml="apiServerKey", default="", sensitive=True)
    apiserver_kubelet_client_cert: str = spec_field(4, yaml="apiServerKubeletClientCert", default="")
    apiserver_kubelet_client_key: str = spec_field(5, yaml="apiServerKubeletClientKey", default="",
                                                   sensitive=True)
    front_proxy_ca_cert: str = spec_field(6, yaml="frontProxyCACert", default="")
    front_proxy_client_cert: str = spec_field(7, yaml="frontProxyClientCert", default="")
    front_proxy_client_key: str = spec_field(8, yaml="frontProxyClientKey", default="", sensitive=True)
    service_account_public_key: str = spec_field(9, yaml="serviceAccountPublicKey", default="")
    service_account_private_key: str = spec_field(10, yaml="serviceAccountPrivateKey", default="",
                                                  sensitive=True)
    controller_manager_cert: str = spec_field(11, yaml="controllerManagerCert", default="")
    controller_manager_key: str = spec_field(12, yaml="controllerManagerKey", default="", sensitive=True)
    scheduler_cert: str = spec_field(13, yaml="schedulerCert", default="")
    scheduler_key: str = spec_field(14, yaml="schedulerKey", default="", sensitive=True)
    admin_cert: str = spec_field(15, yaml="adminCert", default="")
    admin_key: str = spec_field(16, yaml="adminKey", default="", sensitive=True)
    endpoint: str = spec_field(17, default="")
    cluster_name: str = spec_field(18, yaml="clusterName", default="")


OS_ROOT = Kind(NAMESPACE, OSRootSpec.definition.type)
ETCD_ROOT = Kind(NAMESPACE, EtcdRootSpec.definition.type)
K8S_ROOT = Kind(NAMESPACE, KubernetesRootSpec.definition.type)
CERT_SANS = Kind(NAMESPACE, CertSANSpec.definition.type)
API_CERTS = Kind(NAMESPACE, APICertsSpec.definition.type)
ETCD_CERTS = Kind(NAMESPACE, EtcdCertsSpec.definition.type)
K8S_CERTS = Kind(NAMESPACE, KubernetesCertsSpec.definition.type)
