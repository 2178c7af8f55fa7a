"""Where the local etcd member keeps its files, and the persisted bootstrap marker.

``EtcdPaths(root)`` lays a node out like Talos: the data dir on EPHEMERAL
(``<root>/var/lib/etcd``), the certificates written from ``EtcdCerts`` (``<root>/system/secrets/etcd``,
files 0600), a snapshot uploaded by EtcdRecover (``<root>/var/lib/etcd-recover/snapshot.db``) and
the bootstrap marker on STATE (``<root>/system/state/etcd-bootstrap.json``), which survives a
reboot so a second Bootstrap is refused even after machined restarts.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from kos.apis.etcd import TLSFiles
from kos.resources.core import Resource, State
from kos.resources.etcd import EtcdBootstrapSpec

MARKER_OWNER = "etcd-api"
"""Owner of ``EtcdBootstraps(etcd/bootstrap)``: written by the API (and reset), not a controller."""


@dataclass(frozen=True)
class EtcdPaths:
    root: Path = Path("/")

    @property
    def data_dir(self) -> Path:
        return self.root / "var/lib/etcd"

    @property
    def pki_dir(self) -> Path:
        return self.root / "system/secrets/etcd"

    @property
    def marker(self) -> Path:
        return self.root / "system/state/etcd-bootstrap.json"

    @property
    def recover_snapshot(self) -> Path:
        return self.root / "var/lib/etcd-recover/snapshot.db"

    def pki(self, name: str) -> str:
        return str(self.pki_dir / name)

    @property
    def admin_tls(self) -> TLSFiles:
        """The admin client certificate (from ``EtcdCerts``) kos uses to talk to etcd."""
        return TLSFiles(self.pki("ca.crt"), self.pki("admin.crt"), self.pki("admin.key"))


class MarkerError(ValueError):
    """The marker file exists but cannot be read (the message names the file)."""


def read_marker(path: Path) -> EtcdBootstrapSpec:
    """The persisted marker (blocking; an absent file means "not bootstrapped")."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return EtcdBootstrapSpec()
    except (OSError, ValueError) as exc:
        raise MarkerError(f"etcd bootstrap marker {path}: unreadable: {exc}") from None
    if not isinstance(data, dict):
        raise MarkerError(f"etcd bootstrap marker {path}: expected a JSON object")
    try:
        return EtcdBootstrapSpec(
            bootstrapped=bool(data.get("bootstrapped", False)),
            recover_from=str(data.get("recoverFrom", "")),
            skip_hash_check=bool(data.get("skipHashCheck", False)),
            left=bool(data.get("left", False)),
            attempt=int(data.get("attempt", 0)),
        )
    except (TypeError, ValueError) as exc:
        raise MarkerError(f"etcd bootstrap marker {path}: bad value: {exc}") from None


def write_marker(path: Path, spec: EtcdBootstrapSpec) -> None:
    """Write the marker atomically (0600, fsynced) (blocking)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "bootstrapped": spec.bootstrapped,
        "recoverFrom": spec.recover_from,
        "skipHashCheck": spec.skip_hash_check,
        "left": spec.left,
        "attempt": spec.attempt,
    }
    write_private(path, json.dumps(data).encode())


async def publish_marker(state: State, path: Path, marker: EtcdBootstrapSpec) -> None:
    """Persist the marker, then mirror it into ``EtcdBootstraps(bootstrap)`` (which triggers the
    EtcdSpec controller)."""
    await anyio.to_thread.run_sync(write_marker, path, marker)

    def apply(r: Resource[Any]) -> None:
        r.spec = marker.copy()

    await state.modify(Resource.new(EtcdBootstrapSpec(), "bootstrap"), apply, owner=MARKER_OWNER)


def write_private(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` (0600) atomically unless it already holds it; returns whether
    it wrote (blocking)."""
    try:
        if path.read_bytes() == data and (path.stat().st_mode & 0o777) == 0o600:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return True


def has_member(data_dir: Path) -> bool:
    """Whether the data dir already holds an etcd member (blocking)."""
    return (data_dir / "member").is_dir()
