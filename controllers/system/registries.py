"""``RegistryHostApplyController``: RegistryHostSpecs -> ``<hosts_dir>/<registry>/hosts.toml``
(plus CA and client certificate files) -> RegistryHostStatuses.

``hosts_dir`` is containerd's CRI ``config_path`` (``/etc/containerd/certs.d`` on a node, see
``kos.machined.services.containerd.render_config``); containerd reads the directory on every
pull, so a change needs no restart. Files are written atomically; a registry whose spec goes
has its directory removed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from typing import Any

import anyio

from kos.controllers.runtime import ControllerRuntime
from kos.controllers.system.apply import ApplyController
from kos.resources.machineconfig import atomic_write
from kos.resources.runtime import RegistryHostSpecSpec, RegistryHostStatusSpec

HOSTS_DIR = "/etc/containerd/certs.d"


def write_registry(hosts_dir: str, id_: str, spec: RegistryHostSpecSpec) -> tuple[str, str]:
    d = os.path.join(hosts_dir, id_)
    os.makedirs(d, mode=0o755, exist_ok=True)
    keep = {"hosts.toml", *spec.files}
    for name, text in sorted(spec.files.items()):
        atomic_write(os.path.join(d, name), text.encode(), mode=0o600)
    path = os.path.join(d, "hosts.toml")
    atomic_write(path, spec.hosts_toml.encode(), mode=0o600)
    for entry in os.listdir(d):
        if entry not in keep and not entry.startswith("."):
            os.unlink(os.path.join(d, entry))
    return path, hashlib.sha256(spec.hosts_toml.encode()).hexdigest()


class RegistryHostApplyController(ApplyController):
    name = "system.RegistryHostApplyController"
    spec_type = RegistryHostSpecSpec
    status_type = RegistryHostStatusSpec

    def __init__(self, *, hosts_dir: str) -> None:
        self.hosts_dir = hosts_dir

    async def apply(self, rt: ControllerRuntime, id_: str, spec: Any, old: Any | None) -> Any:
        try:
            path, digest = await anyio.to_thread.run_sync(write_registry, self.hosts_dir, id_, spec)
        except OSError as exc:
            return RegistryHostStatusSpec(state="failed", reason=str(exc))
        return RegistryHostStatusSpec(path=path, sha256=digest)

    async def undo(self, rt: ControllerRuntime, id_: str, status: Any) -> None:
        d = os.path.join(self.hosts_dir, id_)
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(d, ignore_errors=True))
