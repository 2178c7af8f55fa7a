"""Subject alternative names: which DNS names and IPs a node's certificates carry (pure).

* ``os_sans``: the node API certificate: hostname (and FQDN), node addresses, the
  config's ``machine.certSANs``, plus loopback (``localhost``, 127.0.0.1, ::1).
* ``k8s_sans``: the apiserver certificate: the control-plane endpoint host,
  ``kubernetes``, ``kubernetes.default``, ``kubernetes.default.svc``,
  ``kubernetes.default.svc.<dnsDomain>``, the service IP (first address of the first service
  subnet), ``cluster.apiServer.certSANs``, node addresses, hostname and loopback.
* ``etcd_sans``: etcd server/peer certificates: hostname, node addresses, loopback.

Entries that parse as IP addresses go to ``ips`` (normalised), everything else to
``dns_names``; both are sorted and unique. Addresses may be given with a prefix length
("10.5.0.2/24"), as ``NodeAddresses`` lists them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

LOOPBACK = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class SANs:
    dns_names: tuple[str, ...]
    ips: tuple[str, ...]

    @property
    def all(self) -> list[str]:
        return [*self.dns_names, *self.ips]


def _ip_of(entry: str) -> str | None:
    text = entry.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return str(ipaddress.ip_interface(text).ip) if "/" in text else str(ipaddress.ip_address(text))
    except ValueError:
        return None


def split_sans(entries: Iterable[str]) -> SANs:
    """Sort entries into IPs and DNS names (sorted, unique, empty strings dropped)."""
    ips: set[str] = set()
    dns: set[str] = set()
    for e in entries:
        e = e.strip()
        if not e:
            continue
        ip = _ip_of(e)
        if ip is not None:
            ips.add(ip)
        else:
            dns.add(e.lower().rstrip("."))
    return SANs(tuple(sorted(dns)), tuple(sorted(ips, key=lambda i: (ipaddress.ip_address(i).version,
                                                                    ipaddress.ip_address(i)))))


def host_names(hostname: str, domainname: str = "") -> list[str]:
    """The hostname and, with a domain, its FQDN."""
    if not hostname:
        return []
    return [hostname, f"{hostname}.{domainname}"] if domainname else [hostname]


def endpoint_host(endpoint: str) -> str:
    """The host part of a control-plane endpoint URL (``https://1.2.3.4:6443`` -> ``1.2.3.4``)."""
    if not endpoint:
        return ""
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    return parts.hostname or ""


def service_ip(service_subnets: Iterable[str]) -> str:
    """The kubernetes service IP: the first host address of the first service subnet."""
    for s in service_subnets:
        try:
            net = ipaddress.ip_network(s, strict=False)
        except ValueError:
            continue
        return str(net.network_address + 1)
    return ""


def os_sans(*, addresses: Iterable[str], hostname: str = "", domainname: str = "",
            cert_sans: Iterable[str] = (), extra: Iterable[str] = ()) -> SANs:
    return split_sans([*host_names(hostname, domainname), *addresses, *cert_sans, *extra, *LOOPBACK])


def k8s_sans(*, endpoint: str, dns_domain: str, service_subnets: Iterable[str], addresses: Iterable[str],
             hostname: str = "", domainname: str = "", cert_sans: Iterable[str] = ()) -> SANs:
    domain = dns_domain or "cluster.local"
    names = ["kubernetes", "kubernetes.default", "kubernetes.default.svc", f"kubernetes.default.svc.{domain}"]
    return split_sans([endpoint_host(endpoint), *names, service_ip(service_subnets), *cert_sans, *addresses,
                       *host_names(hostname, domainname), *LOOPBACK])


def etcd_sans(*, addresses: Iterable[str], hostname: str = "", domainname: str = "") -> SANs:
    return split_sans([*host_names(hostname, domainname), *addresses, *LOOPBACK])
