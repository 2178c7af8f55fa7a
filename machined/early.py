"""machined's first answer: the maintenance API listening, and answering ``Version``, before the
rest of machined is imported (issue 17: "serve the API first, import subsystems lazily").

A node that is sure to wait in maintenance mode (``--maintenance``, no stored config, none from
the platform: ``serves_maintenance_first``) listens from here with the throwaway maintenance
identity, answering ``Version`` at once (``kos.apis.server.version``) while the node, its
config model, structlog, the generated machine API and the controllers load in a worker
thread; any other call waits until the node serves its maintenance API on this same server
(``NodeAPI._serve_maintenance`` adopts it). Nothing here may import those: the test
``tests/machined/test_lean_start.py`` pins what is loaded when the first answer leaves.
"""

from __future__ import annotations

import socket
from pathlib import Path

from kos.apis.endpoint import split_endpoint
from kos.apis.server.dispatch import Node
from kos.apis.server.serve import APIServer
from kos.apis.server.version import VersionService
from kos.apis.tls import Identity, PEMPair, server_context
from kos.platform.linux.selfsigned import Unavailable, self_signed

DEFAULT_PORT = 50000


def serves_maintenance_first(*, maintenance: bool, state_dir: Path, initial_config: bytes | None) -> bool:
    """Whether this start will wait in maintenance mode: ``--maintenance``, no config on STATE
    (``config.yaml``, or a staged one the config manager would promote) and none from the
    platform. Anything else (a config, even an invalid one) boots as before."""
    if not maintenance or initial_config:
        return False
    return not ((state_dir / "config.yaml").exists() or (state_dir / "config.staged.yaml").exists())


def node_names(host: str, extra: list[str]) -> list[str]:
    """The names a node answers to: its listen address, hostname and ``--node-name``s."""
    return [n for n in [host, socket.gethostname(), *extra] if n not in ("0.0.0.0", "::")]


def maintenance_identity(names: list[str]) -> Identity:
    """The maintenance API's throwaway TLS identity (clients connect with ``--insecure``): a
    self-signed P-256 certificate from the libcrypto ``ssl`` links (``kos.platform.linux.
    selfsigned``: no ``cryptography`` import at start), else one issued with ``kos.resources.pki``."""
    ips = [n for n in names if n.replace(".", "").isdigit()]
    try:
        return PEMPair(*self_signed("kos-maintenance", ["localhost"], ips))
    except Unavailable:
        from kos.resources.pki import generate_ca, issue_certificate

        ca = generate_ca("kos-maintenance")
        return issue_certificate(ca, common_name="kos-maintenance", dns_names=["localhost"], ip_addresses=ips,
                                 server=True)


async def listen_maintenance(listen: str, extra_names: list[str], platform_name: str) -> APIServer:
    """The maintenance API's server, answering ``Version`` only until the node serves it."""
    host, port = split_endpoint(listen, DEFAULT_PORT)
    identity = maintenance_identity(node_names(host, extra_names))  # ~3 ms (libcrypto), nothing else runs yet
    node = Node(names=frozenset(extra_names), port=port, maintenance=True)
    return await APIServer.listen(host, port, server_context(identity, None), node=node,
                                  early=[VersionService(platform_name, maintenance=True)])
