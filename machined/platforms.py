"""Which platform the node runs on, and what it supplies: ``load_platform(name)``.

A platform (``kos.platform.<name>.platform``) answers ``name``, ``mode`` (the config
validation mode: ``container`` or ``metal``), ``hostname()`` (or None) and ``config()``
(the machine config bytes it carries, or None; ``ValueError`` naming the source when it
cannot be read). ``process`` is machined as an ordinary process: no platform config.
"""

from __future__ import annotations

import importlib
from typing import Protocol


class Platform(Protocol):
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


def load_platform(name: str) -> Platform:
    if name == "process":
        return ProcessPlatform()
    module = importlib.import_module(f"kos.platform.{name}.platform")
    platform: Platform = module.PLATFORM_CLASS()
    return platform
