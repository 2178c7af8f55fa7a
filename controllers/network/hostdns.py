"""The host DNS cache (``machine.features.hostDNS`` / ``ResolverConfig.hostDNS``), as on Talos.

* ``HostDNSConfigController``: MachineConfig + the merged ``ResolverSpecs/resolvers`` +
  cluster ``Members`` -> ``HostDNSConfigs/config`` (none when host DNS is off): listen on
  ``127.0.0.53:53``, also on ``169.254.116.108:53`` with ``forwardKubeDNSToHost`` (CoreDNS
  then forwards there, see ``controllers/k8s/manifests.py``); upstreams are the node's
  resolvers (configured, DHCP, platform, kernel args, defaults); with ``resolveMemberNames``
  the members' hostnames (and their first label) answered with their addresses.
* ``HostDNSController``: ``HostDNSConfigs/config`` -> the server
  (``kos.platform.network.dnsserver``) in the node's network namespace (it puts
  ``169.254.116.108/32`` on ``lo`` first and takes it away when no longer needed) ->
  ``HostDNSStatuses/config`` (where it listens, upstream health, counters, bind errors; a
  listener that cannot bind is retried every ``retry_interval`` seconds).
  ``EtcFilesController`` points ``resolv.conf`` at ``127.0.0.53`` once it listens there.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

import anyio
from anyio.abc import TaskStatus

from kos.controllers.runtime import Controller, ControllerRuntime, Input, InputKind, Output, OutputKind
from kos.platform.network.dnsserver import HostDNSServer, split_hostport
from kos.platform.network.netlink import Netlink, NetlinkError
from kos.resources.cluster import MEMBERS, MemberSpec
from kos.resources.config import ACTIVE_ID, MachineConfigSpec
from kos.resources.config import NAMESPACE as CONFIG_NS
from kos.resources.core import Phase, Pointer, Resource
from kos.resources.machineconfig import ConfigContainer, ConfigErrors, views
from kos.resources.network import (
    HOST_DNS_ADDRESS,
    HOST_DNS_CONFIGS,
    HOST_DNS_ID,
    HOST_DNS_STATUSES,
    KUBE_DNS_HOST_ADDRESS,
    NAMESPACE,
    RESOLVER_SPECS,
    HostDNSConfigSpec,
    HostDNSName,
    HostDNSStatusSpec,
    ResolverSpecSpec,
)

_MC = Pointer(CONFIG_NS, MachineConfigSpec.definition.type, ACTIVE_ID)
_RESOLVERS = Pointer(RESOLVER_SPECS.namespace, RESOLVER_SPECS.type, "resolvers")
OWN = {HOST_DNS_ADDRESS, KUBE_DNS_HOST_ADDRESS}


def member_names(members: Sequence[MemberSpec], exclude: Sequence[str] = ()) -> list[HostDNSName]:
    """Each member's hostname (and, for a dotted one, its first label) -> its addresses, except
    link-local ones and those in ``exclude`` (the pod and service subnets: a node's CNI
    bridge/vxlan addresses are no way to reach it by name)."""
    nets = []
    for e in exclude:
        try:
            nets.append(ipaddress.ip_network(e, strict=False))
        except ValueError:
            continue
    by_name: dict[str, list[str]] = {}
    for m in sorted(members, key=lambda m: m.hostname):
        name = m.hostname.lower().rstrip(".")
        if not name:
            continue
        addrs: list[str] = []
        for a in m.addresses:
            try:
                ip = ipaddress.ip_interface(a).ip
            except ValueError:
                continue
            if ip.is_link_local or any(ip in n for n in nets if n.version == ip.version):
                continue
            if str(ip) not in addrs:
                addrs.append(str(ip))
        for n in dict.fromkeys([name, name.split(".")[0]]):
            by_name.setdefault(n, [])
            by_name[n] += [a for a in addrs if a not in by_name[n]]
    return [HostDNSName(name=n, addresses=a) for n, a in sorted(by_name.items())]


DEFAULT_SUBNETS = ("10.244.0.0/16", "10.96.0.0/12")  # kos's pod and service subnets when unset


def cluster_subnets(c: ConfigContainer) -> list[str]:
    n = c.config.cluster.network
    return [*(n.pod_subnets or DEFAULT_SUBNETS[:1]), *(n.service_subnets or DEFAULT_SUBNETS[1:])]


def host_dns_config(c: ConfigContainer, resolvers: ResolverSpecSpec | None,
                    members: Sequence[MemberSpec] = ()) -> HostDNSConfigSpec | None:
    """What to run, or None when host DNS is off."""
    h = views.host_dns(c)
    if not h.enabled:
        return None
    listen = [f"{HOST_DNS_ADDRESS}:53"]
    if h.forward_kube_dns_to_host:
        listen.append(f"{KUBE_DNS_HOST_ADDRESS}:53")
    upstreams: list[str] = []
    for s in (resolvers.dns_servers if resolvers is not None else []):
        try:
            host, _ = split_hostport(s)
        except ValueError:
            continue
        if host not in OWN and s not in upstreams:
            upstreams.append(s)
    return HostDNSConfigSpec(
        listen_addresses=listen, upstreams=upstreams, forward_kube_dns_to_host=h.forward_kube_dns_to_host,
        resolve_member_names=h.resolve_member_names,
        names=member_names(members, cluster_subnets(c)) if h.resolve_member_names else [])


class HostDNSConfigController(Controller):
    name = "network.HostDNSConfigController"

    def inputs(self) -> Sequence[Input]:
        return (Input(_MC.namespace, _MC.type, _MC.id),
                Input(_RESOLVERS.namespace, _RESOLVERS.type, _RESOLVERS.id),
                Input(MEMBERS.namespace, MEMBERS.type, None, InputKind.WEAK))

    def outputs(self) -> Sequence[Output]:
        return (Output(HOST_DNS_CONFIGS.type, OutputKind.EXCLUSIVE),)

    async def run(self, rt: ControllerRuntime) -> None:
        async for _ in rt.events():
            mc = await rt.get_or_none(_MC)
            if mc is None or mc.metadata.phase != Phase.RUNNING:
                rt.start_tracking_outputs()
                await rt.cleanup_outputs(HOST_DNS_CONFIGS)
                continue
            resolvers = await rt.get_or_none(_RESOLVERS)
            members = [m.spec for m in await rt.list(MEMBERS)]
            try:
                spec = host_dns_config(mc.spec.container(), resolvers.spec if resolvers is not None else None,
                                       members)
            except (ValueError, ConfigErrors) as exc:
                rt.logger.error("hostDNS: cannot render, keeping the previous config", error=str(exc))
                rt.reset_restart_backoff()
                continue
            rt.start_tracking_outputs()
            if spec is not None:
                def fill(res: Resource[Any], s: HostDNSConfigSpec = spec) -> None:
                    res.spec = s

                await rt.modify(Resource.new(HostDNSConfigSpec(), HOST_DNS_ID, namespace=NAMESPACE), fill)
            await rt.cleanup_outputs(HOST_DNS_CONFIGS)
            rt.reset_restart_backoff()


def _server_args(spec: HostDNSConfigSpec) -> tuple[list[tuple[str, int]], dict[str, list[str]]]:
    ups = []
    for s in spec.upstreams:
        try:
            ups.append(split_hostport(s))
        except ValueError:
            continue
    return ups, {n.name: list(n.addresses) for n in spec.names}


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in _leaves(e)]
    return [exc]


class HostDNSController(Controller):
    """Runs the server for ``HostDNSConfigs/config`` in ``netns`` (None: machined's own)."""

    name = "network.HostDNSController"

    def __init__(self, netns: str | None = None, *, status_interval: float = 5.0, timeout: float = 2.0,
                 retry_interval: float = 5.0) -> None:
        self.netns = netns
        self.retry_interval = retry_interval
        self.status_interval = status_interval
        self.timeout = timeout
        self.server: HostDNSServer | None = None

    def inputs(self) -> Sequence[Input]:
        return (Input(HOST_DNS_CONFIGS.namespace, HOST_DNS_CONFIGS.type, HOST_DNS_ID),)

    def outputs(self) -> Sequence[Output]:
        return (Output(HOST_DNS_STATUSES.type, OutputKind.EXCLUSIVE),)

    async def run(self, rt: ControllerRuntime) -> None:
        async with Netlink(self.netns) as nl, anyio.create_task_group() as tg:
            scope: anyio.CancelScope | None = None
            stopped = anyio.Event()
            listen: list[str] = []
            try:
                async for _ in rt.events():
                    r = await rt.get_or_none(HOST_DNS_CONFIGS.pointer(HOST_DNS_ID))
                    spec: HostDNSConfigSpec | None = r.spec if r is not None and r.metadata.phase == Phase.RUNNING \
                        else None
                    want = list(spec.listen_addresses) if spec is not None else []
                    if self.server is not None and want != listen:
                        if scope is not None:
                            scope.cancel()
                            await stopped.wait()  # its sockets are closed: the new one can bind
                        self.server, scope, listen = None, None, []
                    await self._kube_dns_address(rt, nl, f"{KUBE_DNS_HOST_ADDRESS}:53" in want)
                    if spec is None:
                        rt.start_tracking_outputs()
                        await rt.cleanup_outputs(HOST_DNS_STATUSES)
                    elif self.server is not None:
                        ups, names = _server_args(spec)
                        self.server.update(upstreams=ups, names=names)
                        await self._status(rt)
                    else:
                        ups, names = _server_args(spec)
                        server = HostDNSServer(listen=[split_hostport(a) for a in want], upstreams=ups,
                                               names=names, netns=self.netns, timeout=self.timeout)
                        scope = anyio.CancelScope()
                        stopped = anyio.Event()
                        bind_error = ""
                        try:
                            await tg.start(self._serve, rt, server, scope, stopped)
                            self.server, listen = server, want
                        except* OSError as group:  # (task groups wrap it)
                            bind_error = "; ".join(str(e) for e in _leaves(group))
                        if bind_error:
                            rt.logger.error("host DNS cache cannot listen, retrying", error=bind_error,
                                            retry_in=self.retry_interval)
                            await self._status(rt, server, error=bind_error, listening=False)
                            tg.start_soon(self._retry_later, rt)
                    rt.reset_restart_backoff()
            finally:
                tg.cancel_scope.cancel()
                self.server = None
                with anyio.CancelScope(shield=True):
                    await self._kube_dns_address(rt, nl, False)

    async def _retry_later(self, rt: ControllerRuntime) -> None:
        await anyio.sleep(self.retry_interval)
        rt.queue_reconcile()

    async def _kube_dns_address(self, rt: ControllerRuntime, nl: Netlink, present: bool) -> None:
        """``169.254.116.108/32`` on ``lo``: pods reach the cache there (their traffic enters the
        host through the CNI bridge and is delivered locally)."""
        cidr = f"{KUBE_DNS_HOST_ADDRESS}/32"
        try:
            lo = next((link for link in await nl.links() if link.name == "lo"), None)
            if lo is None:
                return
            have = any(a.address.split("/")[0] == KUBE_DNS_HOST_ADDRESS and a.index == lo.index
                       for a in await nl.addresses())
            if present and not have:
                await nl.address_add(lo.index, cidr, scope="host")
            elif not present and have:
                await nl.address_delete(lo.index, cidr)
        except NetlinkError as exc:
            rt.logger.warning("host DNS: cannot change the kube-dns address on lo", error=str(exc))

    async def _serve(self, rt: ControllerRuntime, server: HostDNSServer, scope: anyio.CancelScope,
                     stopped: anyio.Event, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            await self._serve_in(rt, server, scope, task_status)
        finally:
            stopped.set()

    async def _serve_in(self, rt: ControllerRuntime, server: HostDNSServer, scope: anyio.CancelScope,
                        task_status: TaskStatus[None]) -> None:
        with scope:
            async with anyio.create_task_group() as tg:
                await tg.start(lambda task_status: server.serve(task_status=task_status))
                await self._status(rt, server)
                task_status.started()
                while True:
                    await anyio.sleep(self.status_interval)
                    await self._status(rt, server)

    async def _status(self, rt: ControllerRuntime, server: HostDNSServer | None = None, *, error: str = "",
                      listening: bool = True) -> None:
        server = server or self.server
        if server is None:
            return
        st = server.stats
        status = HostDNSStatusSpec(
            listening=[f"{h}:{p}" for h, p in server.listen] if listening else [],
            upstreams=[f"{h}:{p}" for h, p in server.upstreams],
            healthy_upstreams=[u for u, ok in st.upstream_ok.items() if ok],
            queries=st.queries, cache_hits=st.cache_hits, cache_entries=len(server.cache),
            upstream_failures=st.upstream_failures, error=error)

        def fill(r: Resource[Any]) -> None:
            r.spec = status

        await rt.modify(Resource.new(HostDNSStatusSpec(), HOST_DNS_ID, namespace=NAMESPACE), fill)
