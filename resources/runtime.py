"""Runtime resources owned by the service supervisor (namespace ``runtime``).

* ``Services``: one per supervised service (etcd, containerd, ...): its lifecycle state,
  whether it is running, healthy or of unknown health, and the last transition message.
  ``kosctl get services`` prints these; the supervisor is their only writer.
"""

from __future__ import annotations

from dataclasses import dataclass

from kos.resources.core.definition import resource_type
from kos.resources.core.metadata import Kind
from kos.resources.core.spec import Spec, spec_field

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
