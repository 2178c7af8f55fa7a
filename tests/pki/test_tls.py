"""Issued certificates work for real mutual TLS (OpenSSL via the ssl module): a server
certificate with IP/DNS SANs and a client certificate with a role in O complete a handshake
over a socket pair; a certificate from another CA, or with the wrong usage, is refused."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest

from kos.resources import pki


def _ctx(purpose: ssl.Purpose, pair: pki.CertificateAndKey, ca: pki.CertificateAndKey, d: Path, name: str) -> \
        ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if purpose is ssl.Purpose.CLIENT_AUTH else ssl.PROTOCOL_TLS_CLIENT)
    pair.to_files(d / f"{name}.crt", d / f"{name}.key")
    ctx.load_cert_chain(d / f"{name}.crt", d / f"{name}.key")
    ctx.load_verify_locations(cadata=ca.cert_pem.decode())
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, server_name: str) -> tuple[object, object]:
    """Run both sides of a TLS handshake; returns (server result, client result): the peer
    certificate dict or the exception raised."""
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)
    results: dict[str, object] = {}

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(a, server_side=True) as s:
                results["server"] = s.getpeercert()
                s.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            results["server"] = exc

    t = threading.Thread(target=serve)
    t.start()
    try:
        with client_ctx.wrap_socket(b, server_hostname=server_name) as c:
            c.recv(2)
            results["client"] = c.getpeercert()
    except (ssl.SSLError, OSError) as exc:
        results["client"] = exc
    finally:
        b.close()
        t.join(10)
        a.close()
    return results.get("server"), results.get("client")


@pytest.mark.parametrize("key_type", ["ecdsa", "ed25519"])
def test_mutual_tls(tmp_path: Path, key_type: str) -> None:
    ca = pki.generate_ca("kos", organization="kos", key_type=key_type)
    server = pki.issue_certificate(ca, common_name="node-1", dns_names=["node-1"], ip_addresses=["10.5.0.2"],
                                   server=True, key_type=key_type)
    client = pki.issue_certificate(ca, common_name="admin", organizations=["os:admin"], client=True,
                                   key_type=key_type)
    sctx = _ctx(ssl.Purpose.CLIENT_AUTH, server, ca, tmp_path, "server")
    cctx = _ctx(ssl.Purpose.SERVER_AUTH, client, ca, tmp_path, "client")
    for name in ("node-1", "10.5.0.2"):
        srv, cli = _handshake(sctx, cctx, name)
        assert isinstance(srv, dict) and isinstance(cli, dict), (srv, cli)
        assert (("organizationName", "os:admin"),) in srv["subject"]
        assert ("IP Address", "10.5.0.2") in cli["subjectAltName"]
    # hostname not in the SANs
    _, cli = _handshake(sctx, cctx, "node-2")
    assert isinstance(cli, ssl.SSLCertVerificationError)


def test_foreign_ca_and_wrong_usage_refused(tmp_path: Path) -> None:
    ca = pki.generate_ca("kos")
    other = pki.generate_ca("kos")
    server = pki.issue_certificate(ca, common_name="s", dns_names=["s"], server=True)
    sctx = _ctx(ssl.Purpose.CLIENT_AUTH, server, ca, tmp_path, "server")
    foreign = pki.issue_certificate(other, common_name="c", client=True)
    srv, _ = _handshake(sctx, _ctx(ssl.Purpose.SERVER_AUTH, foreign, ca, tmp_path, "foreign"), "s")
    assert isinstance(srv, ssl.SSLError)
    server_only = pki.issue_certificate(ca, common_name="c", server=True)  # no clientAuth usage
    srv, _ = _handshake(sctx, _ctx(ssl.Purpose.SERVER_AUTH, server_only, ca, tmp_path, "wrong"), "s")
    assert isinstance(srv, ssl.SSLError)
