"""Real X.509: CAs, issued certificates, CSRs; chains, SANs, usages, roles, bad input."""

from __future__ import annotations

import datetime
import ipaddress
import os
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from kos.resources import pki


@pytest.fixture(scope="module")
def ca() -> pki.CertificateAndKey:
    return pki.generate_ca("kos", organization="kos")


@pytest.mark.parametrize("key_type", ["ecdsa", "ed25519", "rsa"])
def test_ca_properties(key_type: str) -> None:
    ca = pki.generate_ca("test-ca", organization="org", key_type=key_type, ttl=datetime.timedelta(days=10))
    cert = ca.certificate()
    assert pki.is_ca(cert)
    assert pki.certificate_key_usages(cert) >= {"key_cert_sign", "crl_sign"}
    assert pki.certificate_common_name(cert) == "test-ca"
    assert pki.certificate_organizations(cert) == ("org",)
    assert cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=10) <= lifetime <= datetime.timedelta(days=10, minutes=6)
    ca.check()
    # a self-signed CA verifies against itself
    pki.verify_chain(cert, cert)


@pytest.mark.parametrize("key_type", ["ecdsa", "ed25519"])
def test_issue_server_client(ca: pki.CertificateAndKey, key_type: str) -> None:
    leaf = pki.issue_certificate(
        ca, common_name="node-1", organizations=["os:admin", "os:reader"], dns_names=["node-1", "node-1.local"],
        ip_addresses=["10.5.0.2", "fd00::2"], server=True, client=True, key_type=key_type,
    )
    leaf.check()
    pki.verify_chain(leaf.cert_pem, ca.cert_pem)
    sans = pki.certificate_sans(leaf.cert_pem)
    assert sans.dns_names == ("node-1", "node-1.local")
    assert sans.ip_addresses == (ipaddress.ip_address("10.5.0.2"), ipaddress.ip_address("fd00::2"))
    assert "10.5.0.2" in sans and "node-1" in sans and "other" not in sans
    assert pki.certificate_organizations(leaf.cert_pem) == ("os:admin", "os:reader")
    assert pki.certificate_extended_usages(leaf.cert_pem) == {"server", "client"}
    assert not pki.is_ca(leaf.cert_pem)
    c = leaf.certificate()
    aki = c.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.certificate().extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert c.not_valid_after_utc <= ca.certificate().not_valid_after_utc


def test_openssl_agrees(ca: pki.CertificateAndKey, tmp_path: Path) -> None:
    """An independent verifier (openssl) accepts the chain and the purpose."""
    leaf = pki.issue_certificate(ca, common_name="srv", dns_names=["srv"], server=True)
    ca.public_only().to_files(tmp_path / "ca.crt")
    leaf.to_files(tmp_path / "srv.crt", tmp_path / "srv.key")
    assert stat.S_IMODE(os.stat(tmp_path / "srv.key").st_mode) == 0o600
    out = subprocess.run(
        ["openssl", "verify", "-purpose", "sslserver", "-CAfile", tmp_path / "ca.crt", tmp_path / "srv.crt"],
        capture_output=True, text=True, check=False,
    )
    assert out.returncode == 0, out.stderr
    bad = subprocess.run(
        ["openssl", "verify", "-purpose", "sslclient", "-CAfile", tmp_path / "ca.crt", tmp_path / "srv.crt"],
        capture_output=True, text=True, check=False,
    )
    assert bad.returncode != 0
    again = pki.CertificateAndKey.from_files(tmp_path / "srv.crt", tmp_path / "srv.key")
    assert again == leaf


def test_wrong_ca_rejected(ca: pki.CertificateAndKey) -> None:
    other = pki.generate_ca("kos", organization="kos")  # same subject, different key
    leaf = pki.issue_certificate(other, common_name="x", client=True)
    with pytest.raises(pki.PKIError, match="signature does not verify"):
        pki.verify_chain(leaf.cert_pem, ca.cert_pem)
    third = pki.generate_ca("someone-else")
    with pytest.raises(pki.PKIError, match="is not the CA"):
        pki.verify_chain(leaf.cert_pem, third.cert_pem)
    with pytest.raises(pki.PKIError, match="not a CA certificate"):
        pki.verify_chain(leaf.cert_pem, leaf.cert_pem)


def test_expiry_checked(ca: pki.CertificateAndKey) -> None:
    leaf = pki.issue_certificate(ca, common_name="x", client=True, ttl=datetime.timedelta(hours=1))
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=2)
    with pytest.raises(pki.PKIError, match="not valid at"):
        pki.verify_chain(leaf.cert_pem, ca.cert_pem, at=later)


def test_csr_roundtrip(ca: pki.CertificateAndKey) -> None:
    key = pki.private_key_pem(pki.generate_private_key("ecdsa"))
    csr = pki.create_csr(key, common_name="worker-1", organizations=["os:admin"], dns_names=["w1"],
                         ip_addresses=["192.0.2.7"])
    crt = pki.sign_csr(ca, csr, server=True, client=False, override_organizations=["os:impersonator"])
    pki.verify_chain(crt, ca.cert_pem)
    assert pki.certificate_organizations(crt) == ("os:impersonator",)
    assert pki.certificate_common_name(crt) == "worker-1"
    assert "192.0.2.7" in pki.certificate_sans(crt)
    pki.CertificateAndKey(crt, key).check()
    wrong = pki.private_key_pem(pki.generate_private_key())
    with pytest.raises(pki.PKIError, match="does not match"):
        pki.CertificateAndKey(crt, wrong).check()


def test_bad_input(ca: pki.CertificateAndKey) -> None:
    with pytest.raises(ValueError, match="key_type: unknown value 'dsa'"):
        pki.generate_ca("x", key_type="dsa")
    with pytest.raises(ValueError, match="ttl"):
        pki.generate_ca("x", ttl=datetime.timedelta(0))
    with pytest.raises(ValueError, match="ip_addresses: 'not-an-ip'"):
        pki.issue_certificate(ca, common_name="x", server=True, ip_addresses=["not-an-ip"])
    with pytest.raises(ValueError, match="server=True and/or client=True"):
        pki.issue_certificate(ca, common_name="x")
    with pytest.raises(pki.PKIError, match="not a valid PEM certificate"):
        pki.load_certificate(b"garbage")
    with pytest.raises(ValueError, match="not a valid unencrypted PEM private key"):
        pki.load_private_key(b"garbage")
    with pytest.raises(pki.PKIError, match="no private key"):
        pki.issue_certificate(ca.public_only(), common_name="x", client=True)
    with pytest.raises(pki.PKIError, match="not a valid PEM certificate signing request"):
        pki.sign_csr(ca, b"nope")


def test_renewal_point(ca: pki.CertificateAndKey) -> None:
    leaf = pki.issue_certificate(ca, common_name="x", server=True, ttl=datetime.timedelta(hours=10))
    nb, na = pki.certificate_validity(leaf.cert_pem)
    assert na - nb == datetime.timedelta(hours=10, minutes=5)  # back-dated for clock skew
    assert not pki.needs_renewal(leaf.cert_pem)
    assert not pki.needs_renewal(leaf.cert_pem, at=nb + datetime.timedelta(hours=4))
    assert pki.needs_renewal(leaf.cert_pem, at=nb + datetime.timedelta(hours=6))
    assert pki.needs_renewal(leaf.cert_pem, at=na + datetime.timedelta(seconds=1))
    with pytest.raises(ValueError, match=r"remaining_fraction: 1\.5 is invalid"):
        pki.needs_renewal(leaf.cert_pem, remaining_fraction=1.5)


def test_talos_labelled_ed25519_key_loads() -> None:
    key = pki.generate_private_key("ed25519")
    pem = pki.private_key_pem(key).replace(b"BEGIN PRIVATE KEY", b"BEGIN ED25519 PRIVATE KEY").replace(
        b"END PRIVATE KEY", b"END ED25519 PRIVATE KEY")
    loaded = pki.load_private_key(pem)
    assert pki.public_key_pem(loaded) == pki.public_key_pem(key)
