"""The ``kubelet`` service: machined's definition of it (the k8s controllers start it).

``kubelet_service(sup, binary)`` is a ``ProcessRunner`` running ``binary`` (the
KubeletServiceController sets its arguments from the KubeletSpec before a start) that
depends on ``KubeletBinaryCondition`` first, then (when the supervisor runs one) on the
``containerd`` service being healthy, then on ``depends_on``. While no executable exists at
the path the service sits in ``Waiting`` with ``waiting for kubelet binary not found at PATH``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import anyio

from kos.machined.services.conditions import Condition, PredicateCondition, service_healthy
from kos.machined.services.health import HealthCheck, http_probe
from kos.machined.services.images import ImagesImportedCondition
from kos.machined.services.runners import ProcessRunner
from kos.machined.services.supervisor import ServiceDefinition, Supervisor

SERVICE_ID = "kubelet"
HEALTHZ_HOST, HEALTHZ_PORT = "127.0.0.1", 10248
IMAGE_DIR = "/usr/share/kos/images"  # image archives a node imports (namespace nodes: the build cache's)
CRI_SERVICE = "containerd"


def binary_present(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


class KubeletBinaryCondition(PredicateCondition):
    """An executable kubelet exists at ``path`` (polled: the image or an extension provides it)."""

    def __init__(self, path: str, *, interval: float = 5.0) -> None:
        self.path = path

        async def present() -> bool:
            return await anyio.to_thread.run_sync(binary_present, path)

        super().__init__(f"kubelet binary not found at {path}", present, interval=interval)


def kubelet_service(sup: Supervisor, binary: str, *, binary_poll: float = 5.0,
                    depends_on: Sequence[Condition] = (), image_dir: Path | None = None,
                    cri_socket: Path | None = None) -> ServiceDefinition:
    """With ``cri_socket`` (the node runs containerd) the kubelet waits for a healthy
    ``containerd`` service, and with ``image_dir`` too, for the image archives of ``image_dir``
    to be imported into it (``ImagesImportedCondition``)."""
    deps: list[Condition] = [KubeletBinaryCondition(binary, interval=binary_poll)]
    # the kubelet needs its container runtime: the node's containerd (given by its socket, or
    # already defined; the containerd service may be added after the kubelet's definition)
    if (cri_socket is not None or CRI_SERVICE in sup.ids()) and sup.state is not None:
        deps.append(service_healthy(sup.state, CRI_SERVICE))
        if image_dir is not None and cri_socket is not None:
            deps.append(ImagesImportedCondition(cri_socket, image_dir))
    # healthy when its healthz answers (KubeletConfiguration healthzBindAddress/Port, as kos renders them)
    health = HealthCheck(http_probe(HEALTHZ_HOST, HEALTHZ_PORT, "/healthz"), interval=1.0, timeout=2.0,
                         healthy_interval=10.0)
    return ServiceDefinition(SERVICE_ID, ProcessRunner([binary], stop_timeout=30.0), depends_on=(*deps, *depends_on),
                             health=health)
