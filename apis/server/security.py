"""``kos.security.SecurityService``: trustd-like signing of certificate requests with the OS CA.

Two ways in:

* ``SecurityService`` on the main API (mutual TLS): callers are nodes (``os:impersonator``)
  and admins; requests for roles only an admin may grant are stripped for nodes.
* ``TrustdService`` on its own port (default 50001, server-only TLS with the node's API
  certificate): a worker that has no certificate yet presents the machine token in the
  ``token`` metadata and a CSR; a wrong or missing token is PERMISSION_DENIED, a node without
  the CA key answers UNAVAILABLE (ask another control plane). ``kos.controllers.secrets.trustd.run_trustd`` serves it.

In both, the CSR's subject and SANs are kept, the organizations (roles) are dropped for
non-admins, and the certificate is a client+server one. A CSR that does not parse or whose
signature is wrong is INVALID_ARGUMENT.
"""

from __future__ import annotations

import datetime
import hmac
from collections.abc import Awaitable, Callable

import anyio
import grpclib.const
import grpclib.server
import structlog
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError

from kos.apis import auth
from kos.apis.gen.kos import security as pb
from kos.apis.server.dispatch import Call, Dispatcher
from kos.apis.server.state import parse
from kos.apis.wire import RawMessage
from kos.resources.pki import CertificateAndKey, PKIError, sign_csr

log = structlog.get_logger("kos.apis.trustd")

TRUSTD_PORT = 50001
TOKEN_METADATA = "token"
CERTIFICATE_METHOD = auth.SECURITY + "Certificate"


CAProvider = Callable[[], Awaitable[CertificateAndKey | None]]


class SecurityService:
    """``ca``: the signing CA, or an async function giving it per request (the OS CA of the
    machine config's secrets may appear or change under a running server)."""

    def __init__(self, ca: CertificateAndKey | CAProvider | None) -> None:
        self.ca = ca

    def register(self, d: Dispatcher) -> None:
        d.add(CERTIFICATE_METHOD, self.certificate, Cardinality.UNARY_UNARY)

    async def certificate(self, call: Call) -> None:
        req = parse(pb.CertificateRequest, await call.request())
        ca = await self.ca() if callable(self.ca) else self.ca
        if ca is None or not ca.has_key:
            raise GRPCError(
                Status.UNIMPLEMENTED, "this node holds no CA key: certificates are signed by control planes"
            )
        override: list[str] | None = None if auth.ADMIN in call.roles else []  # nodes get certificates without roles
        try:
            crt = await anyio.to_thread.run_sync(
                lambda: sign_csr(ca, req.csr, server=True, client=True, override_organizations=override)
            )
        except PKIError as exc:
            raise GRPCError(Status.INVALID_ARGUMENT, f"csr: {exc}") from None
        await call.send(bytes(pb.CertificateResponse(ca=ca.cert_pem, crt=crt)))


Stream = grpclib.server.Stream[RawMessage, RawMessage]


class TrustdService:
    """Token-authenticated CSR signing. ``ca`` and ``token`` (async) are read per request
    (the secrets may change under a running server)."""

    def __init__(self, ca: Callable[[], Awaitable[CertificateAndKey | None]], token: Callable[[], Awaitable[str]], *,
                 ttl: datetime.timedelta = datetime.timedelta(days=365)) -> None:
        self.ca = ca
        self.token = token
        self.ttl = ttl

    def __mapping__(self) -> dict[str, grpclib.const.Handler]:
        return {CERTIFICATE_METHOD: grpclib.const.Handler(self._certificate, Cardinality.UNARY_UNARY, RawMessage,
                                                         RawMessage)}

    async def _certificate(self, stream: Stream) -> None:
        msg = await stream.recv_message()
        presented = str(dict(stream.metadata or {}).get(TOKEN_METADATA, ""))
        expected = await self.token()
        if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
            log.warning("certificate request with a wrong machine token", peer=str(stream.peer.addr()))
            raise GRPCError(Status.PERMISSION_DENIED, "token: the machine token is missing or wrong")
        ca = await self.ca()
        if ca is None or not ca.has_key:
            raise GRPCError(Status.UNAVAILABLE, "this node holds no OS CA key: ask a control plane")
        req = parse(pb.CertificateRequest, msg.data if msg is not None else b"")
        try:
            crt = await anyio.to_thread.run_sync(
                lambda: sign_csr(ca, req.csr, server=True, client=True, override_organizations=[], ttl=self.ttl))
        except PKIError as exc:
            raise GRPCError(Status.INVALID_ARGUMENT, f"csr: {exc}") from None
        await stream.send_message(RawMessage(bytes(pb.CertificateResponse(ca=ca.cert_pem, crt=crt))))
