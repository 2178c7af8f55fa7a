"""Kernel command line network settings: ``ip=`` (the kernel's nfsroot syntax),
``kos.hostname=``, and the image's short form ``kos.ip=``/``kos.gw=``/``kos.dns=``.

``ip=<client-ip>:<server-ip>:<gw-ip>:<netmask>:<hostname>:<device>:<autoconf>:<dns0>:<dns1>:<ntp0>``
(trailing fields may be left out), or ``ip=dhcp|on|any|both`` (DHCP on the first physical
link) / ``ip=off|none`` (nothing). ``netmask`` is dotted (255.255.255.0) or a prefix
length (24). ``parse_cmdline`` is pure; errors are ``CmdlineError`` naming the parameter,
the field, the value and what was expected.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

_AUTOCONF_DHCP = ("dhcp", "on", "any", "both", "dhcp4")
_AUTOCONF_NONE = ("off", "none", "static", "")
_FIELDS = ("client-ip", "server-ip", "gw-ip", "netmask", "hostname", "device", "autoconf", "dns0-ip", "dns1-ip",
           "ntp0-ip")


class CmdlineError(ValueError):
    def __init__(self, param: str, field_name: str, value: str, expected: str) -> None:
        super().__init__(f"kernel cmdline {param}: {field_name} {value!r} is invalid, expected {expected}")
        self.field = field_name


@dataclass
class CmdlineNetwork:
    """What the kernel command line asks for."""

    address: str = ""  # CIDR
    gateway: str = ""
    hostname: str = ""
    domainname: str = ""
    link_name: str = ""  # "" = first physical link
    dhcp: bool = False
    dns_servers: list[str] = field(default_factory=list)
    ntp_servers: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self == CmdlineNetwork()


def _ip(param: str, name: str, value: str, version: int | None = 4) -> str:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise CmdlineError(param, name, value, "an IPv4 address") from None
    if version is not None and ip.version != version:
        raise CmdlineError(param, name, value, "an IPv4 address")
    return str(ip)


def _prefix(param: str, value: str) -> int:
    if value.isdigit():
        n = int(value)
        if 0 <= n <= 32:
            return n
        raise CmdlineError(param, "netmask", value, "a prefix length 0..32 or a dotted netmask")
    try:
        return ipaddress.IPv4Network(f"0.0.0.0/{value}").prefixlen
    except ValueError:
        raise CmdlineError(param, "netmask", value, "a prefix length 0..32 or a dotted netmask") from None


def _hostname(param: str, value: str) -> tuple[str, str]:
    from kos.controllers.network.layers import validate_hostname

    try:
        validate_hostname(value)
    except ValueError as e:
        raise CmdlineError(param, "hostname", value, str(e)) from None
    host, _, domain = value.partition(".")
    return host, domain


def parse_ip(value: str) -> CmdlineNetwork:
    """Parse the value of one ``ip=`` parameter."""
    param = f"ip={value}"
    if value.lower() in _AUTOCONF_DHCP:
        return CmdlineNetwork(dhcp=True)
    if value.lower() in ("off", "none"):
        return CmdlineNetwork()
    parts = value.split(":")
    if len(parts) > len(_FIELDS):
        raise CmdlineError(param, "field count", str(len(parts)), f"at most {len(_FIELDS)} ':'-separated fields")
    parts += [""] * (len(_FIELDS) - len(parts))
    f = dict(zip(_FIELDS, parts, strict=True))
    out = CmdlineNetwork()
    autoconf = f["autoconf"].lower()
    if autoconf not in _AUTOCONF_DHCP + _AUTOCONF_NONE:
        raise CmdlineError(param, "autoconf", f["autoconf"], "one of off, none, dhcp, on, any")
    if f["client-ip"]:
        client = _ip(param, "client-ip", f["client-ip"])
        prefix = _prefix(param, f["netmask"]) if f["netmask"] else 32
        out.address = f"{client}/{prefix}"
    elif f["netmask"]:
        _prefix(param, f["netmask"])
    if f["server-ip"]:
        _ip(param, "server-ip", f["server-ip"])
    if f["gw-ip"]:
        out.gateway = _ip(param, "gw-ip", f["gw-ip"])
    if f["hostname"]:
        out.hostname, out.domainname = _hostname(param, f["hostname"])
    if f["device"]:
        if not _valid_ifname(f["device"]):
            raise CmdlineError(param, "device", f["device"], "a link name of 1-15 characters without '/' or spaces")
        out.link_name = f["device"]
    for name in ("dns0-ip", "dns1-ip"):
        if f[name]:
            out.dns_servers.append(_ip(param, name, f[name], None))
    if f["ntp0-ip"]:
        out.ntp_servers.append(_ip(param, "ntp0-ip", f["ntp0-ip"], None))
    # the kernel's rule: no client address and no autoconf given means "any" (DHCP)
    out.dhcp = autoconf in _AUTOCONF_DHCP or (not out.address and autoconf == "")
    return out


def _valid_ifname(name: str) -> bool:
    return 0 < len(name) <= 15 and "/" not in name and not any(c.isspace() for c in name) and name not in (".", "..")


def parse_cmdline(cmdline: str) -> CmdlineNetwork:
    """Network settings from a whole kernel command line (the last ``ip=`` and the last
    ``kos.hostname=`` win; ``kos.hostname`` overrides the ``ip=`` hostname). The image's own
    short form ``kos.ip=<cidr> kos.gw=<ip> kos.dns=<ip>[,<ip>]`` (``platform/image/boot.py``)
    means a static address on the first physical link and overrides ``ip=``."""
    out = CmdlineNetwork()
    hostname: str | None = None
    short: dict[str, str] = {}
    for word in cmdline.split():
        key, eq, value = word.partition("=")
        if not eq:
            continue
        if key == "ip":
            out = parse_ip(value)
        elif key == "kos.hostname":
            hostname = value
        elif key in ("kos.ip", "kos.gw", "kos.dns"):
            short[key] = value
    if "kos.ip" in short:
        param = f"kos.ip={short['kos.ip']}"
        try:
            iface = ipaddress.ip_interface(short["kos.ip"])
        except ValueError:
            raise CmdlineError(param, "address", short["kos.ip"], "an address with prefix, like 10.5.0.2/24") from None
        if "/" not in short["kos.ip"]:
            raise CmdlineError(param, "address", short["kos.ip"], "an address with prefix, like 10.5.0.2/24")
        out = CmdlineNetwork(address=str(iface), hostname=out.hostname, domainname=out.domainname)
        if "kos.gw" in short:
            out.gateway = _ip(f"kos.gw={short['kos.gw']}", "gateway", short["kos.gw"], None)
        if "kos.dns" in short:
            out.dns_servers = [_ip(f"kos.dns={short['kos.dns']}", "server", d, None)
                               for d in short["kos.dns"].split(",") if d]
    if hostname is not None:
        out.hostname, out.domainname = _hostname(f"kos.hostname={hostname}", hostname)
    return out
