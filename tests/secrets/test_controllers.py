"""Secrets controllers on an in-memory state: root secrets from config, SANs from network
resources, issued certificates (chains, SANs, usages, roles), no-op stability, reissue on SAN
change, renewal with short lifetimes, workers without the CA key."""

from __future__ import annotations

import datetime
from typing import Any

import anyio
import pytest

from kos.controllers.runtime import Runtime
from kos.controllers.runtime.testing import assert_no_resource, assert_resources
from kos.controllers.secrets.assembly import secrets_controllers
from kos.controllers.secrets.root import root_secrets
from kos.resources import network as net
from kos.resources import secrets as s
from kos.resources.config import ACTIVE_ID, MachineConfigSpec
from kos.resources.core import InMemoryState, Pointer, Resource
from kos.resources.pki import (
    certificate_common_name,
    certificate_extended_usages,
    certificate_key_usages,
    certificate_organizations,
    certificate_sans,
    load_private_key,
    public_key_pem,
    verify_chain,
)
from tests.controllers.runtime.harness import running

from .fixtures import configs

pytestmark = pytest.mark.anyio


def test_root_secrets_controlplane_and_worker() -> None:
    cp, wk = configs()
    roots = root_secrets(cp.config)
    assert roots.os.can_issue and roots.os.token == cp.config.machine.token
    assert roots.etcd is not None and "BEGIN" in roots.etcd.ca_key
    assert roots.k8s is not None and roots.k8s.endpoint == "https://10.5.0.10:6443"
    assert "PRIVATE KEY" in roots.k8s.service_account_key
    worker = root_secrets(wk.config)
    assert worker.os.ca_cert and not worker.os.ca_key and not worker.os.can_issue
    assert worker.etcd is None
    # the kubelet's view only: the Kubernetes CA certificate, the bootstrap token, no key
    assert worker.k8s is not None and worker.k8s.ca_cert and not worker.k8s.ca_key and not worker.k8s.aggregator_ca_key
    assert worker.k8s.bootstrap_token == wk.config.cluster.token and not worker.k8s.service_account_key


def _ptr(kind: Any, id: str) -> Pointer:
    return Pointer(kind.namespace, kind.type, id)


async def _setup(config_text: str, **kw: Any) -> tuple[InMemoryState, Runtime]:
    state = InMemoryState(history_max=4096)
    rt = Runtime(state, backoff_initial=0.01, backoff_max=0.2)
    for c in secrets_controllers(**kw):
        rt.register(c)
    await state.create(Resource.new(MachineConfigSpec(config=config_text), ACTIVE_ID))
    await state.create(Resource.new(net.NodeAddressSpec(addresses=["10.5.0.2/24"]), "accumulative"))
    await state.create(Resource.new(net.HostnameStatusSpec(hostname="cp-1", domainname="lab"), "hostname"))
    return state, rt


async def test_controlplane_certificates() -> None:
    cp, _ = configs()
    state, rt = await _setup(cp.to_yaml())
    async with running(rt):
        res = await assert_resources(state, s.API_CERTS, [s.API_CERTS_ID], timeout=15)
        api: s.APICertsSpec = res[s.API_CERTS_ID].spec
        roots = root_secrets(cp.config)
        verify_chain(api.server_cert.encode(), roots.os.ca_cert.encode())
        got = certificate_sans(api.server_cert.encode())
        assert {"cp-1", "cp-1.lab", "localhost", "api.example"} <= set(got.dns_names)
        assert "10.5.0.2" in got
        assert certificate_extended_usages(api.server_cert.encode()) >= {"server"}
        assert certificate_organizations(api.client_cert.encode()) == ("os:impersonator",)

        etcd = (await assert_resources(state, s.ETCD_CERTS, [s.ETCD_CERTS_ID], timeout=15))[s.ETCD_CERTS_ID].spec
        assert roots.etcd is not None
        for crt in (etcd.server_cert, etcd.peer_cert, etcd.admin_cert):
            verify_chain(crt.encode(), roots.etcd.ca_cert.encode())
        assert "10.5.0.2" in certificate_sans(etcd.peer_cert.encode())
        assert certificate_extended_usages(etcd.peer_cert.encode()) == {"server", "client"}
        assert certificate_extended_usages(etcd.admin_cert.encode()) == {"client"}

        k8s = (await assert_resources(state, s.K8S_CERTS, [s.K8S_CERTS_ID], timeout=15))[s.K8S_CERTS_ID].spec
        assert roots.k8s is not None
        apiserver = certificate_sans(k8s.apiserver_cert.encode())
        for name in ("kubernetes.default.svc.cluster.local", "10.96.0.1", "10.5.0.10", "10.5.0.2", "cp-1"):
            assert name in apiserver, name
        assert certificate_extended_usages(k8s.apiserver_cert.encode()) == {"server"}
        assert "digital_signature" in certificate_key_usages(k8s.apiserver_cert.encode())
        assert certificate_organizations(k8s.apiserver_kubelet_client_cert.encode()) == ("system:masters",)
        assert certificate_common_name(k8s.controller_manager_cert.encode()) == "system:kube-controller-manager"
        assert certificate_common_name(k8s.scheduler_cert.encode()) == "system:kube-scheduler"
        verify_chain(k8s.front_proxy_client_cert.encode(), roots.k8s.aggregator_ca_cert.encode())
        assert k8s.service_account_public_key.encode() == public_key_pem(
            load_private_key(roots.k8s.service_account_key.encode()))

        # nothing changes: no new versions
        before = {k: (await state.get(_ptr(k, i))).metadata.version for k, i in (
            (s.API_CERTS, s.API_CERTS_ID), (s.ETCD_CERTS, s.ETCD_CERTS_ID), (s.K8S_CERTS, s.K8S_CERTS_ID))}
        # a new address: API and etcd certificates are reissued with it
        await state.update_with_conflicts(_ptr(net.NODE_ADDRESSES, "accumulative"),
                                          lambda r: setattr(r.spec, "addresses", ["10.5.0.2/24", "10.6.0.9/24"]))
        await assert_resources(state, s.API_CERTS, [s.API_CERTS_ID],
                               lambda r: "10.6.0.9" in certificate_sans(r.spec.server_cert.encode()), timeout=15)
        await assert_resources(state, s.ETCD_CERTS, [s.ETCD_CERTS_ID],
                               lambda r: "10.6.0.9" in certificate_sans(r.spec.server_cert.encode()), timeout=15)
        await assert_resources(state, s.K8S_CERTS, [s.K8S_CERTS_ID],
                               lambda r: "10.6.0.9" in certificate_sans(r.spec.apiserver_cert.encode()), timeout=15)
        assert (await state.get(_ptr(s.API_CERTS, s.API_CERTS_ID))).metadata.version != before[s.API_CERTS]

        # the config goes away: everything derived goes with it
        await state.destroy(Resource.new(MachineConfigSpec(), ACTIVE_ID).pointer)
        await assert_no_resource(state, _ptr(s.API_CERTS, s.API_CERTS_ID), timeout=15)
        await assert_no_resource(state, _ptr(s.OS_ROOT, s.OS_ROOT_ID), timeout=15)


async def test_unchanged_inputs_keep_versions() -> None:
    cp, _ = configs()
    state, rt = await _setup(cp.to_yaml())
    async with running(rt):
        await assert_resources(state, s.K8S_CERTS, [s.K8S_CERTS_ID], timeout=15)
        await assert_resources(state, s.API_CERTS, [s.API_CERTS_ID], timeout=15)
        await assert_resources(state, s.ETCD_CERTS, [s.ETCD_CERTS_ID], timeout=15)
        kinds = ((s.API_CERTS, s.API_CERTS_ID), (s.ETCD_CERTS, s.ETCD_CERTS_ID), (s.K8S_CERTS, s.K8S_CERTS_ID))
        before = {k.type: (await state.get(_ptr(k, i))).metadata.version for k, i in kinds}
        # the same hostname written again and an unrelated network change: no reissue
        await state.update_with_conflicts(_ptr(net.HOSTNAME_STATUSES, "hostname"),
                                          lambda r: setattr(r.spec, "hostname", "cp-1"))
        await state.update_with_conflicts(_ptr(net.NODE_ADDRESSES, "accumulative"),
                                          lambda r: setattr(r.spec, "addresses", ["10.5.0.2/24"]))
        await state.create(Resource.new(net.NodeAddressSpec(addresses=["10.9.9.9/8"]), "current"))
        await assert_resources(state, s.CERT_SANS, [s.CERT_SANS_OS_ID])
        await anyio.sleep(0.3)
        after = {k.type: (await state.get(_ptr(k, i))).metadata.version for k, i in kinds}
        assert after == before


async def test_renewal_with_short_lifetime() -> None:
    cp, _ = configs()
    state, rt = await _setup(cp.to_yaml(), ttl=datetime.timedelta(seconds=3), renew_fraction=0.5)
    async with running(rt):
        first = (await assert_resources(state, s.API_CERTS, [s.API_CERTS_ID], timeout=15))[s.API_CERTS_ID].spec
        renewed = await assert_resources(
            state, s.API_CERTS, [s.API_CERTS_ID], lambda r: r.spec.server_cert != first.server_cert, timeout=15)
        new = renewed[s.API_CERTS_ID].spec
        roots = root_secrets(cp.config)
        verify_chain(new.server_cert.encode(), roots.os.ca_cert.encode())
        # the renewed one was issued later than the first
        from kos.resources.pki import certificate_validity

        assert certificate_validity(new.server_cert.encode())[1] > certificate_validity(first.server_cert.encode())[1]


async def test_worker_gets_no_local_api_certificates_and_no_etcd_or_k8s() -> None:
    _, wk = configs()
    state, rt = await _setup(wk.to_yaml())
    async with running(rt):
        await assert_resources(state, s.OS_ROOT, [s.OS_ROOT_ID], lambda r: not r.spec.ca_key)
        await assert_resources(state, s.CERT_SANS, [s.CERT_SANS_OS_ID])
        await anyio.sleep(0.3)
        assert await state.get_or_none(_ptr(s.API_CERTS, s.API_CERTS_ID)) is None
        assert await state.get_or_none(_ptr(s.ETCD_ROOT, s.ETCD_ROOT_ID)) is None
        assert await state.get_or_none(_ptr(s.K8S_CERTS, s.K8S_CERTS_ID)) is None
        assert await state.get_or_none(_ptr(s.CERT_SANS, s.CERT_SANS_K8S_ID)) is None
