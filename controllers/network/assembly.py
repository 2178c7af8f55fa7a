"""The network controllers a node registers, in one call::

    for c in network_controllers(netns=None, etc_dir="/system/etc", cmdline=cmdline_text,
                                 machine_id=machine_id, manage_hostname=True):
        runtime.register(c)

``netns``: path of the network namespace to manage (None = machined's own);
``etc_dir``: where resolv.conf/hosts/hostname are rendered; ``cmdline``: the kernel command
line text (``ip=``, ``kos.hostname=``); ``machine_id``: basis of the stable default hostname;
``manage_hostname``: False when the UTS namespace is not ours (the hostname is then only
reported, never set); ``vip_election``: who announces shared VIPs (``operators.Election``;
default: every control plane node); ``container_mode``: the clock is the host's, time sync
only measures; ``time_interval``: SNTP poll interval in seconds.
"""

from __future__ import annotations

from kos.controllers.network.apply import AddressApplyController, LinkApplyController, RouteApplyController
from kos.controllers.network.config import (
    CmdlineLayerController,
    ConfigurationLayerController,
    DefaultLayerController,
    PlatformLayerController,
)
from kos.controllers.network.etcfiles import EtcFilesController
from kos.controllers.network.hostdns import HostDNSConfigController, HostDNSController
from kos.controllers.network.hostname import HostnameController
from kos.controllers.network.merge import MergeController, merge_by_id, merge_links, merge_resolvers, merge_single
from kos.controllers.network.netstatus import NetworkStatusController, time_server_status_controller
from kos.controllers.network.nodeaddress import NodeAddressController
from kos.controllers.network.operators import Election, OperatorController
from kos.controllers.network.status import NetlinkStatusController
from kos.controllers.network.timesync import TimeSyncController
from kos.controllers.runtime import Controller
from kos.resources.network import (
    AddressSpecSpec,
    HostnameSpecSpec,
    LinkSpecSpec,
    OperatorSpecSpec,
    ResolverSpecSpec,
    RouteSpecSpec,
    TimeServerSpecSpec,
)


def merge_controllers() -> list[Controller]:
    return [
        MergeController(LinkSpecSpec, merge_links),
        MergeController(AddressSpecSpec, merge_by_id),
        MergeController(RouteSpecSpec, merge_by_id),
        MergeController(OperatorSpecSpec, merge_by_id),
        MergeController(HostnameSpecSpec, merge_single),
        MergeController(ResolverSpecSpec, merge_resolvers),
        MergeController(TimeServerSpecSpec, merge_single),
    ]


def kernel_controllers(netns: str | None) -> list[Controller]:
    """Status (netlink events) and apply controllers for links, addresses and routes."""
    return [
        NetlinkStatusController(netns),
        LinkApplyController(netns),
        AddressApplyController(netns),
        RouteApplyController(netns),
    ]


def network_controllers(
    *,
    netns: str | None,
    etc_dir: str,
    manage_hostname: bool,
    container_mode: bool,
    cmdline: str = "",
    machine_id: str = "",
    vip_election: Election | None = None,
    time_interval: float = 64.0,
) -> list[Controller]:
    """Every network controller (no defaults for what touches the host: the namespace, the
    /etc directory, the hostname and the clock must be chosen by the caller)."""
    out: list[Controller] = [
        DefaultLayerController(machine_id),
        CmdlineLayerController(cmdline),
        PlatformLayerController(),
        ConfigurationLayerController(),
        *merge_controllers(),
        *kernel_controllers(netns),
        OperatorController(netns, election=vip_election),
        HostnameController(manage=manage_hostname),
        EtcFilesController(etc_dir),
        HostDNSConfigController(),
        HostDNSController(netns),
        NodeAddressController(),
        NetworkStatusController(),
        time_server_status_controller(),
        TimeSyncController(netns, adjust=not container_mode, interval=time_interval),
    ]
    return out
