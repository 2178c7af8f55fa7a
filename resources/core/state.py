"""The State interface and the operations derived from it.

``CoreState`` is what a backend implements (in memory, persistent, namespaced router, the
gRPC client): get, list, create, update, destroy, and three kinds of watch. ``State`` adds
the derived operations COSI's ``WrapCore`` provides (cosi-semantics.md 2.3), written only
in terms of the core, so every backend gets identical semantics:

* ``update_with_conflicts(ptr, fn)``: read-modify-write, retried on version conflicts,
  skipping the write when ``fn`` changes nothing;
* ``modify(resource, fn)``: create-or-update;
* ``teardown``, ``add_finalizer``, ``remove_finalizer``, ``teardown_and_destroy``;
* ``watch_for(ptr, condition)``: wait until the resource satisfies a condition;
* ``context_with_teardown(ptr)``: a cancel scope that ends when the resource goes away.

Watches are async context managers; entering sets the watch up (so a bad bookmark raises
there) and yields an async iterator of events (``Event`` or, aggregated, ``list[Event]``)::

    async with state.watch_kind(kind, bootstrap_contents=True) as events:
        async for ev in events:
            ...
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypedDict, TypeVar, Unpack

import anyio

from kos.resources.core.errors import ConflictError, NotFoundError, PhaseConflictError
from kos.resources.core.events import Event, EventType
from kos.resources.core.metadata import Kind, Phase, Pointer
from kos.resources.core.query import IDQuery, LabelQuery
from kos.resources.core.resource import Resource

R = TypeVar("R", bound=Resource[Any])

ANY_PHASE = None
"""Pass as ``expected_phase`` to update a resource whatever its phase."""

WatchStream = AbstractAsyncContextManager[AsyncIterator[Event]]
AggregatedWatchStream = AbstractAsyncContextManager[AsyncIterator[list[Event]]]


class WatchKindArgs(TypedDict, total=False):
    """The keyword options of ``watch_kind`` / ``watch_kind_aggregated`` (every State takes these)."""

    bootstrap_contents: bool
    bootstrap_bookmark: bool
    tail_events: int
    start_from_bookmark: bytes | None
    label_queries: Sequence[LabelQuery]
    id_query: IDQuery | None


@dataclass(frozen=True)
class WatchKindOptions:
    """``WatchKindArgs`` with their defaults: ``WatchKindOptions(**options)``."""

    bootstrap_contents: bool = False
    bootstrap_bookmark: bool = False
    tail_events: int = 0
    start_from_bookmark: bytes | None = None
    label_queries: Sequence[LabelQuery] = ()
    id_query: IDQuery | None = None


class CoreState(abc.ABC):
    """The primitive operations every State backend implements."""

    @abc.abstractmethod
    async def get(self, ptr: Pointer) -> Resource[Any]:
        """A copy of the resource, or NotFoundError."""

    @abc.abstractmethod
    async def list(
        self,
        kind: Kind,
        *,
        label_queries: Sequence[LabelQuery] = (),
        id_query: IDQuery | None = None,
    ) -> list[Resource[Any]]:
        """Copies of the matching resources, sorted by id."""

    @abc.abstractmethod
    async def create(self, resource: Resource[Any], *, owner: str = "") -> None:
        """Store a copy with version 1 and the given owner; ConflictError if the id exists.
        The stored metadata is written back to ``resource``."""

    @abc.abstractmethod
    async def update(
        self, resource: Resource[Any], *, owner: str = "", expected_phase: Phase | None = Phase.RUNNING
    ) -> None:
        """Store a copy with version+1. ``resource.metadata.version`` must equal the stored
        version (ConflictError), the owner must match (OwnerConflictError), and the stored
        phase must be ``expected_phase`` unless that is None (PhaseConflictError)."""

    @abc.abstractmethod
    async def destroy(self, ptr: Pointer, *, owner: str = "") -> None:
        """Delete; NotFoundError, OwnerConflictError, or ConflictError with pending finalizers."""

    @abc.abstractmethod
    def watch(
        self, ptr: Pointer, *, tail_events: int = 0, start_from_bookmark: bytes | None = None
    ) -> WatchStream:
        """Events of one resource. Without options the first event is its current state
        (Created, or Destroyed with a tombstone)."""

    @abc.abstractmethod
    def watch_kind(
        self,
        kind: Kind,
        **options: Unpack[WatchKindArgs],
    ) -> WatchStream:
        """Events of every resource of a kind matching the queries."""

    @abc.abstractmethod
    def watch_kind_aggregated(
        self,
        kind: Kind,
        **options: Unpack[WatchKindArgs],
    ) -> AggregatedWatchStream:
        """Like ``watch_kind`` but yields batches (lists) of events."""


class State(CoreState):
    """A CoreState plus the derived operations (COSI's WrapCore)."""

    async def get_or_none(self, ptr: Pointer) -> Resource[Any] | None:
        try:
            return await self.get(ptr)
        except NotFoundError:
            return None

    async def update_with_conflicts(
        self,
        ptr: Pointer,
        fn: Callable[[Resource[Any]], object],
        *,
        owner: str = "",
        expected_phase: Phase | None = Phase.RUNNING,
    ) -> Resource[Any]:
        """Apply ``fn`` to a copy of the current resource and store it, retrying on version
        conflicts; nothing is written (and no version bumped) when ``fn`` changes nothing."""
        while True:
            current = await self.get(ptr)
            if expected_phase is not None and current.metadata.phase != expected_phase:
                raise PhaseConflictError(
                    ptr, f"resource {ptr} is in phase {current.metadata.phase}, expected {expected_phase}"
                )
            new = current.copy()
            fn(new)
            if new == current:
                return current
            try:
                await self.update(new, owner=owner, expected_phase=expected_phase)
            except ConflictError as exc:
                if type(exc) is ConflictError:
                    continue
                raise
            return new

    async def modify(
        self,
        empty: Resource[Any],
        fn: Callable[[Resource[Any]], object],
        *,
        owner: str = "",
        expected_phase: Phase | None = Phase.RUNNING,
    ) -> Resource[Any]:
        """Create-or-update: ``fn`` is applied to ``empty`` (a new resource) when nothing is
        stored, else to a copy of the stored one."""
        while True:
            try:
                current = await self.get(empty.pointer)
            except NotFoundError:
                new = empty.copy()
                fn(new)
                try:
                    await self.create(new, owner=owner)
                except ConflictError as exc:
                    if type(exc) is ConflictError:
                        continue  # created concurrently: retry as an update
                    raise
                return new
            try:
                return await self.update_with_conflicts(
                    current.pointer, fn, owner=owner, expected_phase=expected_phase
                )
            except NotFoundError:
                continue

    async def teardown(self, ptr: Pointer, *, owner: str = "") -> bool:
        """Move the resource to tearingDown; True when it has no finalizers (destroy-ready)."""
        def set_phase(r: Resource[Any]) -> None:
            r.metadata.phase = Phase.TEARING_DOWN

        current = await self.get(ptr)
        if current.metadata.phase == Phase.RUNNING:
            current = await self.update_with_conflicts(ptr, set_phase, owner=owner, expected_phase=None)
        return not current.metadata.finalizers

    async def add_finalizer(self, ptr: Pointer, *finalizers: str) -> Resource[Any]:
        current = await self.get(ptr)
        return await self.update_with_conflicts(
            ptr, lambda r: r.metadata.add_finalizer(*finalizers), owner=current.metadata.owner, expected_phase=None
        )

    async def remove_finalizer(self, ptr: Pointer, *finalizers: str) -> Resource[Any]:
        current = await self.get(ptr)
        return await self.update_with_conflicts(
            ptr,
            lambda r: r.metadata.remove_finalizer(*finalizers),
            owner=current.metadata.owner,
            expected_phase=None,
        )

    async def teardown_and_destroy(self, ptr: Pointer, *, owner: str = "") -> None:
        """Teardown, wait until the finalizers are gone, then destroy."""
        if await self.teardown(ptr, owner=owner):
            await self.destroy(ptr, owner=owner)
            return
        async with self.watch(ptr) as events:
            async for ev in events:
                if ev.type == EventType.DESTROYED:
                    return
                if ev.type == EventType.ERRORED:
                    raise ConflictError(ptr, f"watch failed while tearing down {ptr}: {ev.error}")
                if ev.resource is not None and not ev.resource.metadata.finalizers:
                    try:
                        await self.destroy(ptr, owner=owner)
                    except NotFoundError:
                        pass
                    return

    async def watch_for(
        self,
        ptr: Pointer,
        condition: Callable[[Event], bool] | None = None,
        *,
        event_types: Sequence[EventType] | None = None,
        phases: Sequence[Phase] | None = None,
        finalizers_empty: bool = False,
    ) -> Event:
        """Wait for the first event of ``ptr`` satisfying all the given conditions."""
        async with self.watch(ptr) as events:
            async for ev in events:
                if ev.type == EventType.ERRORED:
                    raise ConflictError(ptr, f"watch failed: {ev.error}")
                if event_types is not None and ev.type not in event_types:
                    continue
                r = ev.resource
                if phases is not None and (r is None or r.metadata.phase not in phases):
                    continue
                if finalizers_empty and (
                    ev.type == EventType.DESTROYED or r is None or r.metadata.finalizers
                ):
                    continue
                if condition is not None and not condition(ev):
                    continue
                return ev
        raise NotFoundError(ptr, f"watch of {ptr} ended")

    @asynccontextmanager
    async def context_with_teardown(self, ptr: Pointer) -> AsyncIterator[anyio.CancelScope]:
        """A cancel scope cancelled once ``ptr`` is destroyed or starts tearing down."""
        async with anyio.create_task_group() as tg:
            scope = anyio.CancelScope()

            async def watcher() -> None:
                async with self.watch(ptr) as events:
                    async for ev in events:
                        if ev.type in (EventType.DESTROYED, EventType.ERRORED) or (
                            ev.resource is not None and ev.resource.metadata.phase == Phase.TEARING_DOWN
                        ):
                            scope.cancel()
                            return

            tg.start_soon(watcher)
            try:
                with scope:
                    yield scope
            finally:
                tg.cancel_scope.cancel()


Condition = Callable[[Resource[Any]], bool | Awaitable[bool]]
