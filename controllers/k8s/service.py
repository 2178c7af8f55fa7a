"""The kubelet service: KubeletSpecs(kubelet) -> files on disk + the supervised ``kubelet``.

``KubeletServiceController`` writes the KubeletConfiguration, the bootstrap kubeconfig (0600)
and the cluster CA to the paths of ``KubeletPaths``, registers the ``kubelet`` service with
the supervisor once (a ``ProcessRunner`` running ``<binary> <spec.args>``), starts it, and
restarts it when the spec changes; when the spec goes away the service is stopped.

The service depends on ``KubeletBinaryCondition`` first, then (when the supervisor runs one)
on the ``containerd`` service being healthy, then on ``depends_on``. While no executable
exists at the configured path the service sits in ``Waiting`` with the message
``waiting for kubelet binary not found at PATH`` (the kos image may be built without
Kubernetes binaries; see docs/kubernetes.md). It starts by itself once the binary appears.

The kubelet runs in the host mount namespace, so ``machine.kubelet.extraMounts`` (which Talos
bind-mounts into its kubelet container) need no mount here; they are validated and carried in
the spec only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import anyio

from kos.controllers.k8s.kubelet import KubeletPaths
from kos.controllers.k8s.staticpods import _write_atomic
from kos.controllers.runtime import Controller, ControllerRuntime, Input, Output
from kos.machined.services import (
    Condition,
    PredicateCondition,
    ProcessRunner,
    ServiceDefinition,
    Supervisor,
    service_healthy,
)
from kos.resources.core.metadata import Phase
from kos.resources.k8s import KUBELET_ID, KUBELET_SPECS, KubeletSpecSpec

SERVICE_ID = "kubelet"
CRI_SERVICE = "containerd"
DEFAULT_KUBELET_BINARY = "/usr/local/bin/kubelet"


def binary_present(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


class KubeletBinaryCondition(PredicateCondition):
    """An executable kubelet exists at ``path`` (polled: the image or an extension provides it)."""

    def __init__(self, path: str, *, interval: float = 5.0) -> None:
        self.path = path

        async def present() -> bool:
            return await anyio.to_thread.run_sync(binary_present, path)

        super().__init__(f"kubelet binary not found at {path}", present, interval=interval)


def write_kubelet_files(spec: KubeletSpecSpec, paths: KubeletPaths) -> None:
    """Blocking: the files the kubelet reads at start (call via anyio.to_thread)."""
    _write_atomic(Path(paths.config), spec.config, 0o644)
    _write_atomic(Path(paths.bootstrap_kubeconfig), spec.bootstrap_kubeconfig, 0o600)
    _write_atomic(Path(paths.ca_file), spec.ca_crt, 0o644)
    for d in (paths.static_pod_dir, paths.cert_dir, paths.root_dir):
        Path(d).mkdir(parents=True, exist_ok=True)


class KubeletServiceController(Controller):
    name = "k8s.KubeletServiceController"

    def __init__(self, supervisor: Supervisor, paths: KubeletPaths, *, binary: str = DEFAULT_KUBELET_BINARY,
                 depends_on: Sequence[Condition] = (), binary_poll: float = 5.0) -> None:
        self.supervisor = supervisor
        self.paths = paths
        self.binary = binary
        self.depends_on = tuple(depends_on)
        self.binary_poll = binary_poll
        self.current: KubeletSpecSpec | None = None

    def inputs(self) -> Sequence[Input]:
        return [Input(KUBELET_SPECS.namespace, KUBELET_SPECS.type, KUBELET_ID)]

    def outputs(self) -> Sequence[Output]:
        return []

    def _runner(self) -> ProcessRunner:
        sup = self.supervisor
        if SERVICE_ID not in sup.ids():
            deps: list[Condition] = [KubeletBinaryCondition(self.binary, interval=self.binary_poll)]
            if CRI_SERVICE in sup.ids() and sup.state is not None:
                deps.append(service_healthy(sup.state, CRI_SERVICE))  # the kubelet needs its container runtime
            sup.add(ServiceDefinition(SERVICE_ID, ProcessRunner([self.binary], stop_timeout=30.0),
                                      depends_on=(*deps, *self.depends_on)))
        runner = sup.definition(SERVICE_ID).runner
        if not isinstance(runner, ProcessRunner):
            raise TypeError(f"service {SERVICE_ID!r} does not run a process (runner {type(runner).__name__})")
        return runner

    async def run(self, rt: ControllerRuntime) -> None:
        async for _ in rt.events():
            await self.reconcile(rt)
            rt.reset_restart_backoff()

    async def reconcile(self, rt: ControllerRuntime) -> None:
        sup = self.supervisor
        res = await rt.get_or_none(KUBELET_SPECS.pointer(KUBELET_ID))
        if res is None or res.metadata.phase != Phase.RUNNING:
            if SERVICE_ID in sup.ids() and sup.is_active(SERVICE_ID):
                rt.logger.info("kubelet spec gone: stopping the kubelet")
                await sup.stop(SERVICE_ID)
            self.current = None
            return
        spec: KubeletSpecSpec = res.spec
        if spec == self.current and sup.is_active(SERVICE_ID):
            return
        await anyio.to_thread.run_sync(write_kubelet_files, spec, self.paths)
        runner = self._runner()
        runner.args = [self.binary, *spec.args]
        changed = self.current is not None and spec != self.current
        self.current = spec.copy()
        if changed and sup.is_active(SERVICE_ID):
            rt.logger.info("kubelet spec changed: restarting the kubelet")
            await sup.restart(SERVICE_ID)
        elif not sup.is_active(SERVICE_ID):
            await sup.start(SERVICE_ID)
