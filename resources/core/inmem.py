"""The in-memory State: per-kind collections with a bounded event history for watches.

Semantics are COSI's ``inmem`` state (cosi-semantics.md 2.2 and 2.4):

* each (namespace, type) has a collection: ``storage`` (id -> stored resource) and an event
  ring ``stream`` with a monotonic ``write_pos``. The ring starts at ``initial`` entries and
  doubles up to ``max`` before it first wraps; ``gap`` narrows the window in which tail
  events and bookmarks are accepted;
* writers never wait for watchers: a write appends to the ring and wakes whoever waits. A
  watcher that falls more than a ring behind gets a single Errored event (buffer overrun)
  and its watch ends;
* a bookmark is 16 bytes: an 8-byte per-process cookie and the big-endian event position;
* events carry the stored objects (shared, treat them as immutable); get/list return copies.

Everything runs on one event loop without locks: each method completes its critical section
without awaiting, so it is atomic with respect to other tasks.

``BackingStore`` adds optional persistence (see ``sqlite_store``): ``load`` runs lazily once
per collection; ``put``/``delete`` run synchronously before the in-memory change, so a
failed write changes nothing.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol, Unpack

from kos.resources.core.errors import (
    ConflictError,
    InvalidWatchBookmarkError,
    NotFoundError,
    OwnerConflictError,
    PhaseConflictError,
    StateError,
    UnsupportedError,
)
from kos.resources.core.events import Event, EventType
from kos.resources.core.metadata import Kind, Metadata, Phase, Pointer
from kos.resources.core.query import IDQuery, LabelQuery, matches_labels
from kos.resources.core.resource import Resource, tombstone
from kos.resources.core.slicing import TimeSlice
from kos.resources.core.state import AggregatedWatchStream, State, WatchKindArgs, WatchKindOptions, WatchStream

_COOKIE = os.urandom(8)
_CREATED, _UPDATED, _DESTROYED = EventType.CREATED, EventType.UPDATED, EventType.DESTROYED


def encode_bookmark(pos: int) -> bytes:
    return _COOKIE + (pos & 0xFFFF_FFFF_FFFF_FFFF).to_bytes(8, "big")


def decode_bookmark(bookmark: bytes) -> int:
    if len(bookmark) != 16 or bookmark[:8] != _COOKIE:
        raise InvalidWatchBookmarkError("invalid bookmark: not issued by this process")
    value = int.from_bytes(bookmark[8:], "big")
    return value - (1 << 64) if value >= 1 << 63 else value


class BackingStore(Protocol):
    """Persistence hooks for a state (COSI ``WithBackingStore``)."""

    def load(self, kind: Kind) -> Iterable[Resource[Any]]: ...

    def put(self, resource: Resource[Any]) -> None: ...

    def delete(self, ptr: Pointer) -> None: ...


class _Collection:
    __slots__ = (
        "kind",
        "storage",
        "stream",
        "cap",
        "max_cap",
        "gap",
        "write_pos",
        "wakeup",
        "waiting",
        "loaded",
    )

    def __init__(self, kind: Kind, initial: int, max_cap: int, gap: int) -> None:
        self.kind = kind
        self.storage: dict[str, Resource[Any]] = {}
        self.cap = initial
        self.max_cap = max_cap
        self.gap = gap
        self.stream: list[Event | None] = [None] * initial
        self.write_pos = 0
        self.wakeup: asyncio.Event | None = None
        self.waiting = 0
        self.loaded = False

    def publish(self, etype: EventType, resource: Resource[Any], old: Resource[Any] | None) -> None:
        pos = self.write_pos
        if pos == self.cap and self.cap < self.max_cap:
            grow = min(self.cap, self.max_cap - self.cap)
            self.stream.extend([None] * grow)
            self.cap += grow
        self.stream[pos % self.cap] = Event(etype, resource, old, None, _COOKIE + pos.to_bytes(8, "big"))
        self.write_pos = pos + 1
        if self.waiting:
            w = self.wakeup
            self.wakeup = None
            if w is not None:
                w.set()

    async def wait(self, pos: int) -> None:
        """Wait until an event at or after ``pos`` exists."""
        while self.write_pos <= pos:
            w = self.wakeup
            if w is None:
                w = self.wakeup = asyncio.Event()
            self.waiting += 1
            try:
                await w.wait()
            finally:
                self.waiting -= 1

    def overrun_error(self, pos: int) -> Event:
        return Event(
            EventType.ERRORED,
            None,
            error=(
                f'buffer overrun: namespace "{self.kind.namespace}" type "{self.kind.type}", '
                f"write pos {self.write_pos}, pos {pos}, capacity {self.cap}"
            ),
        )

    def events(self, start: int, end: int) -> list[Event]:
        cap = self.cap
        stream = self.stream
        if end - start == 1:
            return [stream[start % cap]]  # type: ignore[list-item]
        return [stream[i % cap] for i in range(start, end)]  # type: ignore[misc]

    def oldest_valid(self) -> int:
        """The lowest position still valid for tail scans and bookmarks."""
        return max(self.write_pos - self.cap + self.gap, 0)


def _filter_kind_event(ev: Event, label_queries: Sequence[LabelQuery], id_query: IDQuery | None) -> Event | None:
    r = ev.resource
    assert r is not None
    md = r.metadata
    if id_query is not None and not id_query.matches(md.id):
        return None
    if not label_queries:
        return ev
    if ev.type != _UPDATED:
        return ev if matches_labels(label_queries, md.labels) else None
    old = ev.old
    new_ok = matches_labels(label_queries, md.labels)
    old_ok = old is not None and matches_labels(label_queries, old.metadata.labels)
    if new_ok and old_ok:
        return ev
    if old_ok:  # left the filter: as COSI, the Destroyed event carries the new object and no ``old``
        return Event(_DESTROYED, r, None, None, ev.bookmark)
    if new_ok:
        return Event(_CREATED, r, None, None, ev.bookmark)
    return None


class InMemoryState(State):
    """A State keeping everything in memory (optionally persisted through a BackingStore)."""

    def __init__(
        self,
        *,
        history_initial: int = 8,
        history_max: int = 1024,
        history_gap: int = 4,
        backing_store: BackingStore | None = None,
    ) -> None:
        if not 0 < history_initial <= history_max:
            raise ValueError("history: expected 0 < initial <= max")
        if not 0 <= history_gap < history_max:
            raise ValueError("history: expected 0 <= gap < max")
        self._initial = history_initial
        self._max = history_max
        self._gap = history_gap
        self._collections: dict[tuple[str, str], _Collection] = {}
        self._backing = backing_store

    # -- collections --------------------------------------------------------------------
    def _coll(self, namespace: str, type: str) -> _Collection:
        c = self._collections.get((namespace, type))
        if c is None:
            c = _Collection(Kind(namespace, type), self._initial, self._max, self._gap)
            self._collections[(namespace, type)] = c
        if not c.loaded:
            self._load(c)
        return c

    def _load(self, c: _Collection) -> None:
        if self._backing is not None:
            for r in self._backing.load(c.kind):
                c.storage[r.metadata.id] = r
                c.publish(_CREATED, r, None)
        c.loaded = True

    def kinds(self) -> list[Kind]:
        """Every kind that has (or had) a collection."""
        return sorted(c.kind for c in self._collections.values())

    # -- reads --------------------------------------------------------------------------
    async def get(self, ptr: Pointer) -> Resource[Any]:
        r = self._coll(ptr.namespace, ptr.type).storage.get(ptr.id)
        if r is None:
            raise NotFoundError(ptr)
        return r.copy()

    async def list(
        self, kind: Kind, *, label_queries: Sequence[LabelQuery] = (), id_query: IDQuery | None = None
    ) -> list[Resource[Any]]:
        storage = self._coll(kind.namespace, kind.type).storage
        # a consistent snapshot (stored objects are immutable), then matched and copied in
        # time slices: a large kind or an elaborate query does not hold the event loop
        snapshot = [storage[id] for id in sorted(storage)]
        out = []
        slicer = TimeSlice()
        for r in snapshot:
            await slicer.checkpoint()
            if id_query is not None and not id_query.matches(r.metadata.id):
                continue
            if label_queries and not matches_labels(label_queries, r.metadata.labels):
                continue
            out.append(r.copy())
        return out

    # -- writes -------------------------------------------------------------------------
    async def create(self, resource: Resource[Any], *, owner: str = "") -> None:
        md = resource.metadata
        c = self._coll(md.namespace, md.type)
        stored = resource.copy()
        smd = stored.metadata
        if smd.owner and smd.owner != owner:
            raise StateError(f"resource {md.pointer}: owner is already set to {smd.owner!r}, can't create as {owner!r}")
        smd.owner = owner
        if md.id in c.storage:
            raise ConflictError(md.pointer, f"resource {md.pointer} already exists")
        smd.version = 1
        smd.created = time.time()
        if self._backing is not None:
            self._backing.put(stored)
        c.storage[md.id] = stored
        c.publish(_CREATED, stored, None)
        _write_back(md, smd)

    async def update(
        self, resource: Resource[Any], *, owner: str = "", expected_phase: Phase | None = Phase.RUNNING
    ) -> None:
        md = resource.metadata
        c = self._coll(md.namespace, md.type)
        cur = c.storage.get(md.id)
        if cur is None:
            raise NotFoundError(md.pointer)
        cmd = cur.metadata
        if cmd.owner != owner:
            raise OwnerConflictError(
                md.pointer, f"resource {md.pointer} is owned by {cmd.owner!r}, not {owner!r}"
            )
        if md.version != cmd.version:
            raise ConflictError(
                md.pointer,
                f"resource {md.pointer} update conflict: expected version {cmd.version}, got {md.version}",
            )
        if expected_phase is not None and cmd.phase != expected_phase:
            raise PhaseConflictError(
                md.pointer, f"resource {md.pointer} is in phase {cmd.phase}, expected {expected_phase}"
            )
        stored = resource.copy()
        smd = stored.metadata
        smd.version = (cmd.version or 0) + 1
        smd.updated = time.time()
        smd.created = cmd.created
        if self._backing is not None:
            self._backing.put(stored)
        c.storage[md.id] = stored
        c.publish(_UPDATED, stored, cur)
        _write_back(md, smd)

    async def destroy(self, ptr: Pointer, *, owner: str = "") -> None:
        c = self._coll(ptr.namespace, ptr.type)
        cur = c.storage.get(ptr.id)
        if cur is None:
            raise NotFoundError(ptr)
        cmd = cur.metadata
        if cmd.owner != owner:
            raise OwnerConflictError(ptr, f"resource {ptr} is owned by {cmd.owner!r}, not {owner!r}")
        if cmd.finalizers:
            raise ConflictError(ptr, f"resource {ptr} has pending finalizers {list(cmd.finalizers)}")
        if self._backing is not None:
            self._backing.delete(ptr)
        del c.storage[ptr.id]
        c.publish(_DESTROYED, cur, None)

    # -- watches ------------------------------------------------------------------------
    def watch(self, ptr: Pointer, *, tail_events: int = 0, start_from_bookmark: bytes | None = None) -> WatchStream:
        return self._watch(ptr, tail_events, start_from_bookmark)

    @asynccontextmanager
    async def _watch(
        self, ptr: Pointer, tail_events: int, start_from_bookmark: bytes | None
    ) -> AsyncIterator[AsyncIterator[Event]]:
        if tail_events and start_from_bookmark is not None:
            raise UnsupportedError("tail events and a bookmark can't be used together")
        if tail_events < 0:
            raise UnsupportedError(f"tail events must not be negative, got {tail_events}")
        c = self._coll(ptr.namespace, ptr.type)
        initial: builtins.list[Event] = []
        if start_from_bookmark is not None:
            p = decode_bookmark(start_from_bookmark)
            if p < 0 or p < c.oldest_valid() or p >= c.write_pos:
                raise InvalidWatchBookmarkError(
                    f"invalid bookmark: position {p} is outside the history [{c.oldest_valid()}, {c.write_pos})"
                )
            pos = p + 1
        elif tail_events:
            pos = c.write_pos
            found: builtins.list[Event] = []
            for i in range(c.write_pos - 1, c.oldest_valid() - 1, -1):
                ev = c.stream[i % c.cap]
                assert ev is not None and ev.resource is not None
                if ev.resource.metadata.id == ptr.id:
                    found.append(ev)
                    if len(found) >= tail_events:
                        break
            initial = found[::-1]
        else:
            pos = c.write_pos
            cur = c.storage.get(ptr.id)
            if cur is not None:
                initial = [Event(_CREATED, cur.copy())]
            else:
                initial = [Event(_DESTROYED, tombstone(ptr))]

        async def iterate() -> AsyncIterator[Event]:
            nonlocal pos
            for ev in initial:
                yield ev
            id = ptr.id
            while True:
                await c.wait(pos)
                end = c.write_pos
                if end - pos > c.cap:
                    yield c.overrun_error(pos)
                    return
                batch = c.events(pos, end)
                pos = end
                for ev in batch:
                    if ev.resource.metadata.id == id:  # type: ignore[union-attr]
                        yield ev

        it = iterate()
        try:
            yield it
        finally:
            await it.aclose()  # type: ignore[attr-defined]

    def watch_kind(
        self,
        kind: Kind,
        **options: Unpack[WatchKindArgs],
    ) -> WatchStream:
        return self._watch_kind_flat(kind, WatchKindOptions(**options))

    def watch_kind_aggregated(
        self,
        kind: Kind,
        **options: Unpack[WatchKindArgs],
    ) -> AggregatedWatchStream:
        return self._watch_kind_batches(kind, WatchKindOptions(**options))

    @asynccontextmanager
    async def _watch_kind_flat(self, *args: Any) -> AsyncIterator[AsyncIterator[Event]]:
        async with self._watch_kind_batches(*args) as batches:

            async def flat() -> AsyncIterator[Event]:
                async for batch in batches:
                    for ev in batch:
                        yield ev

            it = flat()
            try:
                yield it
            finally:
                await it.aclose()  # type: ignore[attr-defined]

    @asynccontextmanager
    async def _watch_kind_batches(
        self,
        kind: Kind,
        options: WatchKindOptions,
    ) -> AsyncIterator[AsyncIterator[builtins.list[Event]]]:
        o = options
        bootstrap_contents, bootstrap_bookmark, tail_events = o.bootstrap_contents, o.bootstrap_bookmark, o.tail_events
        start_from_bookmark, label_queries, id_query = o.start_from_bookmark, o.label_queries, o.id_query
        if bootstrap_contents and (tail_events or start_from_bookmark is not None):
            raise UnsupportedError("bootstrap contents can't be combined with tail events or a bookmark")
        if tail_events and start_from_bookmark is not None:
            raise UnsupportedError("tail events and a bookmark can't be used together")
        if tail_events < 0:
            raise UnsupportedError(f"tail events must not be negative, got {tail_events}")
        if id_query is not None and not id_query.regexp:
            id_query = None
        label_queries = tuple(label_queries)
        c = self._coll(kind.namespace, kind.type)
        first: builtins.list[Event] = []
        snapshot: builtins.list[Resource[Any]] | None = None
        bootstrapped: Event | None = None
        if start_from_bookmark is not None:
            p = decode_bookmark(start_from_bookmark)
            if p < -1 or p < c.oldest_valid() - 1 or p >= c.write_pos:
                raise InvalidWatchBookmarkError(
                    f"invalid bookmark: position {p} is outside the history [{c.oldest_valid()}, {c.write_pos})"
                )
            pos = p + 1
        elif tail_events:
            n = min(tail_events, c.cap - c.gap)
            pos = max(c.write_pos - n, 0)
        else:
            pos = c.write_pos
            if bootstrap_contents:
                # the snapshot now; matched against the queries in time slices when iterated
                snapshot = [c.storage[id] for id in sorted(c.storage)]
                marker = tombstone(Pointer(kind.namespace, kind.type, ""))
                bootstrapped = Event(EventType.BOOTSTRAPPED, marker, bookmark=encode_bookmark(pos - 1))
            elif bootstrap_bookmark:
                marker = tombstone(Pointer(kind.namespace, kind.type, ""))
                first.append(Event(EventType.NOOP, marker, bookmark=encode_bookmark(pos - 1)))

        filtering = bool(label_queries) or id_query is not None

        async def iterate() -> AsyncIterator[builtins.list[Event]]:
            nonlocal pos, first
            slicer = TimeSlice()
            if snapshot is not None:
                for r in snapshot:
                    await slicer.checkpoint()
                    if id_query is not None and not id_query.matches(r.metadata.id):
                        continue
                    if label_queries and not matches_labels(label_queries, r.metadata.labels):
                        continue
                    first.append(Event(_CREATED, r))
                assert bootstrapped is not None
                first.append(bootstrapped)
            if first:
                yield first
                first = []
            while True:
                await c.wait(pos)
                end = c.write_pos
                if end - pos > c.cap:
                    yield [c.overrun_error(pos)]
                    return
                batch = c.events(pos, end)
                pos = end
                if filtering:
                    kept = []
                    for ev in batch:
                        await slicer.checkpoint()
                        if (f := _filter_kind_event(ev, label_queries, id_query)) is not None:
                            kept.append(f)
                    batch = kept
                    if not batch:
                        continue
                yield batch

        it = iterate()
        try:
            yield it
        finally:
            await it.aclose()  # type: ignore[attr-defined]


def _write_back(dst: Metadata, src: Metadata) -> None:
    dst.version = src.version
    dst.owner = src.owner
    dst.created = src.created
    dst.updated = src.updated


class NamespacedState(State):
    """Routes every call by namespace to a State built lazily by ``builder(namespace)``."""

    def __init__(self, builder: Callable[[str], State]) -> None:
        self._builder = builder
        self._states: dict[str, State] = {}

    def state_for(self, namespace: str) -> State:
        s = self._states.get(namespace)
        if s is None:
            s = self._states[namespace] = self._builder(namespace)
        return s

    async def get(self, ptr: Pointer) -> Resource[Any]:
        return await self.state_for(ptr.namespace).get(ptr)

    async def list(
        self, kind: Kind, *, label_queries: Sequence[LabelQuery] = (), id_query: IDQuery | None = None
    ) -> list[Resource[Any]]:
        return await self.state_for(kind.namespace).list(kind, label_queries=label_queries, id_query=id_query)

    async def create(self, resource: Resource[Any], *, owner: str = "") -> None:
        await self.state_for(resource.metadata.namespace).create(resource, owner=owner)

    async def update(
        self, resource: Resource[Any], *, owner: str = "", expected_phase: Phase | None = Phase.RUNNING
    ) -> None:
        await self.state_for(resource.metadata.namespace).update(
            resource, owner=owner, expected_phase=expected_phase
        )

    async def destroy(self, ptr: Pointer, *, owner: str = "") -> None:
        await self.state_for(ptr.namespace).destroy(ptr, owner=owner)

    def watch(self, ptr: Pointer, *, tail_events: int = 0, start_from_bookmark: bytes | None = None) -> WatchStream:
        state = self.state_for(ptr.namespace)
        return state.watch(ptr, tail_events=tail_events, start_from_bookmark=start_from_bookmark)

    def watch_kind(self, kind: Kind, **options: Any) -> WatchStream:
        return self.state_for(kind.namespace).watch_kind(kind, **options)

    def watch_kind_aggregated(self, kind: Kind, **options: Any) -> AggregatedWatchStream:
        return self.state_for(kind.namespace).watch_kind_aggregated(kind, **options)
