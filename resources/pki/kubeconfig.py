"""Kubeconfig files: rendering (client certificate or bootstrap token), admin kubeconfigs
signed by the Kubernetes CA, and a structural check of a kubeconfig against its CA.

Everything here is a pure function over PEM text: used by the control-plane renderer
(controller-manager/scheduler kubeconfigs), the kubelet's bootstrap kubeconfig and
``kosctl kubeconfig`` (so it sits in the resources layer, below both).
"""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass
from typing import Any

import yaml

from kos.resources.pki.keys import load_private_key
from kos.resources.pki.verify import (
    PKIError,
    certificate_common_name,
    certificate_extended_usages,
    certificate_organizations,
    load_certificate,
    verify_chain,
)
from kos.resources.pki.x509 import CertificateAndKey, issue_certificate

ADMIN_CN = "admin"
ADMIN_ORG = "system:masters"


def _b64(pem: str | bytes) -> str:
    raw = pem.encode() if isinstance(pem, str) else pem
    return base64.b64encode(raw).decode()


def render_kubeconfig(
    *,
    cluster: str,
    server: str,
    ca_pem: str,
    user: str,
    client_cert_pem: str = "",
    client_key_pem: str = "",
    token: str = "",
    namespace: str = "",
) -> str:
    """A kubeconfig (v1 Config) with one cluster, one user, one context, current."""
    if not server.startswith("https://"):
        raise ValueError(f"kubeconfig server: {server!r} is invalid, expected an https:// URL")
    if bool(client_cert_pem) != bool(client_key_pem):
        raise ValueError("kubeconfig user: expected both a client certificate and key, or neither")
    if not token and not client_cert_pem:
        raise ValueError("kubeconfig user: expected a client certificate/key pair or a token")
    user_data: dict[str, str] = {}
    if client_cert_pem:
        user_data["client-certificate-data"] = _b64(client_cert_pem)
        user_data["client-key-data"] = _b64(client_key_pem)
    if token:
        user_data["token"] = token
    context_name = f"{user}@{cluster}"
    ctx: dict[str, str] = {"cluster": cluster, "user": user}
    if namespace:
        ctx["namespace"] = namespace
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)}}],
        "users": [{"name": user, "user": user_data}],
        "contexts": [{"name": context_name, "context": ctx}],
        "current-context": context_name,
        "preferences": {},
    }
    return str(yaml.safe_dump(doc, sort_keys=False))


def issue_client(
    ca_cert_pem: str, ca_key_pem: str, *, common_name: str, organizations: list[str],
    ttl: datetime.timedelta = datetime.timedelta(days=365),
) -> CertificateAndKey:
    """A client certificate (clientAuth) signed by the given CA."""
    ca = CertificateAndKey(ca_cert_pem.encode(), ca_key_pem.encode())
    return issue_certificate(ca, common_name=common_name, organizations=organizations, client=True, ttl=ttl)


def admin_kubeconfig(
    *, cluster: str, endpoint: str, ca_cert_pem: str, ca_key_pem: str,
    ttl: datetime.timedelta = datetime.timedelta(days=365),
) -> str:
    """An admin kubeconfig (``admin`` in ``system:masters``) for ``endpoint``, freshly signed by
    the Kubernetes CA; the context is ``admin@<cluster>``."""
    pair = issue_client(ca_cert_pem, ca_key_pem, common_name=ADMIN_CN, organizations=[ADMIN_ORG], ttl=ttl)
    return render_kubeconfig(
        cluster=cluster, server=endpoint, ca_pem=ca_cert_pem, user="admin",
        client_cert_pem=pair.cert_pem.decode(), client_key_pem=pair.key_pem.decode(),
    )


@dataclass(frozen=True)
class KubeconfigInfo:
    server: str
    user: str
    common_name: str
    organizations: tuple[str, ...]
    token: str


def check_kubeconfig(text: str, ca_pem: str, *, expect_cn: str | None = None,
                     expect_orgs: tuple[str, ...] | None = None) -> KubeconfigInfo:
    """Check that a kubeconfig is well formed, its current context resolves, its CA is
    ``ca_pem``, and its client certificate (if any) chains to that CA, is a clientAuth
    certificate matching its key, with the expected CN/O. Raises ``ValueError`` naming the
    problem."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"kubeconfig: not YAML ({exc})") from None
    if not isinstance(doc, dict) or doc.get("apiVersion") != "v1" or doc.get("kind") != "Config":
        raise ValueError("kubeconfig: expected apiVersion v1, kind Config")
    ctx_name = doc.get("current-context")
    contexts = {c["name"]: c["context"] for c in doc.get("contexts") or []}
    if ctx_name not in contexts:
        raise ValueError(f"kubeconfig: current-context {ctx_name!r} is not one of {sorted(contexts)}")
    ctx = contexts[ctx_name]
    clusters = {c["name"]: c["cluster"] for c in doc.get("clusters") or []}
    users = {u["name"]: u["user"] for u in doc.get("users") or []}
    if ctx.get("cluster") not in clusters:
        raise ValueError(f"kubeconfig: context cluster {ctx.get('cluster')!r} is not defined")
    if ctx.get("user") not in users:
        raise ValueError(f"kubeconfig: context user {ctx.get('user')!r} is not defined")
    cl, us = clusters[ctx["cluster"]], users[ctx["user"]]
    server = str(cl.get("server", ""))
    if not server.startswith("https://"):
        raise ValueError(f"kubeconfig: cluster server {server!r} is not an https:// URL")
    ca_data = base64.b64decode(cl.get("certificate-authority-data", ""))
    if load_certificate(ca_data) != load_certificate(ca_pem.encode()):
        raise ValueError("kubeconfig: certificate-authority-data is not the expected CA")
    cn = ""
    orgs: tuple[str, ...] = ()
    if "client-certificate-data" in us:
        cert = base64.b64decode(us["client-certificate-data"])
        key = load_private_key(base64.b64decode(us.get("client-key-data", "")))
        try:
            verify_chain(cert, ca_pem.encode())
        except PKIError as exc:
            raise ValueError(f"kubeconfig: client certificate does not chain to the CA: {exc}") from None
        c = load_certificate(cert)
        if c.public_key() != key.public_key():
            raise ValueError("kubeconfig: client-key-data does not match client-certificate-data")
        if "client" not in certificate_extended_usages(c):
            raise ValueError("kubeconfig: client certificate lacks the clientAuth usage")
        cn, orgs = certificate_common_name(c), certificate_organizations(c)
    elif not us.get("token"):
        raise ValueError(f"kubeconfig: user {ctx['user']!r} has neither a client certificate nor a token")
    if expect_cn is not None and cn != expect_cn:
        raise ValueError(f"kubeconfig: client certificate CN is {cn!r}, expected {expect_cn!r}")
    if expect_orgs is not None and tuple(orgs) != tuple(expect_orgs):
        raise ValueError(f"kubeconfig: client certificate O is {list(orgs)}, expected {list(expect_orgs)}")
    return KubeconfigInfo(server, ctx["user"], cn, tuple(orgs), str(us.get("token", "")))
