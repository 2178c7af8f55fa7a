"""Config -> layers -> merge -> netlink, against the real kernel in a private network
namespace; the kernel state is checked with an independent read (``ip -j`` via nsenter)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from kos.controllers.network.assembly import network_controllers
from kos.controllers.runtime import Runtime
from kos.controllers.runtime.testing import assert_no_resource, assert_resources
from kos.resources.config import ACTIVE_ID, MachineConfigSpec
from kos.resources.config import NAMESPACE as CONFIG_NS
from kos.resources.core import InMemoryState, Pointer, Resource
from kos.resources.network import (
    ADDRESS_STATUSES,
    APPLY_ERRORS,
    CONFIG_NAMESPACE,
    ETC_FILE_STATUSES,
    HOSTNAME_STATUSES,
    LINK_STATUSES,
    NAMESPACE,
    NETWORK_STATUSES,
    NODE_ADDRESSES,
    PLATFORM_CONFIGS,
    AddressSpecSpec,
    ConfigLayer,
    LinkSpecSpec,
    NetworkStatusSpec,
    PlatformNetworkConfigSpec,
    RouteSpecSpec,
)
from tests.network.netns import addresses, eventually, kernel, links, needs_netns, netns, nsenter, put_config, routes

pytestmark = [pytest.mark.anyio, needs_netns]

CONFIG = """\
version: v1alpha1
machine:
  type: worker
  network:
    interfaces:
      - interface: br0
        mtu: 1400
        addresses: [{address}]
        bridge:
          interfaces: [veth0]
        routes:
          - network: 0.0.0.0/0
            gateway: 10.5.0.1
{extra_routes}
"""

EXTRA_ROUTE = """\
          - network: 192.168.50.0/24
            gateway: 10.5.0.1
            metric: 50
"""


def config(address: str = "10.5.0.2/24", extra: bool = True) -> str:
    return CONFIG.format(address=address, extra_routes=EXTRA_ROUTE if extra else "")


@asynccontextmanager
async def node(path: str, etc_dir: str, cmdline: str = "") -> AsyncIterator[InMemoryState]:
    state = InMemoryState(history_max=4096)
    runtime = Runtime(state, backoff_initial=0.05, backoff_max=0.5)
    for c in network_controllers(netns=path, etc_dir=etc_dir, manage_hostname=False, container_mode=True,
                                 cmdline=cmdline, machine_id="test-machine"):
        runtime.register(c)
    async with anyio.create_task_group() as tg:
        tg.start_soon(runtime.run)
        try:
            yield state
        finally:
            tg.cancel_scope.cancel()


async def test_config_applied_changed_and_removed(tmp_path: Path) -> None:
    with netns("apply") as path:
        nsenter(path, "ip", "link", "add", "veth0", "type", "veth", "peer", "name", "peer0")
        async with node(path, str(tmp_path)) as state:
            await put_config(state, config())
            await eventually(lambda: ("br0", "10.5.0.2/24") in addresses(path), "address on br0")
            await eventually(lambda: ("default", "10.5.0.1", "br0") in routes(path), "default route")
            await eventually(lambda: ("192.168.50.0/24", "10.5.0.1", "br0") in routes(path), "static route")
            await eventually(lambda: links(path)["br0"]["mtu"] == 1400 and "UP" in links(path)["br0"]["flags"], "br0")
            await eventually(lambda: links(path)["veth0"].get("master") == "br0" and
                             "UP" in links(path)["veth0"]["flags"], "veth0 enslaved and up")
            assert ("lo", "127.0.0.1/8") in addresses(path) and "UP" in links(path)["lo"]["flags"]
            # loopback keeps host scope (a global 127.0.0.1 would become the source of DHCP broadcasts)
            lo = next(link for link in kernel(path, "addr show") if link["ifname"] == "lo")
            assert {a["scope"] for a in lo["addr_info"]} == {"host"}
            # the status controller saw it too (netlink events)
            await assert_resources(state, ADDRESS_STATUSES, ["br0/10.5.0.2/24"], lambda r: r.spec.link_name == "br0")
            await assert_resources(state, LINK_STATUSES, ["br0"],
                                   lambda r: r.spec.kind == "bridge" and r.spec.mtu == 1400)

            # change: another address, the extra route dropped
            await put_config(state, config("10.5.0.3/24", extra=False))
            await eventually(lambda: ("br0", "10.5.0.3/24") in addresses(path) and
                             ("br0", "10.5.0.2/24") not in addresses(path), "address replaced")
            await eventually(lambda: ("192.168.50.0/24", "10.5.0.1", "br0") not in routes(path), "route removed")
            # (removing the old primary address also flushed the routes through it: put back)
            await eventually(lambda: ("default", "10.5.0.1", "br0") in routes(path), "default route kept")

            # an outside change to a managed address is reverted
            nsenter(path, "ip", "addr", "del", "10.5.0.3/24", "dev", "br0")
            await eventually(lambda: ("br0", "10.5.0.3/24") in addresses(path), "address restored")

            # config removed: logical links deleted, nothing of ours left
            await state.destroy(Pointer(CONFIG_NS, MachineConfigSpec.definition.type, ACTIVE_ID))
            await eventually(lambda: "br0" not in links(path), "bridge deleted")
            assert not any(a for a in addresses(path) if a[1].startswith("10.5."))
            assert not any(r for r in routes(path) if r[1] == "10.5.0.1")
            assert "master" not in links(path)["veth0"]


async def test_bad_specs_are_reported_and_the_rest_converges(tmp_path: Path) -> None:
    with netns("bad") as path:
        async with node(path, str(tmp_path)) as state:
            layered = [
                (LinkSpecSpec(name="bond0", kind="bond", logical=True, up=True), "bond0"),
                (LinkSpecSpec(name="br9", kind="bridge", logical=True, up=True, mtu=70000), "br9"),
                (LinkSpecSpec(name="br8", kind="bridge", logical=True, up=True), "br8"),
                (AddressSpecSpec(address="10.8.0.1/24", link_name="nope0"), "nope0/10.8.0.1/24"),
                (AddressSpecSpec(address="10.8.0.2/24", link_name="br8"), "br8/10.8.0.2/24"),
            ]
            for spec, id in layered:
                spec.layer = ConfigLayer.PLATFORM
                await state.create(Resource.new(spec, f"platform/{id}", namespace=CONFIG_NAMESPACE))
            errors = await assert_resources(
                state, APPLY_ERRORS, ["link/bond0", "link/br9", "address/nope0/10.8.0.1/24"], timeout=15
            )
            assert "not available in this kernel" in errors["link/bond0"].spec.error
            assert "mtu 70000" in errors["link/br9"].spec.error
            assert "'nope0' does not exist" in errors["address/nope0/10.8.0.1/24"].spec.error
            await eventually(lambda: ("br8", "10.8.0.2/24") in addresses(path), "good address applied")

            # a machine config that does not validate leaves the layer (and kernel) as it was
            await put_config(state, config().replace("mtu: 1400", "mtu: 10"))
            err = await assert_resources(state, APPLY_ERRORS, ["layer/configuration"], timeout=15)
            assert "mtu" in err["layer/configuration"].spec.error
            assert "br0" not in links(path)
            await put_config(state, config())
            await assert_no_resource(state, Pointer(APPLY_ERRORS.namespace, APPLY_ERRORS.type, "layer/configuration"),
                                     timeout=15)
            await eventually(lambda: ("br0", "10.5.0.2/24") in addresses(path), "valid config applied")


async def test_outside_change_reaches_address_status_quickly(tmp_path: Path) -> None:
    with netns("status") as path:
        async with node(path, str(tmp_path)) as state:
            await assert_resources(state, LINK_STATUSES, ["lo"], lambda r: r.spec.link_state, timeout=15)
            nsenter(path, "ip", "addr", "add", "10.77.0.1/32", "dev", "lo")
            await assert_resources(state, ADDRESS_STATUSES, ["lo/10.77.0.1/32"], timeout=5)
            nsenter(path, "ip", "addr", "del", "10.77.0.1/32", "dev", "lo")
            await assert_no_resource(state, Pointer(ADDRESS_STATUSES.namespace, ADDRESS_STATUSES.type,
                                                    "lo/10.77.0.1/32"))


FILES_CONFIG = """\
version: v1alpha1
machine:
  type: worker
  network:
    hostname: n1.example.org
    nameservers: [10.5.0.53, 9.9.9.9]
    searchDomains: [example.org]
    extraHostEntries:
      - ip: 10.5.0.9
        aliases: [nine, nine.example.org]
    interfaces:
      - interface: veth0
        addresses: [10.5.0.2/24, 10.5.0.50/32]
        vip:
          ip: 10.5.0.50
        routes:
          - network: 0.0.0.0/0
            gateway: 10.5.0.1
"""


async def test_hostname_resolvers_hosts_node_addresses_and_status(tmp_path: Path) -> None:
    with netns("files") as path:
        nsenter(path, "ip", "link", "add", "veth0", "type", "veth", "peer", "name", "peer0")
        nsenter(path, "ip", "link", "set", "peer0", "up")
        async with node(path, str(tmp_path)) as state:
            await put_config(state, FILES_CONFIG)
            await assert_resources(
                state, NETWORK_STATUSES, ["status"],
                lambda r: r.spec == NetworkStatusSpec(address_ready=True, connectivity_ready=True, hostname_ready=True,
                                                      etc_files_ready=True),
                timeout=15,
            )
            want = {"current": ["10.5.0.2/24", "10.5.0.50/32"], "routed": ["10.5.0.2/24"],  # the VIP is not routed
                    "default": ["10.5.0.2/24"], "accumulative": ["10.5.0.2/24", "10.5.0.50/32"]}
            await assert_resources(state, NODE_ADDRESSES, list(want),
                                   lambda r: r.spec.addresses == want[r.metadata.id], timeout=15)
            await assert_resources(state, HOSTNAME_STATUSES, ["hostname"],
                                   lambda r: (r.spec.hostname, r.spec.domainname) == ("n1", "example.org"))
            await assert_resources(state, ETC_FILE_STATUSES, ["resolv.conf", "hosts", "hostname"])
            resolv = (tmp_path / "resolv.conf").read_text()
            assert "nameserver 10.5.0.53\nnameserver 9.9.9.9\nsearch example.org\n" in resolv
            await eventually(lambda: "10.5.0.2\tn1.example.org n1\n" in (tmp_path / "hosts").read_text(), "hosts")
            assert "10.5.0.9\tnine nine.example.org\n" in (tmp_path / "hosts").read_text()
            assert (tmp_path / "hostname").read_text() == "n1\n"
            # a new address is added to current and accumulative; removed: only accumulative keeps it
            await put_config(state, FILES_CONFIG.replace("10.5.0.2/24", "10.5.0.3/24"))
            await assert_resources(state, NODE_ADDRESSES, ["current"],
                                   lambda r: r.spec.addresses == ["10.5.0.3/24", "10.5.0.50/32"], timeout=15)
            await assert_resources(state, NODE_ADDRESSES, ["accumulative"],
                                   lambda r: r.spec.addresses == ["10.5.0.2/24", "10.5.0.3/24", "10.5.0.50/32"])
            await assert_resources(state, ETC_FILE_STATUSES, ["hosts"], lambda r: "10.5.0.3\tn1" in
                                   (tmp_path / "hosts").read_text())


def test_hostname_is_set_in_the_nodes_uts_namespace() -> None:
    """HostnameController(manage=True) in a child with its own UTS namespace: the child's
    kernel hostname changes, ours does not."""
    import socket
    import subprocess
    import sys

    before = socket.gethostname()
    script = Path(__file__).with_name("hostname_child.py")
    out = subprocess.run(["unshare", "--uts", sys.executable, str(script)], check=True, capture_output=True,
                         text=True, timeout=60, cwd=Path(__file__).parents[2])
    assert out.stdout.strip().splitlines()[-1] == "kos-uts-test"
    assert socket.gethostname() == before


async def test_logical_links_lifetimes_tables_and_reverts(tmp_path: Path) -> None:
    """Platform-layer specs: veth, bridge, vxlan and macvlan created; an address with a
    lifetime; a route in table 100; outside link-down and MTU changes put back; a route via an
    unknown link reported."""
    with netns("kinds") as path:
        async with node(path, str(tmp_path)) as state:
            platform = PlatformNetworkConfigSpec(
                links=[
                    LinkSpecSpec(name="ve0", kind="veth", logical=True, up=True, veth_peer="ve1", mtu=1450),
                    LinkSpecSpec(name="ve1", up=True),
                    LinkSpecSpec(name="br5", kind="bridge", logical=True, up=True),
                    LinkSpecSpec(name="vx5", kind="vxlan", logical=True, up=True, vxlan_id=42, parent="ve0",
                                 vxlan_remote="10.30.0.9", master="br5"),
                    LinkSpecSpec(name="mv5", kind="macvlan", logical=True, up=True, parent="ve1",
                                 macvlan_mode="bridge"),
                ],
                addresses=[
                    AddressSpecSpec(address="10.30.0.1/24", link_name="ve0"),
                    AddressSpecSpec(address="10.31.0.1/24", link_name="br5", valid_lifetime=3600,
                                    preferred_lifetime=1800),
                    AddressSpecSpec(address="fd00:30::1/64", link_name="ve0", family="inet6"),
                ],
                routes=[
                    RouteSpecSpec(destination="172.20.0.0/16", gateway="10.30.0.254", out_link_name="ve0",
                                  table=100, priority=10),
                    RouteSpecSpec(destination="172.21.0.0/16", gateway="10.30.0.254", out_link_name="nope0"),
                    RouteSpecSpec(family="inet6", destination="fd00:99::/64", gateway="fd00:30::fe",
                                  out_link_name="ve0"),
                ],
            )
            await state.create(Resource.new(platform, "platform", namespace=NAMESPACE))
            await eventually(lambda: {"ve0", "ve1", "br5", "vx5", "mv5"} <= set(links(path)), "logical links")
            await eventually(lambda: links(path)["vx5"].get("master") == "br5" and links(path)["ve0"]["mtu"] == 1450,
                             "vxlan enslaved, veth MTU")
            detail = {link["ifname"]: link for link in kernel(path, "-d link show")}
            assert detail["ve0"]["linkinfo"]["info_kind"] == "veth" and detail["ve0"]["mtu"] == 1450
            assert detail["vx5"]["linkinfo"]["info_kind"] == "vxlan"
            assert detail["vx5"]["linkinfo"]["info_data"]["id"] == 42
            assert detail["mv5"]["linkinfo"]["info_kind"] == "macvlan"
            await eventually(lambda: ("br5", "10.31.0.1/24") in addresses(path), "address with lifetime")
            br5 = next(link for link in kernel(path, "addr show dev br5"))
            (a,) = [a for a in br5["addr_info"] if a["family"] == "inet"]
            assert 0 < a["valid_life_time"] <= 3600 and 0 < a["preferred_life_time"] <= 1800
            await eventually(lambda: any(r["dst"] == "172.20.0.0/16" and r.get("metric") == 10
                                         for r in kernel(path, "route show table 100")), "route in table 100")
            await eventually(lambda: any(r["dst"] == "fd00:99::/64" and r.get("gateway") == "fd00:30::fe"
                                         for r in kernel(path, "-6 route show")), "IPv6 route (after DAD)")
            err = await assert_resources(state, APPLY_ERRORS, ["route/254/inet4/10.30.0.254/172.21.0.0/16/1024"])
            assert "'nope0' does not exist" in err["route/254/inet4/10.30.0.254/172.21.0.0/16/1024"].spec.error

            # outside changes to managed links are put back
            nsenter(path, "ip", "link", "set", "br5", "down")
            nsenter(path, "ip", "link", "set", "ve0", "mtu", "1300")
            await eventually(lambda: "UP" in links(path)["br5"]["flags"] and links(path)["ve0"]["mtu"] == 1450,
                             "link state and MTU restored")

            # platform config gone: logical links deleted
            await state.destroy(Pointer(NAMESPACE, PLATFORM_CONFIGS.type, "platform"))
            await eventually(lambda: not {"ve0", "br5", "vx5", "mv5"} & set(links(path)), "logical links deleted")


async def test_device_selector_and_kernel_unavailable_kinds(tmp_path: Path) -> None:
    """deviceSelector picks the link by MAC; vlan/bond/dummy from the config are accepted and
    reported as unavailable in this kernel, while everything else converges."""
    with netns("sel") as path:
        nsenter(path, "ip", "link", "add", "veth0", "address", "02:00:00:00:40:02", "type", "veth", "peer", "name",
                "peer0")
        text = """\
version: v1alpha1
machine:
  type: worker
  network:
    interfaces:
      - deviceSelector:
          hardwareAddr: "02:00:00:00:40:*"
        addresses: [10.40.0.2/24]
        vlans:
          - vlanId: 100
            addresses: [10.41.0.2/24]
      - interface: bond0
        bond:
          interfaces: [peer0]
          mode: active-backup
      - interface: dummy0
        dummy: true
"""
        async with node(path, str(tmp_path)) as state:
            await put_config(state, text)
            await eventually(lambda: ("veth0", "10.40.0.2/24") in addresses(path), "address via deviceSelector")
            errors = await assert_resources(state, APPLY_ERRORS, ["link/veth0.100", "link/bond0", "link/dummy0"],
                                            timeout=15)
            for id in ("link/veth0.100", "link/bond0", "link/dummy0"):
                assert "not available in this kernel" in errors[id].spec.error, errors[id].spec
            await assert_resources(state, APPLY_ERRORS, ["address/veth0.100/10.41.0.2/24"],
                                   lambda r: "'veth0.100' does not exist" in r.spec.error)
            # the port of the bond that cannot exist is reported, not crashed on
            await assert_resources(state, APPLY_ERRORS, ["link/peer0"], lambda r: "'bond0' does not exist" in
                                   r.spec.error)


async def test_kernel_cmdline_ip(tmp_path: Path) -> None:
    with netns("cmdline") as path:
        nsenter(path, "ip", "link", "add", "veth0", "type", "veth", "peer", "name", "peer0")
        nsenter(path, "ip", "link", "set", "peer0", "up")
        cmdline = "console=ttyS0 ip=10.5.0.7::10.5.0.1:255.255.255.0:cmdhost:veth0:off:10.5.0.53 quiet"
        async with node(path, str(tmp_path), cmdline=cmdline) as state:
            await eventually(lambda: ("veth0", "10.5.0.7/24") in addresses(path), "cmdline address")
            await eventually(lambda: ("default", "10.5.0.1", "veth0") in routes(path), "cmdline gateway")
            await assert_resources(state, HOSTNAME_STATUSES, ["hostname"], lambda r: r.spec.hostname == "cmdhost")
            await eventually(lambda: (tmp_path / "resolv.conf").exists() and
                             "nameserver 10.5.0.53" in (tmp_path / "resolv.conf").read_text(), "cmdline DNS")
