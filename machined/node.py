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

import anyio
import structlog

from kos.apis import auth
from kos.apis.server.dispatch import split_endpoint
from kos.apis.server.machine import EventBus
from kos.controllers.cluster.discovery import Wakeup
from kos.controllers.config.api import ManagedConfigStore
from kos.controllers.config.manager import ConfigManager
from kos.machined.early import node_names
from kos.machined.init import Action
from kos.machined.nodeapi import NodeAPI
from kos.machined.nodebase import DEFAULT_LISTEN, NodeOptions, load_resource_modules, set_when
from kos.machined.nodeconfig import NodeConfig
from kos.machined.nodeidentity import APIIdentity
from kos.machined.nodelifecycle import NodeLifecycle
from kos.machined.platforms import platform_named
from kos.machined.sequencer import Phase, Sequence, SequenceError, Sequencer
from kos.machined.services import Supervisor
from kos.resources.core import InMemoryState, publish_meta

__all__ = ["DEFAULT_LISTEN", "APIIdentity", "MachineNode", "NodeOptions", "run_node"]

log = structlog.get_logger("kos.machined")


class MachineNode(NodeConfig, NodeAPI, NodeLifecycle):
    """One node: the boot sequence and the run loop (with PID 1's reaper and signal handling);
    the parts live in ``nodeconfig``, ``nodeapi`` and ``nodelifecycle``."""

    def __init__(self, opts: NodeOptions) -> None:
        self.opts = opts
        self.platform = platform_named(opts.platform)
        self.lifecycle = self
        self.state = InMemoryState(history_max=opts.history_max)
        self.events = EventBus()
        self.sequencer = Sequencer(self.state, self.events)
        self.host, self.port = split_endpoint(opts.listen, 50000)
        self.names = node_names(self.host, opts.node_names)
        self.manager = ConfigManager(
            opts.state_dir, validation_mode=self.platform.mode.validation, platform_source=self._platform_config,
            reboot_hook=self._config_reboot, events=lambda t, p: self.events.publish(t, p),
            not_acted_on=self._fields_not_acted_on, preconditions=self._config_preconditions,
        )  # fmt: skip
        self.store = ManagedConfigStore(self.manager)
        self.policy = auth.ResourcePolicy(writable_namespaces=frozenset(opts.writable_namespaces))
        self.action = None
        self.supervisor = None
        self._tg = None
        self._main_scope = None
        self._server = None
        self._missing = {}
        self._runtimes = []  # the controller runtimes (inspect dependencies)
        self.ready = anyio.Event()
        self._discovery_wakeup = Wakeup()

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

    async def run(self, *, ready: anyio.Event | None = None, pid1: bool = False) -> Action:
        from kos.machined import init

        sd = self.opts.state_dir
        sd.mkdir(parents=True, exist_ok=True)
        load_resource_modules()
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
                    tg.start_soon(set_when, self.ready, ready)
                try:
                    await self.sequencer.run(self.boot_sequence())
                except SequenceError as exc:
                    log.error("boot failed: the node keeps serving what it can", error=str(exc))
                    self.ready.set()
                await anyio.sleep_forever()
            with anyio.CancelScope(shield=True):
                await self._close_early_api()
                if self._server is not None:
                    await self._server.close(grace=2.0)
                await sup.stop_all()
                log.info("machined stopped", action=self.action.value if self.action else None)
            tg.cancel_scope.cancel()
        return self.action or Action.SHUTDOWN


async def run_node(opts: NodeOptions, *, ready: anyio.Event | None = None, pid1: bool = False) -> Action:
    return await MachineNode(opts).run(ready=ready, pid1=pid1)
