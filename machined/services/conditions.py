"""Service dependencies: conditions a service waits for before it starts.

A ``Condition`` has a human description ("etcd certificates ready") and ``wait()``, which
returns once it holds. ``ResourceCondition`` watches one resource of a State (no polling);
``PredicateCondition`` polls an async predicate; ``all_of`` waits for several in order,
reporting which one it is waiting on.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio

from kos.resources.core import EventType, Pointer, Resource, State


class Condition(abc.ABC):
    """Something a service needs before it can start."""

    description: str

    @abc.abstractmethod
    async def wait(self) -> None:
        """Return once the condition holds."""

    def __str__(self) -> str:
        return self.description


class PredicateCondition(Condition):
    """An async predicate, polled every ``interval`` seconds until it returns True."""

    def __init__(self, description: str, predicate: Callable[[], Awaitable[bool]], *, interval: float = 0.2) -> None:
        self.description = description
        self.predicate = predicate
        self.interval = interval

    async def wait(self) -> None:
        while True:
            if await self.predicate():
                return
            await anyio.sleep(self.interval)


class ResourceCondition(Condition):
    """A resource exists (and, optionally, satisfies ``check``), followed through a watch."""

    def __init__(
        self,
        state: State,
        ptr: Pointer,
        check: Callable[[Resource[Any]], bool] | None = None,
        *,
        description: str | None = None,
    ) -> None:
        self.state = state
        self.ptr = ptr
        self.check = check
        self.description = description or f"resource {ptr}"

    async def wait(self) -> None:
        async with self.state.watch(self.ptr) as events:
            async for ev in events:
                if ev.type in (EventType.CREATED, EventType.UPDATED) and ev.resource is not None:
                    if self.check is None or self.check(ev.resource):
                        return
                elif ev.type == EventType.ERRORED:
                    raise RuntimeError(f"watch of {self.ptr} failed: {ev.error}")


async def all_of(conditions: Sequence[Condition], waiting_on: Callable[[Condition], None]) -> None:
    """Wait for every condition in turn; ``waiting_on`` is told about each unmet one."""
    for c in conditions:
        with anyio.move_on_after(0.05) as quick:
            await c.wait()
        if not quick.cancelled_caught:
            continue
        waiting_on(c)
        await c.wait()


def service_healthy(state: State, service_id: str) -> ResourceCondition:
    """Another service is running and healthy, per its ``Services`` resource (e.g. kubelet
    waits for containerd)."""
    from kos.resources.runtime import SERVICES

    return ResourceCondition(
        state,
        SERVICES.pointer(service_id),
        lambda r: bool(r.spec.running and r.spec.healthy),
        description=f"service {service_id!r} healthy",
    )
