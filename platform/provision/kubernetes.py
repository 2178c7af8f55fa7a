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
  imports into containerd's ``k8s.io`` namespace before the kubelet starts).

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


def default_dir() -> Path:
    """The build output of the pinned release (``$KOS_K8S_DIR`` when set)."""
    return k8s.cache_dir()


@dataclass(frozen=True)
class Artifacts:
    base: Path

    @classmethod
    def locate(cls) -> Artifacts:
        return cls(default_dir())

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
        return out
