"""``k8s_controllers(...)``: every Kubernetes controller, from explicit parameters.

machined calls this once (``machined/assembly.py``) with the node's root, its supervisor (a
``ServiceManager``) and ``kubelet_service`` (adds machined's kubelet service for a binary);
every default path lives under ``root`` (``/`` on a real node, a directory for process nodes)::

    k8s_controllers(supervisor=sup, root="/")   # /etc/kubernetes/manifests, /system/secrets/kubernetes,
                                                # /usr/local/bin/kubelet, /var/lib/kubelet ...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from kos.controllers.k8s.applier import ManifestApplyController, ManifestController
from kos.controllers.k8s.csr import CSRApproverController
from kos.controllers.k8s.kubelet import KubeletPaths
from kos.controllers.k8s.node import (
    KubeletConfigController,
    KubeletSpecController,
    NodeIPController,
    NodenameController,
)
from kos.controllers.k8s.service import DEFAULT_KUBELET_BINARY, KubeletServiceController
from kos.controllers.k8s.staticpods import ControlPlaneConfigController, StaticPodController, StaticPodFileController
from kos.controllers.runtime import Controller, ServiceManager
from kos.platform.provision.kubernetes import node_kubelets

DEFAULT_SECRETS_DIR = "/system/secrets/kubernetes"


def under(root: str, path: str) -> str:
    return path if root in ("", "/") else str(Path(root) / path.lstrip("/"))


def k8s_controllers(
    *,
    supervisor: ServiceManager | None,
    kubelet_service: Callable[[str], None] | None = None,
    root: str = "/",
    static_pod_dir: str | None = None,
    secrets_dir: str | None = None,
    kubelet_binary: str | None = None,
    kubelet_paths: KubeletPaths | None = None,
    api_url: str | None = None,
    manifest_retry: float = 15.0,
    csr_interval: float = 10.0,
) -> list[Controller]:
    """The k8s controllers; without a supervisor the kubelet service controller is left out
    (render-only setups such as tests of the control plane)."""
    static_pod_dir = static_pod_dir or under(root, KubeletPaths.static_pod_dir)
    secrets_dir = secrets_dir or under(root, DEFAULT_SECRETS_DIR)
    kubelet_binary = kubelet_binary or under(root, DEFAULT_KUBELET_BINARY)
    if kubelet_paths is None:
        defaults = KubeletPaths()
        kubelet_paths = KubeletPaths(**{f.name: under(root, getattr(defaults, f.name))
                                        for f in dataclasses.fields(KubeletPaths)})
        kubelet_paths = dataclasses.replace(kubelet_paths, static_pod_dir=static_pod_dir)
    paths = kubelet_paths
    if paths.static_pod_dir != static_pod_dir:
        raise ValueError(f"static_pod_dir {static_pod_dir!r} differs from kubelet_paths.static_pod_dir "
                         f"{paths.static_pod_dir!r}: the kubelet would not see the control plane")
    out: list[Controller] = [
        NodenameController(),
        NodeIPController(),
        KubeletConfigController(),
        KubeletSpecController(paths),
        ControlPlaneConfigController(),
        StaticPodController(secrets_dir),
        StaticPodFileController(static_pod_dir, secrets_dir),
        ManifestController(),
        ManifestApplyController(api_url=api_url, retry_interval=manifest_retry),
        CSRApproverController(api_url=api_url, interval=csr_interval),
    ]
    if supervisor is not None:
        binary = kubelet_binary
        define = (lambda: kubelet_service(binary)) if kubelet_service is not None else None
        out.append(KubeletServiceController(supervisor, paths, binary=binary, define=define,
                                            kubelets=lambda: node_kubelets(root, binary)))
    return out
