"""Which certificate the node's API serves with: ``APICerts(secrets/api)`` from the secrets
controllers (waited for up to ``api_certs_timeout``), else certificates issued here from the
config's OS CA when it carries the key, else from a CA of the node's own (``<state-dir>/pki``);
the maintenance API's throwaway identity is ``kos.machined.early``'s.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import structlog

from kos.apis.server.nodepki import NodePKI
from kos.machined.nodebase import NodeBase
from kos.resources.pki import CertificateAndKey

log = structlog.get_logger("kos.machined")


@dataclass
class APIIdentity:
    server: CertificateAndKey
    ca_pem: bytes  # trusted for clients and for forwarding
    forward: CertificateAndKey  # os:impersonator client certificate for node-to-node calls
    source: str  # "APICerts" | "config CA" | "node CA"
    version: str | None = None  # of the APICerts resource
    pki: NodePKI | None = None  # when issued here (can issue client configs)



class NodeIdentity(NodeBase):
    async def _identity(self) -> APIIdentity:
        container = self._container()
        if container is not None and "secrets" not in self._missing and self.opts.controllers:
            got = await self._wait_api_certs(self.opts.api_certs_timeout)
            if got is not None:
                return got
        sd = self.opts.state_dir / "pki"
        ca = config_ca(container)
        if ca is not None:
            if not ca.has_key:
                raise RuntimeError(
                    "no API certificate: APICerts did not appear and the config's OS CA has no key "
                    "(a worker gets its certificate from a control plane)"
                )
            await anyio.to_thread.run_sync(install_ca, sd, ca)
            source = "config CA"
        else:
            source = "node CA"
        pki = await anyio.to_thread.run_sync(NodePKI.load_or_create, sd, self.names)
        return APIIdentity(pki.server, pki.ca.cert_pem, pki.node, source, pki=pki)

    async def _wait_api_certs(self, timeout: float) -> APIIdentity | None:
        from kos.resources.secrets import API_CERTS, API_CERTS_ID

        with anyio.move_on_after(timeout):
            async with self.state.watch(API_CERTS.pointer(API_CERTS_ID)) as events:
                async for ev in events:
                    r = ev.resource
                    if r is None or ev.type.name == "DESTROYED":
                        continue
                    s = r.spec
                    if s.server_cert and s.server_key and s.ca_cert:
                        fwd = CertificateAndKey(s.client_cert.encode(), s.client_key.encode()) if s.client_cert \
                            else CertificateAndKey(s.server_cert.encode(), s.server_key.encode())
                        return APIIdentity(
                            CertificateAndKey(s.server_cert.encode(), s.server_key.encode()),
                            s.ca_cert.encode(), fwd, "APICerts", version=str(r.metadata.version),
                        )
        log.warning("APICerts did not appear in time: issuing the API certificate locally", timeout=timeout)
        self.sequencer.set_condition("apiCerts", f"APICerts(secrets/api) did not appear within {timeout:g} s")
        return None


def config_ca(container: Any) -> CertificateAndKey | None:
    if container is None:
        return None
    try:
        ca = container.config.machine.ca
    except AttributeError:
        return None
    if not ca.crt:
        return None
    pair: CertificateAndKey = ca.to_pair() if ca.key else CertificateAndKey(base64.b64decode(ca.crt), b"")
    return pair

def install_ca(directory: Path, ca: CertificateAndKey) -> None:
    """Use ``ca`` as the node's OS CA (re-issuing the node certificates when it changed)."""
    directory.mkdir(parents=True, exist_ok=True)
    crt = directory / "ca.crt"
    if crt.exists() and crt.read_bytes() == ca.cert_pem:
        return
    for name in ("server.crt", "server.key", "node.crt", "node.key"):
        (directory / name).unlink(missing_ok=True)
    ca.to_files(crt, directory / "ca.key")
