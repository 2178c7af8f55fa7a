"""The system controllers a node registers::

    for c in system_controllers(root="/", container_mode=False):
        runtime.register(c)

``root``: where the node's file system is (files, containerd's registry hosts directory, /proc
and /sys); ``container_mode``: a namespace node sharing the host's kernel (only per-netns
sysctls are applied; the rest is reported unsupported; a node with its own kernel also gets
``render.KERNEL_PARAM_DEFAULTS``, what the kubelet needs); ``log_shipper``: where machined's log
lines are tee'd (default: the process's ``SHIPPER``, installed by machined's logging setup).
"""

from __future__ import annotations

import os

from kos.controllers.runtime import Controller
from kos.controllers.system import node, render
from kos.controllers.system.bootargs import BootArgsController
from kos.controllers.system.configspecs import ConfigSpecsController
from kos.controllers.system.environment import EnvironmentApplyController
from kos.controllers.system.fields import Host
from kos.controllers.system.files import machine_file_apply_controller
from kos.controllers.system.kernel import KernelParamApplyController
from kos.controllers.system.kubeprism import KubePrismConfigController, KubePrismController
from kos.controllers.system.logship import LogDestinationApplyController, LogShipper
from kos.controllers.system.registries import HOSTS_DIR, RegistryHostApplyController
from kos.controllers.system.status import config_field_status_controller
from kos.resources.k8s import NodeAnnotationSpecSpec, NodeLabelSpecSpec, NodeTaintSpecSpec
from kos.resources.runtime import (
    EnvironmentSpecSpec,
    KernelParamSpecSpec,
    LogDestinationSpecSpec,
    MachineFileSpecSpec,
    RegistryHostSpecSpec,
)


def hosts_dir(root: str) -> str:
    return os.path.join(root, HOSTS_DIR.lstrip("/"))


def system_controllers(*, root: str, container_mode: bool, log_shipper: LogShipper | None = None,
                       ) -> list[Controller]:
    host = Host.detect(shared_kernel=container_mode)
    registries_dir = hosts_dir(root)
    return [
        ConfigSpecsController("system.KernelParamConfigController", KernelParamSpecSpec,
                              render.kernel_params if container_mode else render.kernel_params_with_defaults),
        KernelParamApplyController(root=root, shared_kernel=container_mode),
        ConfigSpecsController("system.MachineFileConfigController", MachineFileSpecSpec, render.machine_files),
        machine_file_apply_controller(root=root),
        ConfigSpecsController("system.EnvironmentConfigController", EnvironmentSpecSpec, render.environment),
        EnvironmentApplyController(),
        ConfigSpecsController("system.RegistryConfigController", RegistryHostSpecSpec,
                              render.registry_hosts(registries_dir)),
        RegistryHostApplyController(hosts_dir=registries_dir),
        ConfigSpecsController("system.LogDestinationConfigController", LogDestinationSpecSpec,
                              render.log_destinations),
        LogDestinationApplyController(shipper=log_shipper),
        KubePrismConfigController(),
        KubePrismController(),
        ConfigSpecsController("system.NodeLabelConfigController", NodeLabelSpecSpec, node.node_labels),
        ConfigSpecsController("system.NodeAnnotationConfigController", NodeAnnotationSpecSpec, node.node_annotations),
        ConfigSpecsController("system.NodeTaintConfigController", NodeTaintSpecSpec, node.node_taints_specs),
        node.NodeApplyController(root=root),
        BootArgsController(container_mode=container_mode),
        config_field_status_controller(host),
    ]
