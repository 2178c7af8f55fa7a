"""``TimeSyncController``: merged ``TimeServerSpecs/timeservers`` -> SNTP queries ->
``TimeStatuses/node``.

Every ``interval`` seconds (NTP is a polling protocol) the servers are asked in order until one
answers. With ``adjust=True`` an offset of at least ``step_threshold`` seconds steps the clock
(``clock_settime``); smaller offsets are left to drift (no slewing yet). With ``adjust=False``
(container mode: the clock belongs to the host) it only measures. The status is ``synced`` once a
server answered; when none answers the error names every server's failure. A change of the
server list restarts the polling at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio

from kos.controllers.runtime import Controller, ControllerRuntime, Input, Output, OutputKind
from kos.platform.network.sntp import Sample, SNTPError, query, step_clock
from kos.resources.core import Pointer, Resource
from kos.resources.network import NAMESPACE, TIME_STATUSES, TIMESERVER_SPECS, TimeStatusSpec


class TimeSyncController(Controller):
    name = "network.TimeSyncController"

    def __init__(self, netns: str | None = None, *, adjust: bool = False, interval: float = 64.0,
                 step_threshold: float = 0.4, timeout: float = 2.0, port: int = 123) -> None:
        self.netns = netns
        self.adjust = adjust
        self.interval = interval
        self.step_threshold = step_threshold
        self.timeout = timeout
        self.port = port
        self.steps = 0

    def inputs(self) -> Sequence[Input]:
        return (Input(TIMESERVER_SPECS.namespace, TIMESERVER_SPECS.type, "timeservers"),)

    def outputs(self) -> Sequence[Output]:
        return (Output(TIME_STATUSES.type, OutputKind.EXCLUSIVE),)

    async def run(self, rt: ControllerRuntime) -> None:
        async with anyio.create_task_group() as tg:
            current: tuple[str, ...] | None = None
            scope: anyio.CancelScope | None = None
            async for _ in rt.events():
                spec = await rt.get_or_none(Pointer(TIMESERVER_SPECS.namespace, TIMESERVER_SPECS.type, "timeservers"))
                servers = tuple(spec.spec.time_servers) if spec is not None else ()
                if servers == current:
                    continue
                if scope is not None:
                    scope.cancel()
                current = servers
                scope = anyio.CancelScope()
                tg.start_soon(self._poll, rt, servers, scope)

    async def _poll(self, rt: ControllerRuntime, servers: tuple[str, ...], scope: anyio.CancelScope) -> None:
        with scope:
            while True:
                await self.sync_once(rt, servers)
                await anyio.sleep(self.interval)

    async def sync_once(self, rt: ControllerRuntime, servers: tuple[str, ...]) -> None:
        errors: list[str] = []
        sample: Sample | None = None
        for server in servers:
            try:
                sample = await query(self.netns, server, port=self.port, timeout=self.timeout)
                break
            except SNTPError as e:
                errors.append(str(e))
        if sample is None:
            message = "; ".join(errors) or "no time servers"

            def failed(s: TimeStatusSpec) -> None:
                s.error = message
                s.adjusted = self.adjust

            await self._publish(rt, failed)
            rt.logger.warning("time: no server answered", errors=errors)
            return
        offset = sample.offset
        if self.adjust and abs(offset) >= self.step_threshold:
            await anyio.to_thread.run_sync(step_clock, offset)
            self.steps += 1
            rt.logger.info("time: clock stepped", offset=offset, server=sample.server)
            offset = 0.0
        status = TimeStatusSpec(synced=True, offset=round(offset, 6), delay=round(sample.delay, 6),
                                server=sample.server, stratum=sample.stratum, adjusted=self.adjust, steps=self.steps)
        await self._publish(rt, lambda s: s.__dict__.update(status.__dict__))

    async def _publish(self, rt: ControllerRuntime, change: Any) -> None:
        def fill(r: Resource[Any]) -> None:
            change(r.spec)

        await rt.modify(Resource.new(TimeStatusSpec(), "node", namespace=NAMESPACE), fill)
