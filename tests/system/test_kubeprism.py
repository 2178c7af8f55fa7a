"""machine.features.kubePrism: a local TCP load balancer to the API servers (endpoints from the
control-plane endpoint, the node's own API server on control planes and the control-plane
members), switching to another API server when one goes away. Real sockets on loopback."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from anyio.abc import SocketStream

from kos.controllers.runtime.testing import assert_no_resource, assert_resources
from kos.controllers.system.kubeprism import KubePrismConfigController, KubePrismController, kubeprism_config
from kos.resources.cluster import NAMESPACE as CLUSTER_NS
from kos.resources.cluster import MemberSpec
from kos.resources.core import Resource
from kos.resources.k8s import KUBEPRISM_CONFIGS, KUBEPRISM_ID, KUBEPRISM_STATUSES
from kos.resources.machineconfig import ConfigContainer
from tests.system.helpers import running, set_config

pytestmark = pytest.mark.anyio


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def config(machine_type: str, endpoint_port: int, prism_port: int, api_port: int, enabled: bool = True) -> str:
    return f"""version: v1alpha1
machine:
  type: {machine_type}
  features: {{kubePrism: {{enabled: {str(enabled).lower()}, port: {prism_port}}}}}
cluster:
  controlPlane: {{endpoint: "https://127.0.0.1:{endpoint_port}", localAPIServerPort: {api_port}}}
"""


def test_endpoints_local_first_then_endpoint_then_members() -> None:
    c = ConfigContainer.load(config("controlplane", 6443, 7445, 6444), strict=False)
    members = [MemberSpec(hostname="cp-2", machine_type="controlplane", addresses=["10.5.0.3/24", "fd00::3/64",
                                                                                  "fe80::1/64"]),
               MemberSpec(hostname="w-1", machine_type="worker", addresses=["10.5.0.9/24"])]
    spec = kubeprism_config(c, members)
    assert spec is not None and spec.port == 7445
    assert spec.endpoints == ["127.0.0.1:6444", "127.0.0.1:6443", "10.5.0.3:6444", "[fd00::3]:6444"]
    assert kubeprism_config(ConfigContainer.load(config("worker", 1, 2, 3, enabled=False), strict=False)) is None


@asynccontextmanager
async def backend(host: str, port: int, name: bytes) -> AsyncIterator[None]:
    """A stand-in API server: answers every line with its name."""
    async def handle(stream: SocketStream) -> None:
        async with stream:
            async for data in stream:
                await stream.send(name + b":" + data)

    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield
        finally:
            tg.cancel_scope.cancel()


async def ask(port: int) -> bytes:
    with anyio.fail_after(10):
        async with await anyio.connect_tcp("127.0.0.1", port) as s:
            await s.send(b"ping")
            return await s.receive()


async def test_connections_go_to_a_live_api_server_and_fail_over() -> None:
    p1, api_port, prism = free_port(), free_port("127.0.0.2"), free_port()
    async with running([KubePrismConfigController(), KubePrismController(health_interval=0.2)]) as state:
        await state.create(Resource.new(MemberSpec(hostname="cp-2", machine_type="controlplane",
                                                   addresses=["127.0.0.2/8"]), "cp-2", namespace=CLUSTER_NS))
        async with backend("127.0.0.2", api_port, b"cp-2"):
            async with backend("127.0.0.1", p1, b"endpoint"):
                await set_config(state, config("worker", p1, prism, api_port))
                await assert_resources(state, KUBEPRISM_CONFIGS, [KUBEPRISM_ID], lambda r: r.spec.endpoints == [
                    f"127.0.0.1:{p1}", f"127.0.0.2:{api_port}"])
                await assert_resources(state, KUBEPRISM_STATUSES, [KUBEPRISM_ID],
                                       lambda r: len(r.spec.healthy_endpoints) == 2)
                assert await ask(prism) == b"endpoint:ping"
            # the first API server is gone: new connections reach the member
            assert await ask(prism) == b"cp-2:ping"
            await assert_resources(state, KUBEPRISM_STATUSES, [KUBEPRISM_ID],
                                   lambda r: r.spec.healthy_endpoints == [f"127.0.0.2:{api_port}"])
        await assert_resources(state, KUBEPRISM_STATUSES, [KUBEPRISM_ID], lambda r: not r.spec.healthy)

        # turned off: the listener and the status go
        await set_config(state, config("worker", p1, prism, api_port, enabled=False))
        await assert_no_resource(state, KUBEPRISM_STATUSES.pointer(KUBEPRISM_ID))
        assert await closed(prism)


async def closed(port: int) -> bool:
    """The port stops accepting (the listener closes as its task is cancelled)."""
    with anyio.fail_after(5):
        while True:
            try:
                stream = await anyio.connect_tcp("127.0.0.1", port)
            except OSError:
                return True
            await stream.aclose()
            await anyio.sleep(0.05)


async def test_a_taken_port_is_reported_and_bound_once_free() -> None:
    p1, api_port, prism = free_port(), free_port(), free_port()
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", prism))
    squatter.listen(1)
    controllers = [KubePrismConfigController(), KubePrismController(health_interval=0.2, retry_interval=0.2)]
    try:
        async with running(controllers) as state, backend("127.0.0.1", p1, b"endpoint"):
            await set_config(state, config("worker", p1, prism, api_port))
            got = await assert_resources(state, KUBEPRISM_STATUSES, [KUBEPRISM_ID], lambda r: bool(r.spec.error))
            assert f"listen 127.0.0.1:{prism}" in got[KUBEPRISM_ID].spec.error
            squatter.close()
            await assert_resources(state, KUBEPRISM_STATUSES, [KUBEPRISM_ID],
                                   lambda r: not r.spec.error and r.spec.healthy)
            assert await ask(prism) == b"endpoint:ping"
    finally:
        squatter.close()
