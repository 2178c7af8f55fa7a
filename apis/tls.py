"""TLS 1.3 contexts for the API: mutual TLS for the normal API, server-only TLS for
maintenance mode, and the client side of both (``insecure`` skips server verification, as
``kosctl --insecure`` does against a maintenance node).

Certificates and keys are PEM bytes (``kos.resources.pki.CertificateAndKey``); the ssl
module only loads files, so they pass through anonymous memory files (``memfd``, never on a
disk; a private temporary directory where there is no memfd).
"""

from __future__ import annotations

import os
import ssl
from typing import NamedTuple, Protocol


class Identity(Protocol):
    """A PEM certificate (chain) and its PEM key, e.g. ``kos.resources.pki.CertificateAndKey``."""

    @property
    def cert_pem(self) -> bytes: ...

    @property
    def key_pem(self) -> bytes: ...


class PEMPair(NamedTuple):
    """The lightest ``Identity`` (the client builds one without importing ``cryptography``)."""

    cert_pem: bytes
    key_pem: bytes

ALPN = ["h2"]


def _load_chain(ctx: ssl.SSLContext, pair: Identity) -> None:
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fds = []
        try:
            for name, data in (("kos-crt", pair.cert_pem), ("kos-key", pair.key_pem)):
                fds.append(os.memfd_create(name, os.MFD_CLOEXEC))
                os.write(fds[-1], data)
            ctx.load_cert_chain(f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}")
        finally:
            for fd in fds:
                os.close(fd)
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="kos-tls-") as tmp:
        crt = os.path.join(tmp, "crt.pem")
        key = os.path.join(tmp, "key.pem")
        for path, data in ((crt, pair.cert_pem), (key, pair.key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        ctx.load_cert_chain(crt, key)


def _base(purpose: ssl.Purpose) -> ssl.SSLContext:
    # not ssl.create_default_context: loading the system CA store costs ~20-40 ms per context
    # and is never used (peers are verified against the cluster's own CA only)
    protocol = ssl.PROTOCOL_TLS_CLIENT if purpose == ssl.Purpose.SERVER_AUTH else ssl.PROTOCOL_TLS_SERVER
    ctx = ssl.SSLContext(protocol)
    ctx.options |= ssl.OP_NO_COMPRESSION
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols(ALPN)
    return ctx


def server_context(identity: Identity, client_ca: bytes | None) -> ssl.SSLContext:
    """The API server's context: requires a client certificate signed by ``client_ca``
    (mutual TLS) unless ``client_ca`` is None (maintenance mode: anyone may connect)."""
    ctx = _base(ssl.Purpose.CLIENT_AUTH)
    _load_chain(ctx, identity)
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=client_ca.decode())
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def client_context(
    ca: bytes | None, identity: Identity | None, *, insecure: bool = False
) -> ssl.SSLContext:
    """A client context verifying the server against ``ca`` (hostname not checked: nodes are
    addressed by IP and their certificates name them by IP and hostname), presenting
    ``identity`` when given. ``insecure`` accepts any server certificate."""
    ctx = _base(ssl.Purpose.SERVER_AUTH)
    ctx.check_hostname = False
    if insecure or ca is None:
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(cadata=ca.decode())
        ctx.verify_mode = ssl.CERT_REQUIRED
    if identity is not None:
        _load_chain(ctx, identity)
    return ctx
