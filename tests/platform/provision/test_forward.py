"""The host port forwarder against a real network namespace: a target that starts listening
only after the client connected is still reached (the forwarder keeps trying, as a node's API
comes up after its console said so), one that never listens resets the client with the reason
in the forwarder's log, and a TLS client told about it gets a cause, not an empty message."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

ECHO = r"""
import socket, sys, time
time.sleep(float(sys.argv[1]))
srv = socket.create_server(("127.0.0.1", 7000))
while True:
    c, _ = srv.accept()
    c.sendall(c.recv(100))
    c.close()
"""


@pytest.fixture
def netns() -> Iterator[str]:
    name = "kos-fw" + uuid.uuid4().hex[:6]
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=False)


def _forwarder(netns: str, tmp_path: Path, connect_timeout: float) -> tuple[subprocess.Popen[bytes], int, Path]:
    ports, log = tmp_path / "ports.json", tmp_path / "forwarder.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "kos.platform.provision.forward", "--netns", netns,
                                 "--map", "n1=127.0.0.1:7000", "--ports-file", str(ports),
                                 "--connect-timeout", str(connect_timeout)], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while not ports.exists():
        assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
        time.sleep(0.02)
    import json

    return proc, json.loads(ports.read_text())["n1"], log


def test_a_target_that_listens_late_is_still_reached(netns: str, tmp_path: Path) -> None:
    echo = subprocess.Popen(["nsenter", f"--net=/run/netns/{netns}", sys.executable, "-c", ECHO, "1.5"])
    proc, port, log = _forwarder(netns, tmp_path, 20)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"hello")
            assert s.recv(100) == b"hello"
        assert "trying again" in log.read_text()  # it was not listening yet
    finally:
        for p in (proc, echo):
            p.kill()
            p.wait()


def test_a_target_that_never_listens_resets_the_client_and_logs_why(netns: str, tmp_path: Path) -> None:
    import anyio

    from kos.apis.client import APIError, Connection

    proc, port, log = _forwarder(netns, tmp_path, 1)
    try:
        async def version() -> None:
            async with Connection(f"127.0.0.1:{port}", insecure=True, timeout=10) as conn:
                await conn.unary("/kos.machine.MachineService/Version", b"")

        with pytest.raises(APIError) as info:
            anyio.run(version)
        message = info.value.message
        assert message.startswith("connection failed: ") and message != "connection failed: "
        assert "reset" in message.lower() or "closed the connection" in message, message
        text = log.read_text()
        assert "n1 (127.0.0.1:7000) did not accept within 1 s: Connection refused" in text, text
    finally:
        proc.kill()
        proc.wait()
