"""machined answers its first API call before the rest of it is loaded (issue 17: "serve the
API first, import subsystems lazily").

A real ``machined --maintenance`` process whose node loading (``kos.machined.main._load_node``,
the worker thread that imports the node) is held until the test lets it go: ``Version``
answers through TLS while it is held, what is imported at that moment excludes every heavy
subsystem, and a State API call made meanwhile waits and is answered once the node serves."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest

from kos.apis import auth
from kos.apis.client import Connection, GrpcState
from kos.apis.gen.kos import machine as pb
from kos.resources.core import Pointer

pytestmark = pytest.mark.anyio

HELD = """
import json, sys, time
from pathlib import Path
import kos.machined.main as m

hold, go = Path(sys.argv[1]), Path(sys.argv[2])
load = m._load_node

def held(*args):
    hold.write_text(json.dumps(sorted(sys.modules)))
    while not go.exists():
        time.sleep(0.02)
    return load(*args)

m._load_node = held
sys.exit(m.main(sys.argv[3:]))
"""

NOT_BEFORE_THE_FIRST_ANSWER = (
    "structlog", "betterproto", "cryptography", "pyroute2", "pyudev", "yaml", "rich",
    "kos.controllers", "kos.apis.gen", "kos.apis.wire", "kos.apis.server.machine", "kos.apis.server.state",
    "kos.resources.machineconfig", "kos.resources.pki", "kos.machined.node", "kos.machined.api",
)
"""Modules (and packages, with everything under them) the first answer must not need."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _version(endpoint: str, deadline: float) -> pb.VersionResponse:
    while True:
        try:
            async with Connection(endpoint, insecure=True, timeout=5) as conn:
                return pb.VersionResponse().parse(await conn.unary(auth.MACHINE + "Version", b""))
        except Exception:
            if time.monotonic() > deadline:
                raise
            await anyio.sleep(0.02)


@contextmanager
def _held_machined(sd: Path, hold: Path, go: Path, endpoint: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HELD, str(hold), str(go), "--state-dir", str(sd), "--listen", endpoint,
         "--maintenance", "--platform", "process", "--no-controllers"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        go.touch()
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_version_answers_before_the_node_is_loaded(tmp_path: Path) -> None:
    sd, hold, go = tmp_path / "node", tmp_path / "modules.json", tmp_path / "go"
    endpoint = f"127.0.0.1:{_free_port()}"
    with _held_machined(sd, hold, go, endpoint) as proc:
        v = await _version(endpoint, time.monotonic() + 30)
        assert v.maintenance and v.platform.mode == "maintenance" and v.platform.name == "process"
        assert v.version.tag and v.version.python_version == ".".join(map(str, sys.version_info[:3]))
        loaded = json.loads(hold.read_text())
        early = [m for m in loaded if any(m == p or m.startswith(p + ".") for p in NOT_BEFORE_THE_FIRST_ANSWER)]
        assert early == [], f"imported before machined's first answer: {early}"
        assert not (sd / "api-endpoint").exists()  # the node itself is not serving yet

        async with Connection(endpoint, insecure=True, timeout=30) as conn:
            got: list[str] = []

            async def get_meta() -> None:
                got.append((await GrpcState(conn).get(Pointer("meta", "Namespaces.meta.cosi.dev", "meta"))).id)

            async with anyio.create_task_group() as tg:
                tg.start_soon(get_meta)
                await anyio.sleep(0.5)
                assert got == []  # waits for the node rather than failing
                go.touch()
            assert got == ["meta"]
        assert (sd / "api-endpoint").read_text().strip() == endpoint
    assert proc.returncode == 0, proc.stderr.read().decode()[-2000:] if proc.stderr else ""


async def test_a_configured_node_does_not_start_the_early_api(tmp_path: Path) -> None:
    """Only a node sure to wait for a config serves early: one with a stored config boots as
    before (mutual TLS after its controllers), without an insecure window."""
    from kos.machined.early import serves_maintenance_first

    assert serves_maintenance_first(maintenance=True, state_dir=tmp_path, initial_config=None)
    assert not serves_maintenance_first(maintenance=False, state_dir=tmp_path, initial_config=None)
    assert not serves_maintenance_first(maintenance=True, state_dir=tmp_path, initial_config=b"version: v1alpha1")
    (tmp_path / "config.staged.yaml").write_text("")
    assert not serves_maintenance_first(maintenance=True, state_dir=tmp_path, initial_config=None)
