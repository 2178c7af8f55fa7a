"""EtcdConfigController: the machine config's ``cluster.etcd`` -> ``EtcdConfigs(etcd/etcd)``.

Only a control-plane node runs etcd: on a worker (or without a config) the EtcdConfig is
destroyed. ``joinEndpoints`` are the etcd client URLs a joining member asks to add it: the host
of ``cluster.controlPlane.endpoint`` on port 2379 (the endpoint usually names the first control
plane or a VIP/load balancer in front of all of them).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from kos.controllers.runtime import Controller, ControllerRuntime, Input, Output, OutputKind, kind_of
from kos.resources.config import ACTIVE_ID, MachineConfigSpec
from kos.resources.core import Resource
from kos.resources.etcd import ETCD_CONFIGS, EtcdConfigSpec
from kos.resources.machineconfig import ConfigContainer

CONFIG_ID = "etcd"
CLIENT_PORT = 2379

MACHINE_CONFIGS = kind_of(MachineConfigSpec)


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


class EtcdConfigController(Controller):
    name = "EtcdConfigController"

    def inputs(self) -> Sequence[Input]:
        return [Input(MACHINE_CONFIGS.namespace, MACHINE_CONFIGS.type, ACTIVE_ID)]

    def outputs(self) -> Sequence[Output]:
        return [Output(ETCD_CONFIGS.type, OutputKind.EXCLUSIVE)]

    async def run(self, rt: ControllerRuntime) -> None:
        async for _ in rt.events():
            await self.reconcile(rt)
            rt.reset_restart_backoff()

    async def reconcile(self, rt: ControllerRuntime) -> None:
        res = await rt.get_or_none(MACHINE_CONFIGS.pointer(ACTIVE_ID))
        spec: EtcdConfigSpec | None = None
        if res is not None:
            spec = etcd_config_from(res.spec.container())
        ptr = ETCD_CONFIGS.pointer(CONFIG_ID)
        if spec is None:
            if await rt.get_or_none(ptr) is not None:
                await rt.destroy(ptr)
            return
        new = spec

        def apply(r: Resource[Any]) -> None:
            r.spec = new.copy()

        await rt.modify(Resource.new(EtcdConfigSpec(), CONFIG_ID), apply)
