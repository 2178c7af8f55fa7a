"""A TCP forwarder from host loopback ports into a network namespace.

Nodes of a namespace cluster live in their own network namespaces; the host reaches their
APIs through this forwarder, started by the provisioner as a small daemon::

    python -m kos.platform.provision.forward --netns kos-demo \
        --map cp-1=10.5.0.2:50000 --map w-1=10.5.0.3:50000 --ports-file ports.json

Each ``--map`` listens on ``127.0.0.1`` (a free port, or the given ``--port NAME=PORT``, or
the port the ports file already names: a forwarder started again by its keeper keeps its
ports) and forwards every connection to the target inside the namespace. Outgoing sockets are
created by worker threads that have entered the namespace with ``setns`` (a per-thread
setting), so the forwarder itself stays in the host's namespace. The chosen ports are
written to the ports file as JSON ``{name: port}`` (atomically) once listening.

A target that does not accept yet (a node still booting, a slow VM whose neighbour entry is
not resolved) is tried again for up to ``--connect-timeout`` seconds, each failure logged
with its reason; if it never accepts, the client's connection is reset (not closed cleanly,
which a TLS client could not tell from a server hanging up) and the reason is logged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kos.platform.linux import syscalls as sc


def _enter_netns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        sc.setns(fd, sc.CLONE_NEWNET)
    finally:
        os.close(fd)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()


def _log(text: str) -> None:
    print(f"forward: {text}", file=sys.stderr, flush=True)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST: the client sees "connection reset", not an orderly end of stream."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


async def connect(loop: asyncio.AbstractEventLoop, executor: ThreadPoolExecutor, name: str, host: str, port: int,
                  budget: float) -> socket.socket:
    """Connect to the target, trying again (0.1 s doubling to 1 s) until ``budget`` seconds."""
    deadline = time.monotonic() + budget
    delay = 0.1
    while True:
        left = deadline - time.monotonic()
        try:
            timeout = max(0.5, min(5.0, left))
            return await loop.run_in_executor(executor, socket.create_connection, (host, port), timeout)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            if time.monotonic() + delay >= deadline:
                raise OSError(exc.errno, f"{name} ({host}:{port}) did not accept within {budget:.0f} s: {reason}") \
                    from None
            _log(f"{name} ({host}:{port}): {reason}; trying again")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def serve(netns: str, maps: dict[str, tuple[str, int]], ports: dict[str, int], ports_file: Path | None,
                connect_timeout: float = 20.0) -> None:
    path = netns_path(netns)
    executor = ThreadPoolExecutor(max_workers=4, initializer=_enter_netns, initargs=(path,))
    loop = asyncio.get_running_loop()
    servers = []
    chosen: dict[str, int] = {}

    for name, (host, port) in maps.items():

        async def handle(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str = name, host: str = host,
            port: int = port,
        ) -> None:
            try:
                sock = await connect(loop, executor, name, host, port, connect_timeout)
            except OSError as exc:
                _log(f"connection from {writer.get_extra_info('peername')} reset: {exc.strerror or exc}")
                _reset(writer)
                return
            r2, w2 = await asyncio.open_connection(sock=sock)
            await asyncio.gather(_pipe(reader, w2), _pipe(r2, writer))
            for w in (writer, w2):
                w.close()

        server = await asyncio.start_server(handle, "127.0.0.1", ports.get(name, 0))
        chosen[name] = server.sockets[0].getsockname()[1]
        servers.append(server)

    if ports_file is not None:
        tmp = ports_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(chosen))
        os.replace(tmp, ports_file)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for s in servers:
        s.close()
    executor.shutdown(wait=False)


def netns_path(netns: str) -> str:
    return netns if netns.startswith("/") else f"/run/netns/{netns}"


def _parse_map(text: str) -> tuple[str, tuple[str, int]]:
    name, sep, target = text.partition("=")
    host, _, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"--map {text!r}: expected NAME=HOST:PORT")
    return name, (host, int(port))


def _parse_port(text: str) -> tuple[str, int]:
    name, sep, port = text.partition("=")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"--port {text!r}: expected NAME=PORT")
    return name, int(port)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kos-forward", description="forward loopback ports into a netns")
    parser.add_argument("--netns", required=True, help="namespace name (under /run/netns) or path")
    parser.add_argument("--map", action="append", required=True, type=_parse_map, help="NAME=HOST:PORT")
    parser.add_argument("--port", action="append", default=[], type=_parse_port, help="NAME=PORT (default: free)")
    parser.add_argument("--ports-file", type=Path)
    parser.add_argument("--connect-timeout", type=float, default=20.0,
                        help="seconds to keep trying a target that does not accept yet (default 20)")
    args = parser.parse_args(argv)
    if not Path(netns_path(args.netns)).exists():
        parser.error(f"network namespace {netns_path(args.netns)} does not exist")
    ports = dict(args.port)
    if args.ports_file is not None and args.ports_file.exists():  # started again: the same ports
        with contextlib.suppress(OSError, ValueError):
            ports = {**json.loads(args.ports_file.read_text()), **ports}
    _log(f"listening for {', '.join(n for n, _ in args.map)} (pid {os.getpid()})")
    asyncio.run(serve(args.netns, dict(args.map), ports, args.ports_file, args.connect_timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
