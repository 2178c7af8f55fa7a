"""machine.logging.destinations -> LogDestinationSpecs -> machined's log lines sent as JSON lines
to real UDP and TCP listeners on 127.0.0.1 -> LogDestinationStatuses (sent, dropped, error)."""

from __future__ import annotations

import io
import json
import socket
from typing import Any

import anyio
import pytest
import structlog

from kos.controllers.runtime.testing import assert_no_resource, assert_resources
from kos.controllers.system import LogShipper, render
from kos.controllers.system.configspecs import ConfigSpecsController
from kos.controllers.system.logship import LogDestinationApplyController
from kos.resources.machineconfig import ConfigContainer
from kos.resources.runtime import LOG_DESTINATION_STATUSES, LogDestinationSpecSpec
from tests.system.helpers import machine_config, running, set_config

pytestmark = pytest.mark.anyio


def logger(shipper: LogShipper) -> Any:
    """A structlog logger shaped like machined's (level, timestamp, the shipper, JSON)."""
    return structlog.wrap_logger(
        structlog.PrintLogger(io.StringIO()),
        processors=[structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso"),
                    shipper.processor, structlog.processors.JSONRenderer()],
    )


def logging_config(*dests: str) -> str:
    items = ", ".join(f'{{endpoint: "{d}", format: json_lines, extraTags: {{node: n1}}}}' for d in dests)
    return machine_config(f"logging: {{destinations: [{items}]}}")


async def test_lines_reach_udp_and_tcp_listeners() -> None:
    shipper = LogShipper()
    log = logger(shipper)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(10)
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(1)
    tcp.settimeout(10)
    udp_url = f"udp://127.0.0.1:{udp.getsockname()[1]}/"
    tcp_url = f"tcp://127.0.0.1:{tcp.getsockname()[1]}"
    ctrls = [ConfigSpecsController("system.LogDestinationConfigController", LogDestinationSpecSpec,
                                   render.log_destinations),
             LogDestinationApplyController(shipper=shipper, status_interval=0.2)]
    try:
        async with running(ctrls) as state:
            await set_config(state, logging_config(udp_url, tcp_url))
            await assert_resources(state, LOG_DESTINATION_STATUSES, [udp_url, tcp_url])
            log.info("service started", service="etcd")
            datagram = await anyio.to_thread.run_sync(lambda: udp.recv(65536))
            entry = json.loads(datagram)
            assert entry["event"] == "service started" and entry["service"] == "etcd"
            assert entry["level"] == "info" and entry["node"] == "n1" and "timestamp" in entry
            conn, _ = await anyio.to_thread.run_sync(tcp.accept)
            with conn:
                conn.settimeout(10)
                log.warning("second")
                data = b""
                while data.count(b"\n") < 2:
                    data += await anyio.to_thread.run_sync(lambda: conn.recv(65536))
                lines = [json.loads(x) for x in data.splitlines()]
                assert [x["event"] for x in lines] == ["service started", "second"]
                await assert_resources(state, LOG_DESTINATION_STATUSES, [tcp_url], lambda r: r.spec.sent == 2)

                # the destination goes: nothing more is sent there
                await set_config(state, logging_config(udp_url))
                await assert_no_resource(state, LOG_DESTINATION_STATUSES.pointer(tcp_url))
                assert shipper.endpoints() == [udp_url]
    finally:
        udp.close()
        tcp.close()
        for e in shipper.endpoints():
            shipper.remove(e)


async def test_an_unreachable_destination_drops_and_reports_without_blocking() -> None:
    shipper = LogShipper()
    log = logger(shipper)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"tcp://127.0.0.1:{s.getsockname()[1]}"  # bound, not listening: connection refused
        ctrls = [ConfigSpecsController("system.LogDestinationConfigController", LogDestinationSpecSpec,
                                       render.log_destinations),
                 LogDestinationApplyController(shipper=shipper, status_interval=0.2)]
        try:
            async with running(ctrls) as state:
                await set_config(state, logging_config(dead))
                await assert_resources(state, LOG_DESTINATION_STATUSES, [dead])
                start = anyio.current_time()
                for i in range(5000):  # far more than the queue holds
                    log.info("flood", i=i)
                assert anyio.current_time() - start < 5.0
                await assert_resources(state, LOG_DESTINATION_STATUSES, [dead],
                                       lambda r: r.spec.dropped > 0 and "ConnectionRefused" in r.spec.error)
        finally:
            for e in shipper.endpoints():
                shipper.remove(e)


@pytest.mark.parametrize(("dest", "field"), [
    ('{endpoint: "http://127.0.0.1:1/"}', r"destinations\[0\]\.endpoint"),
    ('{endpoint: "udp://127.0.0.1/"}', r"destinations\[0\]\.endpoint"),
    ('{endpoint: "udp://127.0.0.1:9/", format: syslog}', r"destinations\[0\]\.format"),
])
def test_bad_destinations_name_the_field(dest: str, field: str) -> None:
    c = ConfigContainer.load(machine_config(f"logging: {{destinations: [{dest}]}}"), strict=False)
    with pytest.raises(ValueError, match=field):
        render.log_destinations(c)
