"""The sequencer: named sequences (boot, install, reboot, shutdown, reset, upgrade) made of
phases made of tasks, run one sequence at a time, every step reported.

A ``Sequence`` has a name, the machine stage it puts the node in while it runs, and phases
run in order; the tasks of one phase run concurrently (as Talos does) and the phase ends when
all have finished. Every step is published on the node's ``EventBus`` as events of type
``sequence`` / ``phase`` / ``task`` (payload: names, ``action: start|stop``, ``error`` when
a step failed) and reflected in the ``MachineStatuses.runtime.kos.dev`` resource (id
``machine``): ``stage``, the running ``phase`` and ``task``.

Readiness (``ready`` + ``unmetConditions``) is computed by ``readiness_loop``: the node is
ready when the stage is ``running``, every registered service is running and healthy (or
skipped), and no extra condition (``Sequencer.set_condition``) is unmet, e.g. a domain whose
controllers could not be assembled.

Only one sequence runs at a time. A sequence of higher priority (reboot, shutdown, reset,
upgrade) preempts a running boot (the boot is cancelled); any other overlap is refused with
``SequenceBusyError`` (the API maps it to FAILED_PRECONDITION).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import structlog

from kos.resources.core import NotFoundError, Resource, State
from kos.resources.runtime import (
    MACHINE_STATUS_ID,
    MACHINE_STATUSES,
    SERVICES,
    MachineStatusSpec,
    UnmetCondition,
)

log = structlog.get_logger("kos.machined.sequencer")

OWNER = "sequencer"

TaskFn = Callable[[], Awaitable[None]]

PREEMPTIVE = frozenset({"reboot", "shutdown", "reset", "upgrade", "rollback"})
"""Sequences that cancel a running boot instead of being refused."""


class SequenceBusyError(RuntimeError):
    """Another sequence is running and this one may not preempt it."""


class SequenceError(RuntimeError):
    """A task failed; names the sequence, phase and task."""

    def __init__(self, sequence: str, phase: str, task: str, error: BaseException) -> None:
        super().__init__(f"sequence {sequence}: phase {phase}: task {task}: {error}")
        self.sequence = sequence
        self.phase = phase
        self.task = task
        self.error = error


@dataclass(frozen=True)
class Task:
    name: str
    fn: TaskFn


@dataclass(frozen=True)
class Phase:
    name: str
    tasks: tuple[Task, ...]

    @classmethod
    def of(cls, name: str, *tasks: tuple[str, TaskFn]) -> Phase:
        return cls(name, tuple(Task(n, f) for n, f in tasks))


@dataclass(frozen=True)
class Sequence:
    name: str
    stage: str
    phases: tuple[Phase, ...]
    final_stage: str | None = None  # stage after success (None: keep ``stage``)


class EventSink(Protocol):
    """What the sequencer publishes to (``kos.apis.server.machine.EventBus`` fits)."""

    def publish(self, type: str, payload: dict[str, Any] | str, *, actor_id: str = "") -> None: ...


@dataclass
class Sequencer:
    state: State
    events: EventSink
    _running: str | None = None
    _scope: anyio.CancelScope | None = None
    _idle: anyio.Event = field(default_factory=anyio.Event)
    _conditions: dict[str, str] = field(default_factory=dict)
    _stage: str = "unknown"
    _changed: anyio.Event = field(default_factory=anyio.Event)
    history: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._idle.set()

    @property
    def running(self) -> str | None:
        return self._running

    @property
    def stage(self) -> str:
        return self._stage

    # -- status -----------------------------------------------------------------------------
    async def _status(self, **changes: Any) -> None:
        def apply(r: Resource[Any]) -> None:
            for k, v in changes.items():
                setattr(r.spec, k, v)

        await self.state.modify(Resource.new(MachineStatusSpec(), MACHINE_STATUS_ID), apply, owner=OWNER)

    async def set_stage(self, stage: str) -> None:
        MachineStatusSpec(stage=stage)  # validates
        self._stage = stage
        self.events.publish("machineStatus", {"stage": stage})
        await self._status(stage=stage)
        self._poke()

    def set_condition(self, name: str, reason: str | None) -> None:
        """Add (reason) or clear (None) an extra unmet condition checked by readiness."""
        if reason is None:
            self._conditions.pop(name, None)
        else:
            self._conditions[name] = reason
        self._poke()

    def _publish(self, type: str, payload: dict[str, Any]) -> None:
        self.history.append({"type": type, **payload})
        del self.history[:-500]
        self.events.publish(type, payload)

    # -- running sequences ------------------------------------------------------------------
    async def run(self, seq: Sequence) -> None:
        """Run ``seq`` to the end; raises SequenceError on a failed task, SequenceBusyError when
        another sequence runs and ``seq`` may not preempt it."""
        if self._running is not None:
            if seq.name in PREEMPTIVE and self._running not in PREEMPTIVE and self._scope is not None:
                log.info("preempting sequence", running=self._running, by=seq.name)
                self._scope.cancel()
                await self._idle.wait()
            else:
                raise SequenceBusyError(
                    f"sequence {seq.name!r} refused: sequence {self._running!r} is running"
                )
        self._running = seq.name
        self._idle = anyio.Event()
        started = time.monotonic()
        self._publish("sequence", {"sequence": seq.name, "action": "start"})
        await self.set_stage(seq.stage)
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                for phase in seq.phases:
                    await self._run_phase(seq, phase)
                if seq.final_stage is not None:
                    await self.set_stage(seq.final_stage)
            if scope.cancelled_caught:
                self._publish("sequence", {"sequence": seq.name, "action": "stop", "error": "preempted"})
                return
        except SequenceError as exc:
            self._publish("sequence", {"sequence": seq.name, "action": "stop", "error": str(exc)})
            raise
        finally:
            self._scope = None
            self._running = None
            self._idle.set()
            with anyio.CancelScope(shield=True):
                await self._status(phase="", task="")
        log.info("sequence done", sequence=seq.name, seconds=round(time.monotonic() - started, 3))
        self._publish("sequence", {"sequence": seq.name, "action": "stop"})

    async def _run_phase(self, seq: Sequence, phase: Phase) -> None:
        self._publish("phase", {"sequence": seq.name, "phase": phase.name, "action": "start"})
        await self._status(phase=phase.name, task=",".join(t.name for t in phase.tasks))
        failures: list[tuple[Task, BaseException]] = []

        async def one(task: Task) -> None:
            self._publish("task", {"sequence": seq.name, "phase": phase.name, "task": task.name, "action": "start"})
            try:
                await task.fn()
            except Exception as exc:
                log.error("task failed", sequence=seq.name, phase=phase.name, task=task.name, error=str(exc))
                failures.append((task, exc))
                self._publish(
                    "task",
                    {"sequence": seq.name, "phase": phase.name, "task": task.name, "action": "stop",
                     "error": str(exc) or type(exc).__name__},
                )
                return
            self._publish("task", {"sequence": seq.name, "phase": phase.name, "task": task.name, "action": "stop"})

        async with anyio.create_task_group() as tg:
            for t in phase.tasks:
                tg.start_soon(one, t)
        if failures:
            task, exc = failures[0]
            self._publish(
                "phase", {"sequence": seq.name, "phase": phase.name, "action": "stop", "error": str(exc)}
            )
            raise SequenceError(seq.name, phase.name, task.name, exc)
        self._publish("phase", {"sequence": seq.name, "phase": phase.name, "action": "stop"})

    # -- readiness --------------------------------------------------------------------------
    async def unmet(self) -> list[UnmetCondition]:
        out: list[UnmetCondition] = []
        if self._stage != "running":
            out.append(UnmetCondition("stage", f"machine is {self._stage}, not running"))
        for svc in await self.state.list(SERVICES):
            reason = service_unmet(svc.spec)
            if reason is not None:
                out.append(UnmetCondition("service " + svc.id, reason))
        out.extend(UnmetCondition(k, v) for k, v in sorted(self._conditions.items()))
        return out

    def _poke(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def readiness_loop(self, *, interval: float = 30.0) -> None:
        """Keep ``ready``/``unmetConditions`` current: on service and sequencer changes (every
        change pokes), and every ``interval`` seconds as a safety net (an idle node should
        hardly wake: it was every second)."""

        async def follow_services() -> None:
            async with self.state.watch_kind(SERVICES) as events:
                async for _ in events:
                    self._poke()

        last: tuple[bool, list[UnmetCondition]] | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(follow_services)
            while True:
                changed = self._changed
                unmet = await self.unmet()
                cur = (not unmet, unmet)
                if cur != last:
                    await self._status(ready=cur[0], unmet_conditions=unmet)
                    if last is None or last[0] != cur[0]:
                        self.events.publish("machineStatus", {"stage": self._stage, "ready": cur[0]})
                    last = cur
                with anyio.move_on_after(interval):
                    await changed.wait()


def service_unmet(s: Any) -> str | None:
    """Why a service keeps the node from being ready, or None. A registered service that was
    never started (Waiting, no message) or finished is fine; one that is starting, waiting for
    a dependency or a restart, failed, or running unhealthy is not. Health unknown (no probe
    yet, or none defined) counts as fine once running."""
    state: str = s.state
    msg: str = s.message
    if state in ("Skipped", "Finished") or (state == "Waiting" and not msg):
        return None
    if state == "Running":
        if s.healthy or s.unknown:
            return None
        return "unhealthy" + (f": {msg}" if msg else "")
    return state + (f": {msg}" if msg else "")


async def machine_status(state: State) -> MachineStatusSpec | None:
    try:
        r = await state.get(MACHINE_STATUSES.pointer(MACHINE_STATUS_ID))
    except NotFoundError:
        return None
    spec: MachineStatusSpec = r.spec
    return spec


def phases(*items: tuple[str, Seq[tuple[str, TaskFn]]]) -> tuple[Phase, ...]:
    """``phases(("name", [("task", fn), ...]), ...)``: a compact way to spell a sequence."""
    return tuple(Phase.of(n, *ts) for n, ts in items)
