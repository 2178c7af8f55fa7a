"""The container platform (namespace nodes, ``KOS_PLATFORM=container``).

The provisioner passes the config either inline in ``KOS_CONFIG`` or as a file named by
``KOS_CONFIG_FILE`` (a path inside the node), and the hostname in ``KOS_HOSTNAME`` (the UTS
namespace already carries it). Volumes are directories: STATE is ``/system/state`` and
EPHEMERAL ``/var``, bound in by the provisioner.

``network()`` turns ``KOS_ADDRESS`` (CIDR), ``KOS_GATEWAY`` and ``KOS_LINK`` (default
``eth0``) into the network platform layer (``PlatformNetworkConfigs(network/platform)``):
the link up, the address on it, a default route, and the hostname.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from typing import Any


class ContainerPlatform:
    name = "container"
    mode = "container"

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = dict(os.environ) if env is None else env

    def hostname(self) -> str | None:
        return self.env.get("KOS_HOSTNAME") or socket.gethostname() or None

    def config(self) -> bytes | None:
        inline = self.env.get("KOS_CONFIG")
        if inline:
            return inline.encode()
        path = self.env.get("KOS_CONFIG_FILE")
        if path:
            try:
                return Path(path).read_bytes()
            except OSError as exc:
                raise ValueError(f"KOS_CONFIG_FILE={path!r}: {exc.strerror}") from None
        return None


    def network(self) -> Any:
        from kos.resources.network import AddressSpecSpec, LinkSpecSpec, PlatformNetworkConfigSpec, RouteSpecSpec

        link = self.env.get("KOS_LINK") or "eth0"
        address = self.env.get("KOS_ADDRESS", "")
        gateway = self.env.get("KOS_GATEWAY", "")
        hostname = self.env.get("KOS_HOSTNAME", "")
        if not (address or hostname):
            return None
        if address:
            try:
                if "/" not in address:
                    raise ValueError(address)
                ipaddress.ip_interface(address)
            except ValueError:
                raise ValueError(f"KOS_ADDRESS={address!r}: expected an address with prefix (10.5.0.2/24)") from None
        if gateway:
            try:
                ipaddress.ip_address(gateway)
            except ValueError:
                raise ValueError(f"KOS_GATEWAY={gateway!r}: expected an IP address") from None
        return PlatformNetworkConfigSpec(
            links=[LinkSpecSpec(name=link, up=True)] if address else [],
            addresses=[AddressSpecSpec(address=address, link_name=link)] if address else [],
            routes=[RouteSpecSpec(gateway=gateway, out_link_name=link)] if address and gateway else [],
            hostname=hostname,
        )


PLATFORM_CLASS = ContainerPlatform
