"""The reader/writer a controller sees: reads limited to declared inputs and outputs, writes
limited to outputs and owned by the controller, plus output tracking.

Rules (cosi-semantics.md 3.3):

* ``get`` is allowed for any output type, or a kind with a wildcard input or an input for
  that exact id; ``list`` needs an output type or a wildcard input;
* ``create``/``update``/``modify``/``update_with_conflicts``/``teardown``/``destroy`` need
  an output type. The owner is the controller's name unless the caller opts out
  (``no_owner=True`` for create/modify, ``owner=...`` for teardown/destroy);
* ``add_finalizer``/``remove_finalizer`` need a Strong, QPrimary or QMapped input that
  covers the resource; ``remove_finalizer`` ignores a missing resource;
* ``start_tracking_outputs`` then ``cleanup_outputs(kinds)`` destroys every owned output
  that was not created/updated/modified since (marking happens even if the write failed).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from kos.controllers.runtime.backoff import Backoff
from kos.controllers.runtime.controller import FINALIZER_INPUT_KINDS, Input
from kos.controllers.runtime.errors import AccessDeniedError
from kos.resources.core import (
    ConflictError,
    IDQuery,
    Kind,
    LabelQuery,
    NotFoundError,
    Phase,
    PhaseConflictError,
    Pointer,
    Resource,
    State,
)

if TYPE_CHECKING:
    from kos.controllers.runtime.runtime import Runtime

WRITE_YIELD_EVERY = 32
"""A controller's writes yield to the event loop this often (see ``Access._after_write``)."""

ModifyFn = Callable[[Resource[Any]], object] | Callable[[Resource[Any]], Awaitable[object]]


class Metrics:
    """Counters of one controller (``Runtime.metrics()`` renders them as a dict)."""

    __slots__ = ("reconciles", "errors", "crashes", "restarts", "last_error")

    def __init__(self) -> None:
        self.reconciles = 0
        self.errors = 0
        self.crashes = 0
        self.restarts = 0
        self.last_error = ""

    def error(self, exc: BaseException, *, crash: bool = False) -> None:
        """Count a failed reconcile (``crash``: the controller's run ended with it) and keep
        its text (bounded) for ``kosctl inspect dependencies``."""
        self.errors += 1
        if crash:
            self.crashes += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:500]


class Access:
    """Reads and writes of one controller, checked against its declaration."""

    def __init__(self, runtime: Runtime, name: str) -> None:
        self._runtime = runtime
        self.name = name
        self.state: State = runtime.state
        self.logger: structlog.typing.FilteringBoundLogger = runtime.logger.bind(controller=name)
        self.metrics = Metrics()
        self._backoff = runtime.new_backoff()
        self._touched: set[Pointer] | None = None
        self._output_types: frozenset[str] | None = None
        self._writes = 0

    # -- declaration --------------------------------------------------------------------
    @property
    def inputs(self) -> tuple[Input, ...]:
        return self._runtime.db.inputs(self.name)

    @property
    def output_types(self) -> frozenset[str]:
        """Declared output types (fixed at registration)."""
        types = self._output_types
        if types is None:
            types = self._output_types = frozenset(o.type for o in self._runtime.db.outputs(self.name))
        return types

    def _denied(self, op: str, what: object, why: str) -> AccessDeniedError:
        return AccessDeniedError(f"controller {self.name!r}: {op} {what} denied: {why}")

    def _check_get(self, ptr: Pointer) -> None:
        if ptr.type in self.output_types:
            return
        if any(i.matches(ptr) for i in self.inputs):
            return
        raise self._denied("get of", ptr, "not a declared input (wildcard or this id) or output type")

    def _check_list(self, kind: Kind) -> None:
        if kind.type in self.output_types:
            return
        if any(i.id is None and i.resource_kind == kind for i in self.inputs):
            return
        raise self._denied("list of", kind, "list needs a wildcard input on the kind or an output type")

    def _check_write(self, op: str, ptr: Pointer) -> None:
        if ptr.type not in self.output_types:
            outputs = ", ".join(sorted(self.output_types)) or "none"
            raise self._denied(op + " of", ptr, f"type is not a declared output (outputs: {outputs})")

    def _check_finalizer(self, op: str, ptr: Pointer) -> None:
        if any(i.kind in FINALIZER_INPUT_KINDS and i.matches(ptr) for i in self.inputs):
            return
        raise self._denied(op + " on", ptr, "finalizers need a Strong, QPrimary or QMapped input covering it")

    async def _after_write(self) -> None:
        """Yield to the event loop every WRITE_YIELD_EVERY writes: store writes never suspend,
        so a long write loop would otherwise let the runtime's watches fall a whole event
        history behind (buffer overrun)."""
        self._writes += 1
        if self._writes >= WRITE_YIELD_EVERY:
            self._writes = 0
            await anyio.lowlevel.checkpoint()

    def _touch(self, ptr: Pointer) -> None:
        if self._touched is not None:
            self._touched.add(ptr)

    # -- reads --------------------------------------------------------------------------
    async def get(self, ptr: Pointer) -> Resource[Any]:
        self._check_get(ptr)
        return await self.state.get(ptr)

    async def get_or_none(self, ptr: Pointer) -> Resource[Any] | None:
        self._check_get(ptr)
        return await self.state.get_or_none(ptr)

    async def list(
        self, kind: Kind, *, label_queries: Sequence[LabelQuery] = (), id_query: IDQuery | None = None
    ) -> list[Resource[Any]]:
        self._check_list(kind)
        return await self.state.list(kind, label_queries=label_queries, id_query=id_query)

    @asynccontextmanager
    async def context_with_teardown(self, ptr: Pointer) -> AsyncIterator[anyio.CancelScope]:
        """A cancel scope cancelled once ``ptr`` is destroyed or starts tearing down."""
        self._check_get(ptr)
        async with self.state.context_with_teardown(ptr) as scope:
            yield scope

    # -- writes -------------------------------------------------------------------------
    def _owner(self, no_owner: bool) -> str:
        return "" if no_owner else self.name

    async def create(self, resource: Resource[Any], *, no_owner: bool = False) -> None:
        ptr = resource.pointer
        self._check_write("create", ptr)
        self._touch(ptr)
        await self.state.create(resource, owner=self._owner(no_owner))
        await self._after_write()

    async def update(self, resource: Resource[Any], *, expected_phase: Phase | None = Phase.RUNNING) -> None:
        ptr = resource.pointer
        self._check_write("update", ptr)
        self._touch(ptr)
        await self.state.update(resource, owner=self.name, expected_phase=expected_phase)
        await self._after_write()

    async def modify(
        self,
        empty: Resource[Any],
        fn: ModifyFn,
        *,
        no_owner: bool = False,
        expected_phase: Phase | None = Phase.RUNNING,
    ) -> Resource[Any]:
        """Create-or-update ``empty.pointer`` through ``fn`` (sync or async); no write if unchanged."""
        ptr = empty.pointer
        self._check_write("modify", ptr)
        self._touch(ptr)
        result = await self._read_modify_write(ptr, fn, empty, self._owner(no_owner), expected_phase)
        await self._after_write()
        return result

    async def update_with_conflicts(
        self, ptr: Pointer, fn: ModifyFn, *, expected_phase: Phase | None = Phase.RUNNING
    ) -> Resource[Any]:
        """Update an existing output through ``fn`` (sync or async), retrying version conflicts."""
        self._check_write("update", ptr)
        self._touch(ptr)
        result = await self._read_modify_write(ptr, fn, None, self.name, expected_phase)
        await self._after_write()
        return result

    async def _read_modify_write(
        self,
        ptr: Pointer,
        fn: ModifyFn,
        empty: Resource[Any] | None,
        owner: str,
        expected_phase: Phase | None,
    ) -> Resource[Any]:
        state = self.state
        while True:
            try:
                current = await state.get(ptr)
            except NotFoundError:
                if empty is None:
                    raise
                new = empty.copy()
                await _call(fn, new)
                try:
                    await state.create(new, owner=owner)
                except ConflictError as exc:
                    if type(exc) is ConflictError:
                        continue
                    raise
                return new
            if expected_phase is not None and current.metadata.phase != expected_phase:
                raise PhaseConflictError(
                    ptr, f"resource {ptr} is in phase {current.metadata.phase}, expected {expected_phase}"
                )
            new = current.copy()
            await _call(fn, new)
            if new == current:
                return current
            try:
                await state.update(new, owner=owner, expected_phase=expected_phase)
            except NotFoundError:
                continue
            except ConflictError as exc:
                if type(exc) is ConflictError:
                    continue
                raise
            return new

    async def teardown(self, ptr: Pointer, *, owner: str | None = None) -> bool:
        """Start tearing down an output; True if it has no finalizers (destroy-ready)."""
        self._check_write("teardown", ptr)
        ready = await self.state.teardown(ptr, owner=self.name if owner is None else owner)
        await self._after_write()
        return ready

    async def destroy(self, ptr: Pointer, *, owner: str | None = None) -> None:
        self._check_write("destroy", ptr)
        await self.state.destroy(ptr, owner=self.name if owner is None else owner)
        await self._after_write()

    async def add_finalizer(self, ptr: Pointer, *finalizers: str) -> None:
        self._check_finalizer("add finalizer", ptr)
        await self.state.add_finalizer(ptr, *finalizers)
        await self._after_write()

    async def remove_finalizer(self, ptr: Pointer, *finalizers: str) -> None:
        self._check_finalizer("remove finalizer", ptr)
        try:
            await self.state.remove_finalizer(ptr, *finalizers)
        except NotFoundError:
            pass
        await self._after_write()

    # -- output tracking ----------------------------------------------------------------
    def start_tracking_outputs(self) -> None:
        """Forget what was touched; writes from now on mark their output as touched."""
        self._touched = set()

    async def cleanup_outputs(self, *kinds: Kind) -> int:
        """Destroy owned, untouched outputs of ``kinds``; returns how many. Resets the restart backoff."""
        if self._touched is None:
            raise RuntimeError(f"controller {self.name!r}: cleanup_outputs without start_tracking_outputs")
        touched, self._touched = self._touched, None
        destroyed = 0
        for kind in kinds:
            if kind.type not in self.output_types:
                raise self._denied("cleanup of", kind, "type is not a declared output")
            for r in await self.state.list(kind):
                md = r.metadata
                if md.owner == self.name and r.pointer not in touched:
                    await self.state.destroy(r.pointer, owner=self.name)
                    destroyed += 1
                    await self._after_write()
        self.reset_restart_backoff()
        return destroyed

    # -- restart backoff ----------------------------------------------------------------
    def reset_restart_backoff(self) -> None:
        self._backoff.reset()

    @property
    def backoff(self) -> Backoff:
        return self._backoff

    def queue_depth(self) -> int:
        return 0


async def _call(fn: ModifyFn, arg: Resource[Any]) -> None:
    result = fn(arg)
    if inspect.isawaitable(result):
        await result
