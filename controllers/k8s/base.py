"""The shape every k8s controller shares: on each trigger, reconcile all outputs, then
destroy owned outputs this round did not write. A render error (bad config, missing
material) is logged with its message and leaves the previous outputs untouched, so a
rejected change never tears down a working kubelet or control plane."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kos.controllers.runtime import Controller, ControllerRuntime, Output, OutputKind
from kos.resources.config import ACTIVE_ID, MachineConfigSpec, MachineTypeSpec
from kos.resources.core import Kind, Phase
from kos.resources.machineconfig import ConfigContainer, ConfigErrors
from kos.resources.machineconfig.v1alpha1 import Config

MACHINE_CONFIGS = Kind("config", MachineConfigSpec.definition.type)
MACHINE_TYPES = Kind("config", MachineTypeSpec.definition.type)
MACHINE_TYPE_ID = "machine-type"


class RenderError(ValueError):
    """Raised by a reconcile when its inputs cannot be rendered; outputs stay as they were."""


RENDER_ERRORS: tuple[type[Exception], ...] = (ValueError, ConfigErrors)


class K8sController(Controller):
    """Subclasses set ``name``, ``output_kinds`` and implement ``inputs`` and ``reconcile``."""

    output_kinds: Sequence[Kind] = ()

    def outputs(self) -> Sequence[Output]:
        return [Output(k.type, OutputKind.EXCLUSIVE) for k in self.output_kinds]

    async def run(self, rt: ControllerRuntime) -> None:
        async for _ in rt.events():
            rt.start_tracking_outputs()
            try:
                await self.reconcile(rt)
            except RENDER_ERRORS as exc:
                rt.logger.error("cannot render, keeping the previous outputs", error=str(exc))
                rt.reset_restart_backoff()
                continue
            await rt.cleanup_outputs(*self.output_kinds)

    async def reconcile(self, rt: ControllerRuntime) -> None:
        raise NotImplementedError


async def machine_config(rt: ControllerRuntime) -> Config | None:
    """The active v1alpha1 config, or None when there is none (yet)."""
    r = await rt.get_or_none(MACHINE_CONFIGS.pointer(ACTIVE_ID))
    if r is None or r.metadata.phase != Phase.RUNNING:
        return None
    spec: MachineConfigSpec = r.spec
    return spec.container().v1alpha1


async def machine_container(rt: ControllerRuntime) -> ConfigContainer | None:
    """The active config (every document), or None when there is none (yet)."""
    r = await rt.get_or_none(MACHINE_CONFIGS.pointer(ACTIVE_ID))
    if r is None or r.metadata.phase != Phase.RUNNING:
        return None
    spec: MachineConfigSpec = r.spec
    return spec.container()


async def is_control_plane(rt: ControllerRuntime) -> bool:
    r = await rt.get_or_none(MACHINE_TYPES.pointer(MACHINE_TYPE_ID))
    return r is not None and bool(r.spec.is_control_plane)


async def running_spec(rt: ControllerRuntime, kind: Kind, id: str) -> Any:
    r = await rt.get_or_none(kind.pointer(id))
    if r is None or r.metadata.phase != Phase.RUNNING:
        return None
    return r.spec
