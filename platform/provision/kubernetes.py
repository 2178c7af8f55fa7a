"""What a namespace node needs from the host to run Kubernetes: the built binaries, the CNI
plugins and the image archives, found in the build cache and bound into the node.

``Artifacts.locate()`` finds the build output (``$KOS_K8S_DIR`` or
``~/.cache/kos/k8s/<version>``); ``node_binds(node_dir)`` gives the ``nodeinit --bind``
arguments for one node:

- ``<cache>/bin`` read-only at ``/usr/local/bin`` (kubelet, kubectl; where the kubelet
  service looks for its binary);
- a per-node, writable ``/opt/cni/bin`` filled with the CNI plugins (flannel's DaemonSet
  installs its plugin there too, as on any node);
- ``<cache>/images`` read-only at ``/usr/share/kos/images`` (image archives that machined
  imports into containerd's ``k8s.io`` namespace before the kubelet starts);
- every built release's ``bin`` (``kos.platform.image.k8s.built_versions()``, the cluster's
  own included) read-only at ``/usr/local/lib/kubernetes/<version>``: the kubelets a node can
  run (``node_kubelets``; the kubelet service picks one by the tag of ``machine.kubelet.image``).
  Their component images reach the node through the cluster registry.

A missing part is simply not bound: the kubelet service then says which binary it waits for.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from kos.platform.image import k8s

NODE_BIN_DIR = "/usr/local/bin"
NODE_CNI_BIN_DIR = "/opt/cni/bin"
NODE_IMAGE_DIR = "/usr/share/kos/images"
NODE_VERSIONS_DIR = "/usr/local/lib/kubernetes"
"""``<version>/kubelet`` (and the other Kubernetes programs) of every release a node holds."""


def node_kubelets(root: str | Path = "/", default_binary: str | Path | None = None) -> dict[str, str]:
    """The kubelets a node can run: Kubernetes version -> binary (blocking: lists a directory).
    ``<root>/usr/local/lib/kubernetes/<version>/kubelet`` for each release bound in, and the
    node's own ``/usr/local/bin/kubelet`` (or ``default_binary``) as the cluster release
    ``KUBERNETES_VERSION`` (what an image carries) unless a directory names that release."""
    base = Path(root) / NODE_VERSIONS_DIR.lstrip("/")
    out: dict[str, str] = {}
    try:
        entries = sorted(base.iterdir()) if base.is_dir() else []
    except OSError:
        entries = []
    for d in entries[:64]:
        kubelet = d / "kubelet"
        if d.name.startswith("v") and os.access(kubelet, os.X_OK):
            out[d.name] = str(kubelet)
    default = Path(default_binary) if default_binary else Path(root) / NODE_BIN_DIR.lstrip("/") / "kubelet"
    if k8s.KUBERNETES_VERSION not in out and os.access(default, os.X_OK):
        out[k8s.KUBERNETES_VERSION] = str(default)
    return out


def default_dir() -> Path:
    """The build output of the pinned release (``$KOS_K8S_DIR`` when set)."""
    return k8s.cache_dir()


@dataclass(frozen=True)
class Artifacts:
    base: Path
    releases: tuple[tuple[str, Path], ...] = ()
    """(version, build output) of every built release, the cluster's own included."""

    @classmethod
    def locate(cls) -> Artifacts:
        return cls(default_dir(), tuple((v, k8s.cache_dir(v)) for v in k8s.built_versions()))

    @property
    def bin_dir(self) -> Path:
        return self.base / "bin"

    @property
    def cni_dir(self) -> Path:
        return self.base / "cni"

    @property
    def image_dir(self) -> Path:
        return self.base / "images"

    def has_kubelet(self) -> bool:
        return os.access(self.bin_dir / "kubelet", os.X_OK)

    def kubectl(self) -> Path | None:
        p = self.bin_dir / "kubectl"
        return p if os.access(p, os.X_OK) else None

    def node_binds(self, node_dir: Path) -> list[str]:
        out: list[str] = []
        if self.bin_dir.is_dir():
            out.append(f"{self.bin_dir}:{NODE_BIN_DIR}")
        cni = node_dir / "cni-bin"
        cni.mkdir(parents=True, exist_ok=True)
        if self.cni_dir.is_dir():
            for plugin in self.cni_dir.iterdir():
                if plugin.is_file() and not (cni / plugin.name).exists():
                    shutil.copy2(plugin, cni / plugin.name)
        out.append(f"{cni}:{NODE_CNI_BIN_DIR}:rw")
        if self.image_dir.is_dir():
            out.append(f"{self.image_dir}:{NODE_IMAGE_DIR}")
        for version, base in self.releases:
            if (base / "bin").is_dir():
                out.append(f"{base / 'bin'}:{NODE_VERSIONS_DIR}/{version}")
        return out
