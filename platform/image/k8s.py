"""The Kubernetes parts kos builds from source (``rootfs-build/k8s/build``): the pinned
versions (one constant each), where the build cache keeps them, the image names, and the
import of the image archives into a containerd.

Cache layout (``$KOS_K8S_DIR``, default ``~/.cache/kos/k8s/<KUBERNETES_VERSION>``):

* ``bin/``    kubelet kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl,
  coredns, flanneld, pause
* ``cni/``    bridge host-local loopback portmap (Debian's containernetworking-plugins) and flannel
* ``images/`` one archive per image (``<name>.tar``: OCI layout + docker ``manifest.json``)

Every other release of ``KUBERNETES_VERSIONS`` (the upgrade target of ``kosctl upgrade-k8s``)
is a sibling directory ``<cache root>/<version>`` (beside ``$KOS_K8S_DIR`` when that is set)
holding only ``bin/`` (the six Kubernetes programs) and ``images/`` (the four component
images, ``component_images(version)``); CoreDNS, flannel, pause and the CNI plugins are the
cluster release's.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

from kos.resources.versions import (
    COREDNS_VERSION,
    FLANNEL_CNI_TAG,
    FLANNEL_VERSION,
    KUBERNETES_UPGRADE_VERSION,
    KUBERNETES_VERSION,
    KUBERNETES_VERSIONS,
    PAUSE_VERSION,
)

__all__ = ["COREDNS_VERSION", "FLANNEL_CNI_TAG", "FLANNEL_VERSION", "KUBERNETES_UPGRADE_VERSION",
           "KUBERNETES_VERSION", "KUBERNETES_VERSIONS", "PAUSE_VERSION"]

CNI_PLUGINS_SOURCE_VERSION = "v0.9.1"  # containernetworking/plugins, for the flannel CNI plugin
BUSYBOX_VERSION = "1.35.0"  # Debian 12's busybox-static

KUBERNETES_BINARIES = ("kubelet", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy",
                       "kubectl")
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap", "flannel")

# image reference -> archive file name under images/
IMAGES: dict[str, str] = {
    f"registry.k8s.io/kube-apiserver:{KUBERNETES_VERSION}": "kube-apiserver.tar",
    f"registry.k8s.io/kube-controller-manager:{KUBERNETES_VERSION}": "kube-controller-manager.tar",
    f"registry.k8s.io/kube-scheduler:{KUBERNETES_VERSION}": "kube-scheduler.tar",
    f"registry.k8s.io/kube-proxy:{KUBERNETES_VERSION}": "kube-proxy.tar",
    f"registry.k8s.io/pause:{PAUSE_VERSION}": "pause.tar",
    f"registry.k8s.io/coredns/coredns:{COREDNS_VERSION}": "coredns.tar",
    f"ghcr.io/flannel-io/flannel:{FLANNEL_VERSION}": "flannel.tar",
    f"ghcr.io/flannel-io/flannel-cni-plugin:{FLANNEL_CNI_TAG}": "flannel-cni-plugin.tar",
    f"docker.io/library/busybox:{BUSYBOX_VERSION}": "busybox.tar",
}
COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")
"""The Kubernetes programs that run as images (the rest of IMAGES is shared between releases)."""
PAUSE_IMAGE = f"registry.k8s.io/pause:{PAUSE_VERSION}"
COREDNS_IMAGE = f"registry.k8s.io/coredns/coredns:{COREDNS_VERSION}"
FLANNEL_IMAGE = f"ghcr.io/flannel-io/flannel:{FLANNEL_VERSION}"
FLANNEL_CNI_IMAGE = f"ghcr.io/flannel-io/flannel-cni-plugin:{FLANNEL_CNI_TAG}"
BUSYBOX_IMAGE = f"docker.io/library/busybox:{BUSYBOX_VERSION}"


def component_image(component: str, version: str = KUBERNETES_VERSION) -> str:
    """``kube-apiserver`` -> ``registry.k8s.io/kube-apiserver:v1.32.13``."""
    return f"registry.k8s.io/{component}:{version}"


def cache_root() -> Path:
    return Path.home() / ".cache" / "kos" / "k8s"


def cache_dir(version: str = KUBERNETES_VERSION) -> Path:
    """The build output directory of ``version`` (``$KOS_K8S_DIR`` when set, for the cluster
    release; the other releases are its siblings)."""
    env = os.environ.get("KOS_K8S_DIR")
    if env:
        return Path(env) if version == KUBERNETES_VERSION else Path(env).parent / version
    return cache_root() / version


def component_images(version: str) -> dict[str, str]:
    """The images of one release's cache: image reference -> archive name under ``images/``
    (every image for the cluster release, the four components for another)."""
    if version == KUBERNETES_VERSION:
        return dict(IMAGES)
    return {component_image(c, version): f"{c}.tar" for c in COMPONENTS}


def built_versions() -> list[str]:
    """The releases of ``KUBERNETES_VERSIONS`` whose build output has a kubelet (in order)."""
    return [v for v in KUBERNETES_VERSIONS if os.access(cache_dir(v) / "bin" / "kubelet", os.X_OK)]


def binary(name: str, base: Path | None = None) -> Path:
    return (base or cache_dir()) / "bin" / name


def image_archives(base: Path | None = None, version: str = KUBERNETES_VERSION) -> dict[str, Path]:
    """Image reference -> archive path, for the archives of ``version`` that exist."""
    d = (base or cache_dir(version)) / "images"
    return {ref: d / name for ref, name in component_images(version).items() if (d / name).is_file()}


def import_images(address: str, archives: Iterable[Path], namespace: str = "k8s.io",
                  ctr: str = "ctr", timeout: float = 300.0) -> None:
    """``ctr --address ADDRESS -n NAMESPACE images import`` for each archive (blocking; run it
    in a worker thread from async code). The archives name their images themselves."""
    for path in archives:
        proc = subprocess.run([ctr, "--address", address, "-n", namespace, "images", "import", str(path)],
                              capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"importing {path} into containerd at {address}: {proc.stderr.strip()[-2000:]}")
