"""The runtime side of one ``Controller``: coalesced triggers, input updates, restarts.

``ControllerRuntime`` is the object passed to ``Controller.run``. Triggers coalesce like a
Go channel with a buffer of one: any number of input changes while the controller is busy
leave exactly one pending reconcile. One reconcile is pending from registration on.

A crash (``run`` raising) is logged and counted; the controller is re-run after the next
restart-backoff delay with a reconcile queued. A clean return or cancellation finishes it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING

import anyio

from kos.controllers.runtime.access import Access
from kos.controllers.runtime.controller import (
    CONTROLLER_INPUT_KINDS,
    Controller,
    Input,
    InputKind,
    ReducedMetadata,
    normalize_inputs,
)

if TYPE_CHECKING:
    from kos.controllers.runtime.runtime import Runtime


class ControllerRuntime(Access):
    """What a ``Controller`` talks to: ``wait()`` for triggers, plus checked reads/writes."""

    def __init__(self, runtime: Runtime, controller: Controller) -> None:
        super().__init__(runtime, controller.name)
        self.controller = controller
        self._pending = True  # one reconcile is queued at registration
        self._wakeup = anyio.Event()
        self.finished = False

    # -- triggers -----------------------------------------------------------------------
    def queue_reconcile(self) -> None:
        """Ask for a reconcile (coalesced with any other pending one)."""
        self._pending = True
        self._wakeup.set()

    def watch_trigger(self, reduced: ReducedMetadata, inp: Input) -> None:
        if inp.kind == InputKind.DESTROY_READY and not reduced.destroy_ready:
            return
        self.queue_reconcile()

    async def wait(self) -> None:
        """Wait until a reconcile is due (returns at once if one is pending)."""
        while not self._pending:
            if self._wakeup.is_set():
                self._wakeup = anyio.Event()
            await self._wakeup.wait()
        self._pending = False
        self.metrics.reconciles += 1

    async def events(self) -> AsyncIterator[None]:
        """``async for _ in rt.events():`` one iteration per (coalesced) trigger."""
        while True:
            await self.wait()
            yield None

    def queue_depth(self) -> int:
        return 1 if self._pending else 0

    # -- inputs -------------------------------------------------------------------------
    def update_inputs(self, inputs: Iterable[Input]) -> None:
        """Replace the declared inputs; watches for new kinds start right away."""
        normalized = normalize_inputs(self.name, inputs, CONTROLLER_INPUT_KINDS)
        self._runtime.set_inputs(self.name, normalized)

    # -- supervision --------------------------------------------------------------------
    async def supervise(self) -> None:
        log = self.logger
        while True:
            try:
                await self.controller.run(self)
            except anyio.get_cancelled_exc_class():
                raise
            except Exception as exc:
                self.metrics.error(exc, crash=True)
                delay = self._backoff.next()
                log.error("controller crashed", error=f"{type(exc).__name__}: {exc}", restart_in=round(delay, 3),
                          exc_info=exc)
                await anyio.sleep(delay)
                self.metrics.restarts += 1
                self.queue_reconcile()
                continue
            log.debug("controller finished")
            self.finished = True
            return
