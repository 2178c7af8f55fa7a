"""Cluster health, shared by ``kosctl health`` and the ``ClusterHealthCheck`` RPC: the events
of a check run and their lines (the same text the client-side run prints), their protobuf
translation, and the RPC over real mutual TLS on loopback: the node calls its own API with its
impersonator certificate and the caller's roles, streams the lines, reports a check out of time
as a FAILED message; bad requests are INVALID_ARGUMENT naming the value; discovery without
members is FAILED_PRECONDITION; a caller leaving mid-check leaves the node serving; ``kosctl
health --server`` prints the streamed lines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from grpclib.const import Status

from kos.apis import auth
from kos.apis.client import APIError, Connection, health
from kos.apis.gen.kos import machine as pb
from kos.apis.kosctl.commands.health import server_checks
from kos.apis.server.machine import ConfigStore, MachineService
from kos.apis.tls import client_context
from kos.machined.api import ClusterHealthAPI, check_address, wait_timeout
from kos.resources.core import InMemoryState
from tests.support.loopback import LoopbackAPI, loopback_pki, serve_state

pytestmark = pytest.mark.anyio
M = auth.MACHINE
S = health.Status


def test_lines_are_those_of_the_client_side_run() -> None:
    assert health.line(health.HealthEvent("etcd to be healthy", S.RUNNING, "a: UNAVAILABLE: x")) == \
        "waiting for etcd to be healthy: a: UNAVAILABLE: x"
    assert health.line(health.HealthEvent("t", S.OK)) == "waiting for t: OK"
    assert health.line(health.HealthEvent("t", S.OK, "3 members")) == "waiting for t: OK (3 members)"
    assert health.line(health.HealthEvent("t", S.FAILED, "timeout")) == "waiting for t: FAILED (timeout)"
    event = health.discovery_event(health.ClusterNodes(["10.5.0.2"]))
    assert health.line(event) == "discovered nodes: control planes 10.5.0.2; workers none"


@pytest.mark.parametrize("event", [
    health.HealthEvent("a check", S.RUNNING, "why"),
    health.HealthEvent("a check", S.OK, ""),
    health.HealthEvent("a check", S.FAILED, "timeout"),
    health.HealthEvent(health.DISCOVERY, S.OK, "control planes a; workers b"),
])
def test_events_survive_the_wire(event: health.HealthEvent) -> None:
    data = bytes(health.to_response(event))
    assert health.from_response(pb.ClusterHealthCheckResponse().parse(data)) == event


async def test_events_retry_until_ok_and_stop_at_the_first_failure() -> None:
    calls = {"flaky": 0}

    async def flaky(conn: Any, nodes: health.ClusterNodes) -> str | None:
        calls["flaky"] += 1
        if calls["flaky"] < 3:
            raise health.CheckFailed("not yet")  # the same reason twice: reported once
        return "after 3"

    async def never(conn: Any, nodes: health.ClusterNodes) -> str | None:
        raise health.CheckFailed(f"{nodes.control_planes[0]}: down")

    async def unreached(conn: Any, nodes: health.ClusterNodes) -> str | None:
        raise AssertionError("runs after a failure")

    checks = [("flaky", flaky), ("never", never), ("unreached", unreached)]
    events = [e async for e in health.health_events(None, health.ClusterNodes(["n1"]), timeout=0.3, poll=0.01,
                                                     checks=checks)]
    assert events == [
        health.HealthEvent("flaky", S.RUNNING, "not yet"),
        health.HealthEvent("flaky", S.OK, "after 3"),
        health.HealthEvent("never", S.RUNNING, "n1: down"),
        health.HealthEvent("never", S.FAILED, "timeout"),
    ]


@pytest.mark.parametrize("value", ["10.5.0.2", "10.5.0.2:50000", "[fd00::1]:50000", "fd00::1", "node-1.example"])
def test_good_addresses(value: str) -> None:
    assert check_address("control_plane_nodes", 0, value) == value


@pytest.mark.parametrize("value", ["", "bad host", "10.5.0.2:x", "-a.example", "a_b", "999.1.1.1", "h:70000"])
def test_bad_addresses_name_the_value(value: str) -> None:
    from grpclib.exceptions import GRPCError

    with pytest.raises(GRPCError) as info:
        check_address("worker_nodes", 2, value)
    assert info.value.status == Status.INVALID_ARGUMENT
    assert f"worker_nodes[2] {value!r}" in str(info.value.message)


def test_wait_timeout() -> None:
    from grpclib.exceptions import GRPCError

    assert wait_timeout(0) == 60 and wait_timeout(2.5) == 2.5
    for bad in (-1.0, float("nan"), float("inf"), 1e9):
        with pytest.raises(GRPCError) as info:
            wait_timeout(bad)
        assert info.value.status == Status.INVALID_ARGUMENT and "wait_timeout" in str(info.value.message)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[LoopbackAPI]:
    pki = loopback_pki()
    ident = pki.client((auth.IMPERSONATOR,))
    box: list[LoopbackAPI] = []
    ext = ClusterHealthAPI(lambda: box[0].endpoint, client_context(pki.ca.cert_pem, ident), poll=0.05)
    machine = MachineService(config=ConfigStore(tmp_path / "config.yaml"), extensions=[ext])
    async with serve_state(InMemoryState(), machine=machine) as served:
        box.append(served)
        yield served


async def _run(conn: Connection, req: pb.ClusterHealthCheckRequest) -> list[health.HealthEvent]:
    with anyio.fail_after(20):
        async with conn.stream(M + "ClusterHealthCheck", bytes(req)) as replies:
            return [health.from_response(pb.ClusterHealthCheckResponse().parse(d)) async for d in replies]


async def test_the_node_runs_the_checks_as_the_caller_and_streams_them(api: LoopbackAPI) -> None:
    # "loopback" is the node itself: Version answers; it has no MachineStatus, so booting fails
    async with api.connect([auth.READER]) as conn:
        events = await _run(conn, pb.ClusterHealthCheckRequest(wait_timeout=0.5, control_plane_nodes=["loopback"]))
    assert [health.line(e) for e in events] == [
        "waiting for all nodes' API to answer: OK",
        "waiting for all nodes to finish booting: loopback: no MachineStatus yet",
        "waiting for all nodes to finish booting: FAILED (timeout)",
    ]


async def test_a_node_that_does_not_answer_is_a_failed_check(api: LoopbackAPI) -> None:
    async with api.connect([auth.READER]) as conn:
        events = await _run(conn, pb.ClusterHealthCheckRequest(wait_timeout=0.3, control_plane_nodes=["10.255.0.9"]))
    assert events[0].status is S.RUNNING and "10.255.0.9: UNAVAILABLE" in events[0].message
    assert events[-1] == health.HealthEvent("all nodes' API to answer", S.FAILED, "timeout")


@pytest.mark.parametrize(("req", "needle"), [
    (pb.ClusterHealthCheckRequest(control_plane_nodes=["10.5.0.2", "not a node!"]),
     "control_plane_nodes[1] 'not a node!'"),
    (pb.ClusterHealthCheckRequest(worker_nodes=["10.5.0.3"]), "worker_nodes given without control_plane_nodes"),
    (pb.ClusterHealthCheckRequest(wait_timeout=-5, control_plane_nodes=["10.5.0.2"]), "wait_timeout -5"),
])
async def test_bad_requests_are_invalid_argument(api: LoopbackAPI, req: pb.ClusterHealthCheckRequest,
                                                 needle: str) -> None:
    async with api.connect([auth.READER]) as conn:
        with pytest.raises(APIError) as info:
            await _run(conn, req)
    assert info.value.status == Status.INVALID_ARGUMENT and needle in info.value.message


async def test_discovery_without_members_is_failed_precondition(api: LoopbackAPI) -> None:
    async with api.connect([auth.READER]) as conn:
        with pytest.raises(APIError) as info:
            await _run(conn, pb.ClusterHealthCheckRequest(wait_timeout=1))
    assert info.value.status == Status.FAILED_PRECONDITION
    assert "no control-plane member discovered" in info.value.message


async def test_kosctl_health_server_prints_the_lines(api: LoopbackAPI, capsys: pytest.CaptureFixture[str]) -> None:
    async with api.connect([auth.READER]) as conn:
        ok = await server_checks(conn, None, health.ClusterNodes(["loopback"]), 0.3)
    assert not ok
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "waiting for all nodes' API to answer: OK"
    assert out[-1] == "waiting for all nodes to finish booting: FAILED (timeout)"


async def test_without_the_extension_it_is_unimplemented(tmp_path: Path) -> None:
    async with serve_state(InMemoryState()) as served, served.connect([auth.READER]) as conn:
        with pytest.raises(APIError) as info:
            await _run(conn, pb.ClusterHealthCheckRequest(control_plane_nodes=["loopback"]))
    assert info.value.status == Status.UNIMPLEMENTED and "ClusterHealthCheck" in info.value.message


async def test_a_caller_leaving_mid_check_leaves_the_node_serving(api: LoopbackAPI) -> None:
    req = pb.ClusterHealthCheckRequest(wait_timeout=600, control_plane_nodes=["10.255.0.9"])
    async with api.connect([auth.READER]) as conn:
        with anyio.fail_after(10):
            async with conn.stream(M + "ClusterHealthCheck", bytes(req)) as replies:
                async for data in replies:
                    assert health.from_response(pb.ClusterHealthCheckResponse().parse(data)).status is S.RUNNING
                    break  # the stream is cancelled while the node waits to retry
        events = await _run(conn, pb.ClusterHealthCheckRequest(wait_timeout=0.2, control_plane_nodes=["loopback"]))
    assert events[0] == health.HealthEvent("all nodes' API to answer", S.OK)
