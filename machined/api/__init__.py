"""machined's machine-API extensions: the servicers that need the node's domain logic.

``kos.apis.server`` holds the protocol pieces and the generic State/Machine servers; the
handlers here plug into ``MachineService(extensions=[...])`` and are assembled by the node:

* ``EtcdAPI`` (``etcd``): Bootstrap and the Etcd* RPCs, on the etcd controllers' flows;
* ``LifecycleService`` (``lifecycle``): Reboot, Shutdown, Reset, Upgrade, Rollback;
* ``ContainersAPI`` (``containers``): the Containers RPC, through containerd's ``ctr``;
* ``ClusterHealthAPI`` (``health``): the ClusterHealthCheck RPC;
* the operator's daily tools: ``FilesAPI`` (``files``), ``DiagnosticsAPI``, ``DisksAPI``,
  ``EtcdMaintenanceAPI`` (``etcdmaint``), ``StatsAPI``, ``ImagesAPI``, ``PodLogsAPI``
  (``podlogs``: Kubernetes containers' logs, ``kosctl logs -k``).
"""

from typing import TYPE_CHECKING

from kos.resources.lazy import surface, table_of

if TYPE_CHECKING:
    from kos.machined.api.containers import ContainersAPI, parse_table
    from kos.machined.api.diagnostics import DiagnosticsAPI
    from kos.machined.api.disks import DisksAPI
    from kos.machined.api.etcd import EtcdAPI
    from kos.machined.api.etcdmaint import EtcdMaintenanceAPI
    from kos.machined.api.files import FilePolicy, FilesAPI
    from kos.machined.api.health import ClusterHealthAPI, check_address, wait_timeout
    from kos.machined.api.images import ImagesAPI
    from kos.machined.api.lifecycle import (
        LifecycleController,
        LifecycleRefusedError,
        LifecycleRequestError,
        LifecycleService,
        ResetOptions,
        UpgradeUnavailableError,
    )
    from kos.machined.api.podlogs import PodLogsAPI
    from kos.machined.api.stats import StatsAPI

__getattr__ = surface(
    __name__,
    globals(),
    table_of(
        {
            "containers": (
                "ContainersAPI",
                "parse_table",
            ),
            "diagnostics": ("DiagnosticsAPI",),
            "disks": ("DisksAPI",),
            "etcd": ("EtcdAPI",),
            "etcdmaint": ("EtcdMaintenanceAPI",),
            "files": (
                "FilePolicy",
                "FilesAPI",
            ),
            "health": (
                "ClusterHealthAPI",
                "check_address",
                "wait_timeout",
            ),
            "images": ("ImagesAPI",),
            "lifecycle": (
                "LifecycleController",
                "LifecycleRefusedError",
                "LifecycleRequestError",
                "LifecycleService",
                "ResetOptions",
                "UpgradeUnavailableError",
            ),
            "podlogs": ("PodLogsAPI",),
            "stats": ("StatsAPI",),
        }
    ),
)

__all__ = [
    "ClusterHealthAPI",
    "ContainersAPI",
    "DiagnosticsAPI",
    "DisksAPI",
    "EtcdAPI",
    "EtcdMaintenanceAPI",
    "FilePolicy",
    "FilesAPI",
    "ImagesAPI",
    "LifecycleController",
    "LifecycleRefusedError",
    "LifecycleRequestError",
    "LifecycleService",
    "PodLogsAPI",
    "ResetOptions",
    "StatsAPI",
    "UpgradeUnavailableError",
    "check_address",
    "parse_table",
    "wait_timeout",
]
