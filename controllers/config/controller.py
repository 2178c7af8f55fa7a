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
from collections.abc import Sequence
from typing import Any

import anyio
import structlog

from kos.controllers.config.manager import ConfigManager
from kos.controllers.runtime.adapter import ControllerRuntime
from kos.controllers.runtime.controller import Controller, Input, Output
from kos.resources.config import ACTIVE_ID, MACHINE_TYPE_ID, STAGED_ID, MachineConfigSpec, MachineTypeSpec
from kos.resources.config import MACHINE_TYPES as MACHINE_TYPE_NAMES
from kos.resources.config import NAMESPACE as CONFIG_NS
from kos.resources.core.metadata import Kind
from kos.resources.core.resource import Resource

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


class MachineConfigController(Controller):
    name = "config.MachineConfigController"

    def __init__(self, manager: ConfigManager) -> None:
        self.manager = manager

    def inputs(self) -> Sequence[Input]:
        return ()

    def outputs(self) -> Sequence[Output]:
        return (Output(MACHINE_CONFIGS.type),)

    async def run(self, rt: ControllerRuntime) -> None:
        m = self.manager
        m.attach(rt.queue_reconcile)
        if not m.acquired.is_set():
            await m.acquire()
        while True:
            deadline = m.try_deadline
            delay = math.inf if deadline is None else max(0.0, deadline - time.time())
            with anyio.move_on_after(delay):
                await rt.wait()
            m.expire_try()
            generation = m.generation
            rt.start_tracking_outputs()
            active = m.active
            if active is not None:
                await rt.modify(Resource.new(MachineConfigSpec(), ACTIVE_ID), _text(active.text))
            if m.staged_text:
                await rt.modify(Resource.new(MachineConfigSpec(), STAGED_ID), _text(m.staged_text))
            await rt.cleanup_outputs(MACHINE_CONFIGS)
            m.mark_published(generation)


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
