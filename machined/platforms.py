"""Which platform the node runs on, what it is allowed to own, and what it supplies.

``platform_named(name)`` gives the ``Platform`` every decision of machined asks:
``platform.mode.in_container`` (shares a host's kernel: no disks, boot slots or clock of its
own), ``platform.mode.is_process`` (machined as an ordinary process: its own root directory
under the state dir, no network or hostname management, no services),
``platform.mode.namespace_node`` (a container node under a host's init),
``platform.mode.requires_install`` (A/B boot slots: upgrade and rollback install into them),
``platform.mode.reads_cmdline`` (``/proc/cmdline`` is this node's kernel command line) and
``platform.mode.validation`` (the config validation mode: ``container``, ``metal`` or
``cloud``). This module is the only place that compares platform names.

``load_platform(name)`` also loads the platform's source (``kos.platform.<name>.platform``),
which answers ``hostname()`` (or None), ``config()`` (the machine config bytes it carries, or
None; ``ValueError`` naming the source when it cannot be read) and, for some, ``network()``.
``process`` is machined as an ordinary process: no platform config.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Mode:
    validation: str  # config validation mode: container | metal | cloud
    in_container: bool
    is_process: bool = False
    namespace_node: bool = False

    @property
    def requires_install(self) -> bool:
        """Boots from a kos system disk with A/B slots (upgrade/rollback install into them)."""
        return not self.in_container

    @property
    def reads_cmdline(self) -> bool:
        return not self.in_container


PROCESS = Mode("container", in_container=True, is_process=True)
CONTAINER = Mode("container", in_container=True, namespace_node=True)
METAL = Mode("metal", in_container=False)
CLOUD = Mode("cloud", in_container=False)

MODES: dict[str, Mode] = {"process": PROCESS, "container": CONTAINER, "metal": METAL, "nocloud": CLOUD, "qemu": METAL}
PLATFORMS: tuple[str, ...] = tuple(MODES)


class PlatformSource(Protocol):
    name: str
    mode: str

    def hostname(self) -> str | None: ...

    def config(self) -> bytes | None: ...


class ProcessPlatform:
    name = "process"
    mode = "container"

    def hostname(self) -> str | None:
        return None

    def config(self) -> bytes | None:
        return None


@dataclass(frozen=True)
class Platform:
    name: str
    mode: Mode
    source: PlatformSource | None = None

    def hostname(self) -> str | None:
        return self.source.hostname() if self.source is not None else None

    def config(self) -> bytes | None:
        return self.source.config() if self.source is not None else None

    def network(self) -> Any:
        """The platform's network config (a PlatformNetworkConfigSpec) or None."""
        get = getattr(self.source, "network", None)
        return get() if get is not None else None


def platform_named(name: str) -> Platform:
    """The platform ``name`` without its source (KeyError naming it when unknown)."""
    if name not in MODES:
        raise KeyError(f"platform {name!r}: expected one of {', '.join(PLATFORMS)}")
    return Platform(name, MODES[name])


def load_platform(name: str) -> Platform:
    plat = platform_named(name)
    if plat.mode.is_process:
        return Platform(name, plat.mode, ProcessPlatform())
    module = importlib.import_module(f"kos.platform.{name}.platform")
    source: PlatformSource = module.PLATFORM_CLASS()
    return Platform(name, plat.mode, source)
