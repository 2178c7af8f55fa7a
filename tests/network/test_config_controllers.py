"""Config layer controllers + merge controllers on an in-memory state (no kernel): which layer
wins, default DHCP only when nothing else configures the node, cmdline and platform layers,
and a bad source leaving its layer as it was."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from kos.controllers.network.assembly import merge_controllers
from kos.controllers.network.config import (
    CmdlineLayerController,
    ConfigurationLayerController,
    DefaultLayerController,
    PlatformLayerController,
)
from kos.controllers.network.layers import stable_hostname
from kos.controllers.runtime import Runtime
from kos.controllers.runtime.testing import assert_no_resource, assert_resources
from kos.resources.config import ACTIVE_ID, MachineConfigSpec
from kos.resources.config import NAMESPACE as CONFIG_NS
from kos.resources.core import InMemoryState, Pointer, Resource
from kos.resources.network import (
    ADDRESS_SPECS,
    APPLY_ERRORS,
    CONFIG_NAMESPACE,
    HOSTNAME_SPECS,
    NAMESPACE,
    OPERATOR_SPECS,
    RESOLVER_SPECS,
    AddressSpecSpec,
    ConfigLayer,
    LinkStatusSpec,
    PlatformNetworkConfigSpec,
)

pytestmark = pytest.mark.anyio

CMDLINE = "console=ttyS0 ip=10.5.0.7::10.5.0.1:24::eth1:off:10.5.0.53 kos.hostname=cmd-host"


@asynccontextmanager
async def layers(cmdline: str = CMDLINE) -> AsyncIterator[InMemoryState]:
    state = InMemoryState(history_max=4096)
    runtime = Runtime(state, backoff_initial=0.01, backoff_max=0.2)
    for c in [DefaultLayerController("m-1"), CmdlineLayerController(cmdline), PlatformLayerController(),
              ConfigurationLayerController(), *merge_controllers()]:
        runtime.register(c)
    async with anyio.create_task_group() as tg:
        tg.start_soon(runtime.run)
        try:
            yield state
        finally:
            tg.cancel_scope.cancel()


async def physical(state: InMemoryState, name: str, mac: str) -> None:
    await state.create(Resource.new(LinkStatusSpec(type="ether", physical=True, hardware_address=mac, index=2), name,
                                    namespace=NAMESPACE))


def ptr(kind: object, id: str) -> Pointer:
    return Pointer(NAMESPACE, kind.type, id)  # type: ignore[attr-defined]


async def set_config(state: InMemoryState, text: str | None) -> None:
    p = Pointer(CONFIG_NS, MachineConfigSpec.definition.type, ACTIVE_ID)
    cur = await state.get_or_none(p)
    if text is None:
        await state.destroy(p)
    elif cur is None:
        await state.create(Resource.new(MachineConfigSpec(config=text), ACTIVE_ID, namespace=CONFIG_NS))
    else:
        cur.spec = MachineConfigSpec(config=text)
        await state.update(cur)


CONFIG = """\
version: v1alpha1
machine:
  type: worker
  network:
    hostname: cfg-host
    interfaces:
      - interface: eth0
        addresses: [192.168.1.5/24]
"""


async def test_default_dhcp_only_when_nothing_else_configures() -> None:
    async with layers(cmdline="") as state:
        await physical(state, "eth1", "aa:00:00:00:00:02")
        await physical(state, "eth0", "aa:00:00:00:00:01")
        await assert_resources(state, OPERATOR_SPECS, ["dhcp4/eth0"], lambda r: r.spec.layer == ConfigLayer.DEFAULT)
        await assert_resources(state, HOSTNAME_SPECS, ["hostname"],
                               lambda r: r.spec.hostname == stable_hostname("m-1"))
        await assert_resources(state, RESOLVER_SPECS, ["resolvers"], lambda r: r.spec.dns_servers == ["1.1.1.1",
                                                                                                       "8.8.8.8"])
        # the lease the default DHCP produces (operator layer) does not switch it off
        lease = AddressSpecSpec(address="10.6.0.50/24", link_name="eth0", layer=ConfigLayer.OPERATOR)
        await state.create(Resource.new(lease, "operator/eth0/10.6.0.50/24", namespace=CONFIG_NAMESPACE))
        await assert_resources(state, ADDRESS_SPECS, ["eth0/10.6.0.50/24"])
        await anyio.sleep(0.2)
        await assert_resources(state, OPERATOR_SPECS, ["dhcp4/eth0"], timeout=0.1)
        await set_config(state, CONFIG)
        await assert_resources(state, ADDRESS_SPECS, ["eth0/192.168.1.5/24"])
        await assert_no_resource(state, ptr(OPERATOR_SPECS, "dhcp4/eth0"))
        await set_config(state, None)
        await assert_resources(state, OPERATOR_SPECS, ["dhcp4/eth0"])
        await assert_no_resource(state, ptr(ADDRESS_SPECS, "eth0/192.168.1.5/24"))


async def test_layers_win_by_priority_and_fall_back() -> None:
    async with layers() as state:
        await physical(state, "eth1", "aa:00:00:00:00:02")
        await assert_resources(state, ADDRESS_SPECS, ["eth1/10.5.0.7/24"],
                               lambda r: r.spec.layer == ConfigLayer.CMDLINE)
        await assert_resources(state, HOSTNAME_SPECS, ["hostname"], lambda r: r.spec.hostname == "cmd-host")
        await assert_resources(state, RESOLVER_SPECS, ["resolvers"], lambda r: r.spec.dns_servers == ["10.5.0.53"])
        # the platform adds an address and a hostname: hostname wins over cmdline, addresses unite
        platform = PlatformNetworkConfigSpec(hostname="plat-host", addresses=[
            AddressSpecSpec(address="10.9.0.2/24", link_name="eth1")])
        await state.create(Resource.new(platform, "platform", namespace=NAMESPACE))
        await assert_resources(state, HOSTNAME_SPECS, ["hostname"],
                               lambda r: (r.spec.hostname, r.spec.layer) == ("plat-host", ConfigLayer.PLATFORM))
        await assert_resources(state, ADDRESS_SPECS, ["eth1/10.5.0.7/24", "eth1/10.9.0.2/24"])
        # the machine config is the highest layer
        await set_config(state, CONFIG)
        await assert_resources(state, HOSTNAME_SPECS, ["hostname"], lambda r: r.spec.hostname == "cfg-host")
        # removing it removes exactly its contribution
        await set_config(state, None)
        await assert_resources(state, HOSTNAME_SPECS, ["hostname"], lambda r: r.spec.hostname == "plat-host")
        await assert_no_resource(state, ptr(ADDRESS_SPECS, "eth0/192.168.1.5/24"))
        await assert_resources(state, ADDRESS_SPECS, ["eth1/10.5.0.7/24", "eth1/10.9.0.2/24"])


async def test_bad_sources_keep_their_layer() -> None:
    async with layers(cmdline="ip=10.5.0.300::::::off") as state:
        err = await assert_resources(state, APPLY_ERRORS, ["layer/cmdline"])
        assert "client-ip '10.5.0.300'" in err["layer/cmdline"].spec.error
        await set_config(state, CONFIG)
        await assert_resources(state, ADDRESS_SPECS, ["eth0/192.168.1.5/24"])
        await set_config(state, CONFIG.replace("192.168.1.5/24", "192.168.1.5/99"))
        err = await assert_resources(state, APPLY_ERRORS, ["layer/configuration"])
        assert "192.168.1.5/99" in err["layer/configuration"].spec.error
        # the previous configuration layer is still in force
        await assert_resources(state, ADDRESS_SPECS, ["eth0/192.168.1.5/24"])
        await set_config(state, CONFIG)
        await assert_no_resource(state, Pointer(NAMESPACE, APPLY_ERRORS.type, "layer/configuration"))
