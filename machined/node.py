"""The node: state, sequencer, controllers, services and API servers of one machined.

``run_node(options)`` boots the node through the sequencer and serves until a lifecycle
request (Reboot/Shutdown/Reset RPC, SIGTERM, SIGINT) ends it; it returns the ``Action`` that
ended it, which ``kos.machined.main`` turns into the reboot syscall when machined is PID 1.

Boot sequence (events ``sequence``/``phase``/``task``, MachineStatus ``booting``):

1. ``config``: the machine config from ``<state-dir>/config.yaml`` (STATE), else from the
   platform (``KOS_CONFIG``/``kos.config=``...), else, with ``--maintenance``, the reduced
   maintenance API over TLS without client certificates (stage ``maintenance``) until an
   ApplyConfiguration stores one. The config becomes the ``MachineConfigs(config/v1alpha1)``
   resource (machined is its writer; no owner).
2. ``controllers``: every domain's controllers (``kos.machined.assembly``) start; a domain
   that cannot be assembled is an unmet condition of the MachineStatus.
3. ``api``: the API over mutual TLS with the node certificate from ``APICerts(secrets/api)``
   (issued by the secrets controllers; workers get theirs from a control plane), falling back
   to certificates issued here from the config's OS CA when it carries the key, or from a CA
   of the node's own when the node has no config (a process-mode node for tests).
4. ``services``: containerd (when installed); etcd is started by the etcd controllers.

Without a config and without ``--maintenance`` the node serves the full API with its own CA
(``<state-dir>/kosconfig`` holds an admin client config) and runs no controllers.

The bound address is written to ``<state-dir>/api-endpoint`` once the API serves (so a test
can listen on port 0).
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import structlog
from anyio.abc import TaskGroup

from kos.apis import auth
from kos.apis.server.dispatch import Node, split_endpoint
from kos.apis.server.machine import ConfigStore, EventBus, MachineService
from kos.apis.server.nodepki import NodePKI, generate_client_configuration
from kos.apis.server.security import SecurityService
from kos.apis.server.serve import APIServer
from kos.apis.server.state import StateService
from kos.apis.tls import client_context, server_context
from kos.controllers.block.wipe import wipe as block_wipe
from kos.controllers.cluster.discovery import Wakeup, run_registry
from kos.controllers.secrets.remote import remote_signer_from_config
from kos.machined import assembly
from kos.machined.api.containers import ContainersAPI
from kos.machined.api.diagnostics import DiagnosticsAPI
from kos.machined.api.disks import DisksAPI
from kos.machined.api.etcd import EtcdAPI
from kos.machined.api.etcdmaint import EtcdMaintenanceAPI
from kos.machined.api.files import FilePolicy, FilesAPI
from kos.machined.api.health import ClusterHealthAPI
from kos.machined.api.lifecycle import (
    LifecycleRefusedError,
    LifecycleRequestError,
    LifecycleService,
    ResetOptions,
    UpgradeUnavailableError,
)
from kos.machined.init import Action
from kos.machined.sequencer import PREEMPTIVE, Phase, Sequence, SequenceBusyError, SequenceError, Sequencer
from kos.machined.services import Supervisor
from kos.machined.services.etcd import etcd_service_definition
from kos.machined.services.kubelet import IMAGE_DIR, kubelet_service
from kos.platform.image import install as image_install
from kos.platform.image import installer as image_installer
from kos.platform.image.installer import upgrade_sequence
from kos.resources.core.inmem import InMemoryState
from kos.resources.core.meta import publish_meta
from kos.resources.core.resource import Resource
from kos.resources.pki import CertificateAndKey, generate_ca, issue_certificate

log = structlog.get_logger("kos.machined")

DEFAULT_LISTEN = f"0.0.0.0:{50000}"


@dataclass
class NodeOptions:
    state_dir: Path
    listen: str = DEFAULT_LISTEN
    maintenance: bool = False
    node_names: list[str] = field(default_factory=list)
    writable_namespaces: list[str] = field(default_factory=list)
    history_max: int = 1024
    platform: str = "process"  # process | container | metal | nocloud | qemu
    controllers: bool = True  # run the domain controllers once configured
    ephemeral_dir: Path | None = None  # wiped by reset (container mode: /var)
    cgroup_parent: str = "kos"
    api_certs_timeout: float = 20.0
    initial_config: bytes | None = None  # from the platform (env, cmdline, cidata)
    platform_network: Any = None  # PlatformNetworkConfigSpec from the platform, or None


def _load_resource_modules() -> None:
    """Import the resource catalogue so every type has its definition registered."""
    import importlib
    import pkgutil

    import kos.resources as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name in ("core", "pki"):
            continue
        try:
            importlib.import_module(f"kos.resources.{info.name}")
        except Exception as exc:  # a broken catalogue module must not keep the node down
            log.warning("resource module failed to import", module=info.name, error=repr(exc))


def _maintenance_identity(names: list[str]) -> CertificateAndKey:
    ca = generate_ca("kos-maintenance")
    return issue_certificate(ca, common_name="kos-maintenance", dns_names=["localhost"], ip_addresses=[
        n for n in names if n.replace(".", "").isdigit()
    ], server=True)


@dataclass
class APIIdentity:
    server: CertificateAndKey
    ca_pem: bytes  # trusted for clients and for forwarding
    forward: CertificateAndKey  # os:impersonator client certificate for node-to-node calls
    source: str  # "APICerts" | "config CA" | "node CA"
    version: str | None = None  # of the APICerts resource
    pki: NodePKI | None = None  # when issued here (can issue client configs)


class MachineNode:
    """One node; implements the lifecycle controller the Reboot/Shutdown/Reset RPCs call."""

    def __init__(self, opts: NodeOptions) -> None:
        self.opts = opts
        self.state = InMemoryState(history_max=opts.history_max)
        self.events = EventBus()
        self.sequencer = Sequencer(self.state, self.events)
        self.host, self.port = split_endpoint(opts.listen, 50000)
        self.names = [n for n in [self.host, socket.gethostname(), *opts.node_names] if n not in ("0.0.0.0", "::")]
        from kos.controllers.config.api import ManagedConfigStore
        from kos.controllers.config.manager import ConfigManager

        mode = {"container": "container", "process": "container", "nocloud": "cloud"}.get(opts.platform, "metal")
        self.manager = ConfigManager(
            opts.state_dir, validation_mode=mode, platform_source=self._platform_config,
            reboot_hook=self._config_reboot, events=lambda t, p: self.events.publish(t, p),
            not_acted_on=self._fields_not_acted_on,
        )  # fmt: skip
        self.store: ConfigStore = ManagedConfigStore(self.manager)
        self.policy = auth.ResourcePolicy(writable_namespaces=frozenset(opts.writable_namespaces))
        self.action: Action | None = None
        self.supervisor: Supervisor | None = None
        self._tg: TaskGroup | None = None
        self._main_scope: anyio.CancelScope | None = None
        self._server: APIServer | None = None
        self._missing: dict[str, str] = {}
        self._runtimes: list[Any] = []  # the controller runtimes (inspect dependencies)
        self.ready = anyio.Event()
        self._discovery_wakeup = Wakeup()

    # -- config ---------------------------------------------------------------------------
    def _fields_not_acted_on(self, container: Any) -> list[tuple[str, str]]:
        """What an applied config sets that this node will not act on (the apply answer says so)."""
        from kos.controllers.system import Host, not_acted_on

        return not_acted_on(container, Host.detect(shared_kernel=self._container_mode()))

    async def _platform_config(self) -> bytes | None:
        return self.opts.initial_config

    async def _config_reboot(self) -> None:
        """An applied config needs a reboot (ApplyConfiguration mode reboot/auto)."""
        try:
            await self.reboot(False)
        except LifecycleRefusedError as exc:
            log.warning("reboot after config apply refused", error=str(exc))

    def _config_text(self) -> str | None:
        active = self.manager.active
        return active.text if active is not None else None

    # -- the boot sequence ------------------------------------------------------------------
    def boot_sequence(self) -> Sequence:
        return Sequence(
            "boot", "booting",
            (
                Phase.of("config", ("loadConfig", self._task_load_config)),
                Phase.of("controllers", ("startControllers", self._task_controllers)),
                Phase.of("api", ("startAPI", self._task_api)),
                Phase.of("services", ("startServices", self._task_services)),
            ),
            final_stage="running",
        )  # fmt: skip

    EARLY_DOMAINS = ("network",)
    """Domains that run from boot, before any config (the maintenance API needs the network)."""

    def _container_mode(self) -> bool:
        """Namespace nodes and processes share the host's kernel: no disks, no clock of their own."""
        return self.opts.platform in ("container", "process")

    def _network_params(self) -> dict[str, Any]:
        return {
            "netns": None,
            "etc_dir": "/etc" if self.opts.platform != "process" else str(self.opts.state_dir / "etc"),
            "manage_hostname": self.opts.platform != "process",
            "cmdline": _cmdline() if self.opts.platform in ("metal", "qemu", "nocloud") else "",
            "machine_id": _machine_id(self.opts.state_dir),
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
        if self.opts.controllers and self.opts.platform != "process":
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
        if self.manager.maintenance and self.opts.maintenance:
            await self.sequencer.set_stage("maintenance")
            await self._serve_maintenance()
            await self.sequencer.set_stage("booting")
        if self.manager.active is not None:
            await self._wait_machine_config()

    async def _wait_machine_config(self, timeout: float | None = 30.0) -> None:
        from kos.resources.config import ACTIVE_ID, NAMESPACE, MachineConfigSpec
        from kos.resources.core.metadata import Kind

        kind = Kind(NAMESPACE, MachineConfigSpec.definition.type)
        with anyio.fail_after(timeout):
            async with self.state.watch(kind.pointer(ACTIVE_ID)) as events:
                async for ev in events:
                    if ev.resource is not None and ev.type.name in ("CREATED", "UPDATED"):
                        return

    async def _serve_maintenance(self) -> None:
        identity = await anyio.to_thread.run_sync(_maintenance_identity, self.names)
        node = Node(names=frozenset(self.opts.node_names), port=self.port, maintenance=True)
        machine = MachineService(config=self.store, maintenance=True, supervisor=self.supervisor, events=self.events,
                                 platform_name=self.opts.platform)
        server = await APIServer.start(
            self.host, self.port, server_context(identity, None), node=node,
            state=StateService(self.state, self.policy), machine=machine,
        )  # fmt: skip
        self.port = server.port
        _write_endpoint(self.opts.state_dir, self.host, server.port)
        self.ready.set()
        try:
            await self._wait_machine_config(timeout=None)
            log.info("configuration applied in maintenance mode: switching to mutual TLS")
            await anyio.sleep(0.5)  # closing cancels running calls: let the apply's answer leave
        finally:
            with anyio.CancelScope(shield=True):
                await server.close(grace=2.0)

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

    def _container(self) -> Any:
        active = self.manager.active
        return active.container if active is not None else None

    async def _task_controllers(self) -> None:
        container = self._container()
        if container is None or not self.opts.controllers:
            return
        from kos.controllers.runtime import Runtime

        control_plane = container.machine_type in ("controlplane", "init")
        # control planes list the etcd service from boot (idle until an EtcdSpec starts it); a
        # worker has none, and the etcd service controller adds it should the node become one
        if control_plane and self.supervisor is not None and "etcd" not in self.supervisor.ids():
            self.supervisor.add(_relaxed_health(etcd_service_definition(self._etcd_paths())))
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
        if self.opts.platform == "process":
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
        if container.machine_type in ("controlplane", "init"):
            return None
        return remote_signer_from_config(container)

    async def _identity(self) -> APIIdentity:
        container = self._container()
        if container is not None and "secrets" not in self._missing and self.opts.controllers:
            got = await self._wait_api_certs(self.opts.api_certs_timeout)
            if got is not None:
                return got
        sd = self.opts.state_dir / "pki"
        ca = _config_ca(container)
        if ca is not None:
            if not ca.has_key:
                raise RuntimeError(
                    "no API certificate: APICerts did not appear and the config's OS CA has no key "
                    "(a worker gets its certificate from a control plane)"
                )
            await anyio.to_thread.run_sync(_install_ca, sd, ca)
            source = "config CA"
        else:
            source = "node CA"
        pki = await anyio.to_thread.run_sync(NodePKI.load_or_create, sd, self.names)
        return APIIdentity(pki.server, pki.ca.cert_pem, pki.node, source, pki=pki)

    async def _wait_api_certs(self, timeout: float) -> APIIdentity | None:
        from kos.resources.secrets import API_CERTS, API_CERTS_ID

        with anyio.move_on_after(timeout):
            async with self.state.watch(API_CERTS.pointer(API_CERTS_ID)) as events:
                async for ev in events:
                    r = ev.resource
                    if r is None or ev.type.name == "DESTROYED":
                        continue
                    s = r.spec
                    if s.server_cert and s.server_key and s.ca_cert:
                        fwd = CertificateAndKey(s.client_cert.encode(), s.client_key.encode()) if s.client_cert \
                            else CertificateAndKey(s.server_cert.encode(), s.server_key.encode())
                        return APIIdentity(
                            CertificateAndKey(s.server_cert.encode(), s.server_key.encode()),
                            s.ca_cert.encode(), fwd, "APICerts", version=str(r.metadata.version),
                        )
        log.warning("APICerts did not appear in time: issuing the API certificate locally", timeout=timeout)
        self.sequencer.set_condition("apiCerts", f"APICerts(secrets/api) did not appear within {timeout:g} s")
        return None

    async def _task_api(self) -> None:
        ident = await self._identity()
        node = Node(
            names=frozenset([*self.opts.node_names, socket.gethostname()]),
            port=self.port,
            forward_ssl=client_context(ident.ca_pem, ident.forward),
        )
        shown = self.host if self.host not in ("0.0.0.0", "::") else "127.0.0.1"
        pki = ident.pki
        client_config = None
        if pki is not None and pki.ca.has_key:
            def client_config(roles: list[str], ttl: int, pki: NodePKI = pki) -> Any:
                return generate_client_configuration(pki, "kos", [f"{shown}:{node.port}"], roles, ttl)
        machine = MachineService(
            config=self.store, supervisor=self.supervisor, events=self.events, client_config=client_config,
            extensions=self._extensions(node.forward_ssl), platform_name=self.opts.platform,
        )
        ca_for_signing = pki.ca if pki is not None and pki.ca.has_key else None
        self._server = await APIServer.start(
            self.host, self.port, server_context(ident.server, ident.ca_pem), node=node,
            state=StateService(self.state, self.policy), machine=machine, security=SecurityService(ca_for_signing),
        )  # fmt: skip
        self.port = self._server.port
        if pki is not None and pki.ca.has_key:
            cfg = pki.client_config("kos", [f"{shown}:{self._server.port}"], [auth.ADMIN], 365 * 86400)
            await anyio.to_thread.run_sync(cfg.save, self.opts.state_dir / "kosconfig")
        _write_endpoint(self.opts.state_dir, self.host, self._server.port)
        self.events.publish("api", {"action": "listening", "port": self._server.port, "certificates": ident.source})
        assert self._tg is not None
        if ident.source == "APICerts":
            from kos.controllers.secrets.trustd import follow_api_certs

            server = self._server
            self._tg.start_soon(lambda: follow_api_certs(
                self.state, lambda pair, ca: server.reload_identity(pair, ca), skip_version=ident.version
            ))
            container = self._container()
            if container is not None and container.machine_type in ("controlplane", "init"):
                from kos.controllers.secrets.trustd import run_trustd

                await self._tg.start(run_trustd, self.state)
                await self._tg.start(lambda task_status: run_registry(
                    self.state, wakeup=self._discovery_wakeup, task_status=task_status))
        self.ready.set()

    def _extensions(self, forward_ssl: Any = None) -> list[Any]:
        out: list[Any] = [LifecycleService(self)]
        out.append(EtcdAPI(self.state, self.supervisor, self._etcd_paths()))
        # the socket machined.assembly.node_services gives containerd
        out.append(ContainersAPI(Path(self._root()) / "run/containerd/containerd.sock"))
        if forward_ssl is not None:  # the health checks call this node's API with its client identity
            out.append(ClusterHealthAPI(self._local_endpoint, forward_ssl))
        # the operator's daily tools: files, diagnostics, disks/META, etcd maintenance
        secret_dirs = (*FilePolicy().secret_dirs, str(self.opts.state_dir))
        out.append(FilesAPI(FilePolicy(secret_dirs=secret_dirs)))
        out.append(DiagnosticsAPI(self.state, lambda: list(self._runtimes)))
        out.append(DisksAPI(self.state))
        out.append(EtcdMaintenanceAPI(self.state, self.supervisor, self._etcd_paths()))
        return out

    def _local_endpoint(self) -> str:
        """This node's API as the node itself reaches it (the bound port, once serving)."""
        host = self.host if self.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    async def _task_services(self) -> None:
        if self._container() is None or self.supervisor is None or self.opts.platform == "process":
            return
        ctx = assembly.AssemblyContext(root="/")
        for definition in assembly.node_services(ctx):
            if definition.id not in self.supervisor.ids():
                self.supervisor.add(_relaxed_health(definition))
            await self.supervisor.start(definition.id)

    # -- lifecycle (LifecycleController) -----------------------------------------------------
    def _schedule(self, seq: Sequence, action: Action | None) -> str:
        running = self.sequencer.running
        if running is not None and (running in PREEMPTIVE or seq.name not in PREEMPTIVE):
            raise LifecycleRefusedError(f"{seq.name} refused: sequence {running!r} is running")
        if self._tg is None:
            raise LifecycleRefusedError(f"{seq.name} refused: the node is not running")
        actor = str(uuid.uuid4())
        self._tg.start_soon(self._run_lifecycle, seq, action)
        return actor

    async def _run_lifecycle(self, seq: Sequence, action: Action | None) -> None:
        try:
            await self.sequencer.run(seq)
        except (SequenceError, SequenceBusyError) as exc:
            log.error("lifecycle sequence failed", sequence=seq.name, error=str(exc))
            if seq.name != "reset":
                return
        if action is not None:
            self.action = action
            if self._main_scope is not None:
                self._main_scope.cancel()

    def _stop_sequence(self, name: str, stage: str, extra: tuple[Phase, ...] = ()) -> Sequence:
        return Sequence(name, stage, (
            *extra,
            Phase.of("stopServices", ("stopAllServices", self._stop_services)),
            Phase.of("stopAPI", ("stopAPI", self._stop_api)),
        ))  # fmt: skip

    async def _stop_services(self) -> None:
        if self.supervisor is not None:
            await self.supervisor.stop_all()

    async def _stop_api(self) -> None:
        await anyio.sleep(0.2)  # let the lifecycle RPC's answer leave
        server, self._server = self._server, None
        if server is not None:
            await server.close(grace=2.0)

    async def reboot(self, powercycle: bool) -> str:
        return self._schedule(self._stop_sequence("reboot", "rebooting"), Action.REBOOT)

    async def shutdown(self, force: bool) -> str:
        return self._schedule(self._stop_sequence("shutdown", "shuttingDown"), Action.SHUTDOWN)

    async def reset(self, options: ResetOptions) -> str:
        leave: tuple[Phase, ...] = ()
        if options.graceful:
            leave = (Phase.of("leave", ("leaveEtcd", self._leave_etcd)),)
        wipe = Phase.of("wipe", *[(f"wipe{label.title()}", self._wiper(label)) for label in options.wipe])
        seq = self._stop_sequence("reset", "resetting", leave)
        seq = Sequence(seq.name, seq.stage, (*seq.phases[:-1], wipe, seq.phases[-1]))
        return self._schedule(seq, Action.REBOOT if options.reboot else Action.SHUTDOWN)

    async def _leave_etcd(self) -> None:
        """Leave the etcd cluster when this node is a member (what EtcdLeaveCluster does; the
        marker records it, so the etcd controllers do not start etcd again)."""
        from kos.controllers.etcd.leave import leave_local_member
        from kos.resources.etcd import ETCD_SPECS

        sup = self.supervisor
        spec = await self.state.get_or_none(ETCD_SPECS.pointer("etcd"))
        if spec is None or sup is None or "etcd" not in sup.ids() or not sup.status("etcd").running:
            log.info("reset: etcd does not run here, nothing to leave")
            return
        await leave_local_member(self.state, self._etcd_paths(), timeout=10)
        await sup.stop("etcd")

    def _etcd_paths(self) -> Any:
        from kos.controllers.etcd.marker import EtcdPaths

        return EtcdPaths(Path(self._root()))

    def _root(self) -> str:
        return "/" if self.opts.platform != "process" else str(self.opts.state_dir / "root")

    def _wiper(self, label: str) -> Callable[[], Awaitable[None]]:
        async def wipe() -> None:
            if self.opts.platform in ("container", "process"):
                target = self.opts.state_dir if label == "STATE" else self.opts.ephemeral_dir
                if target is None:
                    return
                await anyio.to_thread.run_sync(_empty_directory, target)
                return
            await block_wipe(self.state, labels=[label])

        return wipe

    async def upgrade(self, image: str, *, preserve: bool, stage: bool, force: bool) -> str:
        if self.opts.platform in ("container", "process"):
            raise UpgradeUnavailableError(
                f"upgrade to {image!r}: {self.opts.platform} nodes have no boot slots to install into; "
                "recreate the node (kosctl cluster destroy/create) to change its version"
            )
        try:
            phases = upgrade_sequence(image, preserve=preserve, stage=stage, force=force)
        except ValueError as exc:
            raise LifecycleRequestError(str(exc)) from None
        return self._schedule(Sequence("upgrade", "upgrading", tuple(Phase.of(n, *t) for n, t in phases)),
                              Action.REBOOT)

    async def rollback(self) -> tuple[str, str, str]:
        """Manual rollback: check now that the other slot is a previous good one (else
        FAILED_PRECONDITION, nothing changed), then a reboot sequence whose first phase flips
        META to it."""
        if self.opts.platform in ("container", "process"):
            raise UpgradeUnavailableError(
                f"rollback: {self.opts.platform} nodes have no boot slots (only QEMU/metal nodes booted from a "
                "kos system disk have A/B slots); recreate the node to change its version"
            )
        try:
            state, target = await anyio.to_thread.run_sync(image_installer.rollback_check)
        except image_install.InstallError as exc:
            raise LifecycleRefusedError(f"rollback refused: {exc}") from None

        async def flip() -> None:
            flipped = await anyio.to_thread.run_sync(image_installer.rollback_now)
            log.info("rollback: next boot uses the previous slot", active=flipped.active)

        seq = self._stop_sequence("rollback", "rebooting", (Phase.of("rollback", ("flipBootSlot", flip)),))
        return self._schedule(seq, Action.REBOOT), state.active, target

    def request(self, action: Action, why: str) -> None:
        """A signal's request: shutdown (SIGTERM) or reboot (SIGINT / ctrl-alt-del)."""
        seq = self._stop_sequence("shutdown", "shuttingDown") if action is Action.SHUTDOWN else \
            self._stop_sequence("reboot", "rebooting")
        try:
            self._schedule(seq, action)
        except LifecycleRefusedError as exc:
            log.warning("signal request refused", why=why, error=str(exc))

    # -- run --------------------------------------------------------------------------------
    async def run(self, *, ready: anyio.Event | None = None, pid1: bool = False) -> Action:
        from kos.machined import init

        sd = self.opts.state_dir
        sd.mkdir(parents=True, exist_ok=True)
        _load_resource_modules()
        await publish_meta(self.state)
        self.events.publish("machined", {"action": "started"})
        async with Supervisor(self.state, cgroup_parent=self.opts.cgroup_parent) as sup, \
                anyio.create_task_group() as tg:
            self.supervisor = sup
            self._tg = tg
            with anyio.CancelScope() as main:
                self._main_scope = main
                tg.start_soon(self.sequencer.readiness_loop)
                tg.start_soon(init.signal_actions, self.request)
                if pid1:
                    tg.start_soon(init.Reaper().run)
                if ready is not None:
                    tg.start_soon(_set_when, self.ready, ready)
                try:
                    await self.sequencer.run(self.boot_sequence())
                except SequenceError as exc:
                    log.error("boot failed: the node keeps serving what it can", error=str(exc))
                    self.ready.set()
                await anyio.sleep_forever()
            with anyio.CancelScope(shield=True):
                if self._server is not None:
                    await self._server.close(grace=2.0)
                await sup.stop_all()
                log.info("machined stopped", action=self.action.value if self.action else None)
            tg.cancel_scope.cancel()
        return self.action or Action.SHUTDOWN


HEALTHY_PROBE_INTERVAL = 5.0
"""How often a node probes a healthy service (a crash is seen at once by its exit; this is
about hangs). Until healthy the definition's own, faster interval applies."""


def _relaxed_health(definition: Any) -> Any:
    import dataclasses

    if definition.health is None or definition.health.healthy_interval is not None:
        return definition
    health = dataclasses.replace(definition.health, healthy_interval=HEALTHY_PROBE_INTERVAL)
    return dataclasses.replace(definition, health=health)


def _cmdline() -> str:
    try:
        return Path("/proc/cmdline").read_text().strip()
    except OSError:
        return ""


def _machine_id(state_dir: Path) -> str:
    """A stable id of this machine, kept on STATE (``machine-id``)."""
    path = state_dir / "machine-id"
    try:
        return path.read_text().strip()
    except OSError:
        pass
    mid = uuid.uuid4().hex
    state_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(mid + "\n")
    return mid


async def _set_when(src: anyio.Event, dst: anyio.Event) -> None:
    await src.wait()
    dst.set()


def _config_ca(container: Any) -> CertificateAndKey | None:
    if container is None:
        return None
    try:
        ca = container.config.machine.ca
    except AttributeError:
        return None
    if not ca.crt:
        return None
    pair: CertificateAndKey = ca.to_pair() if ca.key else CertificateAndKey(base64.b64decode(ca.crt), b"")
    return pair


def _install_ca(directory: Path, ca: CertificateAndKey) -> None:
    """Use ``ca`` as the node's OS CA (re-issuing the node certificates when it changed)."""
    directory.mkdir(parents=True, exist_ok=True)
    crt = directory / "ca.crt"
    if crt.exists() and crt.read_bytes() == ca.cert_pem:
        return
    for name in ("server.crt", "server.key", "node.crt", "node.key"):
        (directory / name).unlink(missing_ok=True)
    ca.to_files(crt, directory / "ca.key")


def _empty_directory(path: Path) -> None:
    if not path.is_dir():
        return
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


async def run_node(opts: NodeOptions, *, ready: anyio.Event | None = None, pid1: bool = False) -> Action:
    return await MachineNode(opts).run(ready=ready, pid1=pid1)


def _write_endpoint(sd: Path, host: str, port: int) -> None:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    tmp = sd / "api-endpoint.tmp"
    tmp.write_text(f"{shown}:{port}\n")
    os.replace(tmp, sd / "api-endpoint")
