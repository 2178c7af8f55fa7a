"""SAN computation (pure): splitting, normalising, Kubernetes service IP, endpoint host."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kos.controllers.secrets import sans


def test_os_sans_include_hostname_fqdn_addresses_certsans_and_loopback() -> None:
    got = sans.os_sans(addresses=["10.5.0.2/24", "fd00::2/64"], hostname="node-1", domainname="lab.local",
                       cert_sans=["API.Example.", "192.0.2.7"])
    assert got.dns_names == ("api.example", "localhost", "node-1", "node-1.lab.local")
    assert got.ips == ("10.5.0.2", "127.0.0.1", "192.0.2.7", "::1", "fd00::2")


def test_k8s_sans() -> None:
    got = sans.k8s_sans(endpoint="https://cp.example:6443", dns_domain="corp.local",
                        service_subnets=["10.96.0.0/12", "fd00:10::/108"], addresses=["10.5.0.2/24"],
                        hostname="cp-1", cert_sans=["1.2.3.4"])
    assert "cp.example" in got.dns_names
    assert "kubernetes.default.svc.corp.local" in got.dns_names
    assert {"kubernetes", "kubernetes.default", "kubernetes.default.svc", "cp-1"} <= set(got.dns_names)
    assert "10.96.0.1" in got.ips and "1.2.3.4" in got.ips and "10.5.0.2" in got.ips


def test_service_ip_and_endpoint_host() -> None:
    assert sans.service_ip(["bad", "10.96.0.0/12"]) == "10.96.0.1"
    assert sans.service_ip([]) == ""
    assert sans.endpoint_host("https://[fd00::1]:6443") == "fd00::1"
    assert sans.endpoint_host("10.0.0.1:6443") == "10.0.0.1"
    assert sans.endpoint_host("") == ""


@given(st.lists(st.one_of(st.ip_addresses().map(str), st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True))))
def test_split_is_sorted_unique_and_partitions(entries: list[str]) -> None:
    got = sans.split_sans(entries)
    assert len(set(got.dns_names)) == len(got.dns_names)
    assert len(set(got.ips)) == len(got.ips)
    for ip in got.ips:
        ipaddress.ip_address(ip)
    assert list(got.dns_names) == sorted(got.dns_names)
    assert sans.split_sans(got.all) == got  # idempotent


async def _dynamic_identity() -> tuple[list[str], str, str]:
    from kos.controllers.runtime import Controller, Runtime
    from kos.controllers.secrets.certsans import network_inputs, node_identity
    from kos.resources.core import DynamicSpec, InMemoryState, Metadata, Resource

    state = InMemoryState()
    for type_, id_, text in (("NodeAddresses.net.kos.dev", "accumulative", "addresses: [10.9.0.1/24]\n"),
                             ("HostnameStatuses.net.kos.dev", "hostname", "hostname: n9\ndomainname: lab\n")):
        await state.create(Resource(Metadata("network", type_, id_), DynamicSpec(yaml=text)))
    got: list[tuple[list[str], str, str]] = []

    class Probe(Controller):
        name = "probe"

        def inputs(self):  # type: ignore[no-untyped-def]
            return network_inputs()

        def outputs(self):  # type: ignore[no-untyped-def]
            return ()

        async def run(self, rt):  # type: ignore[no-untyped-def]
            await rt.wait()
            got.append(await node_identity(rt))

    import anyio

    rt = Runtime(state)
    rt.register(Probe())
    async with anyio.create_task_group() as tg:
        tg.start_soon(rt.run)
        with anyio.fail_after(5):
            while not got:  # noqa: ASYNC110 - a one-shot probe
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    return got[0]


@pytest.mark.anyio
async def test_node_identity_reads_dynamic_specs() -> None:
    assert await _dynamic_identity() == (["10.9.0.1/24"], "n9", "lab")
