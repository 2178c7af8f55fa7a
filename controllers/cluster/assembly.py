"""The cluster controllers a node registers::

    for c in cluster_controllers(state_dir=Path("/system/state")):
        runtime.register(c)

and on control planes ``kos.controllers.cluster.discovery.run_registry(state, wakeup=...)`` in a task.
"""

from __future__ import annotations

from pathlib import Path

from kos.controllers.cluster.discovery import REGISTRY_PORT, ClusterDiscoveryController, Wakeup
from kos.controllers.cluster.local import IdentityController, LocalAffiliateController
from kos.controllers.cluster.members import member_controller
from kos.controllers.runtime import Controller


def cluster_controllers(*, state_dir: Path, discovery_interval: float = 5.0,
                        registry_port: int = REGISTRY_PORT, discovery_wakeup: Wakeup | None = None) -> list[Controller]:
    """``discovery_wakeup``: the same object given to ``run_registry(wakeup=...)`` on a control
    plane, so its own Members follow a new node at once."""
    return [
        IdentityController(state_dir),
        LocalAffiliateController(),
        ClusterDiscoveryController(interval=discovery_interval, port=registry_port, wakeup=discovery_wakeup),
        member_controller(),
    ]
