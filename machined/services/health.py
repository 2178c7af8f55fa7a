"""Health checks: exec-free probes the supervisor runs periodically while a service runs.

A probe is an async callable that returns on success and raises (any exception, its text is
the reason) on failure. Provided: ``tcp_probe`` (connect), ``http_probe`` (GET, expected
status, optional TLS), ``grpc_probe`` (grpc.health.v1 Health/Check, optional TLS, one
connection kept between probes) and any function of your own. ``HealthCheck`` adds interval, timeout and initial delay.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import anyio.abc
import betterproto
import grpclib.client
from grpclib.exceptions import StreamTerminatedError

Probe = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class HealthCheck:
    probe: Probe
    interval: float = 1.0
    timeout: float = 2.0
    initial_delay: float = 0.0
    healthy_interval: float | None = None
    """Probe interval while healthy (None: ``interval``): fast until healthy, cheap after."""

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError(f"health check interval must be positive, got {self.interval}")
        if self.healthy_interval is not None and self.healthy_interval <= 0:
            raise ValueError(f"health check healthy_interval must be positive, got {self.healthy_interval}")
        if self.timeout <= 0:
            raise ValueError(f"health check timeout must be positive, got {self.timeout}")


def tcp_probe(host: str, port: int) -> Probe:
    """Healthy when a TCP connection to host:port succeeds."""

    async def probe() -> None:
        stream = await anyio.connect_tcp(host, port)
        await stream.aclose()

    return probe


def http_probe(
    host: str, port: int, path: str = "/", *, expect_status: int = 200, ssl_context: ssl.SSLContext | None = None
) -> Probe:
    """Healthy when ``GET path`` answers with ``expect_status`` (HTTP/1.1, optional TLS)."""

    async def probe() -> None:
        stream: anyio.abc.ByteStream
        if ssl_context is not None:
            stream = await anyio.connect_tcp(host, port, ssl_context=ssl_context, tls_standard_compatible=False)
        else:
            stream = await anyio.connect_tcp(host, port)
        async with stream:
            req = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
            await stream.send(req.encode())
            head = b""
            while b"\r\n" not in head and len(head) < 4096:
                try:
                    head += await stream.receive()
                except anyio.EndOfStream:
                    break
        line = head.split(b"\r\n", 1)[0].decode(errors="replace")
        parts = line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            raise RuntimeError(f"GET {path}: malformed HTTP status line {line!r}")
        if int(parts[1]) != expect_status:
            raise RuntimeError(f"GET {path}: status {parts[1]}, expected {expect_status}")

    return probe


@dataclass(eq=False, repr=False)
class _HealthCheckRequest(betterproto.Message):
    service: str = betterproto.string_field(1)


@dataclass(eq=False, repr=False)
class _HealthCheckResponse(betterproto.Message):
    status: int = betterproto.int32_field(1)


_SERVING = 1


def grpc_probe(
    host: str | None = None,
    port: int | None = None,
    service: str = "",
    *,
    path: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Probe:
    """Healthy when grpc.health.v1.Health/Check reports SERVING (TCP host:port or unix ``path``)."""
    if path is None and (host is None or port is None):
        raise ValueError("grpc_probe: expected host and port, or a unix socket path")

    kept: list[grpclib.client.Channel] = []  # one connection between probes (grpclib reconnects a lost one)

    async def probe() -> None:
        if not kept:
            if path is not None:
                kept.append(grpclib.client.Channel(path=path))
            else:
                kept.append(grpclib.client.Channel(host, port, ssl=ssl_context))
        channel = kept[0]
        task = asyncio.current_task()
        cancelling = task.cancelling() if task is not None else 0
        try:
            async with channel.request(
                "/grpc.health.v1.Health/Check",
                grpclib.const.Cardinality.UNARY_UNARY,
                _HealthCheckRequest,
                _HealthCheckResponse,
            ) as stream:
                await stream.send_message(_HealthCheckRequest(service=service), end=True)
                reply = await stream.recv_message()
        except StreamTerminatedError:
            # grpclib ends a call on a lost connection (containerd restarted) by cancelling the
            # task and raising this without uncancel(): undo that stray cancellation request
            while task is not None and task.cancelling() > cancelling:
                task.uncancel()
            kept.pop().close()
            raise
        except BaseException:
            kept.pop().close()  # the next probe starts on a new connection
            raise
        if reply is None or reply.status != _SERVING:
            raise RuntimeError(f"gRPC health of {service or 'server'!r}: status {reply.status if reply else None}")

    return probe
