"""A throwaway self-signed TLS server certificate (ECDSA P-256) made by the OpenSSL library that
Python's ``ssl`` module already links, through ctypes.

machined's maintenance API needs a certificate before it can answer anyone, and clients of
that API do not verify it (``--insecure``: it is only there so that the channel is TLS).
Making it with ``cryptography`` costs ~90-110 ms of imports at every start, more than
everything else the first answer needs (issue 17); libcrypto is in memory already (``_ssl``
links it), so the key, the certificate and its signature come from there: OpenSSL's own key
generation and signing, no cryptography of ours.

``self_signed(common_name, dns_names, ip_addresses, days)`` returns ``(cert_pem, key_pem)``
or raises ``Unavailable`` (no OpenSSL 3 libcrypto in this process, a call failed): the
caller then makes the certificate another way.
"""

from __future__ import annotations

import ctypes
import ipaddress
import re
import secrets
from collections.abc import Sequence

_MBSTRING_ASC = 0x1001
_BIO_CTRL_INFO = 3
_NID_SUBJECT_ALT_NAME = 85
_NID_EXT_KEY_USAGE = 126
_NID_BASIC_CONSTRAINTS = 87
_DNS_NAME = re.compile(r"[A-Za-z0-9.*-]{1,253}")


class Unavailable(RuntimeError):
    """libcrypto (OpenSSL 3) cannot make the certificate in this process."""


def _libcrypto_path() -> str:
    """The libcrypto this process has mapped (the one ``_ssl`` links), else the soname."""
    import ssl  # noqa: F401  # maps libcrypto

    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.rpartition(" ")[2].strip()
                if "/libcrypto.so" in path:
                    return path
    except OSError:
        pass
    return "libcrypto.so.3"


def _lib() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(_libcrypto_path())
    except OSError as exc:
        raise Unavailable(f"libcrypto: {exc}") from None
    p, i, c, lg = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_long
    signatures: dict[str, tuple[object, list[object]]] = {
        "EVP_PKEY_CTX_new_from_name": (p, [p, c, c]),
        "EVP_PKEY_keygen_init": (i, [p]),
        "EVP_PKEY_CTX_set_group_name": (i, [p, c]),
        "EVP_PKEY_generate": (i, [p, ctypes.POINTER(p)]),
        "EVP_PKEY_CTX_free": (None, [p]),
        "EVP_PKEY_free": (None, [p]),
        "X509_new": (p, []),
        "X509_free": (None, [p]),
        "X509_set_version": (i, [p, lg]),
        "X509_get_serialNumber": (p, [p]),
        "ASN1_INTEGER_set": (i, [p, lg]),
        "X509_getm_notBefore": (p, [p]),
        "X509_getm_notAfter": (p, [p]),
        "X509_gmtime_adj": (p, [p, lg]),
        "X509_set_pubkey": (i, [p, p]),
        "X509_get_subject_name": (p, [p]),
        "X509_NAME_add_entry_by_txt": (i, [p, c, i, c, i, i, i]),
        "X509_set_issuer_name": (i, [p, p]),
        "X509V3_EXT_conf_nid": (p, [p, p, i, c]),
        "X509_add_ext": (i, [p, p, i]),
        "X509_EXTENSION_free": (None, [p]),
        "EVP_sha256": (p, []),
        "X509_sign": (i, [p, p, p]),
        "BIO_s_mem": (p, []),
        "BIO_new": (p, [p]),
        "BIO_free": (i, [p]),
        "BIO_ctrl": (lg, [p, i, lg, p]),
        "PEM_write_bio_X509": (i, [p, p]),
        "PEM_write_bio_PrivateKey": (i, [p, p, p, p, i, p, p]),
    }
    for name, (restype, argtypes) in signatures.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise Unavailable(f"libcrypto has no {name} (OpenSSL 3 needed)") from None
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


def _check(ok: object, what: str) -> None:
    if not ok:
        raise Unavailable(f"libcrypto: {what} failed")


def _pem(lib: ctypes.CDLL, write: object, obj: int, *extra: object) -> bytes:
    bio = lib.BIO_new(lib.BIO_s_mem())
    _check(bio, "BIO_new")
    try:
        _check(write(bio, obj, *extra), "PEM write")  # type: ignore[operator]
        data = ctypes.c_void_p()
        n = lib.BIO_ctrl(bio, _BIO_CTRL_INFO, 0, ctypes.byref(data))
        if n <= 0 or not data.value:
            raise Unavailable("libcrypto: BIO_get_mem_data failed")
        return ctypes.string_at(data.value, n)
    finally:
        lib.BIO_free(bio)


def self_signed(
    common_name: str, dns_names: Sequence[str] = (), ip_addresses: Sequence[str] = (), *, days: int = 365
) -> tuple[bytes, bytes]:
    """A P-256 key and a self-signed server certificate for it (``CN=common_name``, subject
    alternative names, extended key usage serverAuth, valid from one hour ago for ``days``),
    as PEM ``(certificate, PKCS#8 key)``. ``ValueError`` for a name that is no DNS name or IP
    address (they go into an OpenSSL extension string)."""
    sans = []
    for n in dns_names:
        if not _DNS_NAME.fullmatch(n):
            raise ValueError(f"dns name {n!r}: expected letters, digits, '.', '-' or '*'")
        sans.append(f"DNS:{n}")
    for a in ip_addresses:
        sans.append(f"IP:{ipaddress.ip_address(a)}")  # ValueError names the address
    if not _DNS_NAME.fullmatch(common_name):
        raise ValueError(f"common name {common_name!r}: expected letters, digits, '.', '-' or '*'")
    lib = _lib()
    pkey = ctypes.c_void_p()
    ctx = lib.EVP_PKEY_CTX_new_from_name(None, b"EC", None)
    _check(ctx, "EVP_PKEY_CTX_new_from_name(EC)")
    try:
        _check(lib.EVP_PKEY_keygen_init(ctx) == 1, "EVP_PKEY_keygen_init")
        _check(lib.EVP_PKEY_CTX_set_group_name(ctx, b"P-256") == 1, "EVP_PKEY_CTX_set_group_name(P-256)")
        _check(lib.EVP_PKEY_generate(ctx, ctypes.byref(pkey)) == 1 and pkey.value, "EVP_PKEY_generate")
    finally:
        lib.EVP_PKEY_CTX_free(ctx)
    x509 = lib.X509_new()
    try:
        _check(x509, "X509_new")
        _check(lib.X509_set_version(x509, 2), "X509_set_version")  # v3
        _check(lib.ASN1_INTEGER_set(lib.X509_get_serialNumber(x509), secrets.randbits(62) + 1), "serial")
        _check(lib.X509_gmtime_adj(lib.X509_getm_notBefore(x509), -3600), "notBefore")
        _check(lib.X509_gmtime_adj(lib.X509_getm_notAfter(x509), days * 86400), "notAfter")
        _check(lib.X509_set_pubkey(x509, pkey), "X509_set_pubkey")
        name = lib.X509_get_subject_name(x509)
        cn = common_name.encode()
        _check(lib.X509_NAME_add_entry_by_txt(name, b"CN", _MBSTRING_ASC, cn, len(cn), -1, 0), "subject CN")
        _check(lib.X509_set_issuer_name(x509, name), "X509_set_issuer_name")
        extensions = [(_NID_BASIC_CONSTRAINTS, "critical,CA:FALSE"), (_NID_EXT_KEY_USAGE, "serverAuth")]
        if sans:
            extensions.append((_NID_SUBJECT_ALT_NAME, ",".join(sans)))
        for nid, value in extensions:
            ext = lib.X509V3_EXT_conf_nid(None, None, nid, value.encode())
            _check(ext, f"extension {value}")
            try:
                _check(lib.X509_add_ext(x509, ext, -1), "X509_add_ext")
            finally:
                lib.X509_EXTENSION_free(ext)
        _check(lib.X509_sign(x509, pkey, lib.EVP_sha256()) > 0, "X509_sign")
        cert = _pem(lib, lib.PEM_write_bio_X509, x509)
        key = _pem(lib, lib.PEM_write_bio_PrivateKey, pkey.value or 0, None, None, 0, None, None)
    finally:
        if x509:
            lib.X509_free(x509)
        lib.EVP_PKEY_free(pkey)
    return cert, key
