"""Machine-level settings of the config, as Talos applies them: kernel parameters
(``machine.sysctls``/``sysfs``), ``machine.files``, ``machine.env``, registry mirrors and
config (containerd ``hosts.toml``), ``machine.logging`` (machined's log shipped over TCP/UDP),
and the registry of every config field (``fields``) with what the node does with it, published
as ``ConfigFieldStatuses`` for what it does not act on here.

Flow: MachineConfig -> ``*Specs`` (``render``, pure) -> apply controllers -> ``*Statuses``.
"""

from typing import TYPE_CHECKING

from kos.resources.lazy import surface, table_of

if TYPE_CHECKING:
    from kos.controllers.system.assembly import hosts_dir, system_controllers
    from kos.controllers.system.fields import (
        FIELDS,
        SUBFIELDS,
        Host,
        Identity,
        Reads,
        Unsupported,
        entry,
        fields_reference,
        not_acted_on,
        schema_paths,
    )
    from kos.controllers.system.logship import SHIPPER, LogShipper

__getattr__ = surface(
    __name__,
    globals(),
    table_of(
        {
            "assembly": (
                "hosts_dir",
                "system_controllers",
            ),
            "fields": (
                "FIELDS",
                "SUBFIELDS",
                "Host",
                "Identity",
                "Reads",
                "Unsupported",
                "entry",
                "fields_reference",
                "not_acted_on",
                "schema_paths",
            ),
            "logship": (
                "SHIPPER",
                "LogShipper",
            ),
        }
    ),
)

__all__ = [
    "FIELDS",
    "SHIPPER",
    "SUBFIELDS",
    "Host",
    "Identity",
    "LogShipper",
    "Reads",
    "Unsupported",
    "entry",
    "fields_reference",
    "hosts_dir",
    "not_acted_on",
    "schema_paths",
    "system_controllers",
]
