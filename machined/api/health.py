"""The ``ClusterHealthCheck`` RPC: the cluster health checks run by a node (``kosctl health
--server``, like ``talosctl health --server``).

``ClusterHealthAPI(endpoint, ssl_context)`` is a machine-API extension. The node opens a client
``Connection`` to its own API (``endpoint()``, with its node-to-node client identity in
``ssl_context``) passing the caller's roles in ``kos-roles``, so every call of the checks is
authorized as the caller's own would be, and runs the checks of ``kos.apis.client.health``,
streaming one ``ClusterHealthCheckResponse`` per line kosctl prints. Nodes not given are
discovered from the node's ``Members``.

Errors: a malformed node address or wait timeout -> INVALID_ARGUMENT naming the value; worker
nodes without control-plane nodes -> INVALID_ARGUMENT; discovery failing -> FAILED_PRECONDITION.
A check that does not pass in time is not an RPC error: it is the stream's last message
(status FAILED).
"""

from __future__ import annotations

import ipaddress
import math
import re
import ssl
from collections.abc import Callable
from contextlib import aclosing

from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError

from kos.apis import auth
from kos.apis.client import Connection, health
from kos.apis.endpoint import split_endpoint
from kos.apis.gen.kos import machine as pb
from kos.apis.server.dispatch import Call, Dispatcher
from kos.apis.server.state import parse
from kos.resources.core import echo

DEFAULT_WAIT_TIMEOUT = 60.0
MAX_WAIT_TIMEOUT = 3600.0

_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def check_address(field: str, index: int, value: str) -> str:
    """``value`` if it is ``host`` or ``host:port`` (an IP address or a DNS name), else
    INVALID_ARGUMENT naming it."""
    want = "expected an IP address or DNS name, optionally with :port"
    try:
        host, _ = split_endpoint(value, 50000)
    except ValueError as exc:
        raise GRPCError(Status.INVALID_ARGUMENT, f"{field}[{index}] {echo(value)}: {exc}; {want}") from None
    try:
        ipaddress.ip_address(host)
        return value
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels) or host.replace(".", "").isdigit():
        raise GRPCError(Status.INVALID_ARGUMENT, f"{field}[{index}] {echo(value)}: {want}")
    return value


def wait_timeout(value: float) -> float:
    """The request's wait timeout in seconds (0: the default), or INVALID_ARGUMENT."""
    if value == 0:
        return DEFAULT_WAIT_TIMEOUT
    if not math.isfinite(value) or value < 0 or value > MAX_WAIT_TIMEOUT:
        raise GRPCError(Status.INVALID_ARGUMENT, f"wait_timeout {value}: expected seconds in (0, {MAX_WAIT_TIMEOUT:g}]"
                                                 " (0: the default, 60)")
    return value


def requested_nodes(req: pb.ClusterHealthCheckRequest) -> health.ClusterNodes | None:
    """The request's nodes (checked), or None to discover them."""
    cps = [check_address("control_plane_nodes", i, v) for i, v in enumerate(req.control_plane_nodes)]
    workers = [check_address("worker_nodes", i, v) for i, v in enumerate(req.worker_nodes)]
    if not cps:
        if workers:
            raise GRPCError(Status.INVALID_ARGUMENT,
                            "worker_nodes given without control_plane_nodes: give both, or neither to discover them")
        return None
    return health.ClusterNodes(cps, workers)


class ClusterHealthAPI:
    def __init__(self, endpoint: Callable[[], str], ssl_context: ssl.SSLContext, *, poll: float = 1.0,
                 call_timeout: float = 15.0) -> None:
        self.endpoint = endpoint
        self.ssl_context = ssl_context
        self.poll = poll
        self.call_timeout = call_timeout

    def register(self, d: Dispatcher) -> None:
        d.add(auth.MACHINE + "ClusterHealthCheck", self.cluster_health_check, Cardinality.UNARY_STREAM)

    def connect(self, roles: frozenset[str]) -> Connection:
        """A connection to this node's own API acting with ``roles``."""
        return Connection(self.endpoint(), ssl_context=self.ssl_context, timeout=self.call_timeout,
                          metadata={auth.ROLES_METADATA: ",".join(sorted(roles))})

    async def cluster_health_check(self, call: Call) -> None:
        req = parse(pb.ClusterHealthCheckRequest, await call.request())
        timeout = wait_timeout(req.wait_timeout)
        nodes = requested_nodes(req)
        async with self.connect(call.roles) as conn:
            if nodes is None:
                try:
                    nodes = await health.discovered_nodes(conn, None)
                except health.DiscoveryError as exc:
                    raise GRPCError(Status.FAILED_PRECONDITION, str(exc)) from None
                await call.send(bytes(health.to_response(health.discovery_event(nodes))))
            # closed here, not by the garbage collector, when the caller goes away mid-check
            async with aclosing(health.health_events(conn, nodes, timeout=timeout, poll=self.poll)) as events:
                async for event in events:
                    await call.send(bytes(health.to_response(event)))
