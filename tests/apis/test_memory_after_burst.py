"""An API server gives the memory of a burst of clients back: RSS after 100 clients (each a
connection of its own, like kosctl processes) have come and gone returns close to where it
was, instead of staying at its peak (glibc keeps freed heap memory until malloc_trim). The
server runs in a process of its own so that only its memory is measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from kos.apis import auth
from kos.apis.client.connection import Connection
from kos.apis.tls import PEMPair

SERVER = r"""
import anyio, json, sys
from kos.apis import auth
from kos.resources.core.inmem import InMemoryState
from tests.support.loopback import serve_state

async def main():
    async with serve_state(InMemoryState()) as api:
        client = api.pki.client((auth.READER,))
        print(json.dumps({"port": api.server.port, "ca": api.pki.ca.cert_pem.decode(),
                          "crt": client.cert_pem.decode(), "key": client.key_pem.decode()}), flush=True)
        await anyio.sleep_forever()

anyio.run(main)
"""

MiB = 1 << 20
LEFT = 20 * MiB  # what a first burst may keep (caches, grown free lists); its peak is ~100 MiB above


def _rss(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_rss_returns_after_a_burst_of_clients() -> None:
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        while not line.startswith("{"):  # log lines first
            assert line, "the server process ended"
            line = proc.stdout.readline()
        info = json.loads(line)
        identity = PEMPair(info["crt"].encode(), info["key"].encode())

        async def burst() -> None:
            async def client() -> None:
                for _ in range(3):
                    async with Connection(f"127.0.0.1:{info['port']}", ca=info["ca"].encode(), identity=identity,
                                          timeout=30) as c:
                        await c.unary(auth.MACHINE + "Version", b"")

            async def sample() -> None:  # the peak while the clients run (the server may trim right after)
                while True:
                    peaks.append(_rss(proc.pid))
                    await anyio.sleep(0.05)

            async with anyio.create_task_group() as outer:
                outer.start_soon(sample)
                async with anyio.create_task_group() as tg:
                    for _ in range(100):
                        tg.start_soon(client)
                peaks.append(_rss(proc.pid))
                outer.cancel_scope.cancel()

        peaks: list[int] = []
        time.sleep(1)
        before = _rss(proc.pid)
        anyio.run(burst)
        peak = max(peaks)
        deadline = time.monotonic() + 20
        while _rss(proc.pid) > before + LEFT and time.monotonic() < deadline:
            time.sleep(0.5)
        after = _rss(proc.pid)
        assert peak > before + 2 * LEFT  # it was a burst
        assert after <= before + LEFT, (before / MiB, peak / MiB, after / MiB)
    finally:
        proc.kill()
        proc.wait()


pytestmark = pytest.mark.timeout(120)
