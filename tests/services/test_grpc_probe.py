"""``grpc_probe`` against real grpclib health servers on a unix socket: probes share one
connection; a server process that died fails the probe, and once a new one listens the next
probe connects anew (a restarted containerd is healthy again, no stuck channel)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from grpclib.health.service import Health
from grpclib.server import Server

from kos.machined.services.health import grpc_probe

pytestmark = pytest.mark.anyio

SERVE = """
import asyncio, sys
from grpclib.health.service import Health
from grpclib.server import Server
async def main():
    s = Server([Health()])
    await s.start(path=sys.argv[1])
    await asyncio.sleep(3600)
asyncio.run(main())
"""


async def test_probes_share_one_connection(tmp_path: Path) -> None:
    sock = tmp_path / "health.sock"
    server = Server([Health()])
    await server.start(path=str(sock))
    try:
        probe = grpc_probe(path=str(sock))
        for _ in range(3):
            await probe()
        assert len(server._handlers) == 1  # one connection served the three probes
    finally:
        server.close()
        await server.wait_closed()


def _serve(sock: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(sock)])
    deadline = time.monotonic() + 10
    while not sock.exists():
        assert time.monotonic() < deadline, "health server did not start"
        time.sleep(0.02)
    return proc


async def test_a_restarted_server_is_probed_anew(tmp_path: Path) -> None:
    sock = tmp_path / "health.sock"
    proc = _serve(sock)
    probe = grpc_probe(path=str(sock))
    try:
        with anyio.fail_after(10):
            await probe()
        proc.kill()
        proc.wait()
        sock.unlink()
        with anyio.fail_after(10), pytest.raises(Exception):  # noqa: B017 - reset or refused: unhealthy
            await probe()
        proc = _serve(sock)
        with anyio.fail_after(10):
            await probe()
    finally:
        proc.kill()
        proc.wait()
