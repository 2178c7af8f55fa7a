"""An in-process API server on loopback over real mutual TLS, for tests and benchmarks.

``serve_state(state, writable=...)`` starts the ``cosi.resource.State`` and machine services
over ``state`` on ``127.0.0.1:<free port>`` with a throwaway CA (generated once per process),
and yields a ``LoopbackAPI`` whose ``connect(roles)`` opens a client ``Connection`` with a
certificate carrying those roles. Nothing here is faked: the client and server talk HTTP/2 +
TLS 1.3 through the kernel's loopback interface exactly as kosctl and machined do.
"""

from __future__ import annotations

import datetime
import functools
import tempfile
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from kos.apis import auth
from kos.apis.client import Connection
from kos.apis.server.dispatch import Node
from kos.apis.server.machine import ConfigStore, MachineService
from kos.apis.server.security import SecurityService
from kos.apis.server.serve import APIServer
from kos.apis.server.state import StateService
from kos.apis.tls import server_context
from kos.resources.core import State
from kos.resources.pki import CertificateAndKey, generate_ca, issue_certificate


@dataclass(frozen=True)
class LoopbackPKI:
    ca: CertificateAndKey
    server: CertificateAndKey

    @functools.lru_cache(maxsize=16)  # noqa: B019 - a handful of role sets per process
    def client(self, roles: tuple[str, ...], ttl_seconds: int = 3600) -> CertificateAndKey:
        return issue_certificate(
            self.ca, common_name="loopback-client", organizations=roles, client=True,
            ttl=datetime.timedelta(seconds=ttl_seconds),
        )


@functools.lru_cache(maxsize=1)
def loopback_pki() -> LoopbackPKI:
    ca = generate_ca("kos-loopback", organization="kos")
    server = issue_certificate(ca, common_name="localhost", dns_names=["localhost"], ip_addresses=["127.0.0.1"],
                               server=True)
    return LoopbackPKI(ca, server)


@dataclass
class LoopbackAPI:
    server: APIServer
    pki: LoopbackPKI

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def connect(self, roles: Iterable[str] = (auth.ADMIN,), *, timeout: float | None = 30.0) -> Connection:
        identity = self.pki.client(tuple(sorted(roles)))
        return Connection(self.endpoint, ca=self.pki.ca.cert_pem, identity=identity, timeout=timeout)


@asynccontextmanager
async def serve_state(
    state: State, *, writable: Iterable[str] = (), machine: MachineService | None = None
) -> AsyncIterator[LoopbackAPI]:
    """Serve ``state`` (admin may write the ``writable`` namespaces), ``machine`` (default: a
    machine service with a throwaway config store and no supervisor) and certificate signing
    with the loopback CA until the block exits."""
    pki = loopback_pki()
    policy = auth.ResourcePolicy(writable_namespaces=frozenset(writable))
    with tempfile.TemporaryDirectory(prefix="kos-loopback-") as tmp:
        machine = machine or MachineService(config=ConfigStore(Path(tmp) / "config.yaml"))
        server = await APIServer.start(
            "127.0.0.1", 0, server_context(pki.server, pki.ca.cert_pem),
            node=Node(names=frozenset({"loopback"}), port=0), state=StateService(state, policy), machine=machine,
            security=SecurityService(pki.ca),
        )
        try:
            yield LoopbackAPI(server, pki)
        finally:
            await server.close(grace=1.0)
