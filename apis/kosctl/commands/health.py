"""``kosctl health``: cluster health checks, printed one per line as they pass (talosctl style).

The checks (``kos.apis.client.health`` lists them) run here, through the endpoint, or, with
``--server``, on the node (the ``ClusterHealthCheck`` RPC, to the context's node when it names
one, else the endpoint's), which streams the same lines back; each check is retried until it
passes or ``--wait-timeout`` runs out.

The first failing check is reported with its last error and the command exits 1. Nodes are
given with ``--control-plane-nodes`` and ``--worker-nodes`` (addresses as the endpoint
reaches them), taken from a local cluster's state with ``--cluster NAME``, or, without
either, discovered from the cluster's ``Members`` as the context's node sees them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kos.apis.kosctl.errors import CLIError

M = "/kos.machine.MachineService/"

if TYPE_CHECKING:
    from kos.apis.client.health import ClusterNodes

# kos.apis.client.health is imported where it is used: it pulls in the client library (grpclib),
# which ``kosctl --help`` must not pay for


async def discovered_nodes(conn: Any, node: str | None) -> ClusterNodes:
    """The nodes from cluster discovery (``Members`` of the context's node)."""
    from kos.apis.client.health import DiscoveryError
    from kos.apis.client.health import discovered_nodes as discover

    try:
        return await discover(conn, node)
    except DiscoveryError as exc:
        raise CLIError(str(exc)) from None


async def server_checks(conn: Any, node: str | None, nodes: ClusterNodes, wait_timeout: float) -> bool:
    """``--server``: the node runs the checks and streams its lines, printed as they come;
    False when a check failed."""
    from kos.apis.client import APIError
    from kos.apis.client.health import Status, from_response, line
    from kos.apis.gen.kos import machine as pb

    request = pb.ClusterHealthCheckRequest(wait_timeout=wait_timeout, control_plane_nodes=nodes.control_planes,
                                           worker_nodes=nodes.workers)
    ok = True
    try:
        async with conn.stream(M + "ClusterHealthCheck", bytes(request), node=node) as replies:
            async for data in replies:
                event = from_response(pb.ClusterHealthCheckResponse().parse(data))
                print(line(event), flush=True)
                ok = ok and event.status is not Status.FAILED
    except APIError as exc:
        raise CLIError(f"health --server: {exc}") from None
    return ok


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("health", help="check the cluster's health (etcd, services, readiness)")
    p.add_argument("-e", "--endpoints", default=argparse.SUPPRESS, help="API endpoint to go through")
    p.add_argument("--cluster", help="a local cluster (kosctl cluster create): take its nodes")
    p.add_argument("--state-root", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--control-plane-nodes", default="", help="comma-separated control-plane node addresses")
    p.add_argument("--worker-nodes", default="", help="comma-separated worker node addresses")
    p.add_argument("--wait-timeout", type=float, default=60.0, help="seconds to wait for every check (default 60)")
    p.add_argument("--server", action="store_true",
                   help="run the checks on the node (ClusterHealthCheck RPC) instead of from here")
    p.set_defaults(func=run)


def _split(value: str) -> list[str]:
    return [x.strip() for x in value.split(",") if x.strip()]


def run(args: argparse.Namespace) -> int:
    import anyio

    from kos.apis.client import ClientConfig, ConfigError, Connection
    from kos.apis.client.health import ClusterNodes, discovery_event, line, run_checks

    if args.wait_timeout <= 0:
        raise CLIError(f"--wait-timeout {args.wait_timeout}: expected a positive number of seconds")
    try:
        cfg = ClientConfig.load(getattr(args, "kosconfig", None), missing_ok=False)
        name, ctx = cfg.current() if not getattr(args, "context", None) else (args.context, cfg.contexts[args.context])
    except (ConfigError, KeyError) as exc:
        raise CLIError(f"client config: {exc}") from None
    cps, workers = _split(args.control_plane_nodes), _split(args.worker_nodes)
    kube: str | None = None  # the Kubernetes API: the cluster endpoint, or a local cluster's forwarded port
    if args.cluster:
        from kos.platform.provision.namespaces import NamespaceProvisioner, ProvisionError

        try:
            state = NamespaceProvisioner(args.state_root).load(args.cluster)
        except ProvisionError as exc:
            raise CLIError(str(exc)) from None
        cps = [n.ip for n in state.nodes if n.role == "controlplane"]
        workers = [n.ip for n in state.nodes if n.role == "worker"]
        kube = next((f"https://127.0.0.1:{n.kube_port}" for n in state.nodes if getattr(n, "kube_port", 0)), None)
    endpoint = getattr(args, "endpoints", None)
    endpoint = _split(endpoint)[0] if endpoint else None

    async def go() -> bool:
        async with Connection.from_context(ctx, endpoint=endpoint, timeout=15) as conn:
            node = ctx.nodes[0] if ctx.nodes else None
            if args.server:
                return await server_checks(conn, node, ClusterNodes(cps, workers), args.wait_timeout)
            nodes = ClusterNodes(cps, workers, kube_endpoint=kube)
            if not cps:
                nodes = await discovered_nodes(conn, node)
                print(line(discovery_event(nodes)), flush=True)
            return await run_checks(conn, nodes, timeout=args.wait_timeout, out=lambda s: print(s, flush=True))

    try:
        ok = anyio.run(go)
    except ValueError as exc:
        raise CLIError(f"context {name!r}: {exc}") from None
    if not ok:
        print("health: FAILED", file=sys.stderr)
        return 1
    return 0
