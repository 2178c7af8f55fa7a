"""The node's API certificates, kept under ``<state-dir>/pki``.

``ca.crt``/``ca.key``: the OS CA (copied in from the cluster secrets, or generated on first
start when absent); ``server.crt``/``server.key``: the API serving certificate for the node's
names and addresses; ``node.crt``/``node.key``: the ``os:impersonator`` client certificate
used to forward requests to other nodes. ``admin_config`` issues an ``os:admin`` client and
writes a kosconfig for it (what a lab or test needs to talk to a fresh node).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from kos.apis import auth
from kos.apis.client import ClientConfig, Context
from kos.apis.gen.kos import machine as pb
from kos.resources.pki import CertificateAndKey, generate_ca, issue_certificate


def _split_names(names: list[str]) -> tuple[list[str], list[str]]:
    dns, ips = [], []
    for n in names:
        try:
            ipaddress.ip_address(n)
            ips.append(n)
        except ValueError:
            dns.append(n)
    return dns, ips


@dataclass
class NodePKI:
    ca: CertificateAndKey
    server: CertificateAndKey
    node: CertificateAndKey

    @classmethod
    def load_or_create(cls, directory: Path, names: list[str]) -> NodePKI:
        directory.mkdir(parents=True, exist_ok=True)
        ca_crt, ca_key = directory / "ca.crt", directory / "ca.key"
        if ca_crt.exists():
            ca = CertificateAndKey.from_files(ca_crt, ca_key if ca_key.exists() else None)
        else:
            ca = generate_ca("kos", organization="kos")
            ca.to_files(ca_crt, ca_key)
        dns, ips = _split_names(names)
        pairs = {}
        for name, kw in (
            ("server", dict(common_name=dns[0] if dns else "kos-node", dns_names=dns, ip_addresses=ips, server=True)),
            ("node", dict(common_name="kos-node", organizations=[auth.IMPERSONATOR], client=True)),
        ):
            crt, key = directory / f"{name}.crt", directory / f"{name}.key"
            if crt.exists() and key.exists() and name != "server":
                pairs[name] = CertificateAndKey.from_files(crt, key)
                continue
            pair = issue_certificate(ca, **kw)  # type: ignore[arg-type]
            pair.to_files(crt, key)
            pairs[name] = pair
        return cls(ca, pairs["server"], pairs["node"])

    def client(self, roles: list[str], ttl_seconds: int, common_name: str = "kosctl") -> CertificateAndKey:
        return client_certificate(self.ca, roles, ttl_seconds, common_name)

    def client_config(self, name: str, endpoints: list[str], roles: list[str], ttl_seconds: int) -> ClientConfig:
        return client_config(self.ca, name, endpoints, roles, ttl_seconds)


def client_certificate(
    ca: CertificateAndKey, roles: list[str], ttl_seconds: int, common_name: str = "kosctl"
) -> CertificateAndKey:
    """A client certificate signed by ``ca`` carrying ``roles`` (as O=) for ``ttl_seconds``."""
    return issue_certificate(
        ca, common_name=common_name, organizations=roles, client=True, ttl=datetime.timedelta(seconds=ttl_seconds)
    )


def client_config(
    ca: CertificateAndKey, name: str, endpoints: list[str], roles: list[str], ttl_seconds: int
) -> ClientConfig:
    """A kosconfig with one context ``name``: a new client certificate from ``ca``."""
    pair = client_certificate(ca, roles, ttl_seconds)
    ctx = Context(endpoints=endpoints, nodes=[], ca=ca.cert_pem, crt=pair.cert_pem, key=pair.key_pem)
    return ClientConfig(context=name, contexts={name: ctx})


def issue_client_configuration(
    ca: CertificateAndKey, name: str, endpoints: list[str], roles: list[str], ttl_seconds: int
) -> pb.GenerateClientConfigurationResponse:
    """The GenerateClientConfiguration answer: certificate, key, CA and a kosconfig with them."""
    cfg = client_config(ca, name, endpoints, roles, ttl_seconds)
    ctx = cfg.contexts[name]
    return pb.GenerateClientConfigurationResponse(ca=ctx.ca, crt=ctx.crt, key=ctx.key, kosconfig=cfg.dump().encode())


def generate_client_configuration(
    pki: NodePKI, name: str, endpoints: list[str], roles: list[str], ttl_seconds: int
) -> pb.GenerateClientConfigurationResponse:
    return issue_client_configuration(pki.ca, name, endpoints, roles, ttl_seconds)
