"""Runtime resources owned by the service supervisor (namespace ``runtime``).

* ``Services``: one per supervised service (etcd, containerd, ...): its lifecycle state,
  whether it is running, healthy or of unknown health, and the last transition message.
  ``kosctl get services`` prints these; the supervisor is their only writer.
* Machine-level settings of the config, each a spec (desired) and a status (what the node
  did): ``KernelParamSpecs``/``KernelParamStatuses`` (sysctls, sysfs), ``MachineFileSpecs``/
  ``MachineFileStatuses``, ``EnvironmentSpecs``/``EnvironmentStatuses``, ``RegistryHostSpecs``/
  ``RegistryHostStatuses`` (containerd hosts.toml), ``LogDestinationSpecs``/
  ``LogDestinationStatuses`` (written by ``kos.controllers.system``).
"""

from __future__ import annotations

from dataclasses import dataclass

from kos.resources.core import Kind, Spec, resource_type, spec_field

NAMESPACE = "runtime"

SERVICE_STATES = ("Waiting", "Preparing", "Starting", "Running", "Stopping", "Finished", "Failed", "Skipped")


@resource_type(
    "Services.runtime.kos.dev",
    namespace=NAMESPACE,
    print_columns=[
        ("State", "{.state}"),
        ("Running", "{.running}"),
        ("Healthy", "{.healthy}"),
        ("Health Unknown", "{.unknown}"),
    ],
)
@dataclass
class ServiceSpec(Spec):
    """What the supervisor last observed about one service (Talos ``ServiceSpec`` + state)."""

    running: bool = spec_field(1, default=False)
    healthy: bool = spec_field(2, default=False)
    unknown: bool = spec_field(3, default=True)
    state: str = spec_field(4, default="Waiting")
    message: str = spec_field(5, default="")
    restarts: int = spec_field(6, default=0)
    pid: int = spec_field(7, default=0)

    def __post_init__(self) -> None:
        if self.state not in SERVICE_STATES:
            expected = ", ".join(SERVICE_STATES)
            raise ValueError(f"Service.state: unknown value {self.state!r}, expected one of {expected}")


SERVICES = Kind(NAMESPACE, ServiceSpec.definition.type)


# -- machine status (written by the sequencer, kos.machined.sequencer) -------------------------

MACHINE_STAGES = (
    "unknown", "booting", "installing", "maintenance", "running", "rebooting", "shuttingDown",
    "resetting", "upgrading",
)
MACHINE_STATUS_ID = "machine"


@dataclass
class UnmetCondition(Spec):
    """One reason the machine is not ready (``name``: what is checked, ``reason``: why not)."""

    name: str = spec_field(1, default="")
    reason: str = spec_field(2, default="")


@resource_type(
    "MachineStatuses.runtime.kos.dev",
    namespace=NAMESPACE,
    print_columns=[("Stage", "{.stage}"), ("Ready", "{.ready}")],
)
@dataclass
class MachineStatusSpec(Spec):
    """The machine's lifecycle stage and readiness (id ``machine``), like Talos's MachineStatus."""

    stage: str = spec_field(1, default="unknown")
    ready: bool = spec_field(2, default=False)
    unmet_conditions: list[UnmetCondition] = spec_field(3, yaml="unmetConditions", default_factory=list)
    phase: str = spec_field(4, default="")
    task: str = spec_field(5, default="")

    def __post_init__(self) -> None:
        if self.stage not in MACHINE_STAGES:
            expected = ", ".join(MACHINE_STAGES)
            raise ValueError(f"MachineStatus.stage: unknown value {self.stage!r}, expected one of {expected}")


MACHINE_STATUSES = Kind(NAMESPACE, MachineStatusSpec.definition.type)


# -- machine-level settings from the config (kos.controllers.system) --------------------------
#
#   MachineConfig (machine.sysctls, machine.sysfs) -> KernelParamSpecs  -> /proc/sys, /sys -> KernelParamStatuses
#   MachineConfig (machine.files)                  -> MachineFileSpecs  -> files           -> MachineFileStatuses
#   MachineConfig (machine.env)                    -> EnvironmentSpecs  -> machined's env  -> EnvironmentStatuses
#   MachineConfig (machine.registries)             -> RegistryHostSpecs -> hosts.toml      -> RegistryHostStatuses
#   MachineConfig (machine.logging)                -> LogDestinationSpecs -> log shipping  -> LogDestinationStatuses

KERNEL_PARAM_STATES = ("applied", "unsupported", "failed")


@resource_type("KernelParamSpecs.runtime.kos.dev", namespace=NAMESPACE,
               print_columns=[("Value", "{.value}"), ("Source", "{.source}")])
@dataclass
class KernelParamSpecSpec(Spec):
    """One kernel parameter to set (id: ``net.ipv4.ip_forward`` for a sysctl, ``sys.<key>`` for
    sysfs); ``path`` is below the root (``proc/sys/net/ipv4/ip_forward``)."""

    value: str = spec_field(1, default="")
    path: str = spec_field(2, default="")
    source: str = spec_field(3, default="")


@resource_type("KernelParamStatuses.runtime.kos.dev", namespace=NAMESPACE,
               print_columns=[("State", "{.state}"), ("Current", "{.current}"), ("Reason", "{.reason}")])
@dataclass
class KernelParamStatusSpec(Spec):
    """What the node did with a KernelParamSpec: ``applied`` (``current`` read back after the
    write; ``default`` is the value before the first write, restored when the spec goes),
    ``unsupported`` (the node does not own it, ``reason`` says why) or ``failed``."""

    state: str = spec_field(1, default="applied")
    current: str = spec_field(2, default="")
    default: str = spec_field(3, default="")
    reason: str = spec_field(4, default="")
    path: str = spec_field(5, default="")

    def __post_init__(self) -> None:
        if self.state not in KERNEL_PARAM_STATES:
            expected = ", ".join(KERNEL_PARAM_STATES)
            raise ValueError(f"KernelParamStatus.state: {self.state!r}, expected one of {expected}")


@resource_type("MachineFileSpecs.runtime.kos.dev", namespace=NAMESPACE, sensitive=True,
               print_columns=[("Op", "{.op}"), ("Mode", "{.permissions}")])
@dataclass
class MachineFileSpecSpec(Spec):
    """A file from ``machine.files`` (id: its absolute path): ``op`` create, append or overwrite."""

    path: str = spec_field(1, default="")
    content: str = spec_field(2, default="", sensitive=True)
    permissions: int = spec_field(3, default=0o644)
    op: str = spec_field(4, default="create")
    source: str = spec_field(5, default="")


@resource_type("MachineFileStatuses.runtime.kos.dev", namespace=NAMESPACE,
               print_columns=[("State", "{.state}"), ("SHA256", "{.sha256}")])
@dataclass
class MachineFileStatusSpec(Spec):
    """The file as written (``sha256`` of its content after the op) or why not (``failed``)."""

    state: str = spec_field(1, default="applied")
    sha256: str = spec_field(2, default="")
    reason: str = spec_field(3, default="")
    path: str = spec_field(4, default="")


@resource_type("EnvironmentSpecs.runtime.kos.dev", namespace=NAMESPACE, sensitive=True,
               print_columns=[("Variables", "{.variables}")])
@dataclass
class EnvironmentSpecSpec(Spec):
    """``machine.env`` (id ``machine``): variables every service machined starts inherits."""

    variables: dict[str, str] = spec_field(1, default_factory=dict, sensitive=True)


@resource_type("EnvironmentStatuses.runtime.kos.dev", namespace=NAMESPACE, print_columns=[("Names", "{.names}")])
@dataclass
class EnvironmentStatusSpec(Spec):
    """The names set in machined's environment (id ``machine``)."""

    names: list[str] = spec_field(1, default_factory=list)


@resource_type("RegistryHostSpecs.runtime.kos.dev", namespace=NAMESPACE, sensitive=True,
               print_columns=[("Endpoints", "{.endpoints}")])
@dataclass
class RegistryHostSpecSpec(Spec):
    """containerd's ``hosts.toml`` for one registry (id: the registry host, ``_default`` for
    ``*``), rendered from ``machine.registries`` mirrors and config."""

    server: str = spec_field(1, default="")
    endpoints: list[str] = spec_field(2, default_factory=list)
    hosts_toml: str = spec_field(3, yaml="hostsToml", default="", sensitive=True)
    files: dict[str, str] = spec_field(4, default_factory=dict, sensitive=True)
    """Extra files next to hosts.toml (client certificates/keys, CAs): name -> PEM text."""


@resource_type("RegistryHostStatuses.runtime.kos.dev", namespace=NAMESPACE,
               print_columns=[("Path", "{.path}"), ("SHA256", "{.sha256}")])
@dataclass
class RegistryHostStatusSpec(Spec):
    """Where the registry's hosts.toml was written and its digest (or why not)."""

    path: str = spec_field(1, default="")
    sha256: str = spec_field(2, default="")
    state: str = spec_field(3, default="applied")
    reason: str = spec_field(4, default="")


@resource_type("LogDestinationSpecs.runtime.kos.dev", namespace=NAMESPACE, print_columns=[("Format", "{.format}")])
@dataclass
class LogDestinationSpecSpec(Spec):
    """One ``machine.logging.destinations`` entry (id: the endpoint URL)."""

    endpoint: str = spec_field(1, default="")
    format: str = spec_field(2, default="json_lines")
    extra_tags: dict[str, str] = spec_field(3, yaml="extraTags", default_factory=dict)


@resource_type("LogDestinationStatuses.runtime.kos.dev", namespace=NAMESPACE,
               print_columns=[("Sent", "{.sent}"), ("Dropped", "{.dropped}"), ("Error", "{.error}")])
@dataclass
class LogDestinationStatusSpec(Spec):
    """Lines sent to a destination, lines dropped (queue full or unreachable), last error."""

    sent: int = spec_field(1, default=0)
    dropped: int = spec_field(2, default=0)
    error: str = spec_field(3, default="")


KERNEL_PARAM_SPECS = Kind(NAMESPACE, KernelParamSpecSpec.definition.type)
KERNEL_PARAM_STATUSES = Kind(NAMESPACE, KernelParamStatusSpec.definition.type)
MACHINE_FILE_SPECS = Kind(NAMESPACE, MachineFileSpecSpec.definition.type)
MACHINE_FILE_STATUSES = Kind(NAMESPACE, MachineFileStatusSpec.definition.type)
ENVIRONMENT_SPECS = Kind(NAMESPACE, EnvironmentSpecSpec.definition.type)
ENVIRONMENT_STATUSES = Kind(NAMESPACE, EnvironmentStatusSpec.definition.type)
REGISTRY_HOST_SPECS = Kind(NAMESPACE, RegistryHostSpecSpec.definition.type)
REGISTRY_HOST_STATUSES = Kind(NAMESPACE, RegistryHostStatusSpec.definition.type)
LOG_DESTINATION_SPECS = Kind(NAMESPACE, LogDestinationSpecSpec.definition.type)
LOG_DESTINATION_STATUSES = Kind(NAMESPACE, LogDestinationStatusSpec.definition.type)


@resource_type("BootArgsStatuses.runtime.kos.dev", namespace=NAMESPACE,
               print_columns=[("State", "{.state}"), ("Args", "{.args}")])
@dataclass
class BootArgsStatusSpec(Spec):
    """``machine.install.extraKernelArgs`` on the system disk's boot entries (id ``extra``):
    ``written`` (in effect from the next boot), ``active`` (the running kernel has them),
    ``unsupported`` (no boot loader of kos's: ``reason``) or ``failed``."""

    args: list[str] = spec_field(1, default_factory=list)
    state: str = spec_field(2, default="")
    disk: str = spec_field(3, default="")
    reason: str = spec_field(4, default="")


BOOT_ARGS_STATUSES = Kind(NAMESPACE, BootArgsStatusSpec.definition.type)
