"""CertSANs (ids ``os`` and ``k8s``) from the root secrets, the node's addresses
(``NodeAddresses.net.kos.dev`` id ``accumulative``: addresses the node ever had since boot,
so certificates never drop an address a client still uses) and its hostname
(``HostnameStatuses.net.kos.dev`` id ``hostname``). ``extra_names`` are names the
environment knows (process mode: the listen address, ``--node-name``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

from kos.controllers.runtime import Controller, ControllerRuntime, Input, Output
from kos.controllers.secrets import sans
from kos.resources import secrets as s
from kos.resources.core import DynamicSpec, Pointer, Resource

NETWORK_NS = "network"
NODE_ADDRESSES_TYPE = "NodeAddresses.net.kos.dev"
ADDRESSES_ID = "accumulative"
HOSTNAME_STATUS_TYPE = "HostnameStatuses.net.kos.dev"
HOSTNAME_ID = "hostname"


async def node_identity(rt: ControllerRuntime) -> tuple[list[str], str, str]:
    """(addresses, hostname, domainname) as the network resources say; empty when absent.
    Addresses inside the cluster's pod or service subnets (the CNI's ``cni0``/``flannel.1``)
    are not the node's: certificates would be re-issued, and every TLS client reconnect, each
    time a CNI comes up (Talos filters them the same way)."""
    addrs = await rt.get_or_none(Pointer(NETWORK_NS, NODE_ADDRESSES_TYPE, ADDRESSES_ID))
    host = await rt.get_or_none(Pointer(NETWORK_NS, HOSTNAME_STATUS_TYPE, HOSTNAME_ID))
    root = await rt.get_or_none(Pointer(s.NAMESPACE, s.K8S_ROOT.type, s.K8S_ROOT_ID))
    addresses = list(_field(addrs, "addresses") or [])
    if root is not None:
        addresses = without_cluster_subnets(addresses, [*root.spec.pod_subnets, *root.spec.service_subnets])
    return addresses, str(_field(host, "hostname") or ""), str(_field(host, "domainname") or "")


def without_cluster_subnets(addresses: Iterable[str], subnets: Iterable[str]) -> list[str]:
    """``addresses`` (``ip`` or ``ip/prefix``) that lie in none of ``subnets``."""
    nets = []
    for n in subnets:
        try:
            nets.append(ipaddress.ip_network(n, strict=False))
        except ValueError:
            continue
    out = []
    for a in addresses:
        try:
            ip = ipaddress.ip_interface(a).ip
        except ValueError:
            out.append(a)
            continue
        if not any(ip.version == n.version and ip in n for n in nets):
            out.append(a)
    return out


def _field(r: Resource[Any] | None, name: str) -> Any:
    if r is None:
        return None
    spec = r.spec
    if isinstance(spec, DynamicSpec):  # the network types are not imported in this process
        data = spec.to_yaml()
        return data.get(name) if isinstance(data, dict) else None
    return getattr(spec, name, None)


def network_inputs() -> tuple[Input, ...]:
    return (Input(NETWORK_NS, NODE_ADDRESSES_TYPE, ADDRESSES_ID), Input(NETWORK_NS, HOSTNAME_STATUS_TYPE, HOSTNAME_ID),
            Input(s.NAMESPACE, s.K8S_ROOT.type, s.K8S_ROOT_ID))


def _set(value: sans.SANs, fqdn: str) -> Any:
    def apply(r: Resource[Any]) -> None:
        r.spec = s.CertSANSpec(dns_names=list(value.dns_names), ips=list(value.ips), fqdn=fqdn)

    return apply


class CertSANsController(Controller):
    name = "secrets.CertSANsController"

    def __init__(self, extra_names: Iterable[str] = ()) -> None:
        self.extra_names = [n for n in extra_names if n and n not in ("0.0.0.0", "::")]

    def inputs(self) -> Sequence[Input]:
        return (Input(s.NAMESPACE, s.OS_ROOT.type, s.OS_ROOT_ID), *network_inputs())  # network_inputs has K8S_ROOT

    def outputs(self) -> Sequence[Output]:
        return (Output(s.CERT_SANS.type),)

    async def run(self, rt: ControllerRuntime) -> None:
        async for _ in rt.events():
            os_root = await rt.get_or_none(Pointer(s.NAMESPACE, s.OS_ROOT.type, s.OS_ROOT_ID))
            k8s_root = await rt.get_or_none(Pointer(s.NAMESPACE, s.K8S_ROOT.type, s.K8S_ROOT_ID))
            addresses, hostname, domain = await node_identity(rt)
            fqdn = f"{hostname}.{domain}" if hostname and domain else hostname
            rt.start_tracking_outputs()
            if os_root is not None:
                value = sans.os_sans(addresses=addresses, hostname=hostname, domainname=domain,
                                     cert_sans=os_root.spec.cert_sans, extra=self.extra_names)
                await rt.modify(Resource.new(s.CertSANSpec(), s.CERT_SANS_OS_ID), _set(value, fqdn))
            if k8s_root is not None and k8s_root.spec.ca_key:  # only nodes that issue Kubernetes certificates
                k = k8s_root.spec
                value = sans.k8s_sans(endpoint=k.endpoint, dns_domain=k.dns_domain, service_subnets=k.service_subnets,
                                      addresses=addresses, hostname=hostname, domainname=domain,
                                      cert_sans=k.cert_sans)
                await rt.modify(Resource.new(s.CertSANSpec(), s.CERT_SANS_K8S_ID), _set(value, fqdn))
            await rt.cleanup_outputs(s.CERT_SANS)
