"""Node forwarding keeps one connection per target node: many clients calling another node
through one endpoint (``-n``) share it, long watches beyond a channel's share get a sibling
connection, and unused connections are closed. Real mutual TLS on loopback; a counting proxy
in front of the target node counts the connections the endpoint opens."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import pytest

from kos.apis import auth
from kos.apis.client import Connection, GrpcState
from kos.apis.gen.kos import machine as pb
from kos.apis.server.dispatch import Node
from kos.apis.server.forwarding import ForwardChannels
from kos.apis.server.machine import ConfigStore, MachineService
from kos.apis.server.serve import APIServer
from kos.apis.server.state import StateService
from kos.apis.tls import PEMPair, client_context, server_context
from kos.resources.core import InMemoryState, Kind, NamespaceSpec
from tests.support.countingproxy import counting_proxy
from tests.support.loopback import loopback_pki

pytestmark = pytest.mark.anyio
USER = Kind("meta", NamespaceSpec.definition.type)


@asynccontextmanager
async def _api(node: Node, state: InMemoryState) -> AsyncIterator[APIServer]:
    pki = loopback_pki()
    with tempfile.TemporaryDirectory() as tmp:
        server = await APIServer.start(
            "127.0.0.1", 0, server_context(pki.server, pki.ca.cert_pem), node=node,
            state=StateService(state, auth.ResourcePolicy()),
            machine=MachineService(config=ConfigStore(Path(tmp) / "c.yaml")),
        )
        try:
            yield server
        finally:
            await server.close(grace=1.0)


def _client(port: int) -> Connection:
    pki = loopback_pki()
    return Connection(f"127.0.0.1:{port}", ca=pki.ca.cert_pem, identity=pki.client((auth.READER,)), timeout=20)


@asynccontextmanager
async def _endpoint_and_target(channels: ForwardChannels) -> AsyncIterator[tuple[int, str, object]]:
    pki = loopback_pki()
    impersonator = pki.client((auth.IMPERSONATOR,))
    forward_ssl = client_context(pki.ca.cert_pem, PEMPair(impersonator.cert_pem, impersonator.key_pem))
    async with _api(Node(names=frozenset({"b"}), port=0), InMemoryState()) as b, \
            counting_proxy("127.0.0.1", "127.0.0.1", b.port) as proxy, \
            _api(Node(names=frozenset({"a"}), port=0, forward_ssl=forward_ssl, forward_channels=channels),
                 InMemoryState()) as a:
        yield a.port, f"127.0.0.1:{proxy.port}", proxy


async def test_clients_share_one_connection_per_target_node() -> None:
    channels = ForwardChannels(idle_close=0.5)
    async with _endpoint_and_target(channels) as (port, target, proxy):

        async def client() -> None:
            async with _client(port) as conn:  # a connection of its own, like one kosctl
                for _ in range(3):
                    v = pb.VersionResponse().parse(await conn.unary(auth.MACHINE + "Version", b"", node=target))
                    assert v.metadata.hostname == target
                assert await GrpcState(conn, node=target).list(USER) is not None

        async with anyio.create_task_group() as tg:
            for _ in range(60):
                tg.start_soon(client)
        assert proxy.accepted == 1  # type: ignore[attr-defined]
        assert channels.count() == 1
        await anyio.sleep(1.5)  # unused: closed after idle_close
        assert channels.count() == 0


async def test_long_watches_beyond_a_channels_share_get_a_sibling() -> None:
    channels = ForwardChannels(streams_per_channel=10, idle_close=0.5)
    async with _endpoint_and_target(channels) as (port, target, proxy), _client(port) as conn:
        state = GrpcState(conn, node=target)
        async with anyio.create_task_group() as tg:

            async def watch(*, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
                async with state.watch_kind_aggregated(USER, bootstrap_contents=True) as batches:
                    await anext(aiter(batches))
                    task_status.started()
                    await anyio.sleep_forever()

            with anyio.fail_after(20):
                for _ in range(25):
                    await tg.start(watch)
            assert channels.count() == 3 and proxy.accepted == 3  # type: ignore[attr-defined]
            # a call meanwhile is not queued behind the watches
            with anyio.fail_after(5):
                await conn.unary(auth.MACHINE + "Version", b"", node=target)
            tg.cancel_scope.cancel()
