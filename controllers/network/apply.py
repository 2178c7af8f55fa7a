"""Apply controllers: merged ``LinkSpecs``/``AddressSpecs``/``RouteSpecs`` -> the kernel.

Each controller holds a finalizer (its name) on every merged spec it applied. A spec that is
torn down (no layer asks for it any more) is removed from the kernel first (logical links
deleted, physical links set down, addresses and routes deleted), then the finalizer is
released so the merge controller can destroy it: nothing is left behind.

Each reconcile compares the specs with what the kernel has (links from a netlink dump,
addresses and routes from the status resources, which the status controller keeps current from
netlink notifications) and changes only what differs; one reconcile's address/route operations
run as one batch.
The controllers also watch the status resources, so a change made outside kos to something
kos manages (an address deleted, an MTU changed, a route removed) is put back.

A spec that cannot be applied (unknown link, link kind missing from this kernel, MTU out of
range, unreachable gateway, ...) gets a ``NetworkApplyErrors`` resource ``<kind>/<id>``
saying why, and the rest keeps converging; the error disappears once the spec applies.
"""

from __future__ import annotations

import errno
import ipaddress
from collections.abc import Sequence
from typing import Any

from kos.controllers.runtime import Controller, ControllerRuntime, Input, InputKind, Output, OutputKind
from kos.platform.network.netlink import LinkCreate, LinkInfo, Netlink, NetlinkError, Op, RouteInfo
from kos.resources.core import IDQuery, Kind, Phase, Resource
from kos.resources.network import (
    ADDRESS_SPECS,
    ADDRESS_STATUSES,
    APPLY_ERRORS,
    LINK_KINDS,
    LINK_SPECS,
    LINK_STATUSES,
    MTU_MAX,
    MTU_MIN,
    NAMESPACE,
    ROUTE_SPECS,
    ROUTE_STATUSES,
    AddressSpecSpec,
    LinkSpecSpec,
    NetworkApplyErrorSpec,
    RouteSpecSpec,
)

# route status ids start with the table: skip the kernel's local table (255), kos never
# manages it and it holds most of the routes
NOT_LOCAL_TABLE = IDQuery(r"^(?:[^2]|2[^5]|25[^5]|255[^/])")


class ApplyError(Exception):
    """A spec that cannot be applied; the message says why."""


def _weak(kind: Kind) -> Input:
    return Input(kind.namespace, kind.type, None, InputKind.WEAK)


class _ApplyController(Controller):
    spec_kind: Kind
    prefix: str

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._logged: dict[str, str] = {}

    def extra_inputs(self) -> Sequence[Input]:
        return ()

    def inputs(self) -> Sequence[Input]:
        return (Input(self.spec_kind.namespace, self.spec_kind.type, None, InputKind.STRONG), *self.extra_inputs())

    def outputs(self) -> Sequence[Output]:
        return (Output(APPLY_ERRORS.type, OutputKind.SHARED),)

    async def run(self, rt: ControllerRuntime) -> None:
        async with Netlink(self.netns) as nl:
            async for _ in rt.events():
                await self.cycle(rt, nl)

    async def cycle(self, rt: ControllerRuntime, nl: Netlink) -> None:
        await self.refresh(nl, rt)
        errors: dict[str, str] = {}
        ops: list[tuple[str, Op]] = []  # (error id, op): run together in one worker-thread call
        released: list[Resource[Any]] = []
        name = self.name
        for r in sorted(await rt.list(self.spec_kind), key=self.order):
            error_id = f"{self.prefix}/{r.metadata.id}"
            if r.metadata.phase == Phase.TEARING_DOWN:
                if r.metadata.has_finalizer(name):
                    try:
                        op = await self.remove(nl, r.spec)
                    except (ApplyError, NetlinkError) as e:
                        rt.logger.warning("could not remove from the kernel", id=r.metadata.id, error=str(e))
                        op = None
                    if op is not None:
                        ops.append(("", op))
                    released.append(r)
                continue
            if not r.metadata.has_finalizer(name):
                await rt.add_finalizer(r.pointer, name)
            try:
                op = await self.apply(nl, r.spec)
            except (ApplyError, NetlinkError) as e:
                errors[error_id] = str(e)
                continue
            if op is not None:
                ops.append((error_id, op))
        results = await nl.run_ops([op for _, op in ops])
        for (error_id, _), err in zip(ops, results, strict=True):
            if err is None:
                continue
            if error_id:
                errors[error_id] = str(err)
            elif err.errno not in (errno.ENOENT, errno.ESRCH, errno.EADDRNOTAVAIL, errno.ENODEV):
                rt.logger.warning("could not remove from the kernel", error=str(err))
        for r in released:
            await rt.remove_finalizer(r.pointer, name)
        rt.start_tracking_outputs()
        logged = self._logged
        for id, message in errors.items():

            def fill(res: Resource[Any], id: str = id, message: str = message) -> None:
                res.spec = NetworkApplyErrorSpec(object=id, error=message)

            await rt.modify(Resource.new(NetworkApplyErrorSpec(), id, namespace=NAMESPACE), fill)
            if logged.get(id) != message:  # log each error once, not every reconcile
                rt.logger.warning("network spec not applied", object=id, error=message)
        for id in logged.keys() - errors.keys():
            rt.logger.info("network spec applied after an error", object=id)
        self._logged = errors
        await rt.cleanup_outputs(APPLY_ERRORS)

    def order(self, r: Resource[Any]) -> Any:
        return r.metadata.id

    async def refresh(self, nl: Netlink, rt: ControllerRuntime) -> None:
        """What the kernel has now: links from a netlink dump (small, and must be exact for
        creation); subclasses add addresses/routes from the status resources (the kernel view
        the status controller keeps from notifications, cheaper than dumping every cycle)."""
        self.links: dict[str, LinkInfo] = {link.name: link for link in await nl.links()}

    def link(self, name: str, what: str) -> LinkInfo:
        link = self.links.get(name)
        if link is None:
            raise ApplyError(f"{what}: link {name!r} does not exist")
        return link

    async def apply(self, nl: Netlink, spec: Any) -> Op | None:
        """Bring the kernel in line with ``spec``: directly, or by returning an operation
        for the cycle's batch."""
        raise NotImplementedError

    async def remove(self, nl: Netlink, spec: Any) -> Op | None:
        raise NotImplementedError


def _unsupported(kind: str, e: NetlinkError) -> ApplyError:
    return ApplyError(
        f"link kind {kind!r} is not available in this kernel ({errno.errorcode.get(e.errno, e.errno)}): the config "
        "is accepted but the link is not created"
    )


class LinkApplyController(_ApplyController):
    """Creates logical links (bridge, veth, vxlan, macvlan, vlan, bond, ...), sets MTU, master
    and up/down; deletes logical links and downs physical ones on teardown."""

    name = "network.LinkApplyController"
    spec_kind = LINK_SPECS
    prefix = "link"

    def extra_inputs(self) -> Sequence[Input]:
        return (_weak(LINK_STATUSES),)

    def order(self, r: Resource[Any]) -> Any:
        s: LinkSpecSpec = r.spec
        # masters and parents before their ports/children
        return (0 if s.kind in ("bridge", "bond") else 1 if not (s.master or s.parent) else 2, r.metadata.id)

    async def apply(self, nl: Netlink, spec: LinkSpecSpec) -> Op | None:
        what = f"link {spec.name!r}"
        if spec.kind not in LINK_KINDS:
            raise ApplyError(f"{what}: kind {spec.kind!r} is invalid, expected one of {', '.join(LINK_KINDS[1:])}")
        if spec.mtu and not MTU_MIN <= spec.mtu <= MTU_MAX:
            raise ApplyError(f"{what}: mtu {spec.mtu} is out of range, expected {MTU_MIN}..{MTU_MAX}")
        link = self.links.get(spec.name)
        if link is None:
            if not spec.kind:
                raise ApplyError(f"{what}: no such link in the kernel (physical links are not created)")
            parent = self.link(spec.parent, what).index if spec.parent else 0
            try:
                await nl.link_create(LinkCreate(
                    name=spec.name, kind=spec.kind, veth_peer=spec.veth_peer, parent_index=parent,
                    vlan_id=spec.vlan_id, vxlan_id=spec.vxlan_id, vxlan_remote=spec.vxlan_remote,
                    vxlan_port=spec.vxlan_port, macvlan_mode=spec.macvlan_mode, bond_mode=spec.bond_mode,
                ))
            except NetlinkError as e:
                if e.unsupported:
                    raise _unsupported(spec.kind, e) from None
                raise
            self.links = {link.name: link for link in await nl.links()}
            link = self.link(spec.name, what)
        master = 0
        if spec.master:
            master = self.link(spec.master, f"{what} master").index
        mtu = spec.mtu if spec.mtu and spec.mtu != link.mtu else None
        want_master = master if master != link.master_index else None
        hw = spec.hardware_address if spec.hardware_address and spec.hardware_address != link.hardware_address else None
        if mtu or want_master is not None or hw:
            await nl.link_set(link.index, mtu=mtu, master=want_master, hardware_address=hw)
        if spec.up != link.up:
            await nl.link_set(link.index, up=spec.up)
        return None

    async def remove(self, nl: Netlink, spec: LinkSpecSpec) -> Op | None:
        link = self.links.get(spec.name)
        if link is None:
            return None
        if spec.logical or spec.kind:
            await nl.link_delete(link.index)
        else:
            if spec.master:
                await nl.link_set(link.index, master=0)
            if link.up and spec.name != "lo":
                await nl.link_set(link.index, up=False)
        return None


class AddressApplyController(_ApplyController):
    name = "network.AddressApplyController"
    spec_kind = ADDRESS_SPECS
    prefix = "address"

    def extra_inputs(self) -> Sequence[Input]:
        return (_weak(ADDRESS_STATUSES), _weak(LINK_STATUSES))

    async def refresh(self, nl: Netlink, rt: ControllerRuntime) -> None:
        await super().refresh(nl, rt)
        self.present = {
            (a.spec.link_index, str(ipaddress.ip_interface(a.spec.address))) for a in await rt.list(ADDRESS_STATUSES)
        }

    async def apply(self, nl: Netlink, spec: AddressSpecSpec) -> Op | None:
        what = f"address {spec.address!r}"
        try:
            cidr = str(ipaddress.ip_interface(spec.address))
        except ValueError:
            raise ApplyError(f"{what}: does not parse, expected CIDR such as 10.5.0.2/24") from None
        link = self.link(spec.link_name, what)
        if (link.index, cidr) in self.present:
            return None
        return nl.address_add_op(link.index, cidr, scope=spec.scope, valid=spec.valid_lifetime,
                                 preferred=spec.preferred_lifetime)

    async def remove(self, nl: Netlink, spec: AddressSpecSpec) -> Op | None:
        link = self.links.get(spec.link_name)
        if link is None:
            return None
        # always try (the status view may not show an address added a moment ago); "not
        # there" answers are ignored by the cycle
        return nl.address_delete_op(link.index, str(ipaddress.ip_interface(spec.address)))


def route_info(spec: RouteSpecSpec, oif: int) -> RouteInfo:
    return RouteInfo(
        family=spec.family, destination=spec.destination, source=spec.source, gateway=spec.gateway, oif=oif,
        table=spec.table, priority=spec.priority, scope=spec.scope, type=spec.type, protocol=spec.protocol,
    )


class RouteApplyController(_ApplyController):
    name = "network.RouteApplyController"
    spec_kind = ROUTE_SPECS
    prefix = "route"

    def extra_inputs(self) -> Sequence[Input]:
        return (_weak(ROUTE_STATUSES), _weak(LINK_STATUSES), _weak(ADDRESS_STATUSES))

    async def refresh(self, nl: Netlink, rt: ControllerRuntime) -> None:
        await super().refresh(nl, rt)
        self.routes = [
            RouteInfo(family=r.spec.family, destination=r.spec.destination, gateway=r.spec.gateway,
                      oif=r.spec.out_link_index, table=r.spec.table, priority=r.spec.priority)
            for r in await rt.list(ROUTE_STATUSES, id_query=NOT_LOCAL_TABLE)
        ]

    def _present(self, want: RouteInfo) -> bool:
        for r in self.routes:
            if (r.family, r.destination, r.gateway, r.table, r.priority) == (
                want.family, want.destination, want.gateway, want.table, want.priority
            ) and (want.oif == 0 or want.oif == r.oif):
                return True
        return False

    def _info(self, spec: RouteSpecSpec) -> RouteInfo:
        what = f"route to {spec.destination or 'default'} via {spec.gateway or '-'}"
        try:
            if spec.destination:
                ipaddress.ip_network(spec.destination)
            if spec.gateway:
                ipaddress.ip_address(spec.gateway)
        except ValueError as e:
            raise ApplyError(f"{what}: {e}") from None
        oif = self.link(spec.out_link_name, what).index if spec.out_link_name else 0
        return route_info(spec, oif)

    async def apply(self, nl: Netlink, spec: RouteSpecSpec) -> Op | None:
        info = self._info(spec)
        if self._present(info):
            return None
        return nl.route_replace_op(info)

    async def remove(self, nl: Netlink, spec: RouteSpecSpec) -> Op | None:
        try:
            info = self._info(spec)
        except ApplyError:
            return None
        return nl.route_delete_op(info)  # always try, as for addresses
