"""Image archives imported into containerd's ``k8s.io`` namespace before the kubelet starts.

Nodes cannot pull from a registry here, so the images a node needs (pause, the control-plane
components, kube-proxy, CoreDNS, flannel, ...) come as archives in a directory (a namespace
node gets the build cache's ``images/`` bound at ``/usr/share/kos/images``). Each archive is
an OCI layout (``index.json``) or a ``docker save`` archive (``manifest.json``) that names its
images itself. ``ImagesImportedCondition`` is a dependency of the kubelet service: it imports
every archive whose images containerd does not have yet (``ctr images import``), so a reboot
re-imports nothing, and holds the kubelet in ``Waiting`` with the failing archive and error
while an import fails. No directory (or an empty one) means nothing to import.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import anyio
import structlog

from kos.machined.services.conditions import Condition
from kos.machined.services.containerd import ctr

log = structlog.get_logger(__name__)

K8S_NAMESPACE = "k8s.io"
MAX_INDEX = 4 << 20  # index.json / manifest.json are small; refuse anything bigger


def archive_refs(path: Path) -> list[str]:
    """The image names an archive carries (blocking: reads its index only)."""
    refs: list[str] = []
    with tarfile.open(path) as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if name not in ("index.json", "manifest.json") or not member.isfile() or member.size > MAX_INDEX:
                continue
            f = tar.extractfile(member)
            if f is None:
                continue
            doc = json.loads(f.read())
            if name == "index.json":
                for m in doc.get("manifests", []):
                    ann = m.get("annotations") or {}
                    ref = ann.get("io.containerd.image.name") or ann.get("org.opencontainers.image.ref.name")
                    if ref and "/" in ref:
                        refs.append(ref)
            else:
                for m in doc:
                    refs += [t if "/" in t.split(":")[0] else f"docker.io/library/{t}" for t in m.get("RepoTags") or []]
    return sorted(set(refs))


def archives(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.tar") if p.is_file()) if directory.is_dir() else []


async def import_missing(socket: Path, directory: Path, *, namespace: str = K8S_NAMESPACE) -> list[str]:
    """Import the archives of ``directory`` whose images containerd lacks; returns the refs
    imported. Raises RuntimeError naming the archive when ``ctr`` fails."""
    files = await anyio.to_thread.run_sync(archives, directory)
    if not files:
        return []
    have = set((await ctr(socket, "images", "list", "--quiet", namespace=namespace)).split())
    imported: list[str] = []
    for path in files:
        try:
            refs = await anyio.to_thread.run_sync(archive_refs, path)
        except (OSError, tarfile.TarError, ValueError) as exc:
            raise RuntimeError(f"image archive {path}: unreadable: {exc}") from None
        if refs and all(r in have for r in refs):
            continue
        await ctr(socket, "images", "import", str(path), namespace=namespace)
        imported += refs
        log.info("image archive imported", archive=str(path), images=refs)
    return imported


class ImagesImportedCondition(Condition):
    """Every image archive of ``directory`` is in containerd (imports what is missing)."""

    def __init__(self, socket: Path, directory: Path, *, retry: float = 5.0) -> None:
        self.socket = socket
        self.directory = directory
        self.retry = retry
        self.description = f"images from {directory} imported into containerd ({K8S_NAMESPACE})"

    async def wait(self) -> None:
        base = self.description
        while True:
            try:
                await import_missing(self.socket, self.directory)
                self.description = base
                return
            except RuntimeError as exc:
                self.description = f"{base}: {exc}"[:2000]
                log.warning("image import failed", error=str(exc)[:2000])
            await anyio.sleep(self.retry)
