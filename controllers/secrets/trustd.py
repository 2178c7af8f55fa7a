"""Running trustd on a control plane, and following certificate rotation on live servers.

``run_trustd(state, host, port)`` serves ``TrustdService`` (token-authenticated CSR
signing, ``kos.apis.server.security``) with the node's API server certificate from
``APICerts(secrets/api)``, signing with the OS CA and checking the machine token from
``OSRootSecrets(secrets/os)``, both read per request. It waits for APICerts, then reloads
the TLS certificate whenever APICerts changes. ``task_status.started(port)`` reports the
bound port.

``serve_with_api_certs`` is that serving loop for any grpclib services (the cluster discovery
registry uses it too); ``machine_token`` reads the token a request must carry.

``follow_api_certs(state, reload)`` calls ``reload(server_pair, ca_pem)`` for every new
APICerts (e.g. ``APIServer.reload_identity``): servers pick up renewed certificates
without a restart.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import grpclib.server
import structlog
from anyio.abc import TaskStatus

from kos.apis.server.security import TRUSTD_PORT, TrustdService
from kos.apis.server.serve import reload_context
from kos.apis.tls import server_context
from kos.resources import secrets as s
from kos.resources.core import EventType, Pointer, State
from kos.resources.pki import CertificateAndKey

log = structlog.get_logger("kos.controllers.secrets.trustd")

API_CERTS_PTR = Pointer(s.NAMESPACE, s.API_CERTS.type, s.API_CERTS_ID)
OS_ROOT_PTR = Pointer(s.NAMESPACE, s.OS_ROOT.type, s.OS_ROOT_ID)

Reload = Callable[[CertificateAndKey, bytes], None]


def _server_pair(spec: s.APICertsSpec) -> CertificateAndKey:
    return CertificateAndKey(spec.server_cert.encode(), spec.server_key.encode())


async def follow_api_certs(state: State, reload: Reload, *, skip_version: str | None = None) -> None:
    """Call ``reload`` for each APICerts version (except ``skip_version``), forever."""
    last = skip_version
    async with state.watch(API_CERTS_PTR) as events:
        async for ev in events:
            if ev.type not in (EventType.CREATED, EventType.UPDATED) or ev.resource is None:
                continue
            version = str(ev.resource.metadata.version)
            if version == last:
                continue
            last = version
            spec: s.APICertsSpec = ev.resource.spec
            try:
                reload(_server_pair(spec), spec.ca_cert.encode())
            except (ssl.SSLError, ValueError) as exc:
                log.error("reloading the API certificate failed; keeping the previous one", error=str(exc))
                continue
            log.info("API certificate reloaded", version=version)


async def machine_token(state: State) -> str:
    """The machine token of ``OSRootSecrets`` ("" before the config is known), read per call."""
    r = await state.get_or_none(OS_ROOT_PTR)
    return str(r.spec.token) if r is not None else ""


async def serve_with_api_certs(state: State, host: str, port: int, services: Sequence[Any], *, name: str,
                               task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
    """Serve grpclib ``services`` on ``host:port`` (port 0: any) over server-only TLS with the
    node's API certificate (waiting for APICerts first, then reloading it on rotation) until
    cancelled; ``task_status.started(port)`` reports the bound port."""
    api = await _wait_for(state, API_CERTS_PTR)
    ctx = server_context(_server_pair(api.spec), None)
    server = grpclib.server.Server(list(services))
    await server.start(host, port, ssl=ctx, reuse_address=True)
    sockets = getattr(server._server, "sockets", None) or []
    bound = int(sockets[0].getsockname()[1]) if sockets else port
    log.info(f"{name} listening", host=host, port=bound)
    task_status.started(bound)
    try:
        await follow_api_certs(state, lambda pair, _ca: reload_context(ctx, pair),
                               skip_version=str(api.metadata.version))
    finally:
        server.close()
        with anyio.move_on_after(2, shield=True):
            await server.wait_closed()


async def issuing_ca(state: State) -> CertificateAndKey | None:
    """The OS CA with its key from ``OSRootSecrets`` (the machine config's secrets: control
    planes hold the key, workers only the certificate), read per call; None without the key."""
    r = await state.get_or_none(OS_ROOT_PTR)
    if r is None or not r.spec.can_issue:
        return None
    return CertificateAndKey(r.spec.ca_cert.encode(), r.spec.ca_key.encode())


async def run_trustd(state: State, host: str = "0.0.0.0", port: int = TRUSTD_PORT, *,
                     task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
    async def ca() -> CertificateAndKey | None:
        return await issuing_ca(state)

    async def token() -> str:
        return await machine_token(state)

    await serve_with_api_certs(state, host, port, [TrustdService(ca, token)], name="trustd",
                               task_status=task_status)


async def _wait_for(state: State, ptr: Pointer) -> Any:
    async with state.watch(ptr) as events:
        async for ev in events:
            if ev.type in (EventType.CREATED, EventType.UPDATED) and ev.resource is not None:
                return ev.resource
    raise RuntimeError(f"watch of {ptr} ended")
