"""The node's configuration and controller assembly: the ``config`` and ``controllers`` boot
phases (the config controllers and the early network domain, the maintenance wait, every
domain's controllers with what machined hands them: supervisor, etcd and kubelet service
definitions, paths, the remote signer) and the ``services`` phase (containerd).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import anyio
import structlog

from kos.controllers.secrets.remote import remote_signer_from_config
from kos.machined import assembly
from kos.machined.nodebase import NodeBase, machine_id, read_cmdline
from kos.machined.services.etcd import etcd_service_definition
from kos.machined.services.kubelet import IMAGE_DIR, kubelet_service
from kos.resources.config import is_control_plane
from kos.resources.core import Resource

log = structlog.get_logger("kos.machined")

HEALTHY_PROBE_INTERVAL = 15.0
"""How often a node probes a healthy service (a crash is seen at once by its exit; this is
about hangs, and an idle node's wakeups). Until healthy the definition's own, faster interval
applies, and again from the first failed probe."""


class NodeConfig(NodeBase):
    def _fields_not_acted_on(self, container: Any) -> list[tuple[str, str]]:
        """What an applied config sets that this node will not act on (the apply answer says so)."""
        from kos.controllers.system import Host, not_acted_on

        return not_acted_on(container, Host.detect(shared_kernel=self._container_mode()))

    def _config_preconditions(self, current: Any, new: Any) -> list[str]:
        """What keeps this node from running a config (blocking: lists the node's kubelets):
        Kubernetes versions it holds no release of (kos.controllers.k8s.releases)."""
        from kos.controllers.k8s.releases import kubernetes_version_problems
        from kos.platform.provision.kubernetes import node_kubelets

        if new.v1alpha1 is None:
            return []
        old = current.v1alpha1 if current is not None else None
        return kubernetes_version_problems(old, new.v1alpha1, node_kubelets(self._root()))

    async def _platform_config(self) -> bytes | None:
        return self.opts.initial_config

    def _config_text(self) -> str | None:
        active = self.manager.active
        return active.text if active is not None else None

    EARLY_DOMAINS = ("network",)
    """Domains that run from boot, before any config (the maintenance API needs the network)."""

    def _network_params(self) -> dict[str, Any]:
        return {
            "netns": None,
            "etc_dir": "/etc" if not self.platform.mode.is_process else str(self.opts.state_dir / "etc"),
            "manage_hostname": not self.platform.mode.is_process,
            "cmdline": read_cmdline() if self.platform.mode.reads_cmdline else "",
            "machine_id": machine_id(self.opts.state_dir),
        }

    async def _task_load_config(self) -> None:
        from kos.controllers.config.assembly import config_controllers
        from kos.controllers.runtime import Runtime

        if self.opts.platform_network is not None:
            from kos.resources.network import PlatformNetworkConfigSpec

            spec = self.opts.platform_network

            def fill(r: Resource[Any]) -> None:
                r.spec = spec

            await self.state.modify(Resource.new(PlatformNetworkConfigSpec(), "platform"), fill)
        runtime = Runtime(self.state)
        self._runtimes.append(runtime)
        for c in config_controllers(config_manager=self.manager):
            runtime.register(c)
        if self.opts.controllers and not self.platform.mode.is_process:
            ctx = assembly.AssemblyContext(root=self._root(), state_dir=self.opts.state_dir,
                                           container_mode=self._container_mode(),
                                           domain_params={"network": self._network_params()})
            early, missing = assembly.assemble_controllers(ctx, self.EARLY_DOMAINS)
            self._missing.update(missing)
            for domain, reason in missing.items():
                self.sequencer.set_condition(f"controllers {domain}", reason)
            for c in early:
                runtime.register(c)
        assert self._tg is not None
        self._tg.start_soon(runtime.run)
        await self.manager.acquire()
        if not (self.manager.maintenance and self.opts.maintenance):
            await self._close_early_api()
        if self.manager.maintenance and self.opts.maintenance:
            await self.sequencer.set_stage("maintenance")
            await self._serve_maintenance()
            await self.sequencer.set_stage("booting")
        if self.manager.active is not None:
            await self._wait_machine_config()

    async def _wait_machine_config(self, timeout: float | None = 30.0) -> None:
        from kos.resources.config import ACTIVE_ID, NAMESPACE, MachineConfigSpec
        from kos.resources.core import Kind

        kind = Kind(NAMESPACE, MachineConfigSpec.definition.type)
        with anyio.fail_after(timeout):
            async with self.state.watch(kind.pointer(ACTIVE_ID)) as events:
                async for ev in events:
                    if ev.resource is not None and ev.type.name in ("CREATED", "UPDATED"):
                        return

    def _define_etcd(self) -> None:
        """Adds the etcd service (a worker whose config made it a control plane)."""
        assert self.supervisor is not None
        self.supervisor.add(etcd_service_definition(self._etcd_paths()))

    def _define_kubelet(self, binary: str) -> None:
        assert self.supervisor is not None
        root = Path(self._root())
        cri = root / "run/containerd/containerd.sock" if shutil.which("containerd") else None
        self.supervisor.add(kubelet_service(self.supervisor, binary, image_dir=root / IMAGE_DIR.lstrip("/"),
                                            cri_socket=cri))

    async def _task_controllers(self) -> None:
        container = self._container()
        if container is None or not self.opts.controllers:
            return
        from kos.controllers.runtime import Runtime

        control_plane = is_control_plane(container.machine_type)
        # control planes list the etcd service from boot (idle until an EtcdSpec starts it); a
        # worker has none, and the etcd service controller adds it should the node become one
        if control_plane and self.supervisor is not None and "etcd" not in self.supervisor.ids():
            self.supervisor.add(relaxed_health(etcd_service_definition(self._etcd_paths())))
        ctx = assembly.AssemblyContext(
            root=self._root(),
            container_mode=self._container_mode(),
            control_plane=control_plane,
            domain_params={
                "etcd": {"paths": self._etcd_paths(), "define_service": self._define_etcd},
                "k8s": {"kubelet_service": self._define_kubelet},
                "secrets": {"retry_interval": 1.0},  # a worker asks trustd again soon
                "cluster": {"discovery_wakeup": self._discovery_wakeup},
            },
            state_dir=self.opts.state_dir,
            supervisor=self.supervisor,
            extra_names=list(self.opts.node_names),
            remote=self._remote_signer(container),
        )
        domains = tuple(d for d in assembly.DOMAINS if d != "config" and d not in self.EARLY_DOMAINS)
        if self.platform.mode.is_process:
            self.sequencer.set_condition(
                "controllers network", "not run in process mode: it would manage the host's own network"
            )
        controllers, missing = assembly.assemble_controllers(ctx, domains)
        self._missing.update(missing)
        for domain, reason in missing.items():
            self.sequencer.set_condition(f"controllers {domain}", reason)
        runtime = Runtime(self.state)
        self._runtimes.append(runtime)
        for c in controllers:
            runtime.register(c)
        assert self._tg is not None
        self._tg.start_soon(runtime.run)

    def _remote_signer(self, container: Any) -> Any:
        """Workers sign their API certificate on a control plane (trustd-like)."""
        if is_control_plane(container.machine_type):
            return None
        return remote_signer_from_config(container)

    async def _task_services(self) -> None:
        if self._container() is None or self.supervisor is None or self.platform.mode.is_process:
            return
        ctx = assembly.AssemblyContext(root="/")
        for definition in assembly.node_services(ctx):
            if definition.id not in self.supervisor.ids():
                self.supervisor.add(relaxed_health(definition))
            await self.supervisor.start(definition.id)


def relaxed_health(definition: Any) -> Any:
    import dataclasses

    if definition.health is None or definition.health.healthy_interval is not None:
        return definition
    health = dataclasses.replace(definition.health, healthy_interval=HEALTHY_PROBE_INTERVAL)
    return dataclasses.replace(definition, health=health)
