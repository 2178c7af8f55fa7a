"""Operators against real peers: a DHCPv4 lease (and its renewal) from Debian's dnsmasq in a
peer namespace, and a VIP announced with gratuitous ARP seen by a raw socket in the peer."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest

from kos.controllers.network.assembly import network_controllers
from kos.controllers.network.operators import StaticElection
from kos.controllers.runtime import Runtime
from kos.platform.network.arp import ETH_P_ARP, parse_arp
from kos.platform.network.netns import socket_in
from kos.resources.config import MACHINE_TYPE_ID, MachineTypeSpec
from kos.resources.config import NAMESPACE as CONFIG_NS
from kos.resources.core import InMemoryState, Resource
from tests.network.netns import addresses, eventually, ip, links, needs_netns, netns, nsenter, put_config, routes

pytestmark = [pytest.mark.anyio, needs_netns]

DHCP_CONFIG = """\
version: v1alpha1
machine:
  type: worker
  network:
    hostname: dhcp-client
    interfaces:
      - interface: c0
        dhcp: true
"""


@contextmanager
def dnsmasq(server_ns: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    binary = shutil.which("dnsmasq")
    if binary is None:
        pytest.skip("dnsmasq is not installed (apt-get install dnsmasq-base)")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["nsenter", f"--net={server_ns}", binary, "--no-daemon", "--conf-file=/dev/null", "--interface=s0",
             "--port=0", "--no-ping", "--dhcp-range=10.6.0.50,10.6.0.99,255.255.255.0,2m",
             "--dhcp-option=option:router,10.6.0.1", "--dhcp-option=option:dns-server,10.6.0.53",
             "--dhcp-option=option:domain-search,lab.example", "--dhcp-option=option:T1,2",
             "--dhcp-option=option:T2,3", f"--dhcp-leasefile={log.with_suffix('.leases')}", "--log-dhcp"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _runtime(path: str, etc: Path, election: StaticElection | None = None) -> tuple[InMemoryState, Runtime]:
    state = InMemoryState(history_max=4096)
    runtime = Runtime(state, backoff_initial=0.05, backoff_max=0.5)
    for c in network_controllers(netns=path, etc_dir=str(etc), manage_hostname=False, container_mode=True,
                                 vip_election=election):
        runtime.register(c)
    return state, runtime


async def test_dhcp4_lease_from_dnsmasq_applied_and_renewed(tmp_path: Path) -> None:
    with netns("dhcpc") as client, netns("dhcps") as server:
        ip("link", "add", "c0", "netns", client.rsplit("/", 1)[1], "type", "veth", "peer", "name", "s0", "netns",
           server.rsplit("/", 1)[1])
        nsenter(server, "ip", "addr", "add", "10.6.0.1/24", "dev", "s0")
        nsenter(server, "ip", "link", "set", "s0", "up")
        log = tmp_path / "dnsmasq.log"
        with dnsmasq(server, log):
            state, runtime = _runtime(client, tmp_path)
            async with anyio.create_task_group() as tg:
                tg.start_soon(runtime.run)
                await put_config(state, DHCP_CONFIG)
                await eventually(lambda: any(link == "c0" and a.startswith("10.6.0.") for link, a in addresses(client)),
                                 "leased address on c0", timeout=20)
                await eventually(lambda: ("default", "10.6.0.1", "c0") in routes(client), "default route via router")
                await eventually(lambda: (tmp_path / "resolv.conf").exists() and
                                 "nameserver 10.6.0.53" in (tmp_path / "resolv.conf").read_text(), "DHCP resolvers")
                assert "search lab.example" in (tmp_path / "resolv.conf").read_text()
                assert "client provides name: dhcp-client" in log.read_text()
                # T1 = 2 s: the client renews (a second DHCPACK in dnsmasq's log, for a DHCPREQUEST with ciaddr)
                await eventually(lambda: log.read_text().count("DHCPACK") >= 2, "lease renewed", timeout=15)
                # the operator goes away with the config: the address and route are withdrawn
                await put_config(state, DHCP_CONFIG.replace("dhcp: true", "dhcp: false"))
                await eventually(lambda: not any(a.startswith("10.6.0.") for _, a in addresses(client)),
                                 "lease withdrawn", timeout=15)
                assert ("default", "10.6.0.1", "c0") not in routes(client)
                # and the lease was given back to the server
                await eventually(lambda: "DHCPRELEASE" in log.read_text(), "lease released")
                tg.cancel_scope.cancel()


VIP_CONFIG = """\
version: v1alpha1
machine:
  type: controlplane
  network:
    interfaces:
      - interface: v0
        addresses: [10.7.0.2/24]
        vip:
          ip: 10.7.0.100
"""


async def test_vip_announced_by_the_leader_with_gratuitous_arp(tmp_path: Path) -> None:
    with netns("vip") as node, netns("vippeer") as peer:
        ip("link", "add", "v0", "netns", node.rsplit("/", 1)[1], "type", "veth", "peer", "name", "p0", "netns",
           peer.rsplit("/", 1)[1])
        nsenter(peer, "ip", "link", "set", "p0", "up")
        listener = await anyio.to_thread.run_sync(
            lambda: socket_in(peer, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        )
        listener.bind(("p0", 0))
        listener.setblocking(False)
        election = StaticElection(True)
        state, runtime = _runtime(node, tmp_path, election)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(runtime.run)
                await state.create(Resource.new(MachineTypeSpec(machine_type="controlplane"), MACHINE_TYPE_ID,
                                                namespace=CONFIG_NS))
                await put_config(state, VIP_CONFIG)
                await eventually(lambda: ("v0", "10.7.0.100/32") in addresses(node), "VIP on v0")
                mac = links(node)["v0"]["address"]
                with anyio.fail_after(10):
                    while True:
                        await anyio.wait_readable(listener)
                        arp = parse_arp(listener.recv(2048))
                        if arp is not None and arp[2] == "10.7.0.100":
                            assert arp == (1, mac, "10.7.0.100", "10.7.0.100")
                            break
                election.set(False)
                await eventually(lambda: ("v0", "10.7.0.100/32") not in addresses(node), "VIP released")
                assert ("v0", "10.7.0.2/24") in addresses(node)
                election.set(True)
                await eventually(lambda: ("v0", "10.7.0.100/32") in addresses(node), "VIP taken again")
                tg.cancel_scope.cancel()
        finally:
            listener.close()
