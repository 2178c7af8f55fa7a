"""``ServiceManager``: what a controller may ask of the node's service supervisor.

Controllers that run processes (etcd, the kubelet) depend on this protocol, never on
machined's ``Supervisor`` (which fills it in): look a named service up, read its runner,
start/stop/restart it and wait until it is healthy. Adding a service is not part of it: the
controller gets a ``ServiceDefiner`` from machined (a callable that adds the service with
machined's definition of it) and calls it when the service is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

ServiceDefiner = Callable[[], None]
"""Adds one service (machined's definition of it) to the ServiceManager."""


class ServiceManager(Protocol):
    def ids(self) -> Sequence[str]: ...

    def runner(self, id: str) -> object:
        """The runner of service ``id`` (KeyError when there is none)."""
        ...

    def is_active(self, id: str) -> bool: ...

    async def start(self, id: str) -> None: ...

    async def stop(self, id: str) -> None: ...

    async def restart(self, id: str) -> None: ...

    async def wait_healthy(self, id: str, *, timeout: float) -> object: ...
