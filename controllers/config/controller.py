"""Config controllers.

* ``MachineConfigController``: acquires the config at boot (``ConfigManager.acquire``), then
  keeps ``MachineConfigs`` (``v1alpha1``: in effect; ``staged``: waiting for the next start)
  in line with the manager, and rolls a try-mode config back when its deadline passes (a
  timer wakes the controller).
* ``MachineTypeController``: ``MachineConfigs/v1alpha1`` -> ``MachineTypes/machine-type``
  (``unknown`` without a config), whoever publishes the config.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import anyio
import structlog

from kos.controllers.config.manager import ConfigManager
from kos.controllers.runtime import Controller, ControllerRuntime, Input, Output
from kos.resources.config import ACTIVE_ID, MACHINE_TYPE_ID, STAGED_ID, MachineConfigSpec, MachineTypeSpec
from kos.resources.config import MACHINE_TYPES as MACHINE_TYPE_NAMES
from kos.resources.config import NAMESPACE as CONFIG_NS
from kos.resources.core import Kind, Resource

log = structlog.get_logger("kos.controllers.config")

MACHINE_CONFIGS = Kind(CONFIG_NS, MachineConfigSpec.definition.type)
MACHINE_TYPES = Kind(CONFIG_NS, MachineTypeSpec.definition.type)


def _text(text: str) -> Any:
    def apply(r: Resource[Any]) -> None:
        r.spec.config = text

    return apply


def _type(machine_type: str) -> Any:
    def apply(r: Resource[Any]) -> None:
        r.spec.machine_type = machine_type

    return apply


class _Writer(Protocol):
    async def put(self, id: str, text: str) -> None: ...

    async def remove_others(self, keep: set[str]) -> None: ...


async def publish_loop(manager: ConfigManager, wait: Callable[[], Awaitable[None]], writer: _Writer) -> None:
    """Acquire (once), then publish what ``manager`` holds after every change (``wait``
    returns when one is due) and roll a try-mode config back at its deadline."""
    m = manager
    if not m.acquired.is_set():
        await m.acquire()
    while True:
        deadline = m.try_deadline
        delay = math.inf if deadline is None else max(0.0, deadline - time.time())
        with anyio.move_on_after(delay):
            await wait()
        m.expire_try()
        generation = m.generation
        keep: set[str] = set()
        if m.active is not None:
            await writer.put(ACTIVE_ID, m.active.text)
            keep.add(ACTIVE_ID)
        if m.staged_text:
            await writer.put(STAGED_ID, m.staged_text)
            keep.add(STAGED_ID)
        await writer.remove_others(keep)
        m.mark_published(generation)


class _RuntimeWriter:
    def __init__(self, rt: ControllerRuntime) -> None:
        self.rt = rt

    async def put(self, id: str, text: str) -> None:
        await self.rt.modify(Resource.new(MachineConfigSpec(), id), _text(text))

    async def remove_others(self, keep: set[str]) -> None:
        for r in await self.rt.list(MACHINE_CONFIGS):
            if r.id not in keep and r.metadata.owner == self.rt.name:
                await self.rt.destroy(r.pointer)


class MachineConfigController(Controller):
    name = "config.MachineConfigController"

    def __init__(self, manager: ConfigManager) -> None:
        self.manager = manager

    def inputs(self) -> Sequence[Input]:
        return ()

    def outputs(self) -> Sequence[Output]:
        return (Output(MACHINE_CONFIGS.type),)

    async def run(self, rt: ControllerRuntime) -> None:
        self.manager.attach(rt.queue_reconcile)
        await publish_loop(self.manager, rt.wait, _RuntimeWriter(rt))


class MachineTypeController(Controller):
    name = "config.MachineTypeController"

    def inputs(self) -> Sequence[Input]:
        return (Input(CONFIG_NS, MACHINE_CONFIGS.type, ACTIVE_ID),)

    def outputs(self) -> Sequence[Output]:
        return (Output(MACHINE_TYPES.type),)

    async def run(self, rt: ControllerRuntime) -> None:
        async for _ in rt.events():
            mc = await rt.get_or_none(Resource.new(MachineConfigSpec(), ACTIVE_ID).pointer)
            machine_type = "unknown"
            if mc is not None:
                try:
                    machine_type = mc.spec.container(strict=False).machine_type or "unknown"
                except ValueError as exc:
                    log.error("machine config does not load; machine type unknown", error=str(exc))
            if machine_type not in MACHINE_TYPE_NAMES:
                machine_type = "unknown"
            await rt.modify(Resource.new(MachineTypeSpec(), MACHINE_TYPE_ID), _type(machine_type))
