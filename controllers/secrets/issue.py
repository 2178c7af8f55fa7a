"""Issuing the node's certificates (pure functions over PEM text) and deciding when an
existing certificate must be reissued.

A certificate is kept while it (1) verifies against the current CA, (2) carries exactly
the wanted SANs, and (3) has not reached its renewal point: ``renew_fraction`` of its
lifetime (default 0.5, i.e. renewed at half-life). ``renewal_due`` tells the controller
when to wake up next.

Key usages and EKUs (``kos.resources.pki.issue_certificate``): every leaf has
digitalSignature (+ keyEncipherment for non-Ed25519 server certificates); serverAuth for
servers, clientAuth for clients.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from kos.apis import auth
from kos.resources import secrets as s
from kos.resources.pki import (
    CLOCK_SKEW,
    CertificateAndKey,
    PKIError,
    certificate_sans,
    certificate_validity,
    issue_certificate,
    load_private_key,
    public_key_pem,
    verify_chain,
)

DEFAULT_TTL = datetime.timedelta(days=365)
DEFAULT_RENEW_FRACTION = 0.5


def _pair(cert: str, key: str) -> CertificateAndKey:
    return CertificateAndKey(cert.encode(), key.encode() if key else b"")


def renew_at(cert_pem: str, fraction: float = DEFAULT_RENEW_FRACTION) -> datetime.datetime:
    """When ``cert_pem`` should be renewed: ``fraction`` of its lifetime after issuance
    (issuance = notBefore + the clock-skew allowance the issuer backdates by)."""
    nb, na = certificate_validity(cert_pem.encode())
    issued = min(nb + CLOCK_SKEW, na)
    return issued + (na - issued) * fraction


def is_current(cert_pem: str, ca_pem: str, *, dns_names: Iterable[str] | None = None, ips: Iterable[str] | None = None,
               fraction: float = DEFAULT_RENEW_FRACTION, now: datetime.datetime | None = None) -> bool:
    """Whether an issued certificate can stay: chains to ``ca_pem``, has the wanted SANs (when
    given) and has not reached its renewal point."""
    if not cert_pem or not ca_pem:
        return False
    try:
        verify_chain(cert_pem.encode(), ca_pem.encode())
        have = certificate_sans(cert_pem.encode())
    except (PKIError, ValueError):
        return False
    if dns_names is not None and sorted(have.dns_names) != sorted(set(dns_names)):
        return False
    if ips is not None and sorted(str(i) for i in have.ip_addresses) != sorted(set(ips)):
        return False
    return (now or datetime.datetime.now(datetime.UTC)) < renew_at(cert_pem, fraction)


def next_renewal(certs: Iterable[str], fraction: float = DEFAULT_RENEW_FRACTION) -> datetime.datetime | None:
    """The earliest renewal point among ``certs`` (empty entries skipped)."""
    points = [renew_at(c, fraction) for c in certs if c]
    return min(points) if points else None


def _issue(ca: CertificateAndKey, ttl: datetime.timedelta, **kw: object) -> tuple[str, str]:
    pair = issue_certificate(ca, ttl=ttl, **kw)  # type: ignore[arg-type]
    return pair.cert_pem.decode(), pair.key_pem.decode()


def api_certs(root: s.OSRootSpec, san: s.CertSANSpec, *, ttl: datetime.timedelta = DEFAULT_TTL) -> s.APICertsSpec:
    """Node API certificates from the OS CA (which must have its key): a server certificate
    for every SAN (also clientAuth, as apid's) and an ``os:impersonator`` client certificate
    for forwarding requests to other nodes."""
    ca = _pair(root.ca_cert, root.ca_key)
    cn = san.fqdn or (san.dns_names[0] if san.dns_names else "kos-node")
    server = _issue(ca, ttl, common_name=cn, dns_names=san.dns_names, ip_addresses=san.ips, server=True, client=True)
    client = _issue(ca, ttl, common_name=cn, organizations=[auth.IMPERSONATOR], client=True)
    return s.APICertsSpec(ca_cert=root.ca_cert, server_cert=server[0], server_key=server[1],
                          client_cert=client[0], client_key=client[1])


def etcd_certs(root: s.EtcdRootSpec, dns_names: list[str], ips: list[str], hostname: str, *,
               ttl: datetime.timedelta = DEFAULT_TTL) -> s.EtcdCertsSpec:
    """etcd server (serverAuth+clientAuth: etcd also dials itself), peer (serverAuth+clientAuth)
    and admin client (clientAuth, CN ``root``) certificates."""
    ca = _pair(root.ca_cert, root.ca_key)
    cn = hostname or "etcd"
    server = _issue(ca, ttl, common_name=cn, dns_names=dns_names, ip_addresses=ips, server=True, client=True)
    peer = _issue(ca, ttl, common_name=cn, dns_names=dns_names, ip_addresses=ips, server=True, client=True)
    admin = _issue(ca, ttl, common_name="root", client=True)
    return s.EtcdCertsSpec(ca_cert=root.ca_cert, server_cert=server[0], server_key=server[1], peer_cert=peer[0],
                           peer_key=peer[1], admin_cert=admin[0], admin_key=admin[1])


SYSTEM_MASTERS = "system:masters"


def k8s_certs(root: s.KubernetesRootSpec, san: s.CertSANSpec, *,
              ttl: datetime.timedelta = DEFAULT_TTL) -> s.KubernetesCertsSpec:
    """The control plane's Kubernetes certificates (CNs/Os as kubeadm uses them)."""
    ca = _pair(root.ca_cert, root.ca_key)
    agg = _pair(root.aggregator_ca_cert, root.aggregator_ca_key)
    apiserver = _issue(ca, ttl, common_name="kube-apiserver", dns_names=san.dns_names, ip_addresses=san.ips,
                       server=True)
    kubelet_client = _issue(ca, ttl, common_name="apiserver-kubelet-client", organizations=[SYSTEM_MASTERS],
                            client=True)
    front_proxy = _issue(agg, ttl, common_name="front-proxy-client", client=True)
    cm = _issue(ca, ttl, common_name="system:kube-controller-manager", client=True)
    sched = _issue(ca, ttl, common_name="system:kube-scheduler", client=True)
    admin = _issue(ca, ttl, common_name="admin", organizations=[SYSTEM_MASTERS], client=True)
    sa_pub = public_key_pem(load_private_key(root.service_account_key.encode())).decode() \
        if root.service_account_key else ""
    return s.KubernetesCertsSpec(
        ca_cert=root.ca_cert, apiserver_cert=apiserver[0], apiserver_key=apiserver[1],
        apiserver_kubelet_client_cert=kubelet_client[0], apiserver_kubelet_client_key=kubelet_client[1],
        front_proxy_ca_cert=root.aggregator_ca_cert, front_proxy_client_cert=front_proxy[0],
        front_proxy_client_key=front_proxy[1], service_account_public_key=sa_pub,
        service_account_private_key=root.service_account_key, controller_manager_cert=cm[0],
        controller_manager_key=cm[1], scheduler_cert=sched[0], scheduler_key=sched[1], admin_cert=admin[0],
        admin_key=admin[1], endpoint=root.endpoint, cluster_name=root.cluster_name,
    )
