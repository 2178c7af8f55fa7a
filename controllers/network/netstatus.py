"""``NetworkStatuses/status`` (address, connectivity, hostname, etc files ready) and the
plain status copies ``TimeServerStatuses`` (a ``transform`` of the merged TimeServerSpecs).

* addressReady: ``NodeAddresses/current`` is not empty;
* connectivityReady: the kernel has a default route (any family, main table);
* hostnameReady: ``HostnameStatuses/hostname`` has a name;
* etcFilesReady: ``resolv.conf`` and ``hosts`` were rendered (``EtcFileStatuses``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kos.controllers.runtime import (
    Controller,
    ControllerRuntime,
    Input,
    Output,
    OutputKind,
    TransformController,
    transform,
)
from kos.resources.core import Pointer, Resource
from kos.resources.network import (
    ETC_FILE_STATUSES,
    HOSTNAME_STATUSES,
    NAMESPACE,
    NETWORK_STATUSES,
    NODE_ADDRESSES,
    ROUTE_STATUSES,
    NetworkStatusSpec,
    TimeServerSpecSpec,
    TimeServerStatusSpec,
)


class NetworkStatusController(Controller):
    name = "network.NetworkStatusController"

    def inputs(self) -> Sequence[Input]:
        return (
            Input(NODE_ADDRESSES.namespace, NODE_ADDRESSES.type, "current"),
            Input(ROUTE_STATUSES.namespace, ROUTE_STATUSES.type),
            Input(HOSTNAME_STATUSES.namespace, HOSTNAME_STATUSES.type, "hostname"),
            Input(ETC_FILE_STATUSES.namespace, ETC_FILE_STATUSES.type),
        )

    def outputs(self) -> Sequence[Output]:
        return (Output(NETWORK_STATUSES.type, OutputKind.EXCLUSIVE),)

    async def run(self, rt: ControllerRuntime) -> None:
        async for _ in rt.events():
            current = await rt.get_or_none(Pointer(NAMESPACE, NODE_ADDRESSES.type, "current"))
            hostname = await rt.get_or_none(Pointer(NAMESPACE, HOSTNAME_STATUSES.type, "hostname"))
            etc = {r.metadata.id for r in await rt.list(ETC_FILE_STATUSES)}
            default_route = any(
                r.spec.destination == "" and r.spec.table == 254 for r in await rt.list(ROUTE_STATUSES)
            )
            status = NetworkStatusSpec(
                address_ready=bool(current and current.spec.addresses),
                connectivity_ready=default_route,
                hostname_ready=bool(hostname and hostname.spec.hostname),
                etc_files_ready={"resolv.conf", "hosts"} <= etc,
            )

            def fill(r: Resource[Any], status: NetworkStatusSpec = status) -> None:
                r.spec = status

            await rt.modify(Resource.new(NetworkStatusSpec(), "status", namespace=NAMESPACE), fill)
            rt.reset_restart_backoff()


def _time_status(rt: Any, spec: Resource[TimeServerSpecSpec], out: Resource[TimeServerStatusSpec]) -> None:
    out.spec.time_servers = list(spec.spec.time_servers)


def time_server_status_controller() -> TransformController[TimeServerSpecSpec, TimeServerStatusSpec]:
    return transform("network.TimeServerStatusController", TimeServerSpecSpec, TimeServerStatusSpec, _time_status)
