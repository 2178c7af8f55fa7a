"""Private keys: generation (ECDSA P-256 default, Ed25519, RSA-2048/4096) and PEM encoding."""

from __future__ import annotations

from typing import TypeAlias

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey: TypeAlias = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

KEY_TYPES = ("ecdsa", "ed25519", "rsa", "rsa4096")


def generate_private_key(key_type: str = "ecdsa") -> PrivateKey:
    """A fresh private key: ``ecdsa`` (P-256), ``ed25519``, ``rsa`` (2048) or ``rsa4096``."""
    kt = key_type.lower()
    if kt == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    if kt == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kt in ("rsa", "rsa4096"):
        return rsa.generate_private_key(public_exponent=65537, key_size=4096 if kt == "rsa4096" else 2048)
    raise ValueError(f"key_type: unknown value {key_type!r}, expected one of {', '.join(KEY_TYPES)}")


def private_key_pem(key: PrivateKey) -> bytes:
    """PEM of a private key: SEC1 ``EC PRIVATE KEY`` for ECDSA, PKCS#8 otherwise (as Talos)."""
    fmt = (
        serialization.PrivateFormat.TraditionalOpenSSL
        if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
        else serialization.PrivateFormat.PKCS8
    )
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def public_key_pem(key: PrivateKey | PublicKey) -> bytes:
    """PEM (SubjectPublicKeyInfo) of a public key, or of a private key's public half."""
    pub = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey |
                                          rsa.RSAPrivateKey) else key
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key(pem: bytes) -> PrivateKey:
    """Parse a PEM private key; only ECDSA, Ed25519 and RSA keys are accepted. Talos labels
    its PKCS#8 Ed25519 keys ``ED25519 PRIVATE KEY``; those load too."""
    pem = pem.replace(b"-----BEGIN ED25519 PRIVATE KEY-----", b"-----BEGIN PRIVATE KEY-----").replace(
        b"-----END ED25519 PRIVATE KEY-----", b"-----END PRIVATE KEY-----"
    )
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"private key: not a valid unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"private key: unsupported key type {type(key).__name__}, expected ECDSA, Ed25519 or RSA")
    return key
