"""The service supervisor: lifecycles of services, their events, health and Service resources.

Each service loops through::

    Waiting (dependencies; the unmet one is named) -> Preparing -> Starting -> Running
      -> Finished (exit 0) | Failed (exit != 0, or prepare/start error)
      -> per the restart policy: Waiting "restarting in Xs" (exponential backoff) or done
    Skipped when the definition's ``skip`` says so; Stopping -> Finished on stop().

Every transition is a ``ServiceEvent`` (state, message, time) in a bounded per-service
history and is published to the ``Services.runtime.kos.dev`` resource of the service (state,
running, healthy, unknown, message, restarts, pid) through one publisher task, so writes to the
State never race with cancellation. Health is probed only while running; it changes
``healthy``/``unknown`` and records an event when it flips.

``Supervisor`` is an async context manager that owns every task (anyio task group)::

    async with Supervisor(state) as sup:
        sup.add(ServiceDefinition("etcd", ProcessRunner([...]), health=HealthCheck(probe)))
        await sup.start("etcd")
        await sup.wait_healthy("etcd", timeout=10)
"""

from __future__ import annotations

import collections
import enum
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import anyio
import structlog
from anyio.abc import TaskGroup

from kos.controllers.runtime import Backoff
from kos.machined.services.conditions import Condition, all_of
from kos.machined.services.health import HealthCheck
from kos.machined.services.logring import DEFAULT_CAPACITY, MACHINED, OWN_LOG, LogRing, LogStore
from kos.machined.services.runners import RunContext, Runner
from kos.resources.core import Resource, State
from kos.resources.runtime import ServiceSpec

log = structlog.get_logger(__name__)

OWNER = "supervisor"
EVENT_HISTORY = 64


class ServiceState(enum.Enum):
    WAITING = "Waiting"
    PREPARING = "Preparing"
    STARTING = "Starting"
    RUNNING = "Running"
    STOPPING = "Stopping"
    FINISHED = "Finished"
    FAILED = "Failed"
    SKIPPED = "Skipped"

    def __str__(self) -> str:
        return self.value


class RestartPolicy(enum.Enum):
    FOREVER = "forever"
    UNTIL_SUCCESS = "until-success"
    ONCE = "once"


@dataclass(frozen=True)
class BackoffPolicy:
    """Restart delays: ``initial`` growing by ``multiplier`` up to ``maximum``; a run that lasted
    ``reset_after`` seconds resets the delay."""

    initial: float = 0.2
    multiplier: float = 2.0
    maximum: float = 30.0
    reset_after: float = 30.0

    def make(self) -> Backoff:
        return Backoff(self.initial, multiplier=self.multiplier, jitter=0.0, maximum=self.maximum)


@dataclass
class ServiceDefinition:
    id: str
    runner: Runner
    depends_on: Sequence[Condition] = ()
    restart: RestartPolicy = RestartPolicy.FOREVER
    backoff: BackoffPolicy = BackoffPolicy()
    health: HealthCheck | None = None
    skip: Callable[[], Awaitable[str | None]] | None = None
    """Returns a reason to skip the service (state Skipped), or None to run it."""

    def __post_init__(self) -> None:
        if not self.id or "/" in self.id:
            raise ValueError(f"service id {self.id!r}: expected a non-empty name without '/'")


@dataclass(frozen=True)
class ServiceEvent:
    state: ServiceState
    message: str
    timestamp: float


@dataclass
class ServiceStatus:
    """The supervisor's view of one service (what ServiceList returns)."""

    id: str
    state: ServiceState = ServiceState.WAITING
    message: str = ""
    running: bool = False
    healthy: bool = False
    health_unknown: bool = True
    health_message: str = ""
    restarts: int = 0
    pid: int = 0
    restart_delays: list[float] = field(default_factory=list)
    events: collections.deque[ServiceEvent] = field(default_factory=lambda: collections.deque(maxlen=EVENT_HISTORY))

    def spec(self) -> ServiceSpec:
        return ServiceSpec(
            running=self.running,
            healthy=self.healthy,
            unknown=self.health_unknown,
            state=self.state.value,
            message=self.message,
            restarts=self.restarts,
            pid=self.pid,
        )


class _Service:
    def __init__(self, sup: Supervisor, definition: ServiceDefinition, ring: LogRing) -> None:
        self.sup = sup
        self.definition = definition
        self.ring = ring
        self.status = ServiceStatus(definition.id)
        self.log = log.bind(service=definition.id)
        self.scope: anyio.CancelScope | None = None
        self.done = anyio.Event()
        self.done.set()
        self.changed = anyio.Event()

    @property
    def active(self) -> bool:
        return not self.done.is_set()

    def transition(self, state: ServiceState, message: str) -> None:
        st = self.status
        st.state, st.message = state, message
        if state not in (ServiceState.RUNNING, ServiceState.STOPPING):
            st.running = False
            st.healthy = False
            st.health_unknown = True
            if state != ServiceState.STARTING:
                st.pid = 0
        st.events.append(ServiceEvent(state, message, time.time()))
        self.log.info("service state", state=str(state), message=message)
        self.notify()

    def notify(self) -> None:
        ev, self.changed = self.changed, anyio.Event()
        ev.set()
        self.sup._mark_dirty(self.definition.id)

    async def lifecycle(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        with anyio.CancelScope() as scope:
            self.scope = scope
            self.done = anyio.Event()
            task_status.started()
            try:
                await self._loop()
            except Exception as exc:  # a bug or an unexpected error: record, do not take machined down
                self.transition(ServiceState.FAILED, f"supervisor error: {exc!r}")
        if scope.cancel_called:
            self.transition(ServiceState.FINISHED, "service stopped")
        self.scope = None
        self.done.set()
        self.notify()

    async def _loop(self) -> None:
        d = self.definition
        backoff = d.backoff.make()
        while True:
            if d.skip is not None:
                reason = await d.skip()
                if reason:
                    self.transition(ServiceState.SKIPPED, reason)
                    return
            self.transition(ServiceState.WAITING, "waiting for dependencies" if d.depends_on else "starting")
            await all_of(d.depends_on, lambda c: self.transition(ServiceState.WAITING, f"waiting for {c}"))
            started_at = time.monotonic()
            code = await self._attempt()
            if code == 0:
                self.transition(ServiceState.FINISHED, "exited successfully")
                if d.restart != RestartPolicy.FOREVER:
                    return
            else:
                self.transition(ServiceState.FAILED, code if isinstance(code, str) else f"exited with code {code}")
                if d.restart == RestartPolicy.ONCE:
                    return
            if time.monotonic() - started_at >= d.backoff.reset_after:
                backoff.reset()
            delay = backoff.next()
            self.status.restart_delays.append(delay)
            self.status.restarts += 1
            self.transition(ServiceState.WAITING, f"restarting in {delay:.2f}s")
            await anyio.sleep(delay)

    async def _attempt(self) -> int | str:
        d = self.definition
        self.transition(ServiceState.PREPARING, "running pre-start tasks")
        try:
            await d.runner.prepare()
        except Exception as exc:
            return f"pre-start tasks failed: {exc}"
        self.transition(ServiceState.STARTING, "starting")
        async with anyio.create_task_group() as tg:

            def started(pid: int) -> None:
                self.status.pid = pid
                self.status.running = True
                self.transition(ServiceState.RUNNING, f"started (pid {pid})" if pid else "started (in-process)")
                if d.health is not None:
                    tg.start_soon(self._health_loop, d.health)

            def stopping(message: str) -> None:
                self.transition(ServiceState.STOPPING, message)

            ctx = RunContext(d.id, self.ring, started, stopping, f"{self.sup.cgroup_parent}/{d.id}")
            try:
                code: int | str = await d.runner.run(ctx)
            except Exception as exc:
                code = f"failed to run: {exc}"
            tg.cancel_scope.cancel()
        return code

    async def _health_loop(self, hc: HealthCheck) -> None:
        st = self.status
        await anyio.sleep(hc.initial_delay)
        while True:
            try:
                with anyio.fail_after(hc.timeout):
                    await hc.probe()
                ok, why = True, ""
            except Exception as exc:
                ok, why = False, (str(exc) or repr(exc))
            if st.health_unknown or ok != st.healthy or why != st.health_message:
                flipped = st.health_unknown or ok != st.healthy
                st.healthy, st.health_unknown, st.health_message = ok, False, why
                if flipped:
                    msg = "health check successful" if ok else f"health check failed: {why}"
                    st.message = msg
                    st.events.append(ServiceEvent(st.state, msg, time.time()))
                    self.log.info("service health", healthy=ok, message=msg)
                self.notify()
            await anyio.sleep(hc.healthy_interval if ok and hc.healthy_interval else hc.interval)


class Supervisor:
    """Owns the services' tasks; the API calls ``start``/``stop``/``restart``/``list``."""

    def __init__(
        self, state: State | None = None, *, log_capacity: int = DEFAULT_CAPACITY, cgroup_parent: str = "kos"
    ) -> None:
        if not cgroup_parent or "/" in cgroup_parent:
            raise ValueError(f"cgroup_parent {cgroup_parent!r}: expected one path component")
        self.state = state
        self.cgroup_parent = cgroup_parent
        self.logs = LogStore(log_capacity)
        self._services: dict[str, _Service] = {}
        self._tg: TaskGroup | None = None
        self._stack: AsyncExitStack | None = None
        self._dirty: set[str] = set()
        self._dirty_event = anyio.Event()

    async def __aenter__(self) -> Supervisor:
        self._stack = AsyncExitStack()
        self._tg = await self._stack.enter_async_context(anyio.create_task_group())
        if self.state is not None:
            self._tg.start_soon(self._publisher)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._stack is not None and self._tg is not None
        with anyio.CancelScope(shield=True):
            await self.stop_all()
            if self.state is not None:
                await self._flush()
        self._tg.cancel_scope.cancel()
        try:
            return await self._stack.__aexit__(et, e, tb)
        finally:
            self._tg = None

    # -- registry -------------------------------------------------------------------------------------
    def add(self, definition: ServiceDefinition) -> None:
        if definition.id in self._services:
            raise ValueError(f"service {definition.id!r} is already registered")
        svc = _Service(self, definition, self.logs.ring(definition.id))
        self._services[definition.id] = svc
        self._mark_dirty(definition.id)

    def _get(self, id: str) -> _Service:
        try:
            return self._services[id]
        except KeyError:
            known = ", ".join(sorted(self._services)) or "none"
            raise KeyError(f"service {id!r} is not registered (known: {known})") from None

    def definition(self, id: str) -> ServiceDefinition:
        return self._get(id).definition

    def runner(self, id: str) -> Runner:
        return self._get(id).definition.runner

    def is_active(self, id: str) -> bool:
        """Whether the service's lifecycle runs (from Waiting through Running, until stopped or done)."""
        return self._get(id).active

    def ids(self) -> list[str]:
        return sorted(self._services)

    def status(self, id: str) -> ServiceStatus:
        return self._get(id).status

    def list(self) -> list[ServiceStatus]:
        return [self._services[i].status for i in self.ids()]

    def log(self, id: str) -> LogRing:
        """A service's log, or machined's own (``machined``) once it has a line."""
        if id == MACHINED and id not in self._services and OWN_LOG.ring is not None:
            return OWN_LOG.ring
        self._get(id)
        return self.logs.ring(id)

    def log_ids(self) -> tuple[str, ...]:
        """What ``log`` serves: the services and machined itself."""
        return tuple(sorted({*self._services, *([MACHINED] if OWN_LOG.ring is not None else [])}))

    # -- operations -------------------------------------------------------------------------------------
    async def start(self, id: str) -> None:
        """Start the service's lifecycle (no-op when it is already active)."""
        svc = self._get(id)
        if svc.active:
            return
        if self._tg is None:
            raise RuntimeError("the supervisor is not running (use 'async with Supervisor(...)')")
        await self._tg.start(svc.lifecycle)

    async def stop(self, id: str) -> None:
        """Stop the service (graceful stop of its process) and wait until it is Finished."""
        svc = self._get(id)
        if svc.scope is not None:
            svc.scope.cancel()
        await svc.done.wait()

    async def restart(self, id: str) -> None:
        await self.stop(id)
        await self.start(id)

    async def stop_all(self) -> None:
        async with anyio.create_task_group() as tg:
            for id in self.ids():
                tg.start_soon(self.stop, id)

    # -- waiting --------------------------------------------------------------------------------------
    async def wait_for(self, id: str, predicate: Callable[[ServiceStatus], bool], *, timeout: float) -> ServiceStatus:
        """Wait until ``predicate(status)`` holds; TimeoutError names the last state seen."""
        svc = self._get(id)
        try:
            with anyio.fail_after(timeout):
                while not predicate(svc.status):
                    await svc.changed.wait()
        except TimeoutError:
            st = svc.status
            raise TimeoutError(
                f"service {id!r}: condition not met within {timeout:g}s (state {st.state}, message {st.message!r})"
            ) from None
        return svc.status

    async def wait_state(self, id: str, *states: ServiceState, timeout: float) -> ServiceStatus:
        return await self.wait_for(id, lambda s: s.state in states, timeout=timeout)

    async def wait_healthy(self, id: str, *, timeout: float) -> ServiceStatus:
        return await self.wait_for(
            id, lambda s: s.state == ServiceState.RUNNING and s.healthy and not s.health_unknown, timeout=timeout
        )

    # -- publishing -------------------------------------------------------------------------------------
    def _mark_dirty(self, id: str) -> None:
        self._dirty.add(id)
        self._dirty_event.set()

    async def _publisher(self) -> None:
        while True:
            await self._dirty_event.wait()
            await self._flush()

    async def _flush(self) -> None:
        assert self.state is not None
        while self._dirty:
            self._dirty_event = anyio.Event()
            dirty, self._dirty = self._dirty, set()
            for id in sorted(dirty):
                spec = self._services[id].status.spec()

                def apply(r: Resource[Any], spec: ServiceSpec = spec) -> None:
                    r.spec = spec

                try:
                    await self.state.modify(Resource.new(ServiceSpec(), id), apply, owner=OWNER)
                except Exception as exc:  # e.g. someone else owns the resource: keep supervising
                    log.error("cannot publish Service resource", service=id, error=str(exc))
