"""Certificate inspection: parse, verify that a certificate chains to a CA, read SANs,
Organization (API roles), key usages and validity."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


class PKIError(ValueError):
    """A certificate does not verify or cannot be parsed; the message says why."""


def load_certificate(pem: bytes | x509.Certificate) -> x509.Certificate:
    """Parse one PEM certificate (the first if several); already parsed ones pass through."""
    if isinstance(pem, x509.Certificate):
        return pem
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise PKIError(f"certificate: not a valid PEM certificate ({exc})") from exc


@dataclass(frozen=True)
class CertificateSANs:
    """Subject alternative names of a certificate."""

    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = field(default=())

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            try:
                return ipaddress.ip_address(name) in self.ip_addresses
            except ValueError:
                return name in self.dns_names
        return name in self.ip_addresses


def certificate_sans(cert: bytes | x509.Certificate) -> CertificateSANs:
    c = load_certificate(cert)
    try:
        ext = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return CertificateSANs()
    ips = tuple(
        ip for ip in ext.get_values_for_type(x509.IPAddress)
        if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address)
    )
    return CertificateSANs(tuple(ext.get_values_for_type(x509.DNSName)), ips)


def _attr_values(name: x509.Name, oid: x509.ObjectIdentifier) -> tuple[str, ...]:
    return tuple(str(a.value) for a in name.get_attributes_for_oid(oid))


def certificate_organizations(cert: bytes | x509.Certificate) -> tuple[str, ...]:
    """The subject's O attributes: for API client certificates, the roles (``os:admin``)."""
    return _attr_values(load_certificate(cert).subject, NameOID.ORGANIZATION_NAME)


def certificate_common_name(cert: bytes | x509.Certificate) -> str:
    values = _attr_values(load_certificate(cert).subject, NameOID.COMMON_NAME)
    return values[0] if values else ""


def is_ca(cert: bytes | x509.Certificate) -> bool:
    try:
        return bool(load_certificate(cert).extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


_KU_NAMES = (
    "digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
    "key_agreement", "key_cert_sign", "crl_sign",
)


def certificate_key_usages(cert: bytes | x509.Certificate) -> frozenset[str]:
    """Key usage bits set, by ``cryptography`` attribute name (``digital_signature``...)."""
    try:
        ku = load_certificate(cert).extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return frozenset()
    return frozenset(n for n in _KU_NAMES if getattr(ku, n))


_EKU_NAMES = {ExtendedKeyUsageOID.SERVER_AUTH: "server", ExtendedKeyUsageOID.CLIENT_AUTH: "client"}


def certificate_extended_usages(cert: bytes | x509.Certificate) -> frozenset[str]:
    """Extended key usages: ``server`` / ``client`` (others by dotted OID)."""
    try:
        eku = load_certificate(cert).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return frozenset()
    return frozenset(_EKU_NAMES.get(o, o.dotted_string) for o in eku)


def certificate_validity(cert: bytes | x509.Certificate) -> tuple[datetime.datetime, datetime.datetime]:
    """(not before, not after), timezone-aware UTC."""
    c = load_certificate(cert)
    return c.not_valid_before_utc, c.not_valid_after_utc


def needs_renewal(
    cert: bytes | x509.Certificate, *, at: datetime.datetime | None = None, remaining_fraction: float = 0.5
) -> bool:
    """True once less than ``remaining_fraction`` of the certificate's lifetime is left (or it
    expired): the point at which rotation should issue a new one."""
    if not 0 < remaining_fraction < 1:
        raise ValueError(f"remaining_fraction: {remaining_fraction} is invalid, expected between 0 and 1")
    nb, na = certificate_validity(cert)
    now = at or datetime.datetime.now(datetime.UTC)
    return (na - now) < (na - nb) * remaining_fraction


def _verify_signature(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    pub = issuer.public_key()
    sig, data = cert.signature, cert.tbs_certificate_bytes
    if isinstance(pub, ec.EllipticCurvePublicKey):
        if cert.signature_hash_algorithm is None:
            raise PKIError("certificate: ECDSA signature without a hash algorithm")
        pub.verify(sig, data, ec.ECDSA(cert.signature_hash_algorithm))
    elif isinstance(pub, ed25519.Ed25519PublicKey):
        pub.verify(sig, data)
    elif isinstance(pub, rsa.RSAPublicKey):
        if cert.signature_hash_algorithm is None:
            raise PKIError("certificate: RSA signature without a hash algorithm")
        pub.verify(sig, data, padding.PKCS1v15(), cert.signature_hash_algorithm)
    else:
        raise PKIError(f"CA: unsupported public key type {type(pub).__name__}")


def verify_chain(
    cert: bytes | x509.Certificate,
    ca: bytes | x509.Certificate,
    *,
    at: datetime.datetime | None = None,
) -> None:
    """Check that ``cert`` is signed by ``ca``, names it as issuer, that ``ca`` is a CA and that
    both are valid at ``at`` (default now). Raises ``PKIError`` saying what failed."""
    c, a = load_certificate(cert), load_certificate(ca)
    now = at or datetime.datetime.now(datetime.UTC)
    if not is_ca(a):
        raise PKIError(f"CA {a.subject.rfc4514_string()!r}: not a CA certificate (BasicConstraints CA=false)")
    if c.issuer != a.subject:
        raise PKIError(
            f"certificate {c.subject.rfc4514_string()!r}: issuer {c.issuer.rfc4514_string()!r} "
            f"is not the CA {a.subject.rfc4514_string()!r}"
        )
    try:
        _verify_signature(c, a)
    except InvalidSignature as exc:
        subject = c.subject.rfc4514_string()
        raise PKIError(f"certificate {subject!r}: signature does not verify with the CA key") from exc
    for what, x in (("certificate", c), ("CA", a)):
        if not x.not_valid_before_utc <= now <= x.not_valid_after_utc:
            raise PKIError(
                f"{what} {x.subject.rfc4514_string()!r}: not valid at {now.isoformat()} "
                f"(valid {x.not_valid_before_utc.isoformat()} .. {x.not_valid_after_utc.isoformat()})"
            )
