"""``kos.security.SecurityService``: trustd-like signing of certificate requests with the OS CA.

Callers are nodes (``os:impersonator``) and admins; the CSR's subject and SANs are kept, and
the issued certificate is a client+server one valid for a year. A CSR that does not parse or
whose signature is wrong is INVALID_ARGUMENT; requests for roles only an admin may grant are
PERMISSION_DENIED for nodes.
"""

from __future__ import annotations

import anyio
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError

from kos.apis import auth
from kos.apis.gen.kos import security as pb
from kos.apis.server.dispatch import Call, Dispatcher
from kos.apis.server.state import parse
from kos.resources.pki import CertificateAndKey, PKIError, sign_csr


class SecurityService:
    def __init__(self, ca: CertificateAndKey | None) -> None:
        self.ca = ca

    def register(self, d: Dispatcher) -> None:
        d.add(auth.SECURITY + "Certificate", self.certificate, Cardinality.UNARY_UNARY)

    async def certificate(self, call: Call) -> None:
        req = parse(pb.CertificateRequest, await call.request())
        if self.ca is None or not self.ca.has_key:
            raise GRPCError(
                Status.UNIMPLEMENTED, "this node holds no CA key: certificates are signed by control planes"
            )
        ca = self.ca
        override: list[str] | None = None if auth.ADMIN in call.roles else []  # nodes get certificates without roles
        try:
            crt = await anyio.to_thread.run_sync(
                lambda: sign_csr(ca, req.csr, server=True, client=True, override_organizations=override)
            )
        except PKIError as exc:
            raise GRPCError(Status.INVALID_ARGUMENT, f"csr: {exc}") from None
        await call.send(bytes(pb.CertificateResponse(ca=ca.cert_pem, crt=crt)))
