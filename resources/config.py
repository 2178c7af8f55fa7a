"""Config resources (namespace ``config``).

* ``MachineConfigs`` (sensitive): the machine config as YAML text. Id ``v1alpha1`` is the
  active config; id ``staged`` a config stored by a staged apply that becomes active at the
  next boot. ``spec.container()`` parses (and caches) the text into a
  ``kos.resources.machineconfig.ConfigContainer``.
* ``MachineTypes`` (id ``machine-type``): the machine's role: ``unknown`` until a config is
  loaded, then ``controlplane``/``worker`` (``init`` is a legacy control plane).
* ``ConfigFieldStatuses`` (id: the field's YAML path, e.g. ``machine.kernel.modules``): a
  field the active config sets that this node does not act on, with the reason (written by
  ``kos.controllers.system``); an applied field has none.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

from kos.resources.core import Spec, resource_type, spec_field

if typing.TYPE_CHECKING:
    from kos.resources.machineconfig import ConfigContainer

NAMESPACE = "config"

ACTIVE_ID = "v1alpha1"
STAGED_ID = "staged"
MACHINE_TYPE_ID = "machine-type"

MACHINE_TYPES = ("unknown", "init", "controlplane", "worker")

# parsed configs by (strictness, text): a parse costs milliseconds and specs are copied often
_CACHE: dict[str, ConfigContainer] = {}


@resource_type("MachineConfigs.config.kos.dev", namespace=NAMESPACE, aliases=["mc"], sensitive=True,
               print_columns=[("Version", "{.version}")])
@dataclass
class MachineConfigSpec(Spec):
    """A whole machine config, as (multi-document) YAML text."""

    config: str = spec_field(1, default="", sensitive=True)
    version: str = spec_field(2, default="v1alpha1")

    @classmethod
    def from_container(cls, container: ConfigContainer) -> MachineConfigSpec:
        return cls(config=container.to_yaml())

    def container(self, *, strict: bool = True) -> ConfigContainer:
        """The parsed config (raises ``ConfigErrors`` if the text does not load); shared, do not mutate."""
        from kos.resources.machineconfig import ConfigContainer

        key = f"{int(strict)}{self.config}"
        cached = _CACHE.get(key)
        if cached is None:
            cached = ConfigContainer.load(self.config, strict=strict)
            if len(_CACHE) > 16:
                _CACHE.clear()
            _CACHE[key] = cached
        return cached


CONTROL_PLANE_TYPES = ("controlplane", "init")


def is_control_plane(machine_type: str) -> bool:
    """Whether a machine of this type runs the control plane (``init`` is a bootstrapping one)."""
    return machine_type in CONTROL_PLANE_TYPES


@resource_type("MachineTypes.config.kos.dev", namespace=NAMESPACE, print_columns=[("Type", "{.machineType}")])
@dataclass
class MachineTypeSpec(Spec):
    """The role of the machine: unknown, init, controlplane or worker."""

    machine_type: str = spec_field(1, yaml="machineType", default="unknown")

    def __post_init__(self) -> None:
        if self.machine_type not in MACHINE_TYPES:
            choices = ", ".join(MACHINE_TYPES)
            raise ValueError(f"machineType: {self.machine_type!r} is invalid, expected one of {choices}")

    @property
    def is_control_plane(self) -> bool:
        return is_control_plane(self.machine_type)


@resource_type("ConfigFieldStatuses.config.kos.dev", namespace=NAMESPACE,
               print_columns=[("State", "{.state}"), ("Reason", "{.reason}")])
@dataclass
class ConfigFieldStatusSpec(Spec):
    """A config field set but not acted on here: ``state`` is ``unsupported``, ``reason`` why."""

    state: str = spec_field(1, default="unsupported")
    reason: str = spec_field(2, default="")
