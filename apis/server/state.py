"""The ``cosi.resource.State`` servicer over any kos ``State`` (cosi-semantics.md section 4).

* resources go out with protobuf bytes and YAML text (hand-encoded by ``kos.apis.wire``);
  Create/Update answer with the request's resource carrying the stored metadata;
* Update without ``expected_phase`` means any phase;
* Watch: a present ``id`` selects a single-resource watch (``bootstrap_contents`` or label
  queries with it: UNIMPLEMENTED); the first message is an empty WatchResponse once the
  watch is established (setup errors such as a bad bookmark come instead of it); then one
  message per event, or per batch when ``aggregated`` (large batches are split so that no
  message exceeds ~1 MiB); ``api_version < 1`` drops BOOTSTRAPPED and ERRORED events;
* errors: NotFound -> NOT_FOUND, OwnerConflict -> PERMISSION_DENIED, Conflict ->
  ALREADY_EXISTS (Create) / FAILED_PRECONDITION, PhaseConflict -> INVALID_ARGUMENT (Update),
  bad bookmark -> FAILED_PRECONDITION, bad label term or regexp -> INVALID_ARGUMENT,
  malformed request -> INVALID_ARGUMENT, anything else -> UNKNOWN;
* access: ``kos.apis.auth.ResourcePolicy`` (sensitive types, writable namespaces);
* cost: requests are bounded by ``kos.apis.limits`` (size per method, label terms, values,
  regexp length) before any work; large requests are parsed in a worker thread; the List
  loop yields to the event loop in time slices; caller input quoted in an error is cut by
  ``kos.resources.core.echo``.
"""

from __future__ import annotations

import builtins
import collections
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import anyio
import betterproto
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError

from kos.apis import auth, limits, wire
from kos.apis.gen.cosi import resource as pb
from kos.apis.server.dispatch import Call, Dispatcher
from kos.resources.core import (
    ECHO_CHARS,
    REGISTRY,
    ConflictError,
    DynamicSpec,
    Event,
    EventType,
    IDQuery,
    InvalidWatchBookmarkError,
    Kind,
    LabelOp,
    LabelQuery,
    LabelTerm,
    NotFoundError,
    OwnerConflictError,
    Phase,
    PhaseConflictError,
    Pointer,
    Registry,
    Resource,
    State,
    TimeSlice,
    UnsupportedError,
    cap,
    echo,
    parse_number,
)

M = TypeVar("M", bound=betterproto.Message)

BATCH_BYTES = 1 << 20
"""Aggregated watch batches are split into messages of at most about this size."""

META_NAMESPACE = "meta"
RD_TYPE = "ResourceDefinitions.meta.cosi.dev"


def parse(cls: type[M], data: bytes) -> M:
    """Parse a request strictly: truncated or malformed input is INVALID_ARGUMENT."""
    try:
        wire.fields(data)
        return cls().parse(data)
    except Exception as exc:
        raise GRPCError(Status.INVALID_ARGUMENT, cap(f"malformed {cls.__name__}: {exc}", 300)) from None


async def parse_request(cls: type[M], data: bytes) -> M:
    """``parse``, in a worker thread when ``data`` is larger than ``limits.INLINE_PARSE_BYTES``."""
    if len(data) <= limits.INLINE_PARSE_BYTES:
        return parse(cls, data)
    return await anyio.to_thread.run_sync(parse, cls, data)


def status_for(exc: Exception, method: str) -> GRPCError:
    """COSI's error-code mapping (the message with the resource's pointer cut, see ``_message``)."""
    msg = _message(exc)
    if isinstance(exc, NotFoundError):
        return GRPCError(Status.NOT_FOUND, msg)
    if isinstance(exc, OwnerConflictError):
        return GRPCError(Status.PERMISSION_DENIED, msg)
    if isinstance(exc, PhaseConflictError) and method == "Update":
        return GRPCError(Status.INVALID_ARGUMENT, msg)
    if isinstance(exc, ConflictError):
        return GRPCError(Status.ALREADY_EXISTS if method == "Create" else Status.FAILED_PRECONDITION, msg)
    if isinstance(exc, InvalidWatchBookmarkError):
        return GRPCError(Status.FAILED_PRECONDITION, msg)
    if isinstance(exc, UnsupportedError):
        return GRPCError(Status.INVALID_ARGUMENT, msg)
    return GRPCError(Status.UNKNOWN, msg)


def _message(exc: Exception) -> str:
    """``str(exc)``, bounded: a pointer built from a caller's long id or type is cut to
    ``ECHO_CHARS`` per part."""
    msg = str(exc)
    ptr = getattr(exc, "ptr", None)
    if isinstance(ptr, Pointer) and len(shown := str(ptr)) > ECHO_CHARS:
        short = f"{cap(ptr.type, ECHO_CHARS)}({cap(ptr.namespace, ECHO_CHARS)}/{cap(ptr.id, ECHO_CHARS)})"
        msg = msg.replace(shown, short)
    return cap(msg)


_NEEDS_VALUE = {LabelOp.EQUAL, LabelOp.LT, LabelOp.LTE, LabelOp.LT_NUMERIC, LabelOp.LTE_NUMERIC}


def label_queries(queries: Sequence[pb.LabelQuery], id_regexp: str = "") -> list[LabelQuery]:
    """The request's label queries, checked against ``kos.apis.limits`` (with the id regexp's
    length) before anything is built from them."""
    limits.check_query([[(t.key, list(t.value)) for t in q.terms] for q in queries], id_regexp)
    out = []
    for qi, q in enumerate(queries):
        terms = []
        for ti, t in enumerate(q.terms):
            where = f"label_query[{qi}].terms[{ti}]"
            if not t.key:
                raise GRPCError(Status.INVALID_ARGUMENT, f"{where}: empty label key")
            try:
                op = LabelOp(int(t.op))
            except ValueError:
                raise GRPCError(Status.INVALID_ARGUMENT, f"{where}: unknown operation {int(t.op)}") from None
            if op in _NEEDS_VALUE and not t.value:
                raise GRPCError(Status.INVALID_ARGUMENT, f"{where}: operation {op.name} needs a value")
            if op in (LabelOp.LT_NUMERIC, LabelOp.LTE_NUMERIC) and parse_number(t.value[0]) is None:
                raise GRPCError(
                    Status.INVALID_ARGUMENT,
                    f"{where}: {echo(t.value[0])} is not a number (expected digits with an optional k/Ki.. unit)",
                )
            terms.append(LabelTerm(t.key, op, tuple(t.value), t.invert))
        out.append(LabelQuery(terms))
    return out


def id_query(q: pb.IdQuery | None) -> IDQuery | None:
    if q is None or not q.regexp:
        return None
    limits.check_query([], q.regexp)
    try:
        return IDQuery(q.regexp)
    except ValueError as exc:
        raise GRPCError(Status.INVALID_ARGUMENT, f"id_query: {exc}") from None


class EventEncoder:
    """Encodes one watch stream's events, reusing the encoding of stored objects it has already
    sent: an Updated event's ``old`` is the object the previous event of that resource carried,
    and a Destroyed event carries the last stored object, so update-heavy streams encode each
    object once instead of twice. Stored objects are immutable; the cache holds a reference to
    each cached object, so its ``id()`` cannot be reused while it is cached."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._cache: collections.OrderedDict[int, tuple[Resource[Any], bytes]] = collections.OrderedDict()

    def _resource(self, r: Resource[Any]) -> bytes:
        hit = self._cache.get(id(r))
        if hit is not None and hit[0] is r:
            self._cache.move_to_end(id(r))
            return hit[1]
        enc = wire.encode_resource(r)
        self._cache[id(r)] = (r, enc)
        if len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return enc

    def event(self, ev: Event) -> bytes:
        """``Event`` bytes wrapped as one ``WatchResponse.event`` entry (field 1)."""
        if ev.resource is None or ev.resource.is_tombstone:
            return wire.length_delimited(b"\x0a", wire.encode_event(ev))
        parts = [wire.length_delimited(b"\x0a", self._resource(ev.resource))]
        if ev.type:
            parts.append(b"\x10" + wire.varint(int(ev.type)))
        if ev.old is not None:
            parts.append(wire.length_delimited(b"\x1a", self._resource(ev.old)))
        if ev.error is not None:
            parts.append(wire.length_delimited(b"\x22", ev.error.encode()))
        if ev.bookmark is not None:
            parts.append(wire.length_delimited(b"\x2a", ev.bookmark))
        return wire.length_delimited(b"\x0a", b"".join(parts))


def _check_kind(namespace: str, type: str) -> None:
    if not namespace:
        raise GRPCError(Status.INVALID_ARGUMENT, "namespace: must not be empty")
    if not type:
        raise GRPCError(Status.INVALID_ARGUMENT, "type: must not be empty")


class StateService:
    """Registers the eight ``cosi.resource.State`` methods on a dispatcher."""

    def __init__(
        self, state: State, policy: auth.ResourcePolicy, *, registry: Registry = REGISTRY
    ) -> None:
        self.state = state
        self.policy = policy
        self.registry = registry

    def register(self, d: Dispatcher) -> None:
        p = auth.STATE
        d.add(p + "Get", self.get, Cardinality.UNARY_UNARY)
        d.add(p + "List", self.list, Cardinality.UNARY_STREAM)
        d.add(p + "Create", self.create, Cardinality.UNARY_UNARY)
        d.add(p + "Update", self.update, Cardinality.UNARY_UNARY)
        d.add(p + "Destroy", self.destroy, Cardinality.UNARY_UNARY)
        d.add(p + "Watch", self.watch, Cardinality.UNARY_STREAM)
        d.add(p + "Teardown", self.teardown, Cardinality.UNARY_UNARY)
        d.add(p + "TeardownAndDestroy", self.teardown_and_destroy, Cardinality.UNARY_UNARY)

    # -- access -----------------------------------------------------------------------------
    async def _sensitive(self, type: str) -> bool:
        """Whether ``type`` is sensitive; NOT_FOUND when no definition of it exists (neither
        in this process's registry nor as a ResourceDefinition in the ``meta`` namespace)."""
        d = self.registry.definition(type)
        if d is not None:
            return d.sensitive
        try:
            rd = await self.state.get(Pointer(META_NAMESPACE, RD_TYPE, type.lower()))
        except NotFoundError:
            raise GRPCError(
                Status.NOT_FOUND, f"type: resource type {echo(type)} is not registered on this node (see kosctl get rd)"
            ) from None
        return int(getattr(rd.spec, "sensitivity", 0)) == 1

    async def _read(self, call: Call, namespace: str, type: str) -> None:
        _check_kind(namespace, type)
        self.policy.check_read(call.roles, namespace, type, await self._sensitive(type))

    async def _write(self, call: Call, namespace: str, type: str) -> None:
        _check_kind(namespace, type)
        self.policy.check_write(call.roles, namespace, type)
        await self._sensitive(type)

    def _resource(self, data: bytes, what: str) -> Resource[Any]:
        try:
            r = wire.decode_resource(data, registry=self.registry)
        except wire.WireError as exc:
            raise GRPCError(Status.INVALID_ARGUMENT, cap(f"{what}: {exc}", 300)) from None
        if isinstance(r.spec, DynamicSpec) or r.is_tombstone:
            # keep what the client sent; a typed spec would re-render the same
            return r
        return r

    # -- unary ------------------------------------------------------------------------------
    async def get(self, call: Call) -> None:
        req = await parse_request(pb.GetRequest, await call.request())
        await self._read(call, req.namespace, req.type)
        try:
            r = await self.state.get(Pointer(req.namespace, req.type, req.id))
        except Exception as exc:
            raise status_for(exc, "Get") from None
        await call.send(wire.encode_resource_response(r))

    async def list(self, call: Call) -> None:
        req = await parse_request(pb.ListRequest, await call.request())
        await self._read(call, req.namespace, req.type)
        opts = req.options
        regexp = opts.id_query.regexp if opts and opts.id_query else ""
        lq = label_queries(opts.label_query, regexp) if opts else []
        iq = id_query(opts.id_query) if opts else None
        try:
            items = await self.state.list(Kind(req.namespace, req.type), label_queries=lq, id_query=iq)
        except Exception as exc:
            raise status_for(exc, "List") from None
        slicer = TimeSlice()
        for r in items:
            await slicer.checkpoint()
            await call.send(wire.encode_resource_response(r))

    def _request_resource(self, data: bytes, number: int, what: str) -> tuple[Resource[Any], bytes]:
        """Decode the resource field (``number``) of a Create/Update request."""
        raw = b""
        for n, _, value in wire.fields(data):
            if n == number and isinstance(value, bytes):
                raw = value
        if not raw:
            raise GRPCError(Status.INVALID_ARGUMENT, f"{what}: missing")
        return self._resource(raw, what), raw

    async def _request_resource_async(self, data: bytes, number: int, what: str) -> tuple[Resource[Any], bytes]:
        if len(data) <= limits.INLINE_PARSE_BYTES:
            return self._request_resource(data, number, what)
        return await anyio.to_thread.run_sync(self._request_resource, data, number, what)

    async def create(self, call: Call) -> None:
        data = await call.request()
        req = await parse_request(pb.CreateRequest, data)
        r, _ = await self._request_resource_async(data, 1, "resource")
        await self._write(call, r.metadata.namespace, r.metadata.type)
        if not r.metadata.id:
            raise GRPCError(Status.INVALID_ARGUMENT, "resource.metadata.id: must not be empty")
        try:
            await self.state.create(r, owner=req.options.owner if req.options else "")
        except Exception as exc:
            raise status_for(exc, "Create") from None
        await call.send(wire.encode_resource_response(r))

    async def update(self, call: Call) -> None:
        data = await call.request()
        req = await parse_request(pb.UpdateRequest, data)
        r, _ = await self._request_resource_async(data, 2, "new_resource")
        await self._write(call, r.metadata.namespace, r.metadata.type)
        expected: Phase | None = None
        owner = ""
        if req.options is not None:
            owner = req.options.owner
            if req.options.expected_phase is not None:
                try:
                    expected = Phase.parse(req.options.expected_phase)
                except ValueError as exc:
                    raise GRPCError(Status.INVALID_ARGUMENT, f"options.expected_phase: {exc}") from None
        try:
            await self.state.update(r, owner=owner, expected_phase=expected)
        except Exception as exc:
            raise status_for(exc, "Update") from None
        await call.send(wire.encode_resource_response(r))

    async def destroy(self, call: Call) -> None:
        req = await parse_request(pb.DestroyRequest, await call.request())
        await self._write(call, req.namespace, req.type)
        try:
            await self.state.destroy(
                Pointer(req.namespace, req.type, req.id), owner=req.options.owner if req.options else ""
            )
        except Exception as exc:
            raise status_for(exc, "Destroy") from None
        await call.send(b"")

    async def teardown(self, call: Call) -> None:
        req = await parse_request(pb.TeardownRequest, await call.request())
        await self._write(call, req.namespace, req.type)
        try:
            ready = await self.state.teardown(
                Pointer(req.namespace, req.type, req.id), owner=req.options.owner if req.options else ""
            )
        except Exception as exc:
            raise status_for(exc, "Teardown") from None
        await call.send(b"\x08\x01" if ready else b"")

    async def teardown_and_destroy(self, call: Call) -> None:
        req = await parse_request(pb.TeardownAndDestroyRequest, await call.request())
        await self._write(call, req.namespace, req.type)
        try:
            await self.state.teardown_and_destroy(
                Pointer(req.namespace, req.type, req.id), owner=req.options.owner if req.options else ""
            )
        except Exception as exc:
            raise status_for(exc, "TeardownAndDestroy") from None
        await call.send(b"")

    # -- watch ------------------------------------------------------------------------------
    async def watch(self, call: Call) -> None:
        req = await parse_request(pb.WatchRequest, await call.request())
        await self._read(call, req.namespace, req.type)
        o = req.options or pb.WatchOptions()
        if o.tail_events < 0:
            raise GRPCError(Status.INVALID_ARGUMENT, f"options.tail_events: must not be negative, got {o.tail_events}")
        bookmark = o.start_from_bookmark
        drop = () if req.api_version >= 1 else (EventType.BOOTSTRAPPED, EventType.ERRORED)
        kind = Kind(req.namespace, req.type)
        stream: AbstractAsyncContextManager[AsyncIterator[Any]]
        aggregated = False
        if req.id is not None:
            if o.bootstrap_contents or o.label_query:
                raise GRPCError(
                    Status.UNIMPLEMENTED, "bootstrap_contents and label_query are not supported when watching one id"
                )
            stream = self.state.watch(kind.pointer(req.id), tail_events=o.tail_events, start_from_bookmark=bookmark)
        else:
            kw: dict[str, Any] = dict(
                bootstrap_contents=o.bootstrap_contents,
                bootstrap_bookmark=o.bootstrap_bookmark,
                tail_events=o.tail_events,
                start_from_bookmark=bookmark,
                label_queries=label_queries(o.label_query, o.id_query.regexp if o.id_query else ""),
                id_query=id_query(o.id_query),
            )
            if o.aggregated:
                aggregated = True
                stream = self.state.watch_kind_aggregated(kind, **kw)
            else:
                stream = self.state.watch_kind(kind, **kw)
        try:
            events = await stream.__aenter__()
        except Exception as exc:
            raise status_for(exc, "Watch") from None
        encoder = EventEncoder()
        try:
            await call.send(b"")
            if aggregated:
                async for batch in events:
                    await self._send_batch(call, batch, drop, encoder)  # type: ignore[arg-type]
            else:
                async for item in events:
                    ev: Event = item  # type: ignore[assignment]
                    if ev.type in drop:
                        continue
                    await call.send(encoder.event(ev))
                    if ev.type == EventType.ERRORED:
                        return
        finally:
            await stream.__aexit__(None, None, None)

    async def _send_batch(
        self, call: Call, batch: builtins.list[Event], drop: tuple[EventType, ...], encoder: EventEncoder
    ) -> None:
        parts: list[bytes] = []
        size = 0
        for ev in batch:
            if ev.type in drop:
                continue
            enc = encoder.event(ev)
            if parts and size + len(enc) > BATCH_BYTES:
                await call.send(b"".join(parts))
                parts, size = [], 0
            parts.append(enc)
            size += len(enc)
        if parts:
            await call.send(b"".join(parts))
