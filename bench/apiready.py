"""machined start -> API ready, as a client sees it (used by ``bench/kosctl_speed.py``).

``api_ready(cmd, port)`` starts ``cmd`` and returns two times from exec: when its port first
accepts a TCP connection (listening) and when a ``Version`` call first gets its answer over TLS
(answered: what a client waiting for the node needs). The client polls from this process with
``kos.apis.client.Connection`` (insecure TLS, as ``kosctl version --insecure`` does against a
maintenance node), so its own imports are not in the figure.

``FLOOR`` is the least a Python API server can do for that answer on this machine: asyncio,
ssl and grpclib's server answering ``Version`` (a fixed reply) with a certificate made before
it starts; no kos module, no argument parsing, no anyio. It shows what is reachable.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import anyio

from kos.apis import auth
from kos.apis.client.connection import Connection

FLOOR = r"""
import asyncio, ssl, sys
from grpclib.const import Cardinality, Handler
from grpclib.encoding.proto import ProtoCodec
from grpclib.server import Server

class Raw:
    def __init__(self, data=b""): self.data = data
    def SerializeToString(self): return self.data
    @classmethod
    def FromString(cls, data): return cls(data)

class Version:
    def __mapping__(self):
        async def version(stream):
            await stream.recv_message()
            await stream.send_message(Raw(b"\x12\x07\x0a\x050.1.0"))
        return {"/kos.machine.MachineService/Version": Handler(version, Cardinality.UNARY_UNARY, Raw, Raw)}

async def main():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols(["h2"])
    ctx.load_cert_chain(sys.argv[2], sys.argv[3])
    server = Server([Version()], codec=ProtoCodec(), status_details_codec=None)
    await server.start("127.0.0.1", int(sys.argv[1]), ssl=ctx)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def floor_files(tmp: Path) -> tuple[Path, Path]:
    """The floor server's certificate and key (made once, before the rounds)."""
    from kos.platform.linux.selfsigned import self_signed

    crt, key = self_signed("floor", ["localhost"], ["127.0.0.1"])
    (tmp / "floor.crt").write_bytes(crt)
    (tmp / "floor.key").write_bytes(key)
    return tmp / "floor.crt", tmp / "floor.key"


async def _answered(port: int) -> bool:
    try:
        async with Connection(f"127.0.0.1:{port}", insecure=True, timeout=5) as conn:
            await conn.unary(auth.MACHINE + "Version", b"")
        return True
    except Exception:
        return False


def api_ready(cmd: list[str], port: int, log: Path, env: dict[str, str] | None = None,
              timeout: float = 60) -> tuple[float, float]:
    """(seconds to listening, seconds to the first answered Version) of ``cmd`` serving on ``port``."""
    with log.open("w") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
    try:
        listening = None
        while True:
            if time.perf_counter() - t0 > timeout:
                raise SystemExit(f"{cmd[:4]}: no answer within {timeout} s: {log.read_text()[-800:]}")
            if p.poll() is not None:
                raise SystemExit(f"{cmd[:4]} exited: {log.read_text()[-800:]}")
            if listening is None:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    listening = time.perf_counter() - t0
                except OSError:
                    time.sleep(0.002)
                    continue
            if anyio.run(_answered, port):
                return listening, time.perf_counter() - t0
            time.sleep(0.002)
    finally:
        p.terminate()
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
