"""The kubelet service: KubeletSpecs(kubelet) -> files on disk + the supervised ``kubelet``.

``KubeletServiceController`` writes the KubeletConfiguration, the bootstrap kubeconfig (0600)
and the cluster CA to the paths of ``KubeletPaths``, registers the ``kubelet`` service with
the supervisor once (a ``ProcessRunner`` running ``<binary> <spec.args>``), starts it, and
restarts it when the spec changes; when the spec goes away the service is stopped.

The service itself is machined's (``kos.machined.services.kubelet``: it waits for the kubelet
binary, and for containerd when the node runs it); the controller adds it through ``define``
when the ``ServiceManager`` has none and sets the runner's arguments before each start.

Which kubelet: the one of the Kubernetes version ``machine.kubelet.image``'s tag names, among
the node's kubelets (``kubelets()``: version -> binary, ``kos.platform.provision.node_kubelets``);
a tag that is not a version, or a node holding no kubelet at all, runs the node's own ``binary``
(the service waits for it to appear); a version the node does not hold among those it has is an
error naming the field, the value and the versions it has (the kubelet is left as it
was; ApplyConfiguration refuses such a change up front, ``kubernetes_version_problems``).

The kubelet runs in the host mount namespace, so ``machine.kubelet.extraMounts`` (which Talos
bind-mounts into its kubelet container) need no mount here; they are validated and carried in
the spec only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import anyio

from kos.controllers.k8s.kubelet import KubeletPaths
from kos.controllers.k8s.staticpods import write_atomic
from kos.controllers.runtime import Controller, ControllerRuntime, Input, Output, ServiceDefiner, ServiceManager
from kos.resources.core import Phase
from kos.resources.k8s import KUBELET_ID, KUBELET_SPECS, KubeletSpecSpec
from kos.resources.k8sversion import image_version

SERVICE_ID = "kubelet"
DEFAULT_KUBELET_BINARY = "/usr/local/bin/kubelet"


@runtime_checkable
class ArgsRunner(Protocol):
    """A runner of one command line (machined's ProcessRunner)."""

    args: Sequence[str]


def write_kubelet_files(spec: KubeletSpecSpec, paths: KubeletPaths) -> None:
    """Blocking: the files the kubelet reads at start (call via anyio.to_thread)."""
    write_atomic(Path(paths.config), spec.config, 0o644)
    write_atomic(Path(paths.bootstrap_kubeconfig), spec.bootstrap_kubeconfig, 0o600)
    write_atomic(Path(paths.ca_file), spec.ca_crt, 0o644)
    for d in (paths.static_pod_dir, paths.cert_dir, paths.root_dir):
        Path(d).mkdir(parents=True, exist_ok=True)


class KubeletVersionError(RuntimeError):
    """machine.kubelet.image names a Kubernetes version this node holds no kubelet for."""


def kubelet_binary(image: str, kubelets: Mapping[str, str], default: str) -> str:
    """The kubelet binary for ``machine.kubelet.image`` (see the module docstring)."""
    version = image_version(image)
    if version is None or not kubelets:  # no kubelet at all: the service waits for one at ``default``
        return default
    if str(version) in kubelets:
        return kubelets[str(version)]
    have = ", ".join(sorted(kubelets)) or "none"
    raise KubeletVersionError(f"machine.kubelet.image: {image!r} names Kubernetes {version}, which this node has "
                              f"no kubelet for (available: {have})")


class KubeletServiceController(Controller):
    name = "k8s.KubeletServiceController"

    def __init__(self, supervisor: ServiceManager, paths: KubeletPaths, *, binary: str = DEFAULT_KUBELET_BINARY,
                 define: ServiceDefiner | None = None,
                 kubelets: Callable[[], Mapping[str, str]] | None = None) -> None:
        self.supervisor = supervisor
        self.paths = paths
        self.binary = binary
        self.define = define
        self.kubelets = kubelets
        self.current: KubeletSpecSpec | None = None

    def _binary(self, image: str) -> str:
        """Blocking (lists the node's kubelets): run in a worker thread."""
        if self.kubelets is None:
            return self.binary
        return kubelet_binary(image, self.kubelets(), self.binary)

    def inputs(self) -> Sequence[Input]:
        return [Input(KUBELET_SPECS.namespace, KUBELET_SPECS.type, KUBELET_ID)]

    def outputs(self) -> Sequence[Output]:
        return []

    def _runner(self) -> ArgsRunner:
        sup = self.supervisor
        if SERVICE_ID not in sup.ids():
            if self.define is None:
                raise RuntimeError(f"the supervisor has no {SERVICE_ID!r} service to run the KubeletSpec")
            self.define()
        runner = sup.runner(SERVICE_ID)
        if not isinstance(runner, ArgsRunner):
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
        binary = await anyio.to_thread.run_sync(self._binary, spec.image)  # KubeletVersionError: left as it was
        await anyio.to_thread.run_sync(write_kubelet_files, spec, self.paths)
        runner = self._runner()
        runner.args = [binary, *spec.args]
        changed = self.current is not None and spec != self.current
        self.current = spec.copy()
        if changed and sup.is_active(SERVICE_ID):
            rt.logger.info("kubelet spec changed: restarting the kubelet")
            await sup.restart(SERVICE_ID)
        elif not sup.is_active(SERVICE_ID):
            await sup.start(SERVICE_ID)
