"""The controller runtime: registers controllers, watches their inputs, delivers triggers.

Event pipeline (cosi-semantics.md 3.2):

1. one ``watch_kind_aggregated(kind, bootstrap_contents=True)`` per distinct input kind,
   started lazily (also for kinds added later through ``update_inputs``);
2. every batch is folded into a dedup map ``(ns, type, id) -> ReducedMetadata`` keeping
   only the latest value; an Errored event aborts the runtime (``RuntimeWatchError``);
3. a delivery task drains the map and triggers each controller with a wildcard or exact-id
   input on the changed resource (its adapter decides: DestroyReady, QPrimary, QMapped...).

``Runtime.run()`` runs everything in one task group; cancelling it stops all controllers.
"""

from __future__ import annotations

from typing import Any

import anyio
import structlog

from kos.controllers.runtime.access import Access
from kos.controllers.runtime.adapter import ControllerRuntime
from kos.controllers.runtime.backoff import Backoff
from kos.controllers.runtime.controller import (
    CONTROLLER_INPUT_KINDS,
    Q_INPUT_KINDS,
    AnyController,
    Controller,
    Input,
    QController,
    ReducedMetadata,
    controller_name,
    normalize_inputs,
)
from kos.controllers.runtime.dependency import DependencyDB, Edge
from kos.controllers.runtime.errors import RegistrationError, RuntimeWatchError
from kos.controllers.runtime.qruntime import QRuntime
from kos.resources.core import EventType, Kind, State

_SKIP = (EventType.BOOTSTRAPPED, EventType.NOOP)


class Runtime:
    """Drives controllers against a State.

    ``backoff_initial``/``backoff_max`` configure both the restart backoff of crashed
    controllers and the per-key backoff of QControllers (x1.5 growth, +-50 % jitter).
    """

    def __init__(
        self,
        state: State,
        *,
        backoff_initial: float = 0.5,
        backoff_max: float = 60.0,
        logger: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        Backoff(backoff_initial, maximum=backoff_max)  # validate early
        self.state = state
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.logger: structlog.typing.FilteringBoundLogger = logger or structlog.get_logger("kos.controllers")
        self.db = DependencyDB()
        self._adapters: dict[str, ControllerRuntime | QRuntime] = {}
        self._watched: set[Kind] = set()
        self._pending: dict[tuple[str, str, str], ReducedMetadata] = {}
        self._pending_event = anyio.Event()
        self._tg: anyio.abc.TaskGroup | None = None
        self._fatal: RuntimeWatchError | None = None
        self.delivered = 0

    def new_backoff(self) -> Backoff:
        return Backoff(self.backoff_initial, maximum=self.backoff_max)

    # -- registration ---------------------------------------------------------------------
    def register(self, controller: AnyController) -> Access:
        """Register a Controller or QController (also while running); returns its adapter."""
        name = controller_name(controller)
        adapter: ControllerRuntime | QRuntime
        if isinstance(controller, QController):
            settings = controller.settings()
            inputs = normalize_inputs(name, settings.inputs, Q_INPUT_KINDS)
            if settings.concurrency < 1:
                raise RegistrationError(f"controller {name!r}: concurrency must be >= 1, got {settings.concurrency}")
            self.db.add_controller(name, inputs, tuple(settings.outputs))
            adapter = QRuntime(self, controller, settings)
        elif isinstance(controller, Controller):
            inputs = normalize_inputs(name, controller.inputs(), CONTROLLER_INPUT_KINDS)
            self.db.add_controller(name, inputs, tuple(controller.outputs()))
            adapter = ControllerRuntime(self, controller)
        else:
            raise RegistrationError(f"{controller!r} is neither a Controller nor a QController")
        self._adapters[name] = adapter
        for inp in inputs:
            self._ensure_watch(inp.resource_kind)
        if self._tg is not None:
            self._tg.start_soon(adapter.supervise, name=f"controller {name}")
        return adapter

    def set_inputs(self, name: str, inputs: tuple[Input, ...]) -> None:
        self.db.set_inputs(name, inputs)
        for inp in inputs:
            self._ensure_watch(inp.resource_kind)

    def adapter(self, name: str) -> ControllerRuntime | QRuntime:
        return self._adapters[name]

    # -- running --------------------------------------------------------------------------
    async def run(self) -> None:
        """Run every controller until cancelled; raises RuntimeWatchError if a watch fails."""
        if self._tg is not None:
            raise RuntimeError("controller runtime is already running")
        self._fatal = None
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._deliver, name="runtime delivery")
                for kind in sorted(self._watched):
                    tg.start_soon(self._watch, kind, name=f"runtime watch {kind}")
                for name, adapter in self._adapters.items():
                    tg.start_soon(adapter.supervise, name=f"controller {name}")
        finally:
            self._tg = None
        if self._fatal is not None:
            raise self._fatal

    def _ensure_watch(self, kind: Kind) -> None:
        if kind in self._watched:
            return
        self._watched.add(kind)
        if self._tg is not None:
            self._tg.start_soon(self._watch, kind, name=f"runtime watch {kind}")

    async def _watch(self, kind: Kind) -> None:
        try:
            await self._watch_events(kind)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:  # e.g. a remote state's stream broke
            self._abort(RuntimeWatchError(f"controller runtime watch error: {kind}: {type(exc).__name__}: {exc}"))

    async def _watch_events(self, kind: Kind) -> None:
        async with self.state.watch_kind_aggregated(kind, bootstrap_contents=True) as batches:
            async for batch in batches:
                pending = self._pending  # swapped by the delivery task between batches
                for ev in batch:
                    etype = ev.type
                    if etype in _SKIP:
                        continue
                    if etype == EventType.ERRORED:
                        self._abort(RuntimeWatchError(f"controller runtime watch error: {kind}: {ev.error}"))
                        return
                    r = ev.resource
                    assert r is not None
                    md = r.metadata
                    pending[(md.namespace, md.type, md.id)] = ReducedMetadata(
                        md.namespace, md.type, md.id, md.phase, md.labels, not md.finalizers
                    )
                self._pending_event.set()

    def _abort(self, err: RuntimeWatchError) -> None:
        self.logger.error("controller runtime aborted", error=str(err))
        self._fatal = err
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    async def _deliver(self) -> None:
        db = self.db
        adapters = self._adapters
        while True:
            if not self._pending:
                if self._pending_event.is_set():
                    self._pending_event = anyio.Event()
                await self._pending_event.wait()
                continue
            batch, self._pending = self._pending, {}
            for (ns, type_, id_), reduced in batch.items():
                for name, inp in db.dependents(Kind(ns, type_), id_):
                    adapters[name].watch_trigger(reduced, inp)
                self.delivered += 1
            await anyio.lowlevel.checkpoint()

    # -- introspection --------------------------------------------------------------------
    def metrics(self) -> dict[str, dict[str, Any]]:
        """Per controller: reconciles, errors, crashes, restarts, queue_depth, last_error."""
        out: dict[str, dict[str, Any]] = {}
        for name in sorted(self._adapters):
            a = self._adapters[name]
            m = a.metrics
            out[name] = {
                "reconciles": m.reconciles,
                "errors": m.errors,
                "crashes": m.crashes,
                "restarts": m.restarts,
                "queue_depth": a.queue_depth(),
                "last_error": m.last_error,
            }
        return out

    def dependency_graph(self) -> list[Edge]:
        return self.db.edges()

    def dependency_dot(self) -> str:
        return self.db.dot()
