"""The worker side of the trustd flow: ``TrustdSigner`` sends a CSR with the machine token to
a control plane's trustd port (server-only TLS, the server verified against the OS CA the
worker's config carries) and returns ``(ca_pem, cert_pem)``. Endpoints are tried in turn;
the first answer wins; if none answers, ``RemoteSignError`` lists why each failed (the
``APICertsController`` retries later).

``remote_signer_from_config(container)`` builds one from a worker's config: the control
plane endpoint host (``cluster.controlPlane.endpoint``), ``machine.token``, ``machine.ca.crt``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
from grpclib.client import Channel
from grpclib.const import Cardinality
from grpclib.exceptions import GRPCError

from kos.apis.gen.kos import security as pb
from kos.apis.server.dispatch import split_endpoint
from kos.apis.server.security import CERTIFICATE_METHOD, TOKEN_METADATA, TRUSTD_PORT
from kos.apis.tls import client_context
from kos.apis.wire import RawMessage
from kos.controllers.secrets.sans import endpoint_host


class RemoteSignError(Exception):
    """No control plane signed the CSR (the message says why for each endpoint)."""


class TrustdSigner:
    def __init__(self, endpoints: Sequence[str], token: str, ca_pem: bytes, *, port: int = TRUSTD_PORT,
                 timeout: float = 10.0) -> None:
        if not endpoints:
            raise ValueError("endpoints: empty, expected at least one control plane address")
        self.endpoints = list(endpoints)
        self.token = token
        self.ca_pem = ca_pem
        self.port = port
        self.timeout = timeout

    async def __call__(self, csr: bytes) -> tuple[bytes, bytes]:
        errors = []
        for ep in self.endpoints:
            try:
                return await self._ask(ep, csr)
            except GRPCError as exc:
                errors.append(f"{ep}: {exc.status.name}: {exc.message}")
            except (OSError, TimeoutError) as exc:
                errors.append(f"{ep}: {exc or type(exc).__name__}")
        raise RemoteSignError("no control plane signed the API certificate: " + "; ".join(errors))

    async def _ask(self, endpoint: str, csr: bytes) -> tuple[bytes, bytes]:
        host, port = split_endpoint(endpoint, self.port)
        ctx = client_context(self.ca_pem, None)
        channel = Channel(host, port, ssl=ctx)
        try:
            with anyio.fail_after(self.timeout):
                async with channel.request(CERTIFICATE_METHOD, Cardinality.UNARY_UNARY, RawMessage, RawMessage,
                                           metadata={TOKEN_METADATA: self.token}) as stream:
                    await stream.send_message(RawMessage(bytes(pb.CertificateRequest(csr=csr))), end=True)
                    reply = await stream.recv_message()
                    await stream.recv_trailing_metadata()
        finally:
            channel.close()
        if reply is None:
            raise OSError(f"{endpoint}: empty reply")
        resp = pb.CertificateResponse().parse(reply.data)
        return resp.ca, resp.crt


def remote_signer_from_config(container: Any, *, port: int = TRUSTD_PORT) -> TrustdSigner:
    """A signer for a worker: its control plane endpoint, machine token and OS CA cert."""
    cfg = container.config
    host = endpoint_host(cfg.cluster.control_plane.endpoint)
    if not host:
        raise ValueError("cluster.controlPlane.endpoint: empty, expected the control plane's URL")
    ca = cfg.machine.ca.to_pair().cert_pem if cfg.machine.ca.crt else b""
    if not ca:
        raise ValueError("machine.ca.crt: empty, expected the OS CA certificate")
    return TrustdSigner([host], cfg.machine.token, ca, port=port)
