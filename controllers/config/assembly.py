"""The config controllers a node registers::

    manager = ConfigManager(state_dir, validation_mode="container", cmdline=..., reboot_hook=...)
    for c in config_controllers(config_manager=manager):
        runtime.register(c)
    MachineService(config=ManagedConfigStore(manager), ...)

The same ``ConfigManager`` must back the controller and ApplyConfiguration.
"""

from __future__ import annotations

from kos.controllers.config.controller import MachineConfigController, MachineTypeController
from kos.controllers.config.manager import ConfigManager
from kos.controllers.runtime import Controller


def config_controllers(*, config_manager: ConfigManager | None = None) -> list[Controller]:
    """With a manager: acquisition + MachineConfigs + MachineType. Without one (machined
    publishes MachineConfigs itself): only the derived MachineType."""
    out: list[Controller] = [MachineTypeController()]
    if config_manager is not None:
        out.insert(0, MachineConfigController(config_manager))
    return out
