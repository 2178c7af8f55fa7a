"""Small typed checks shared by the validators: a collector of errors and warnings (each a
``ConfigError`` with path, value and expectation) with checks for CIDRs, addresses, host
names, MTUs, base64 PEM pairs, URLs, Go durations and byte sizes."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from urllib.parse import urlsplit

from kos.resources.machineconfig.cooperate import breathe
from kos.resources.machineconfig.errors import MISSING, ConfigError, ErrorList
from kos.resources.machineconfig.v1alpha1 import PEMEncodedCertificateAndKey

_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*$")
GO_DURATION_RE = re.compile(r"^[-+]?(((\d+(\.\d*)?|\d*(\.\d+)+)([nuµm]?s|m|h))|0)+$")
BYTE_SIZE_RE = re.compile(r"^\d+(\.\d+)?\s*([kKMGTPE]i?B?|B)?$")
PERCENT_RE = re.compile(r"^\d{1,3}(\.\d+)?%$")


class Checks:
    """Collector of errors/warnings with small typed checks."""

    def __init__(self) -> None:
        self.errors = ErrorList()
        self.warnings = ErrorList()

    def err(self, path: str, value: object, expected: str) -> None:
        breathe()
        self.errors.append(ConfigError(path, value, expected))

    def warn(self, path: str, value: object, expected: str) -> None:
        self.warnings.append(ConfigError(path, value, expected))

    def required(self, path: str, value: object, expected: str) -> bool:
        if not value:
            self.err(path, MISSING, expected)
            return False
        return True

    def cidr(self, path: str, value: str, *, allow_negation: bool = False) -> None:
        text = value[1:] if allow_negation and value.startswith("!") else value
        try:
            ipaddress.ip_network(text, strict=False)
            if "/" not in text:
                raise ValueError("no prefix length")
        except ValueError:
            self.err(path, value, "an IP prefix in CIDR notation, e.g. 10.0.0.0/8" +
                     (" (optionally prefixed by !)" if allow_negation else ""))

    def address_cidr(self, path: str, value: str) -> None:
        breathe()
        try:
            ipaddress.ip_interface(value)
            if "/" not in value:
                raise ValueError("no prefix length")
        except ValueError:
            self.err(path, value, "an address with prefix length, e.g. 192.168.2.10/24")

    def ip(self, path: str, value: str) -> None:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            self.err(path, value, "an IP address, e.g. 192.168.2.1 or fd00::1")

    def hostname(self, path: str, value: str) -> None:
        if len(value) > 253 or not _HOSTNAME_RE.match(value) or any(len(p) > 63 for p in value.split(".")):
            self.err(path, value, "a hostname of letters, digits, '-' and '.' (labels <= 63, total <= 253)")

    def mtu(self, path: str, value: int) -> None:
        if value and not 68 <= value <= 65535:
            self.err(path, value, "an MTU between 68 and 65535")

    def pem_pair(self, path: str, pair: PEMEncodedCertificateAndKey, *, need_key: bool, what: str) -> None:
        if not pair.crt:
            self.err(f"{path}.crt", MISSING, f"the base64 PEM certificate of the {what}")
        else:
            self._b64_pem(f"{path}.crt", pair.crt, "CERTIFICATE")
        if need_key and not pair.key:
            self.err(f"{path}.key", MISSING, f"the base64 PEM private key of the {what} (required on control planes)")
        elif pair.key:
            self._b64_pem(f"{path}.key", pair.key, "PRIVATE KEY")

    def _b64_pem(self, path: str, text: str, marker: str) -> None:
        try:
            pem = base64.b64decode(text.encode(), validate=True)
        except (binascii.Error, ValueError):
            self.err(path, text, "base64 of a PEM block")
            return
        if b"-----BEGIN" not in pem or marker.encode() not in pem:
            self.err(path, text, f"base64 of a PEM {marker}")

    def one_of(self, path: str, value: str, allowed: tuple[str, ...], *, required: bool = False) -> None:
        if value in allowed or (not value and not required):
            return
        self.err(path, value or MISSING, "one of " + ", ".join(allowed))

    def duration(self, path: str, value: str) -> None:
        """A Go duration (``30s``, ``1h30m``), not negative."""
        if value and (len(value) > 64 or not GO_DURATION_RE.match(value) or value.startswith("-")):
            self.err(path, value, "a non-negative duration such as 30s, 5m or 1h30m")

    def byte_size(self, path: str, value: int | str, *, percent: bool = False) -> None:
        """A size in bytes or human readable (``100MB``, ``2.5GiB``), or a percentage."""
        if value in ("", 0):
            return
        if isinstance(value, int):
            if value < 0:
                self.err(path, value, "a non-negative size")
            return
        text = value.strip()
        if len(text) > 32 or not (BYTE_SIZE_RE.match(text) or (percent and PERCENT_RE.match(text))):
            self.err(path, value, "a size such as 100MB or 2.5GiB" + (" or a percentage such as 80%" if percent
                                                                        else ""))

    def url(self, path: str, value: str, schemes: tuple[str, ...], *, port: bool = False) -> bool:
        try:
            u = urlsplit(value)
            ok = u.scheme in schemes and bool(u.hostname) and (not port or u.port is not None)
        except ValueError:
            ok = False
        if not ok:
            need = " with a port" if port else ""
            self.err(path, value or MISSING, f"a {'/'.join(schemes)} URL{need}, e.g. {schemes[0]}://host:1234")
        return ok
