"""``EnvironmentApplyController``: EnvironmentSpecs (``machine.env``) -> machined's own
environment -> EnvironmentStatuses.

The service runners start processes with machined's environment (containerd, etcd, the
kubelet), so every service started after the change sees the variables, as on Talos (where
``machine.env`` is machined's environment too). Names set earlier and no longer configured are
removed; a running service keeps its environment until it restarts.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any

from kos.controllers.runtime import ControllerRuntime
from kos.controllers.system.apply import ApplyController
from kos.resources.runtime import EnvironmentSpecSpec, EnvironmentStatusSpec


class EnvironmentApplyController(ApplyController):
    name = "system.EnvironmentApplyController"
    spec_type = EnvironmentSpecSpec
    status_type = EnvironmentStatusSpec

    def __init__(self, *, environ: MutableMapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    async def apply(self, rt: ControllerRuntime, id_: str, spec: Any, old: Any | None) -> Any:
        variables: dict[str, str] = spec.variables
        if old is not None:
            for name in old.names:
                if name not in variables:
                    self.environ.pop(name, None)
        for name, value in variables.items():
            self.environ[name] = value
        rt.logger.info("environment set", names=sorted(variables))
        return EnvironmentStatusSpec(names=sorted(variables))

    async def undo(self, rt: ControllerRuntime, id_: str, status: Any) -> None:
        for name in status.names:
            self.environ.pop(name, None)
