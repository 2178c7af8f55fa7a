"""``GrpcState``: a kos ``State`` over the ``cosi.resource.State`` gRPC API.

Specs are decoded through ``kos.resources.core.definition.REGISTRY`` (``DynamicSpec`` for
types this process does not know). Status codes map back to the State errors as COSI's
client does (NOT_FOUND, PERMISSION_DENIED -> owner conflict, ALREADY_EXISTS and
FAILED_PRECONDITION -> conflict, INVALID_ARGUMENT on Update -> phase conflict); access
denials (PERMISSION_DENIED with an ``access denied:`` message) raise ``AccessDeniedError``.
Watches send ``api_version=1``; when a watch stream fails after a bookmark was seen, it
reconnects from that bookmark (no bootstrap/tail) with backoff, giving up on
FAILED_PRECONDITION (the bookmark left the server's history) or after ``reconnect_for``.
"""

from __future__ import annotations

import builtins
import collections
import random
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Unpack

import anyio
from grpclib.const import Status

from kos.apis import auth, wire
from kos.apis.client.connection import APIError, Connection
from kos.resources.core import (
    REGISTRY,
    AggregatedWatchStream,
    ConflictError,
    Event,
    EventType,
    IDQuery,
    InvalidWatchBookmarkError,
    Kind,
    LabelQuery,
    Metadata,
    NotFoundError,
    OwnerConflictError,
    Phase,
    PhaseConflictError,
    Pointer,
    Registry,
    Resource,
    State,
    StateError,
    UnsupportedError,
    WatchKindArgs,
    WatchKindOptions,
    WatchStream,
)

_ld = wire.length_delimited
S = auth.STATE


class AccessDeniedError(StateError):
    """The API refused the call for the caller's roles."""


def _str(tag: bytes, s: str) -> bytes:
    return _ld(tag, s.encode()) if s else b""


def _kind_request(ns: str, type: str, id: str | None = None) -> bytes:
    return _str(b"\x0a", ns) + _str(b"\x12", type) + (_ld(b"\x1a", id.encode()) if id is not None else b"")


def _owner_options(tag: bytes, owner: str) -> bytes:
    return _ld(tag, _str(b"\x0a", owner)) if owner else b""


def _label_queries(tag: bytes, queries: Sequence[LabelQuery]) -> bytes:
    out = []
    for q in queries:
        terms = []
        for t in q.terms:
            body = _str(b"\x0a", t.key) + (b"\x10" + wire.varint(int(t.op)) if int(t.op) else b"")
            body += b"".join(_ld(b"\x1a", v.encode()) for v in t.values)
            body += b"\x28\x01" if t.invert else b""
            terms.append(_ld(b"\x0a", body))
        out.append(_ld(tag, b"".join(terms)))
    return b"".join(out)


def _id_query(tag: bytes, q: IDQuery | None) -> bytes:
    return _ld(tag, _str(b"\x0a", q.regexp)) if q is not None and q.regexp else b""


def _write_back(dst: Metadata, src: Metadata) -> None:
    dst.version = src.version
    dst.owner = src.owner
    dst.phase = src.phase
    dst.created = src.created
    dst.updated = src.updated
    dst.finalizers = src.finalizers


def _access_denied(msg: str) -> bool:
    """An API access denial (not an owner conflict), also when forwarded ("node X: access denied: ...")."""
    if msg.startswith("node "):
        msg = msg.split(": ", 1)[-1]
    return msg.startswith(auth.ACCESS_DENIED_PREFIX)


def state_error(exc: APIError, method: str, ptr: Pointer | None) -> Exception:
    """The State error a failed ``method`` call means (the APIError itself when none does)."""
    return _map_error(exc, method, ptr)


def _map_error(exc: APIError, method: str, ptr: Pointer | None) -> Exception:
    msg = exc.message
    st = exc.status
    if st == Status.NOT_FOUND:
        return NotFoundError(ptr, msg)
    if st == Status.PERMISSION_DENIED:
        if _access_denied(msg):
            return AccessDeniedError(f"{exc.node}: {msg}")
        return OwnerConflictError(ptr, msg)
    if st == Status.INVALID_ARGUMENT and method == "Update" and "phase" in msg:
        return PhaseConflictError(ptr, msg)
    if st == Status.FAILED_PRECONDITION and method == "Watch":
        return InvalidWatchBookmarkError(msg)
    if st in (Status.ALREADY_EXISTS, Status.FAILED_PRECONDITION):
        return ConflictError(ptr, msg)
    if st == Status.INVALID_ARGUMENT:
        return UnsupportedError(msg)
    if st == Status.UNKNOWN:
        return StateError(f"{exc.node}: {msg}")  # a plain store error on the server
    return exc


class EventDecoder:
    """Decodes one watch stream's messages, reusing the resource decoded from identical bytes
    earlier in the stream: an Updated event's ``old`` is byte-for-byte the resource of the
    previous event of that id (the server encodes stored objects once), so update streams
    decode each object once. Events are treated as immutable, so sharing is safe."""

    def __init__(self, registry: Registry | None, size: int = 4096) -> None:
        self.registry = registry
        self.size = size
        self._cache: collections.OrderedDict[bytes, Resource[Any]] = collections.OrderedDict()

    def _resource(self, data: bytes) -> Resource[Any]:
        hit = self._cache.get(data)
        if hit is not None:
            self._cache.move_to_end(data)
            return hit
        r = wire.decode_resource(data, registry=self.registry)
        self._cache[data] = r
        if len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return r

    def _event(self, data: bytes) -> Event:
        resource = old = None
        etype = EventType.CREATED
        error: str | None = None
        bookmark: bytes | None = None
        for number, _, value in wire.fields(data):
            if number == 1 and isinstance(value, bytes):
                resource = self._resource(value)
            elif number == 2 and isinstance(value, int):
                try:
                    etype = EventType(value)
                except ValueError:
                    raise wire.WireError(f"event.event_type: unknown value {value}") from None
            elif number == 3 and isinstance(value, bytes):
                old = self._resource(value)
            elif number == 4 and isinstance(value, bytes):
                error = value.decode(errors="replace")
            elif number == 5 and isinstance(value, bytes):
                bookmark = value
        return Event(etype, resource, old, error, bookmark)

    def events(self, data: bytes) -> builtins.list[Event]:
        """The events of one ``WatchResponse``."""
        return [self._event(v) for n, _, v in wire.fields(data) if n == 1 and isinstance(v, bytes)]


class GrpcState(State):
    def __init__(
        self,
        conn: Connection,
        *,
        node: str | None = None,
        registry: Registry | None = REGISTRY,
        reconnect_for: float = 900.0,
    ) -> None:
        self.conn = conn
        self.node = node
        self.registry = registry
        self.reconnect_for = reconnect_for

    async def _unary(self, method: str, req: bytes, ptr: Pointer | None) -> bytes:
        try:
            return await self.conn.unary(S + method, req, node=self.node)
        except APIError as exc:
            raise _map_error(exc, method, ptr) from None

    def _decode(self, data: bytes) -> Resource[Any] | None:
        return wire.decode_resource_response(data, registry=self.registry)

    # -- core -------------------------------------------------------------------------------
    async def get(self, ptr: Pointer) -> Resource[Any]:
        r = self._decode(await self._unary("Get", _kind_request(ptr.namespace, ptr.type, ptr.id), ptr))
        if r is None:
            raise NotFoundError(ptr)
        return r

    async def list(
        self, kind: Kind, *, label_queries: Sequence[LabelQuery] = (), id_query: IDQuery | None = None
    ) -> list[Resource[Any]]:
        opts = _label_queries(b"\x0a", label_queries) + _id_query(b"\x12", id_query)
        req = _kind_request(kind.namespace, kind.type) + (_ld(b"\x1a", opts) if opts else b"")
        out: list[Resource[Any]] = []
        try:
            async with self.conn.stream(S + "List", req, node=self.node) as replies:
                async for data in replies:
                    r = self._decode(data)
                    if r is not None:
                        out.append(r)
        except APIError as exc:
            raise _map_error(exc, "List", None) from None
        return out

    async def create(self, resource: Resource[Any], *, owner: str = "") -> None:
        req = _ld(b"\x0a", wire.encode_resource(resource)) + _owner_options(b"\x12", owner)
        r = self._decode(await self._unary("Create", req, resource.pointer))
        if r is not None:
            _write_back(resource.metadata, r.metadata)

    async def update(
        self, resource: Resource[Any], *, owner: str = "", expected_phase: Phase | None = Phase.RUNNING
    ) -> None:
        opts = _str(b"\x0a", owner)
        if expected_phase is not None:
            opts += _ld(b"\x12", str(expected_phase).encode())
        req = _ld(b"\x12", wire.encode_resource(resource)) + (_ld(b"\x1a", opts) if opts else b"")
        r = self._decode(await self._unary("Update", req, resource.pointer))
        if r is not None:
            _write_back(resource.metadata, r.metadata)

    async def destroy(self, ptr: Pointer, *, owner: str = "") -> None:
        req = _kind_request(ptr.namespace, ptr.type, ptr.id) + _owner_options(b"\x22", owner)
        await self._unary("Destroy", req, ptr)

    async def teardown(self, ptr: Pointer, *, owner: str = "") -> bool:
        req = _kind_request(ptr.namespace, ptr.type, ptr.id) + _owner_options(b"\x22", owner)
        data = await self._unary("Teardown", req, ptr)
        return any(n == 1 and v == 1 for n, _, v in wire.fields(data))

    async def teardown_and_destroy(self, ptr: Pointer, *, owner: str = "") -> None:
        req = _kind_request(ptr.namespace, ptr.type, ptr.id) + _owner_options(b"\x22", owner)
        await self._unary("TeardownAndDestroy", req, ptr)

    # -- watches ----------------------------------------------------------------------------
    def watch(self, ptr: Pointer, *, tail_events: int = 0, start_from_bookmark: bytes | None = None) -> WatchStream:
        return self._watch_flat(ptr.namespace, ptr.type, ptr.id, tail_events=tail_events,
                                start_from_bookmark=start_from_bookmark)

    def watch_kind(
        self,
        kind: Kind,
        **options: Unpack[WatchKindArgs],
    ) -> WatchStream:
        return self._watch_flat(kind.namespace, kind.type, None, **options)

    def watch_kind_aggregated(
        self,
        kind: Kind,
        **options: Unpack[WatchKindArgs],
    ) -> AggregatedWatchStream:
        return self._watch_batches(kind.namespace, kind.type, None, aggregated=True, **options)

    @asynccontextmanager
    async def _watch_flat(self, ns: str, type: str, id: str | None, **kw: Any) -> AsyncIterator[AsyncIterator[Event]]:
        async with self._watch_batches(ns, type, id, aggregated=False, **kw) as batches:

            async def flat() -> AsyncIterator[Event]:
                async for batch in batches:
                    for ev in batch:
                        yield ev

            it = flat()
            try:
                yield it
            finally:
                await it.aclose()  # type: ignore[attr-defined]

    @staticmethod
    def _watch_request(
        ns: str,
        type: str,
        id: str | None,
        *,
        aggregated: bool,
        **options: Unpack[WatchKindArgs],
    ) -> bytes:
        opts = WatchKindOptions(**options)
        o = b""
        if opts.bootstrap_contents:
            o += b"\x08\x01"
        if opts.tail_events:
            o += b"\x10" + wire.varint(opts.tail_events)
        o += _label_queries(b"\x1a", opts.label_queries) + _id_query(b"\x22", opts.id_query)
        if aggregated:
            o += b"\x28\x01"
        if opts.start_from_bookmark is not None:
            o += _ld(b"\x32", opts.start_from_bookmark)
        if opts.bootstrap_bookmark:
            o += b"\x38\x01"
        return _kind_request(ns, type, id) + (_ld(b"\x22", o) if o else b"") + b"\x28\x01"

    @asynccontextmanager
    async def _watch_batches(
        self, ns: str, type: str, id: str | None, *, aggregated: bool, **kw: Any
    ) -> AsyncIterator[AsyncIterator[builtins.list[Event]]]:
        decoder = EventDecoder(self.registry)

        async def open_stream(req: bytes) -> tuple[Any, AsyncIterator[bytes]]:
            cm = self.conn.stream(S + "Watch", req, node=self.node)
            try:
                replies = await cm.__aenter__()
                first = await replies.__anext__()
            except StopAsyncIteration:
                await cm.__aexit__(None, None, None)
                who = self.node or self.conn.endpoint
                raise APIError(who, Status.UNAVAILABLE, "watch ended before it started") from None
            except BaseException:
                await cm.__aexit__(None, None, None)
                raise
            if first:
                raise APIError(self.node or self.conn.endpoint, Status.INTERNAL, "first watch message was not empty")
            return cm, replies

        try:
            cm, replies = await open_stream(self._watch_request(ns, type, id, aggregated=aggregated, **kw))
        except APIError as exc:
            raise _map_error(exc, "Watch", None) from None

        state = {"cm": cm}

        async def batches() -> AsyncIterator[builtins.list[Event]]:
            nonlocal replies
            last_bookmark: bytes | None = None
            while True:
                try:
                    async for data in replies:
                        try:
                            events = decoder.events(data)
                        except wire.WireError as exc:
                            yield [Event(EventType.ERRORED, None, error=f"malformed watch message: {exc}")]
                            return
                        for ev in events:
                            if ev.bookmark is not None:
                                last_bookmark = ev.bookmark
                        if events:
                            yield events
                    return
                except APIError as exc:
                    if last_bookmark is None:
                        raise _map_error(exc, "Watch", None) from None
                    error = exc
                # reconnect from the last bookmark
                await state["cm"].__aexit__(None, None, None)
                deadline = time.monotonic() + self.reconnect_for
                delay = 0.05
                req = self._watch_request(
                    ns, type, id, aggregated=aggregated, start_from_bookmark=last_bookmark,
                    label_queries=kw.get("label_queries", ()), id_query=kw.get("id_query"),
                )
                while True:
                    try:
                        state["cm"], replies = await open_stream(req)
                        break
                    except APIError as exc:
                        if exc.status == Status.FAILED_PRECONDITION or time.monotonic() > deadline:
                            raise _map_error(exc, "Watch", None) from error
                        self.conn.close()  # a fresh channel for the next attempt
                    await anyio.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, 5.0)

        it = batches()
        try:
            yield it
        finally:
            await it.aclose()  # type: ignore[attr-defined]
            await state["cm"].__aexit__(None, None, None)
