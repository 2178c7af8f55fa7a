"""``config_field_status_controller(host)``: the active MachineConfig -> ``ConfigFieldStatuses``,
one per field the config sets that this node does not act on (``kos.controllers.system.fields``),
so ``kosctl get configfieldstatuses`` shows what was accepted but has no effect here, and why."""

from __future__ import annotations

from kos.controllers.system.configspecs import ConfigSpecsController
from kos.controllers.system.fields import Host, not_acted_on
from kos.resources.config import ConfigFieldStatusSpec
from kos.resources.core import Spec
from kos.resources.machineconfig import ConfigContainer


def config_field_status_controller(host: Host) -> ConfigSpecsController:
    def render(c: ConfigContainer) -> dict[str, Spec]:
        return {path: ConfigFieldStatusSpec(state="unsupported", reason=reason) for path, reason in
                not_acted_on(c, host)}

    return ConfigSpecsController("system.ConfigFieldStatusController", ConfigFieldStatusSpec, render)
