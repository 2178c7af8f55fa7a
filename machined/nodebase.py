"""What every part of a ``MachineNode`` shares: its options, its attributes, and the node's
small host duties (the resource catalogue, the machine id on STATE, ``/proc/cmdline``, the
``api-endpoint`` file, emptying a directory on reset).

``NodeBase`` declares the attributes ``MachineNode`` (``kos.machined.node``) sets up and the
helpers the parts use (root directory, etcd paths, the active config container); the parts
are ``NodeConfig`` (``nodeconfig``: config and controller assembly), ``NodeAPI`` (``nodeapi``:
API serving) and ``NodeLifecycle`` (``nodelifecycle``: the LifecycleController).
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import structlog
from anyio.abc import TaskGroup

from kos.apis import auth
from kos.apis.server.machine import ConfigStore, EventBus
from kos.apis.server.serve import APIServer
from kos.controllers.cluster.discovery import Wakeup
from kos.controllers.config.manager import ConfigManager
from kos.controllers.etcd.marker import EtcdPaths
from kos.machined.api import LifecycleController
from kos.machined.init import Action
from kos.machined.platforms import Platform
from kos.machined.sequencer import Sequencer
from kos.machined.services import Supervisor
from kos.resources.core import InMemoryState

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
    early_api: APIServer | None = None  # the maintenance API machined listens with before loading the node


class NodeBase:
    """The attributes and shared helpers of a node (set up by ``MachineNode.__init__``)."""

    opts: NodeOptions
    platform: Platform
    state: InMemoryState
    events: EventBus
    sequencer: Sequencer
    host: str
    port: int
    names: list[str]
    manager: ConfigManager
    store: ConfigStore
    policy: auth.ResourcePolicy
    action: Action | None
    supervisor: Supervisor | None
    lifecycle: LifecycleController
    ready: anyio.Event
    _tg: TaskGroup | None
    _main_scope: anyio.CancelScope | None
    _server: APIServer | None
    _missing: dict[str, str]
    _runtimes: list[Any]
    _discovery_wakeup: Wakeup

    async def _serve_maintenance(self) -> None:
        raise NotImplementedError  # NodeAPI

    async def _wait_machine_config(self, timeout: float | None = 30.0) -> None:
        raise NotImplementedError  # NodeConfig

    async def _close_early_api(self) -> None:
        """Close the early maintenance API when the node did not adopt it (a config was found)."""
        server, self.opts.early_api = self.opts.early_api, None
        if server is not None:
            await server.close(grace=0)

    def _container(self) -> Any:
        active = self.manager.active
        return active.container if active is not None else None

    def _container_mode(self) -> bool:
        """Namespace nodes and processes share the host's kernel: no disks, no clock of their own."""
        return self.platform.mode.in_container

    def _etcd_paths(self) -> EtcdPaths:
        return EtcdPaths(Path(self._root()))

    def _root(self) -> str:
        return "/" if not self.platform.mode.is_process else str(self.opts.state_dir / "root")


def load_resource_modules() -> None:
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

def read_cmdline() -> str:
    try:
        return Path("/proc/cmdline").read_text().strip()
    except OSError:
        return ""

def machine_id(state_dir: Path) -> str:
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

async def set_when(src: anyio.Event, dst: anyio.Event) -> None:
    await src.wait()
    dst.set()

def empty_directory(path: Path) -> None:
    if not path.is_dir():
        return
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)

def write_endpoint(sd: Path, host: str, port: int) -> None:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    tmp = sd / "api-endpoint.tmp"
    tmp.write_text(f"{shown}:{port}\n")
    os.replace(tmp, sd / "api-endpoint")
