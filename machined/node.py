"""machined as an ordinary process: the store, the service supervisor and the API servers.

``run_node(options)`` hosts an ``InMemoryState`` (the ``meta`` namespace filled from the
registry), a service ``Supervisor``, and the gRPC API on ``options.listen``:

* with a configuration in ``<state-dir>/config.yaml`` (or without ``--maintenance``): the
  full API over mutual TLS with the certificates of ``<state-dir>/pki`` (created on first
  start), and an admin kosconfig at ``<state-dir>/kosconfig``;
* with ``--maintenance`` and no configuration: the reduced maintenance API over TLS with a
  self-signed certificate and no client certificate; the first ApplyConfiguration stores
  the configuration and the node switches to mutual TLS on the same address.

The bound address is written to ``<state-dir>/api-endpoint`` once the API serves (so a
test can listen on port 0). SIGTERM/SIGINT stop everything cleanly.
"""

from __future__ import annotations

import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import structlog

from kos.apis import auth
from kos.apis.server.dispatch import Node, split_endpoint
from kos.apis.server.machine import ConfigStore, EventBus, MachineService
from kos.apis.server.nodepki import NodePKI, generate_client_configuration
from kos.apis.server.security import SecurityService
from kos.apis.server.serve import APIServer
from kos.apis.server.state import StateService
from kos.apis.tls import client_context, server_context
from kos.machined.services import Supervisor
from kos.resources.core.inmem import InMemoryState
from kos.resources.core.meta import publish_meta
from kos.resources.pki import generate_ca, issue_certificate

log = structlog.get_logger("kos.machined")

DEFAULT_LISTEN = f"0.0.0.0:{50000}"


@dataclass
class NodeOptions:
    state_dir: Path
    listen: str = DEFAULT_LISTEN
    maintenance: bool = False
    node_names: list[str] = field(default_factory=list)
    writable_namespaces: list[str] = field(default_factory=list)
    history_max: int = 1024


def _load_resource_modules() -> None:
    """Import the resource catalogue so every type has its definition registered."""
    import importlib
    import pkgutil

    import kos.resources as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name in ("core", "pki"):
            continue
        try:
            importlib.import_module(f"kos.resources.{info.name}")
        except Exception as exc:  # a broken catalogue module must not keep the node down
            log.warning("resource module failed to import", module=info.name, error=repr(exc))


def _maintenance_identity(names: list[str]) -> Any:
    ca = generate_ca("kos-maintenance")
    return issue_certificate(ca, common_name="kos-maintenance", dns_names=["localhost"], ip_addresses=[
        n for n in names if n.replace(".", "").isdigit()
    ], server=True)


async def run_node(opts: NodeOptions, *, ready: anyio.Event | None = None) -> None:
    sd = opts.state_dir
    sd.mkdir(parents=True, exist_ok=True)
    host, port = split_endpoint(opts.listen, 50000)
    _load_resource_modules()
    state = InMemoryState(history_max=opts.history_max)
    await publish_meta(state)
    names = [host, socket.gethostname(), *opts.node_names]
    config_path = sd / "config.yaml"
    configured = anyio.Event()
    events = EventBus()
    policy = auth.ResourcePolicy(writable_namespaces=frozenset(opts.writable_namespaces))
    pki = await anyio.to_thread.run_sync(NodePKI.load_or_create, sd / "pki", [n for n in names if n != "0.0.0.0"])

    async def applied(data: bytes, mode: Any) -> None:
        configured.set()

    store = ConfigStore(config_path, on_applied=applied)
    events.publish("machined", {"action": "started"})
    async with Supervisor(state) as sup, anyio.create_task_group() as tg:
        tg.start_soon(_signals, tg.cancel_scope)
        maintenance = opts.maintenance and not config_path.exists()
        if maintenance:
            identity = await anyio.to_thread.run_sync(_maintenance_identity, names)
            node = Node(names=frozenset(opts.node_names), port=port, maintenance=True)
            machine = MachineService(config=store, maintenance=True, supervisor=sup, events=events)
            server = await APIServer.start(
                host, port, server_context(identity, None), node=node,
                state=StateService(state, policy), machine=machine,
            )
            _write_endpoint(sd, host, server.port)
            if ready is not None:
                ready.set()
            await configured.wait()
            log.info("configuration applied in maintenance mode: switching to mutual TLS")
            await server.close(grace=2.0)
            port = server.port
        node = Node(
            names=frozenset(opts.node_names),
            port=port,
            forward_ssl=client_context(pki.ca.cert_pem, pki.node),
        )
        endpoint = f"{host if host not in ('0.0.0.0', '::') else '127.0.0.1'}"
        machine = MachineService(
            config=store,
            supervisor=sup,
            events=events,
            client_config=lambda roles, ttl: generate_client_configuration(
                pki, "kos", [f"{endpoint}:{node.port}"], roles, ttl
            ),
        )
        server = await APIServer.start(
            host, port, server_context(pki.server, pki.ca.cert_pem), node=node,
            state=StateService(state, policy), machine=machine, security=SecurityService(pki.ca),
        )
        cfg = pki.client_config("kos", [f"{endpoint}:{server.port}"], [auth.ADMIN], 365 * 86400)
        await anyio.to_thread.run_sync(cfg.save, sd / "kosconfig")
        _write_endpoint(sd, host, server.port)
        if ready is not None:
            ready.set()
        try:
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await server.close(grace=2.0)
                await sup.stop_all()
                log.info("machined stopped")


def _write_endpoint(sd: Path, host: str, port: int) -> None:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    tmp = sd / "api-endpoint.tmp"
    tmp.write_text(f"{shown}:{port}\n")
    tmp.replace(sd / "api-endpoint")


async def _signals(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for sig in signals:
            log.info("signal received, stopping", signal=signal.Signals(sig).name)
            scope.cancel()
            return
