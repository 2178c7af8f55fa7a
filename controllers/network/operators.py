"""``OperatorController``: runs the merged ``OperatorSpecs`` (``dhcp4/<link>``, ``vip/<link>``)
and writes their results as the ``operator`` layer of ``network-config``.

* **dhcp4**: once the link is up, a DHCPv4 client (``platform.network.dhcp4``) acquires a
  lease (sending the node's hostname unless ``skipHostnameRequest``); its address, routes
  (classless routes, else a default route via the first router, with the operator's route
  metric), name servers, search domains, hostname and NTP servers become operator-layer specs.
  The lease is renewed at T1 (unicast), rebound at T2 (broadcast); when it expires the results
  are withdrawn and the client starts over.
* **vip**: on control-plane machines only, the node that wins the ``Election`` for the VIP
  puts ``<vip>/32`` on the link and announces it with gratuitous ARP (3 times, 0.5 s apart);
  losing the election withdraws it. The default election (``StaticElection(True)``) makes
  every control plane node announce; an etcd-backed election plugs in through the same
  two-method interface.

Each operator runs as a task in the controller's task group, cancelled when its spec changes
or disappears, or its link goes away. ``dhcp_layer`` is the pure lease -> specs mapping.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any, Protocol

import anyio
import anyio.abc

from kos.controllers.network.config import layered_outputs, write_layer
from kos.controllers.network.layers import Layer, address_spec, route_spec
from kos.controllers.runtime import Controller, ControllerRuntime, Input
from kos.platform.network.arp import send_gratuitous_arp
from kos.platform.network.dhcp4 import Client, DHCPError, Lease
from kos.resources.config import MACHINE_TYPE_ID, MachineTypeSpec
from kos.resources.config import NAMESPACE as CONFIG_NS
from kos.resources.core import Phase, Pointer
from kos.resources.network import (
    HOSTNAME_STATUSES,
    LINK_STATUSES,
    OPERATOR_SPECS,
    ConfigLayer,
    HostnameSpecSpec,
    OperatorSpecSpec,
    ResolverSpecSpec,
    TimeServerSpecSpec,
)


class Election(Protocol):
    """Who announces a VIP. ``wait_leader`` returns once this node should hold ``ip``;
    ``wait_follower`` once it should not any more."""

    async def wait_leader(self, ip: str) -> None: ...

    async def wait_follower(self, ip: str) -> None: ...


class StaticElection:
    """A settable election: ``set(True)`` makes this node the leader for every VIP."""

    def __init__(self, leader: bool = True) -> None:
        self.leader = leader
        self._changed = anyio.Event()

    def set(self, leader: bool) -> None:
        self.leader = leader
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_leader(self, ip: str) -> None:
        while not self.leader:
            await self._changed.wait()

    async def wait_follower(self, ip: str) -> None:
        while self.leader:
            await self._changed.wait()


def dhcp_layer(lease: Lease, link: str, metric: int) -> Layer:
    layer = Layer(addresses=[address_spec("dhcp4 lease", link, lease.address)])
    src = lease.address.split("/")[0]
    if lease.routes:
        for dest, gw in lease.routes:
            if dest == "0.0.0.0/0":
                dest = ""
            gateway = "" if gw == "0.0.0.0" else gw
            r = route_spec("dhcp4 classless route", link, dest, gateway, metric=metric, protocol="dhcp")
            r.source = src
            layer.routes.append(r)
    elif lease.routers:
        r = route_spec("dhcp4 router", link, "", lease.routers[0], metric=metric, protocol="dhcp")
        r.source = src
        layer.routes.append(r)
    search = lease.search or ([lease.domain] if lease.domain else [])
    if lease.dns_servers or search:
        layer.resolvers = ResolverSpecSpec(dns_servers=list(lease.dns_servers), search_domains=search)
    if lease.hostname:
        host, _, domain = lease.hostname.partition(".")
        layer.hostname = HostnameSpecSpec(hostname=host, domainname=domain or lease.domain)
    if lease.ntp_servers:
        layer.time_servers = TimeServerSpecSpec(time_servers=list(lease.ntp_servers))
    return layer


def combine(results: dict[str, Layer]) -> Layer:
    out = Layer()
    for id in sorted(results):
        r = results[id]
        out.links += r.links
        out.addresses += r.addresses
        out.routes += r.routes
        out.operators += r.operators
        out.hostname = out.hostname or r.hostname
        out.resolvers = out.resolvers or r.resolvers
        out.time_servers = out.time_servers or r.time_servers
    # copies: write_layer stamps the layer on each spec
    return Layer(
        links=[s.copy() for s in out.links], addresses=[s.copy() for s in out.addresses],
        routes=[s.copy() for s in out.routes], operators=[s.copy() for s in out.operators],
        hostname=out.hostname.copy() if out.hostname else None,
        resolvers=out.resolvers.copy() if out.resolvers else None,
        time_servers=out.time_servers.copy() if out.time_servers else None,
    )


class OperatorController(Controller):
    name = "network.NetworkOperatorController"

    def __init__(self, netns: str | None = None, *, election: Election | None = None,
                 dhcp_attempt_timeout: float = 2.0, retry_delay: float = 5.0, garp_interval: float = 0.5) -> None:
        self.netns = netns
        self.election: Election = election or StaticElection(True)
        self.dhcp_attempt_timeout = dhcp_attempt_timeout
        self.retry_delay = retry_delay
        self.garp_interval = garp_interval
        self.results: dict[str, Layer] = {}
        self.hostname = ""

    def inputs(self) -> Sequence[Input]:
        return (
            Input(OPERATOR_SPECS.namespace, OPERATOR_SPECS.type),
            Input(LINK_STATUSES.namespace, LINK_STATUSES.type),
            Input(CONFIG_NS, MachineTypeSpec.definition.type, MACHINE_TYPE_ID),
            Input(HOSTNAME_STATUSES.namespace, HOSTNAME_STATUSES.type, "hostname"),
        )

    def outputs(self) -> Sequence[Any]:
        return layered_outputs()

    async def run(self, rt: ControllerRuntime) -> None:
        running: dict[str, tuple[OperatorSpecSpec, str, anyio.CancelScope]] = {}
        self.results = {}
        async with anyio.create_task_group() as tg:
            try:
                async for _ in rt.events():
                    await self.cycle(rt, tg, running)
            finally:
                for _, _, scope in running.values():
                    scope.cancel()

    async def cycle(self, rt: ControllerRuntime, tg: anyio.abc.TaskGroup,
                    running: dict[str, tuple[OperatorSpecSpec, str, anyio.CancelScope]]) -> None:
        hostname = await rt.get_or_none(Pointer(HOSTNAME_STATUSES.namespace, HOSTNAME_STATUSES.type, "hostname"))
        # sent in DHCP requests (option 12) by clients started from now on
        self.hostname = hostname.spec.hostname if hostname is not None else ""
        mt = await rt.get_or_none(Pointer(CONFIG_NS, MachineTypeSpec.definition.type, MACHINE_TYPE_ID))
        control_plane = mt is not None and mt.spec.is_control_plane
        links = {r.metadata.id: r.spec for r in await rt.list(LINK_STATUSES)}
        wanted: dict[str, tuple[OperatorSpecSpec, str]] = {}
        for r in await rt.list(OPERATOR_SPECS):
            spec: OperatorSpecSpec = r.spec
            if r.metadata.phase != Phase.RUNNING or spec.operator not in ("dhcp4", "vip"):
                continue
            link = links.get(spec.link_name)
            if link is None or (spec.require_up and not link.link_state):
                continue
            if spec.operator == "vip" and not control_plane:
                continue
            wanted[r.metadata.id] = (spec, link.hardware_address)
        for id in list(running):
            spec, mac, scope = running[id]
            if wanted.get(id) != (spec, mac):
                scope.cancel()
                del running[id]
                self.results.pop(id, None)
        for id, (spec, mac) in wanted.items():
            if id not in running:
                scope = anyio.CancelScope()
                running[id] = (spec, mac, scope)
                tg.start_soon(self._operate, rt, id, spec, mac, scope)
        await write_layer(rt, ConfigLayer.OPERATOR, combine(self.results))

    async def _operate(self, rt: ControllerRuntime, id: str, spec: OperatorSpecSpec, mac: str,
                       scope: anyio.CancelScope) -> None:
        with scope:
            try:
                if spec.operator == "dhcp4":
                    await self._dhcp4(rt, id, spec, mac)
                else:
                    await self._vip(rt, id, spec, mac)
            finally:
                if self.results.pop(id, None) is not None:
                    rt.queue_reconcile()

    def _publish(self, rt: ControllerRuntime, id: str, layer: Layer | None) -> None:
        if layer is None:
            self.results.pop(id, None)
        else:
            self.results[id] = layer
        rt.queue_reconcile()

    async def _dhcp4(self, rt: ControllerRuntime, id: str, spec: OperatorSpecSpec, mac: str) -> None:
        link, metric = spec.link_name, spec.dhcp4.route_metric
        log = rt.logger.bind(operator=id)
        holder: list[Lease] = []
        hostname = "" if spec.dhcp4.skip_hostname_request else self.hostname
        timeout = self.dhcp_attempt_timeout
        async with Client(self.netns, link, mac, hostname=hostname, attempt_timeout=timeout) as client:
            try:
                await self._dhcp4_loop(rt, id, client, link, metric, holder)
            finally:
                if holder:
                    client.release(holder[-1])  # the operator stops: give the address back
                    log.info("dhcp4: lease released", address=holder[-1].address)

    async def _dhcp4_loop(self, rt: ControllerRuntime, id: str, client: Client, link: str, metric: int,
                          holder: list[Lease]) -> None:
        """Acquire, renew at T1, rebind at T2, start over on expiry; ``holder`` keeps the
        lease in force (for the release on stop)."""
        log = rt.logger.bind(operator=id)
        while True:
            try:
                lease = await client.acquire()
            except (DHCPError, OSError) as e:
                log.warning("dhcp4: no lease yet", error=str(e))
                await anyio.sleep(self.retry_delay)
                continue
            log.info("dhcp4: lease acquired", address=lease.address, server=lease.server, lease_time=lease.lease_time)
            holder[:] = [lease]
            self._publish(rt, id, dhcp_layer(lease, link, metric))
            start = anyio.current_time()
            while True:
                expiry = start + lease.lease_time
                await anyio.sleep_until(start + lease.renewal_time)
                renewed: Lease | None = None
                while renewed is None and anyio.current_time() < expiry:
                    late = anyio.current_time() >= start + lease.rebinding_time
                    try:
                        renewed = await (client.rebind(lease) if late else client.renew(lease))
                    except (DHCPError, OSError) as e:
                        log.warning("dhcp4: lease not extended yet", error=str(e), rebinding=late)
                        remaining = expiry - anyio.current_time()
                        await anyio.sleep(max(0.5, min(remaining / 2, 60.0)))
                if renewed is None:
                    log.warning("dhcp4: lease expired", address=lease.address)
                    holder.clear()
                    self._publish(rt, id, None)
                    break
                start, lease = anyio.current_time(), renewed
                holder[:] = [lease]
                log.info("dhcp4: lease renewed", address=lease.address)
                self._publish(rt, id, dhcp_layer(lease, link, metric))

    async def _vip(self, rt: ControllerRuntime, id: str, spec: OperatorSpecSpec, mac: str) -> None:
        ip = str(ipaddress.ip_address(spec.vip.ip))
        log = rt.logger.bind(operator=id, vip=ip)
        while True:
            await self.election.wait_leader(ip)
            log.info("vip: this node announces the shared address")
            self._publish(rt, id, Layer(addresses=[address_spec("vip", spec.link_name, f"{ip}/32")]))
            async with anyio.create_task_group() as tg:
                if spec.vip.gratuitous_arp:
                    tg.start_soon(self._announce, rt, spec.link_name, mac, ip)
                await self.election.wait_follower(ip)
                tg.cancel_scope.cancel()
            log.info("vip: released")
            self._publish(rt, id, None)

    async def _announce(self, rt: ControllerRuntime, link: str, mac: str, ip: str) -> None:
        for _ in range(3):
            try:
                await anyio.to_thread.run_sync(send_gratuitous_arp, self.netns, link, mac, ip)
            except OSError as e:  # e.g. the link went down meanwhile: the next election round retries
                rt.logger.warning("vip: gratuitous ARP not sent", vip=ip, link=link, error=str(e))
            await anyio.sleep(self.garp_interval)
