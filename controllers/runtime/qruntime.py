"""The runtime side of one ``QController``: the per-key queue, workers, requeue and backoff.

Triggers: a QPrimary change queues a *reconcile* job for that pointer; a QMapped change
(QMappedDestroyReady: only when destroy-ready) queues a *map* job whose ``map_input``
result is queued as reconcile jobs (they must be QPrimary inputs). At start every QPrimary
resource is listed and queued.

Outcomes of a job: success clears the key's backoff; ``RequeueError(after)`` runs it again
after ``after`` seconds; ``SkipReconcile`` clears the backoff; any other exception is an
error and requeues the key after its next exponential-backoff delay. ``concurrency``
workers take jobs; the queue guarantees a key is never processed by two at once.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio

from kos.controllers.runtime.access import Access
from kos.controllers.runtime.backoff import Backoff
from kos.controllers.runtime.controller import InputKind, QController, QSettings, ReducedMetadata
from kos.controllers.runtime.errors import RequeueError, SkipReconcile
from kos.controllers.runtime.queue import WorkQueue
from kos.resources.core import Pointer

if TYPE_CHECKING:
    from kos.controllers.runtime.controller import Input
    from kos.controllers.runtime.runtime import Runtime

RUN_HOOK_RESET_AFTER = 60.0
"""A run hook that ran at least this long before crashing restarts with a fresh backoff."""


class Job(enum.IntEnum):
    RECONCILE = 0
    MAP = 1


QKey = tuple[Pointer, Job]


class QRuntime(Access):
    """What a ``QController`` talks to: checked reads/writes (see ``Access``)."""

    def __init__(self, runtime: Runtime, controller: QController, settings: QSettings) -> None:
        super().__init__(runtime, controller.name)
        if settings.concurrency < 1:
            raise ValueError(f"controller {controller.name!r}: concurrency must be >= 1, got {settings.concurrency}")
        self.controller = controller
        self.settings = settings
        self.queue: WorkQueue[QKey, ReducedMetadata | None] = WorkQueue()
        self._key_backoff: dict[QKey, Backoff] = {}

    def queue_depth(self) -> int:
        return len(self.queue)

    def watch_trigger(self, reduced: ReducedMetadata, inp: Input) -> None:
        if inp.kind == InputKind.Q_PRIMARY:
            self.queue.put((reduced.pointer, Job.RECONCILE), None)
        elif inp.kind == InputKind.Q_MAPPED or (
            inp.kind == InputKind.Q_MAPPED_DESTROY_READY and reduced.destroy_ready
        ):
            self.queue.put((reduced.pointer, Job.MAP), reduced)

    def _is_primary(self, ptr: Pointer) -> bool:
        return any(i.kind == InputKind.Q_PRIMARY and i.matches(ptr) for i in self.inputs)

    # -- supervision --------------------------------------------------------------------
    async def supervise(self) -> None:
        try:
            for inp in self.inputs:
                if inp.kind != InputKind.Q_PRIMARY:
                    continue
                if inp.id is not None:
                    self.queue.put((Pointer(inp.namespace, inp.type, inp.id), Job.RECONCILE), None)
                    continue
                for r in await self.state.list(inp.resource_kind):
                    self.queue.put((r.pointer, Job.RECONCILE), None)
            async with anyio.create_task_group() as tg:
                for i in range(self.settings.concurrency):
                    tg.start_soon(self._worker, name=f"{self.name}/worker{i}")
                if self.settings.run_hook is not None:
                    tg.start_soon(self._run_hook, name=f"{self.name}/run-hook")
        finally:
            hook = self.settings.shutdown_hook
            if hook is not None:
                with anyio.CancelScope(shield=True):
                    result = hook()
                    if inspect.isawaitable(result):
                        await result

    async def _run_hook(self) -> None:
        hook = self.settings.run_hook
        assert hook is not None
        while True:
            started = anyio.current_time()
            try:
                await hook(self)
            except anyio.get_cancelled_exc_class():
                raise
            except Exception as exc:
                self.metrics.error(exc, crash=True)
                if anyio.current_time() - started >= RUN_HOOK_RESET_AFTER:
                    self._backoff.reset()
                delay = self._backoff.next()
                self.logger.error("run hook crashed", error=f"{type(exc).__name__}: {exc}",
                                  restart_in=round(delay, 3), exc_info=exc)
                await anyio.sleep(delay)
                self.metrics.restarts += 1
                continue
            return

    async def _worker(self) -> None:
        queue = self.queue
        while True:
            key, value = await queue.get()
            requeue: tuple[ReducedMetadata | None, float] | None = None
            try:
                requeue = await self._process(key, value)
            finally:
                queue.release(key, requeue)

    async def _process(self, key: QKey, value: ReducedMetadata | None) -> tuple[ReducedMetadata | None, float] | None:
        ptr, job = key
        log = self.logger
        try:
            if job == Job.MAP:
                assert value is not None
                mapped: Sequence[Pointer] = await self.controller.map_input(self, value)
                for p in mapped:
                    if not self._is_primary(p):
                        raise RuntimeError(f"map_input of {ptr} returned {p}, which is not covered by a QPrimary input")
                for p in mapped:
                    self.queue.put((p, Job.RECONCILE), None)
            else:
                self.metrics.reconciles += 1
                await self.controller.reconcile(self, ptr)
        except anyio.get_cancelled_exc_class():
            raise
        except RequeueError as exc:
            if exc.cause is not None:
                self.metrics.error(exc.cause)
                log.error("reconcile failed, requeued", resource=str(ptr), error=str(exc.cause), after=exc.after)
            return (value, exc.after)
        except SkipReconcile:
            self._key_backoff.pop(key, None)
            return None
        except Exception as exc:
            self.metrics.error(exc)
            backoff = self._key_backoff.get(key)
            if backoff is None:
                backoff = self._key_backoff[key] = self._runtime.new_backoff()
            delay = backoff.next()
            log.error("reconcile failed", resource=str(ptr), job=job.name.lower(),
                      error=f"{type(exc).__name__}: {exc}", retry_in=round(delay, 3), exc_info=exc)
            return (value, delay)
        self._key_backoff.pop(key, None)
        return None
