"""EtcdConfigController: the machine config's ``cluster.etcd`` -> ``EtcdConfigs(etcd/etcd)``.

Only a control-plane node runs etcd: on a worker (or without a config) the EtcdConfig is
torn down and destroyed (a typed ``spec_transform``). ``joinEndpoints`` are the etcd client
URLs a joining member asks to add it: the host of ``cluster.controlPlane.endpoint`` on port
2379 (the endpoint usually names the first control plane or a VIP/load balancer in front of
all of them).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from kos.controllers.runtime import TransformController, spec_transform
from kos.resources.config import ACTIVE_ID, MachineConfigSpec
from kos.resources.etcd import EtcdConfigSpec
from kos.resources.machineconfig import ConfigContainer

CONFIG_ID = "etcd"
CLIENT_PORT = 2379


def join_endpoints(control_plane_endpoint: str) -> list[str]:
    """``https://cp.example:6443`` -> ``["https://cp.example:2379"]`` (empty when unset/invalid)."""
    text = control_plane_endpoint.strip()
    if not text:
        return []
    try:
        host = urlsplit(text if "://" in text else "https://" + text).hostname
    except ValueError:
        return []
    if not host:
        return []
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    return [f"https://{host}:{CLIENT_PORT}"]


def etcd_config_from(container: ConfigContainer) -> EtcdConfigSpec | None:
    """The EtcdConfig of a control-plane config; None for any other machine type."""
    cfg = container.config
    if cfg.machine_type != "controlplane":
        return None
    etcd = cfg.cluster.etcd
    return EtcdConfigSpec(
        extra_args=dict(etcd.extra_args),
        advertised_subnets=list(etcd.advertised_subnets),
        listen_subnets=list(etcd.listen_subnets),
        join_endpoints=join_endpoints(cfg.cluster.control_plane.endpoint),
    )


def EtcdConfigController() -> TransformController[MachineConfigSpec, EtcdConfigSpec]:
    """MachineConfig(v1alpha1) -> EtcdConfig(etcd), torn down and destroyed off control planes."""
    return spec_transform("etcd.EtcdConfigController", MachineConfigSpec, EtcdConfigSpec,
                          lambda mc: etcd_config_from(mc.container()), in_id=ACTIVE_ID, out_id=CONFIG_ID)
