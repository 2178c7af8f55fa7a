"""Issued-certificate controllers: APICerts, EtcdCerts, KubernetesCerts.

Each reissues its certificates when an input changes in a way the certificates show (a
different CA, different SANs) and when the earliest certificate reaches its renewal point
(``renew_fraction`` of its lifetime; a timer wakes the controller). Unchanged inputs keep
the existing certificates (no new resource version).

``APICertsController`` signs locally when the node holds the OS CA key (control planes);
otherwise (workers) it asks ``remote`` — a ``RemoteSigner`` such as
``kos.controllers.secrets.remote.TrustdSigner`` — with a CSR, retrying every
``retry_interval`` seconds until a control plane answers.
"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import structlog

from kos.controllers.runtime import Controller, ControllerRuntime, Input, Output
from kos.controllers.secrets import issue, sans
from kos.controllers.secrets.certsans import network_inputs, node_identity
from kos.resources import secrets as s
from kos.resources.core import Kind, Pointer, Resource
from kos.resources.pki import create_csr, generate_private_key, private_key_pem

log = structlog.get_logger("kos.controllers.secrets")

RemoteSigner = Callable[[bytes], Awaitable[tuple[bytes, bytes]]]
"""``await signer(csr_pem) -> (ca_pem, cert_pem)``; raises on failure (retried)."""


def _ptr(kind: Kind, id: str) -> Pointer:
    return Pointer(kind.namespace, kind.type, id)


def _set(spec: Any) -> Any:
    def apply(r: Resource[Any]) -> None:
        r.spec = spec

    return apply


class _IssuingController(Controller):
    """Run loop shared by the certificate controllers: reconcile on input changes and when
    the deadline ``reconcile`` returned passes."""

    output_kind: Kind

    def __init__(self, *, ttl: datetime.timedelta = issue.DEFAULT_TTL,
                 renew_fraction: float = issue.DEFAULT_RENEW_FRACTION) -> None:
        if not 0 < renew_fraction < 1:
            raise ValueError(f"renew_fraction: {renew_fraction} is invalid, expected between 0 and 1")
        self.ttl = ttl
        self.renew_fraction = renew_fraction

    def outputs(self) -> Sequence[Output]:
        return (Output(self.output_kind.type),)

    async def run(self, rt: ControllerRuntime) -> None:
        deadline: float | None = None
        while True:
            delay = math.inf if deadline is None else max(0.0, deadline - time.time())
            with anyio.move_on_after(delay):
                await rt.wait()
            rt.start_tracking_outputs()
            due = await self.reconcile(rt)
            await rt.cleanup_outputs(self.output_kind)
            deadline = due.timestamp() if due is not None else None

    async def reconcile(self, rt: ControllerRuntime) -> datetime.datetime | None:
        raise NotImplementedError

    def fresh(self, cert: str, ca: str, san: sans.SANs | s.CertSANSpec | None = None) -> bool:
        if san is None:
            return issue.is_current(cert, ca, fraction=self.renew_fraction)
        return issue.is_current(cert, ca, dns_names=san.dns_names, ips=san.ips, fraction=self.renew_fraction)

    def due(self, *certs: str) -> datetime.datetime | None:
        return issue.next_renewal(certs, self.renew_fraction)


class APICertsController(_IssuingController):
    name = "secrets.APICertsController"
    output_kind = s.API_CERTS

    def __init__(self, *, remote: RemoteSigner | None = None, retry_interval: float = 5.0,
                 ttl: datetime.timedelta = issue.DEFAULT_TTL,
                 renew_fraction: float = issue.DEFAULT_RENEW_FRACTION) -> None:
        super().__init__(ttl=ttl, renew_fraction=renew_fraction)
        self.remote = remote
        self.retry_interval = retry_interval

    def inputs(self) -> Sequence[Input]:
        return (Input(s.NAMESPACE, s.OS_ROOT.type, s.OS_ROOT_ID),
                Input(s.NAMESPACE, s.CERT_SANS.type, s.CERT_SANS_OS_ID))

    async def reconcile(self, rt: ControllerRuntime) -> datetime.datetime | None:
        root_r = await rt.get_or_none(_ptr(s.OS_ROOT, s.OS_ROOT_ID))
        san_r = await rt.get_or_none(_ptr(s.CERT_SANS, s.CERT_SANS_OS_ID))
        if root_r is None or san_r is None or not root_r.spec.ca_cert:
            return None
        root: s.OSRootSpec = root_r.spec
        san: s.CertSANSpec = san_r.spec
        ptr = _ptr(s.API_CERTS, s.API_CERTS_ID)
        cur_r = await rt.get_or_none(ptr)
        cur: s.APICertsSpec | None = cur_r.spec if cur_r is not None else None
        if cur is not None and self.fresh(cur.server_cert, root.ca_cert, san) and \
                self.fresh(cur.client_cert, root.ca_cert):
            await rt.modify(Resource.new(s.APICertsSpec(), s.API_CERTS_ID), lambda r: None)
            return self.due(cur.server_cert, cur.client_cert)
        if root.can_issue:
            spec = await anyio.to_thread.run_sync(lambda: issue.api_certs(root, san, ttl=self.ttl))
        elif self.remote is not None:
            try:
                spec = await self._remote(root, san)
            except Exception as exc:  # unreachable control plane, wrong token...: retry later
                log.warning("no API certificate from a control plane yet; retrying", error=str(exc),
                            retry_in=self.retry_interval)
                if cur is not None:
                    await rt.modify(Resource.new(s.APICertsSpec(), s.API_CERTS_ID), lambda r: None)
                return datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=self.retry_interval)
        else:
            return None
        await rt.modify(Resource.new(s.APICertsSpec(), s.API_CERTS_ID), _set(spec))
        log.info("API certificates issued", dns=san.dns_names, ips=san.ips, local=root.can_issue)
        return self.due(spec.server_cert, spec.client_cert)

    async def _remote(self, root: s.OSRootSpec, san: s.CertSANSpec) -> s.APICertsSpec:
        assert self.remote is not None
        cn = san.fqdn or (san.dns_names[0] if san.dns_names else "kos-node")
        key_pem, csr = await anyio.to_thread.run_sync(lambda: _key_and_csr(cn, san))
        _ca, crt = await self.remote(csr)
        if not issue.is_current(crt.decode(), root.ca_cert, fraction=self.renew_fraction):
            raise ValueError("the control plane's certificate does not chain to this node's OS CA")
        cert = crt.decode()
        return s.APICertsSpec(ca_cert=root.ca_cert, server_cert=cert, server_key=key_pem, client_cert=cert,
                              client_key=key_pem)


def _key_and_csr(cn: str, san: s.CertSANSpec) -> tuple[str, bytes]:
    key = private_key_pem(generate_private_key("ecdsa"))
    return key.decode(), create_csr(key, common_name=cn, dns_names=san.dns_names, ip_addresses=san.ips)


class EtcdCertsController(_IssuingController):
    name = "secrets.EtcdCertsController"
    output_kind = s.ETCD_CERTS

    def __init__(self, *, extra_names: Sequence[str] = (), ttl: datetime.timedelta = issue.DEFAULT_TTL,
                 renew_fraction: float = issue.DEFAULT_RENEW_FRACTION) -> None:
        super().__init__(ttl=ttl, renew_fraction=renew_fraction)
        self.extra_names = [n for n in extra_names if n and n not in ("0.0.0.0", "::")]

    def inputs(self) -> Sequence[Input]:
        return (Input(s.NAMESPACE, s.ETCD_ROOT.type, s.ETCD_ROOT_ID), *network_inputs())

    async def reconcile(self, rt: ControllerRuntime) -> datetime.datetime | None:
        root_r = await rt.get_or_none(_ptr(s.ETCD_ROOT, s.ETCD_ROOT_ID))
        if root_r is None or not root_r.spec.ca_key:
            return None
        root: s.EtcdRootSpec = root_r.spec
        addresses, hostname, domain = await node_identity(rt)
        san = sans.etcd_sans(addresses=[*addresses, *self.extra_names], hostname=hostname, domainname=domain)
        cur_r = await rt.get_or_none(_ptr(s.ETCD_CERTS, s.ETCD_CERTS_ID))
        cur: s.EtcdCertsSpec | None = cur_r.spec if cur_r is not None else None
        if cur is not None and self.fresh(cur.server_cert, root.ca_cert, san) and \
                self.fresh(cur.peer_cert, root.ca_cert, san) and self.fresh(cur.admin_cert, root.ca_cert):
            await rt.modify(Resource.new(s.EtcdCertsSpec(), s.ETCD_CERTS_ID), lambda r: None)
            return self.due(cur.server_cert, cur.peer_cert, cur.admin_cert)
        spec = await anyio.to_thread.run_sync(
            lambda: issue.etcd_certs(root, list(san.dns_names), list(san.ips), hostname, ttl=self.ttl))
        await rt.modify(Resource.new(s.EtcdCertsSpec(), s.ETCD_CERTS_ID), _set(spec))
        log.info("etcd certificates issued", dns=san.dns_names, ips=san.ips)
        return self.due(spec.server_cert, spec.peer_cert, spec.admin_cert)


class KubernetesCertsController(_IssuingController):
    name = "secrets.KubernetesCertsController"
    output_kind = s.K8S_CERTS

    def inputs(self) -> Sequence[Input]:
        return (Input(s.NAMESPACE, s.K8S_ROOT.type, s.K8S_ROOT_ID),
                Input(s.NAMESPACE, s.CERT_SANS.type, s.CERT_SANS_K8S_ID))

    async def reconcile(self, rt: ControllerRuntime) -> datetime.datetime | None:
        root_r = await rt.get_or_none(_ptr(s.K8S_ROOT, s.K8S_ROOT_ID))
        san_r = await rt.get_or_none(_ptr(s.CERT_SANS, s.CERT_SANS_K8S_ID))
        if root_r is None or san_r is None or not root_r.spec.ca_key or not root_r.spec.aggregator_ca_key:
            return None
        root: s.KubernetesRootSpec = root_r.spec
        san: s.CertSANSpec = san_r.spec
        cur_r = await rt.get_or_none(_ptr(s.K8S_CERTS, s.K8S_CERTS_ID))
        cur: s.KubernetesCertsSpec | None = cur_r.spec if cur_r is not None else None
        if cur is not None and self._current(cur, root, san):
            await rt.modify(Resource.new(s.KubernetesCertsSpec(), s.K8S_CERTS_ID), lambda r: None)
            return self.due(*_leaves(cur))
        spec = await anyio.to_thread.run_sync(lambda: issue.k8s_certs(root, san, ttl=self.ttl))
        await rt.modify(Resource.new(s.KubernetesCertsSpec(), s.K8S_CERTS_ID), _set(spec))
        log.info("kubernetes certificates issued", dns=san.dns_names, ips=san.ips)
        return self.due(*_leaves(spec))

    def _current(self, cur: s.KubernetesCertsSpec, root: s.KubernetesRootSpec, san: s.CertSANSpec) -> bool:
        if (cur.service_account_private_key != root.service_account_key or cur.endpoint != root.endpoint
                or cur.cluster_name != root.cluster_name):
            return False
        ca = root.ca_cert
        return (self.fresh(cur.apiserver_cert, ca, san)
                and self.fresh(cur.front_proxy_client_cert, root.aggregator_ca_cert)
                and all(self.fresh(c, ca) for c in (cur.apiserver_kubelet_client_cert, cur.controller_manager_cert,
                                                     cur.scheduler_cert, cur.admin_cert)))


def _leaves(spec: s.KubernetesCertsSpec) -> list[str]:
    return [spec.apiserver_cert, spec.apiserver_kubelet_client_cert, spec.front_proxy_client_cert,
            spec.controller_manager_cert, spec.scheduler_cert, spec.admin_cert]
