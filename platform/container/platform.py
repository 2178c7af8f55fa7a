"""The container platform (namespace nodes, ``KOS_PLATFORM=container``).

The provisioner passes the config either inline in ``KOS_CONFIG`` or as a file named by
``KOS_CONFIG_FILE`` (a path inside the node), and the hostname in ``KOS_HOSTNAME`` (the UTS
namespace already carries it). Volumes are directories: STATE is ``/system/state`` and
EPHEMERAL ``/var``, bound in by the provisioner.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


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


PLATFORM_CLASS = ContainerPlatform
