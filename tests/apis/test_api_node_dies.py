"""A client whose node dies in the middle of a call is told so: the connection was lost
mid-call and the node went away (UNAVAILABLE), not to check its client certificate; a
certificate the node refuses is still reported as such. The server is a real process
(SIGKILLed); the kos client and the dispatcher's forwarding map the loss the same way."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection as Pipe
from typing import Any

import anyio
import pytest
from grpclib.const import Status

from kos.apis import auth
from kos.apis.client import APIError, Connection
from kos.apis.gen.cosi import resource as rpb
from kos.apis.server.dispatch import Node
from kos.apis.server.machine import ConfigStore, MachineService
from kos.apis.server.serve import APIServer
from kos.apis.server.state import StateService
from kos.apis.tls import client_context, server_context
from kos.resources.core import InMemoryState, NamespaceSpec, Pointer, Resource
from kos.resources.pki import generate_ca, issue_certificate
from tests.support.loopback import loopback_pki, serve_state

pytestmark = pytest.mark.anyio
NS_TYPE = "Namespaces.meta.cosi.dev"


class _SlowGets(InMemoryState):
    async def get(self, ptr: Pointer) -> Resource[Any]:
        if ptr.id == "slow":
            await anyio.sleep(3600)
        return await super().get(ptr)


async def _serve(pipe: Pipe) -> None:
    st = _SlowGets()
    await st.create(Resource.new(NamespaceSpec(), "a", namespace="user"))
    async with serve_state(st, writable=["user"]) as api:
        pipe.send(api.server.port)
        await anyio.sleep(3600)


def _server_main(pipe: Pipe) -> None:
    anyio.run(_serve, pipe)


@pytest.fixture
def node() -> Iterator[tuple[int, int]]:
    """(pid, port) of a server process; killed by the test (or at the end)."""
    loopback_pki()  # the forked server shares the client's CA
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_server_main, args=(child,), daemon=True)
    proc.start()
    port = parent.recv()
    yield proc.pid, port  # type: ignore[misc]
    proc.kill()
    proc.join(10)


def _connect(port: int) -> Connection:
    pki = loopback_pki()
    return Connection(f"127.0.0.1:{port}", ca=pki.ca.cert_pem, identity=pki.client((auth.READER,)), timeout=30)


def _says_node_went_away(e: APIError) -> None:
    assert e.status == Status.UNAVAILABLE
    assert "lost in the middle of the call" in e.message and "went away" in e.message, e.message
    assert "certificate" not in e.message, e.message


async def test_a_watch_whose_node_dies_is_told_the_node_went_away(node: tuple[int, int]) -> None:
    pid, port = node
    req = bytes(rpb.WatchRequest(namespace="user", type=NS_TYPE, api_version=1,
                                 options=rpb.WatchOptions(bootstrap_contents=True)))
    async with _connect(port) as conn:
        with pytest.raises(APIError) as info, anyio.fail_after(20):
            async with conn.stream(auth.STATE + "Watch", req) as replies:
                n = 0
                async for _ in replies:
                    n += 1
                    if n == 3:  # established, the resource, BOOTSTRAPPED: now the node dies
                        os.kill(pid, signal.SIGKILL)
    _says_node_went_away(info.value)


async def test_a_unary_call_whose_node_dies_is_told_the_node_went_away(node: tuple[int, int]) -> None:
    pid, port = node
    async with _connect(port) as conn:
        get = rpb.GetRequest(namespace="user", type=NS_TYPE, id="a")
        await conn.unary(auth.STATE + "Get", bytes(get))  # the connection is up
        slow = bytes(rpb.GetRequest(namespace="user", type=NS_TYPE, id="slow"))
        killer = threading.Timer(0.5, os.kill, (pid, signal.SIGKILL))  # while the Get waits for its answer
        killer.start()
        with pytest.raises(APIError) as info, anyio.fail_after(20):
            await conn.unary(auth.STATE + "Get", slow)
        killer.join()
    _says_node_went_away(info.value)


async def test_a_refused_certificate_is_still_reported_as_such() -> None:
    other = generate_ca("someone-else", organization="x")
    stranger = issue_certificate(other, common_name="stranger", organizations=[auth.ADMIN], client=True)
    async with serve_state(InMemoryState()) as api:
        conn = Connection(api.endpoint, ca=api.pki.ca.cert_pem, identity=stranger, timeout=10)
        with pytest.raises(APIError) as info:
            await conn.unary(auth.MACHINE + "Version", b"")
        conn.close()
    assert info.value.status == Status.UNAVAILABLE
    assert "certificate" in info.value.message and "went away" not in info.value.message


async def test_a_forwarded_call_whose_target_dies_names_the_target(node: tuple[int, int], tmp_path: Any) -> None:
    """The endpoint node forwards a watch to the target (``node`` metadata); the target dies:
    the client hears from the endpoint that the target went away."""
    pid, port = node
    pki = loopback_pki()
    forward = client_context(pki.ca.cert_pem, pki.client((auth.IMPERSONATOR,)))
    endpoint = await APIServer.start(
        "127.0.0.1", 0, server_context(pki.server, pki.ca.cert_pem),
        node=Node(names=frozenset({"endpoint"}), port=0, forward_ssl=forward),
        state=StateService(InMemoryState(), auth.ResourcePolicy()),
        machine=MachineService(config=ConfigStore(tmp_path / "config.yaml")),
    )
    target = f"127.0.0.1:{port}"
    req = bytes(rpb.WatchRequest(namespace="user", type=NS_TYPE, api_version=1,
                                 options=rpb.WatchOptions(bootstrap_contents=True)))
    try:
        async with _connect(endpoint.port) as conn:
            with pytest.raises(APIError) as info, anyio.fail_after(20):
                async with conn.stream(auth.STATE + "Watch", req, node=target) as replies:
                    n = 0
                    async for _ in replies:
                        n += 1
                        if n == 3:
                            os.kill(pid, signal.SIGKILL)
    finally:
        await endpoint.close(grace=1.0)
    e = info.value
    assert e.status == Status.UNAVAILABLE
    assert e.message.startswith(f"node {target}: ") and "lost in the middle of the call" in e.message, e.message
    assert "certificate" not in e.message
