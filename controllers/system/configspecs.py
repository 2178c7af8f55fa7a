"""``ConfigSpecsController``: the active MachineConfig -> one kind of spec resources, through a
pure render (``kos.controllers.system.render``). Without a config the specs go; a config the
render refuses (``ValueError``) is logged and leaves the previous specs as they were."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kos.controllers.runtime import Controller, ControllerRuntime, Input, Output, OutputKind, kind_of
from kos.controllers.system.render import Render
from kos.resources.config import ACTIVE_ID, MachineConfigSpec
from kos.resources.config import NAMESPACE as CONFIG_NS
from kos.resources.core import Kind, Phase, Pointer, Resource
from kos.resources.machineconfig import ConfigErrors

MACHINE_CONFIG = Pointer(CONFIG_NS, MachineConfigSpec.definition.type, ACTIVE_ID)


def _set(spec: Any) -> Any:
    def apply(r: Resource[Any]) -> None:
        r.spec = spec

    return apply


class ConfigSpecsController(Controller):
    def __init__(self, name: str, out_spec: type[Any], render: Render) -> None:
        self.name = name
        self.out_kind: Kind = kind_of(out_spec)
        self.render = render

    def inputs(self) -> Sequence[Input]:
        return (Input(MACHINE_CONFIG.namespace, MACHINE_CONFIG.type, ACTIVE_ID),)

    def outputs(self) -> Sequence[Output]:
        return (Output(self.out_kind.type, OutputKind.EXCLUSIVE),)

    async def run(self, rt: ControllerRuntime) -> None:
        async for _ in rt.events():
            rt.start_tracking_outputs()
            r = await rt.get_or_none(MACHINE_CONFIG)
            if r is not None and r.metadata.phase == Phase.RUNNING:
                try:
                    specs = self.render(r.spec.container())
                except (ValueError, ConfigErrors) as exc:
                    rt.logger.error("cannot render the config, keeping the previous specs", error=str(exc))
                    rt.reset_restart_backoff()
                    continue
                for id_, spec in specs.items():
                    await rt.modify(Resource.new(type(spec)(), id_, namespace=self.out_kind.namespace), _set(spec))
            await rt.cleanup_outputs(self.out_kind)
            rt.reset_restart_backoff()
