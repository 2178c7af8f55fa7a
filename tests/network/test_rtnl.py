"""The rtnetlink notification decoder against pyroute2's on the same real kernel messages,
and against the dumps the status view is loaded from."""

from __future__ import annotations

import socket

import anyio
import pytest

from kos.platform.network.netlink import GROUPS, Netlink, pyroute2_changes
from kos.platform.network.netns import socket_in
from kos.platform.network.rtnl import parse
from tests.network.netns import needs_netns, netns, nsenter

pytestmark = [pytest.mark.anyio, needs_netns]


async def test_decoder_matches_pyroute2_and_dumps() -> None:
    with netns("rtnl") as path:
        sock = await anyio.to_thread.run_sync(
            lambda: socket_in(path, socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        )
        try:
            sock.bind((0, GROUPS))
            sock.setblocking(False)
            for cmd in (
                "ip link set lo up", "ip link add v0 type veth peer name v1", "ip link add br0 type bridge",
                "ip link set v0 master br0", "ip link set v0 mtu 1400 up", "ip link set v1 up",
                "ip link set br0 up", "ip addr add 10.1.0.1/24 dev br0", "ip addr add fd00:1::1/64 dev br0",
                "ip route add 10.2.0.0/16 via 10.1.0.254 metric 7", "ip route add 10.3.0.0/16 dev br0 table 100",
                "ip -6 route add fd00:2::/64 via fd00:1::fe", "ip route del 10.2.0.0/16 via 10.1.0.254 metric 7",
                "ip addr del 10.1.0.1/24 dev br0", "ip link del v0",
            ):
                nsenter(path, *cmd.split())
            buffers = []
            while True:
                try:
                    buffers.append(sock.recv(1 << 20))
                except BlockingIOError:
                    break
        finally:
            sock.close()
        ours = [c for b in buffers for c in parse(b)]
        reference = [c for b in buffers for c in pyroute2_changes(b)]
        assert len(ours) > 20
        assert ours == reference
        kinds = {(c.what, c.deleted) for c in ours}
        assert kinds == {(w, d) for w in ("link", "address", "route") for d in (False, True)}

        # what a dump says equals what the notifications said last (the view mixes both)
        async with Netlink(path) as nl:
            links = {link.index: link for link in await nl.links()}
            addresses = {(a.index, a.address): a for a in await nl.addresses()}
        last_link = {}
        last_addr = {}
        for c in ours:
            if c.what == "link":
                last_link[c.info.index] = c.info  # type: ignore[union-attr]
            elif c.what == "address" and not c.deleted:
                last_addr[(c.info.index, c.info.address)] = c.info  # type: ignore[union-attr]
        for index, link in links.items():
            if index in last_link:
                assert last_link[index] == link
        for key, a in addresses.items():
            if key in last_addr and "tentative" not in last_addr[key].flags:
                assert last_addr[key] == a


async def test_status_view_from_notifications_equals_a_fresh_dump() -> None:
    """After a burst of outside changes the status resources (kept from notifications) are
    exactly what a full dump says."""
    from kos.controllers.network.status import KernelView, NetlinkStatusController
    from kos.controllers.runtime import Runtime
    from kos.resources.core import InMemoryState
    from kos.resources.network import ADDRESS_STATUSES, LINK_STATUSES, ROUTE_STATUSES

    with netns("view") as path:
        nsenter(path, "ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        state = InMemoryState(history_max=8192)
        runtime = Runtime(state, backoff_initial=0.05, backoff_max=0.5)
        runtime.register(NetlinkStatusController(path))
        async with anyio.create_task_group() as tg:
            tg.start_soon(runtime.run)
            await anyio.sleep(0.2)
            cmds = ["ip link set v0 up", "ip link set v1 up", "ip link set v0 mtu 1400"]
            cmds += [f"ip addr add 10.60.{i}.1/24 dev v0" for i in range(20)]
            cmds += [f"ip route add 172.30.{i}.0/24 via 10.60.{i}.254 metric {i}" for i in range(20)]
            cmds += [f"ip route del 172.30.{i}.0/24 via 10.60.{i}.254 metric {i}" for i in range(0, 20, 2)]
            cmds += [f"ip addr del 10.60.{i}.1/24 dev v0" for i in range(15, 20)]
            cmds += ["ip -6 addr add fd00:60::1/64 dev v0", "ip route add 10.61.0.0/16 dev v0 table 50"]
            nsenter(path, "sh", "-c", " && ".join(cmds))

            async def current() -> dict[tuple[str, str], object]:
                out: dict[tuple[str, str], object] = {}
                for kind in (LINK_STATUSES, ADDRESS_STATUSES, ROUTE_STATUSES):
                    for r in await state.list(kind):
                        out[(kind.type, r.metadata.id)] = r.spec
                return out

            async with Netlink(path) as nl:
                deadline = anyio.current_time() + 15
                while True:
                    view = KernelView()
                    await view.load(nl)
                    want = {(k.type, id): spec for (k, id), spec in view.resources().items()}
                    got = await current()
                    # IPv6 DAD finishing is a legitimate late change: compare again until stable
                    if got == want or anyio.current_time() > deadline:
                        break
                    await anyio.sleep(0.1)
            assert got == want
            assert ("AddressStatuses.net.kos.dev", "v0/10.60.3.1/24") in got
            assert ("AddressStatuses.net.kos.dev", "v0/10.60.17.1/24") not in got
            tg.cancel_scope.cancel()
