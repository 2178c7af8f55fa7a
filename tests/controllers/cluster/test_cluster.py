"""Cluster membership: identity persisted on STATE, the local affiliate from hostname,
addresses and machine type, Members following Affiliates, and the discovery registry over
real TLS with the machine token (expiry, refusal of a wrong token)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import grpclib.server
import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from kos.apis.tls import server_context
from kos.controllers.cluster.discovery import Registry, RegistryService, hello
from kos.controllers.cluster.local import IdentityController, LocalAffiliateController, load_or_create_node_id
from kos.controllers.cluster.members import member_controller
from kos.controllers.runtime import Runtime
from kos.controllers.runtime.testing import assert_no_resource, assert_resources
from kos.resources.cluster import AFFILIATES, IDENTITIES, MEMBERS, AffiliateSpec
from kos.resources.config import MachineTypeSpec
from kos.resources.core import InMemoryState, Resource
from kos.resources.network import HostnameStatusSpec, NodeAddressSpec
from kos.resources.pki import generate_ca, issue_certificate

pytestmark = pytest.mark.anyio


def _aff(node_id: str, hostname: str) -> Resource[Any]:
    return Resource.new(AffiliateSpec(node_id=node_id, hostname=hostname, machine_type="worker"), node_id)


def test_node_id_is_kept_on_state(tmp_path: Path) -> None:
    first = load_or_create_node_id(tmp_path)
    assert len(first) == 43 and load_or_create_node_id(tmp_path) == first
    (tmp_path / "node-id").unlink()  # a wiped STATE: a new identity
    assert load_or_create_node_id(tmp_path) != first


async def test_members_follow_local_and_remote_affiliates(tmp_path: Path) -> None:
    state = InMemoryState()
    rt = Runtime(state)
    for c in (IdentityController(tmp_path), LocalAffiliateController(), member_controller()):
        rt.register(c)
    async with anyio.create_task_group() as tg:
        tg.start_soon(rt.run)
        await state.create(Resource.new(HostnameStatusSpec(hostname="cp-1"), "hostname"))
        await state.create(Resource.new(NodeAddressSpec(addresses=["10.5.0.2/24"]), "current"))
        await state.create(Resource.new(MachineTypeSpec(machine_type="controlplane"), "machine-type"))
        ident = (await assert_resources(state, IDENTITIES, ["local"]))["local"]
        assert ident.spec.node_id == (tmp_path / "node-id").read_text().strip()
        got = await assert_resources(state, MEMBERS, ["cp-1"], lambda r: r.spec.machine_type == "controlplane")
        assert got["cp-1"].spec.addresses == ["10.5.0.2"] and got["cp-1"].spec.node_id == ident.spec.node_id
        # another node's affiliate (what discovery mirrors) becomes a member, and goes with it
        await state.create(_aff("other", "w-1"), owner="cluster.DiscoveryController")
        await assert_resources(state, MEMBERS, ["cp-1", "w-1"])
        await state.destroy(AFFILIATES.pointer("other"), owner="cluster.DiscoveryController")
        await assert_no_resource(state, MEMBERS.pointer("w-1"))
        tg.cancel_scope.cancel()


def test_registry_forgets_nodes_that_stop_saying_hello() -> None:
    reg = Registry(ttl=30)
    assert [r.id for r in reg.hello(_aff("a", "cp-1"), now=0)] == ["a"]
    assert [r.id for r in reg.hello(_aff("b", "w-1"), now=20)] == ["a", "b"]
    assert [r.id for r in reg.hello(_aff("b", "w-1"), now=40)] == ["b"]  # a expired at 30
    with pytest.raises(ValueError, match="nodeId"):
        reg.hello(_aff("", "x"), now=41)


async def test_registry_over_tls_requires_the_machine_token() -> None:
    ca = generate_ca("os")
    cert = issue_certificate(ca, common_name="cp-1", ip_addresses=["127.0.0.1"], server=True)

    async def token() -> str:
        return "s3cret"

    server = grpclib.server.Server([RegistryService(Registry(), token)])
    await server.start("127.0.0.1", 0, ssl=server_context(cert, None))
    port = server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        with pytest.raises(GRPCError) as info:
            await hello("127.0.0.1", port, "wrong", ca.cert_pem, _aff("a", "cp-1"))
        assert info.value.status == Status.PERMISSION_DENIED
        await hello("127.0.0.1", port, "s3cret", ca.cert_pem, _aff("a", "cp-1"))
        known = await hello("127.0.0.1", port, "s3cret", ca.cert_pem, _aff("b", "w-1"))
        assert [(r.spec.node_id, r.spec.hostname) for r in known] == [("a", "cp-1"), ("b", "w-1")]
        other_ca = generate_ca("not-ours")  # the server is verified against the cluster's CA
        with pytest.raises(OSError):
            await hello("127.0.0.1", port, "s3cret", other_ca.cert_pem, _aff("c", "w-2"))
    finally:
        server.close()
        await server.wait_closed()


async def test_registry_client_says_hello_over_one_kept_connection() -> None:
    """An idle node says hello every few seconds: one TLS connection for all of them, a new one
    only after a failure (or a new endpoint/CA)."""
    from kos.controllers.cluster.discovery import RegistryClient
    from tests.support.countingproxy import counting_proxy

    ca = generate_ca("os")
    cert = issue_certificate(ca, common_name="cp-1", ip_addresses=["127.0.0.1"], server=True)

    async def token() -> str:
        return "s3cret"

    server = grpclib.server.Server([RegistryService(Registry(), token)])
    await server.start("127.0.0.1", 0, ssl=server_context(cert, None))
    port = server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = RegistryClient()
    try:
        async with counting_proxy("127.0.0.1", "127.0.0.1", port) as proxy:
            for i in range(5):
                known = await client.hello("127.0.0.1", proxy.port, "s3cret", ca.cert_pem, _aff(f"n{i}", f"w-{i}"))
                assert len(known) == i + 1
            assert proxy.accepted == 1
            proxy.drop_all()  # the registry restarts: a new connection (at most one failed hello)
            await anyio.sleep(0.1)
            try:
                await client.hello("127.0.0.1", proxy.port, "s3cret", ca.cert_pem, _aff("x", "w-x"))
            except (OSError, GRPCError, StreamTerminatedError):
                await client.hello("127.0.0.1", proxy.port, "s3cret", ca.cert_pem, _aff("x", "w-x"))
            await client.hello("127.0.0.1", proxy.port, "s3cret", ca.cert_pem, _aff("y", "w-y"))
            assert proxy.accepted == 2
    finally:
        client.close()
        server.close()
        await server.wait_closed()
