"""The maintenance API's self-signed certificate made through libcrypto (ctypes): a valid
X.509 v3 certificate with the names asked for, signed by its own P-256 key, that the ssl
module serves and a TLS client completes a handshake with; names that would not be a DNS name
or IP address are refused before they reach OpenSSL."""

from __future__ import annotations

import datetime
import socket
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kos.apis.tls import PEMPair, client_context, server_context
from kos.platform.linux.selfsigned import self_signed


def test_the_certificate_names_what_was_asked_and_is_signed_by_its_key() -> None:
    cert_pem, key_pem = self_signed("kos-maintenance", ["localhost", "node-1.example"], ["10.5.0.2", "fd00::2"], days=2)
    cert = x509.load_pem_x509_certificate(cert_pem)
    key = load_pem_private_key(key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert cert.public_key() == key.public_key()
    cert.verify_directly_issued_by(cert)  # self-signed, signature valid
    assert cert.version == x509.Version.v3
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "kos-maintenance" and cert.issuer == cert.subject
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "node-1.example"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["10.5.0.2", "fd00::2"]
    assert ExtendedKeyUsageOID.SERVER_AUTH in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    now = datetime.datetime.now(datetime.UTC)
    assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc <= now + datetime.timedelta(days=2, hours=1)
    again = x509.load_pem_x509_certificate(self_signed("kos-maintenance")[0])
    assert again.serial_number != cert.serial_number and again.public_key() != cert.public_key()


def test_a_tls_client_completes_a_handshake_with_it() -> None:
    server_ctx = server_context(PEMPair(*self_signed("kos-maintenance", ["localhost"], ["127.0.0.1"])), None)
    client_ctx = client_context(None, None, insecure=True)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        seen: list[bytes] = []

        def serve() -> None:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                seen.append(tls.recv(5))

        t = threading.Thread(target=serve)
        t.start()
        with socket.create_connection(listener.getsockname()) as raw, client_ctx.wrap_socket(raw) as tls:
            assert tls.version() == "TLSv1.3"
            peer = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True) or b"")
            assert peer.subject.rfc4514_string() == "CN=kos-maintenance"
            tls.sendall(b"hello")
        t.join(10)
    assert seen == [b"hello"]


@pytest.mark.parametrize("dns, ips, cn", [
    (["bad name"], [], "x"), (["a,DNS:evil"], [], "x"), ([], ["10.0.0.300"], "x"), ([], ["IP:1.2.3.4"], "x"),
    ([], [], "cn,with,commas"), (["x" * 254], [], "x"),
])
def test_names_that_are_no_dns_name_or_address_are_refused(dns: list[str], ips: list[str], cn: str) -> None:
    with pytest.raises(ValueError):
        self_signed(cn, dns, ips)
