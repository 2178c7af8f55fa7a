"""Which Kubernetes releases a machine config asks the node to run, and whether it can.

The version-bearing fields (``kos.resources.k8sversion.VERSIONED_FIELDS``) are the kubelet's
image (its tag picks the kubelet binary, ``service.kubelet_binary``) and the images of the
control-plane static pods and of kube-proxy (pulled through the cluster registry, which carries
every built release); their defaults are the renderers' (a test pins that).

``kubernetes_version_problems(old, new, available)`` is what ApplyConfiguration checks before
it changes anything: every field whose value differs from the config in effect (or, with none
yet, from the default) and whose tag names a Kubernetes version the node holds no release of
gives one message naming the field, the value and the versions available. A tag that is not a
version (a digest, ``latest``) is not checked (the image decides; the kubelet then runs the
node's own binary).
"""

from __future__ import annotations

from collections.abc import Collection

from kos.resources.k8sversion import (
    APISERVER_FIELD,
    CONTROLLER_MANAGER_FIELD,
    DEFAULT_IMAGES,
    KUBELET_FIELD,
    PROXY_FIELD,
    SCHEDULER_FIELD,
    VERSIONED_FIELDS,
    configured_images,
    image_version,
)
from kos.resources.machineconfig.v1alpha1 import Config
from kos.resources.versions import KUBERNETES_VERSIONS

__all__ = ["APISERVER_FIELD", "CONTROLLER_MANAGER_FIELD", "DEFAULT_IMAGES", "KUBELET_FIELD", "PROXY_FIELD",
           "SCHEDULER_FIELD", "VERSIONED_FIELDS", "configured_images", "kubernetes_version_problems"]


def kubernetes_version_problems(old: Config | None, new: Config, available: Collection[str]) -> list[str]:
    before = configured_images(old)
    problems = []
    for path, image in configured_images(new).items():
        if image == before[path]:
            continue
        version = image_version(image)
        if version is None or str(version) in available:
            continue
        have = ", ".join(sorted(available)) or "none"
        problems.append(f"{path}: {image!r} names Kubernetes {version}, which this node does not hold "
                        f"(available: {have}; kos builds {', '.join(KUBERNETES_VERSIONS)}: "
                        "rootfs-build/k8s/build --version VERSION, then recreate the cluster)")
    return problems
