"""Certificate authorities and issued certificates: ``CertificateAndKey``, ``generate_ca``,
``issue_certificate``, CSR creation and signing."""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kos.resources.pki.keys import PrivateKey, PublicKey, generate_private_key, load_private_key, private_key_pem
from kos.resources.pki.verify import PKIError, load_certificate

# Certificates are back-dated a little so that small clock skew between nodes does not
# make a fresh certificate "not yet valid".
CLOCK_SKEW = datetime.timedelta(minutes=5)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class CertificateAndKey:
    """A PEM certificate and (optionally, e.g. a CA on a worker) its PEM private key."""

    cert_pem: bytes
    key_pem: bytes = b""

    def certificate(self) -> x509.Certificate:
        return load_certificate(self.cert_pem)

    def private_key(self) -> PrivateKey:
        if not self.key_pem:
            raise PKIError(f"{self.certificate().subject.rfc4514_string()!r}: no private key")
        return load_private_key(self.key_pem)

    @property
    def has_key(self) -> bool:
        return bool(self.key_pem)

    def public_only(self) -> CertificateAndKey:
        """The certificate without its key (what workers get of a CA)."""
        return CertificateAndKey(self.cert_pem, b"")

    def check(self) -> None:
        """Raise ``PKIError`` unless the certificate parses and the key (if any) matches it."""
        cert = self.certificate()
        if self.key_pem:
            pub = self.private_key().public_key()
            spki = ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo
            if pub.public_bytes(*spki) != cert.public_key().public_bytes(*spki):
                raise PKIError(f"{cert.subject.rfc4514_string()!r}: private key does not match the certificate")

    @classmethod
    def from_files(cls, cert_path: str | os.PathLike[str], key_path: str | os.PathLike[str] | None = None) -> \
            CertificateAndKey:
        cert = Path(cert_path).read_bytes()
        key = Path(key_path).read_bytes() if key_path is not None else b""
        pair = cls(cert, key)
        pair.check()
        return pair

    def to_files(self, cert_path: str | os.PathLike[str], key_path: str | os.PathLike[str] | None = None) -> None:
        """Write the certificate (0644) and key (0600, created with that mode) to files."""
        Path(cert_path).write_bytes(self.cert_pem)
        if key_path is not None:
            if not self.key_pem:
                raise PKIError(f"{key_path}: no private key to write")
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(self.key_pem)


def _hash_for(key: PrivateKey) -> hashes.SHA256 | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _name(common_name: str, organizations: Iterable[str]) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    if common_name:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _check_ttl(ttl: datetime.timedelta) -> None:
    if ttl <= datetime.timedelta(0):
        raise ValueError(f"ttl: {ttl} is not positive, expected a positive duration")


def _parse_ips(ip_addresses: Iterable[str | IPAddress]) -> list[IPAddress]:
    out: list[IPAddress] = []
    for ip in ip_addresses:
        try:
            out.append(ip if isinstance(ip, IPAddress) else ipaddress.ip_address(ip))
        except ValueError as exc:
            raise ValueError(f"ip_addresses: {ip!r} is not an IP address") from exc
    return out


def generate_ca(
    common_name: str,
    *,
    organization: str | None = None,
    ttl: datetime.timedelta = datetime.timedelta(days=3650),
    key_type: str = "ecdsa",
) -> CertificateAndKey:
    """A self-signed CA (BasicConstraints CA, KeyUsage certSign/crlSign/digitalSignature,
    SubjectKeyIdentifier)."""
    _check_ttl(ttl)
    key = generate_private_key(key_type)
    name = _name(common_name, [organization] if organization else [])
    now = datetime.datetime.now(datetime.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + ttl)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
    )
    cert = builder.sign(key, _hash_for(key))
    return CertificateAndKey(cert.public_bytes(ser.Encoding.PEM), private_key_pem(key))


def _serial() -> int:
    # 128 random bits, positive, top bit cleared so DER never needs a sign byte beyond 16 octets
    return secrets.randbits(127) | 1


def _issue(
    ca: CertificateAndKey,
    public_key: PublicKey,
    subject: x509.Name,
    *,
    dns_names: Iterable[str],
    ip_addresses: Iterable[str | IPAddress],
    server: bool,
    client: bool,
    ttl: datetime.timedelta,
) -> bytes:
    _check_ttl(ttl)
    ca_cert = ca.certificate()
    ca_key = ca.private_key()
    now = datetime.datetime.now(datetime.UTC)
    not_after = min(now + ttl, ca_cert.not_valid_after_utc)
    dns = list(dict.fromkeys(d for d in dns_names if d))
    ips = list(dict.fromkeys(_parse_ips(ip_addresses)))
    ekus = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(_serial())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False,
                key_encipherment=not isinstance(public_key, ed25519.Ed25519PublicKey) and server,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    try:
        ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
    except x509.ExtensionNotFound:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    if ekus:
        builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
    if dns or ips:
        san: list[x509.GeneralName] = [x509.DNSName(d) for d in dns] + [x509.IPAddress(i) for i in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(ca_key, _hash_for(ca_key)).public_bytes(ser.Encoding.PEM)


def issue_certificate(
    ca: CertificateAndKey,
    *,
    common_name: str,
    organizations: Iterable[str] = (),
    dns_names: Iterable[str] = (),
    ip_addresses: Iterable[str | IPAddress] = (),
    server: bool = False,
    client: bool = False,
    ttl: datetime.timedelta = datetime.timedelta(days=365),
    key_type: str = "ecdsa",
) -> CertificateAndKey:
    """A new key and a certificate for it signed by ``ca`` (never outliving the CA)."""
    if not server and not client:
        raise ValueError("issue_certificate: expected server=True and/or client=True")
    key = generate_private_key(key_type)
    pem = _issue(
        ca, key.public_key(), _name(common_name, organizations),
        dns_names=dns_names, ip_addresses=ip_addresses, server=server, client=client, ttl=ttl,
    )
    return CertificateAndKey(pem, private_key_pem(key))


def create_csr(
    key_pem: bytes,
    *,
    common_name: str,
    organizations: Iterable[str] = (),
    dns_names: Iterable[str] = (),
    ip_addresses: Iterable[str | IPAddress] = (),
) -> bytes:
    """A PEM certificate signing request for the given key."""
    key = load_private_key(key_pem)
    builder = x509.CertificateSigningRequestBuilder().subject_name(_name(common_name, organizations))
    dns = list(dns_names)
    ips = _parse_ips(ip_addresses)
    if dns or ips:
        san: list[x509.GeneralName] = [x509.DNSName(d) for d in dns] + [x509.IPAddress(i) for i in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(key, _hash_for(key)).public_bytes(ser.Encoding.PEM)


def sign_csr(
    ca: CertificateAndKey,
    csr_pem: bytes,
    *,
    server: bool = False,
    client: bool = True,
    ttl: datetime.timedelta = datetime.timedelta(days=365),
    override_organizations: Iterable[str] | None = None,
) -> bytes:
    """Sign a CSR (after checking its self-signature); SANs and subject come from the CSR,
    unless ``override_organizations`` replaces the requested O (roles) — as trustd does."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise PKIError(f"CSR: not a valid PEM certificate signing request ({exc})") from exc
    if not csr.is_signature_valid:
        raise PKIError("CSR: signature is not valid")
    cn = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if override_organizations is not None:
        orgs = list(override_organizations)
    dns: list[str] = []
    ips: list[IPAddress] = []
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = san.get_values_for_type(x509.DNSName)
        ips = [i for i in san.get_values_for_type(x509.IPAddress) if isinstance(i, IPAddress)]
    except x509.ExtensionNotFound:
        pass
    pub = csr.public_key()
    if not isinstance(pub, PublicKey):
        raise PKIError(f"CSR: unsupported public key type {type(pub).__name__}")
    return _issue(
        ca, pub, _name(str(cn[0].value) if cn else "", orgs),
        dns_names=dns, ip_addresses=ips, server=server, client=client, ttl=ttl,
    )
