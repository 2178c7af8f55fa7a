"""``ConfigSpecsController``: the active MachineConfig -> one kind of spec resources, through a
pure render (``kos.controllers.system.render``): a typed 1:N ``SpecsTransformController``. Without a
config the specs are torn down and destroyed; a config the render refuses (``ValueError``) is
logged and leaves the previous specs as they were."""

from __future__ import annotations

from kos.controllers.runtime import SpecsTransformController, kind_of
from kos.controllers.system.render import Render
from kos.resources.config import ACTIVE_ID, MachineConfigSpec
from kos.resources.config import NAMESPACE as CONFIG_NS
from kos.resources.core import Pointer, Spec
from kos.resources.machineconfig import ConfigErrors

MACHINE_CONFIG = Pointer(CONFIG_NS, MachineConfigSpec.definition.type, ACTIVE_ID)


class ConfigSpecsController(SpecsTransformController[MachineConfigSpec, Spec]):
    """The active MachineConfig -> ``out_spec`` resources by id, through ``render``."""

    def __init__(self, name: str, out_spec: type[Spec], render: Render) -> None:
        super().__init__(name, kind_of(MachineConfigSpec), ACTIVE_ID, out_spec, kind_of(out_spec),
                         lambda mc: render(mc.container()), keep_on=(ValueError, ConfigErrors),
                         keep_message="cannot render the config, keeping the previous specs")
