"""KubePrism (``machine.features.kubePrism``): a TCP load balancer on ``127.0.0.1:<port>``
(default 7445) to the cluster's API servers, so that clients on the node reach Kubernetes while
any one API server is up, as on Talos.

* ``KubePrismConfigController``: MachineConfig + Members -> ``KubePrismConfigs`` (id
  ``k8s-loadbalancer-config``): on a control plane its own API server first
  (``127.0.0.1:<localAPIServerPort>``), then ``cluster.controlPlane.endpoint``, then every
  control-plane member's addresses; none when the feature is off.
* ``KubePrismController``: KubePrismConfigs -> the listener -> ``KubePrismStatuses``. Each
  connection goes to the first endpoint that is healthy (a TCP connect every
  ``health_interval`` seconds), trying the others in order when a connect fails; bytes are
  copied both ways until either side closes. A new endpoint list applies to new connections;
  a new address/port rebinds. A port it cannot bind is reported in the status (``error``) and
  retried every ``retry_interval`` seconds.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import anyio
from anyio.abc import SocketStream, TaskStatus

from kos.controllers.runtime import Controller, ControllerRuntime, Input, InputKind, Output, OutputKind
from kos.controllers.system.configspecs import MACHINE_CONFIG
from kos.resources.cluster import MEMBERS, MemberSpec
from kos.resources.config import is_control_plane
from kos.resources.core import Phase, Resource
from kos.resources.k8s import (
    KUBEPRISM_CONFIGS,
    KUBEPRISM_ID,
    KUBEPRISM_STATUSES,
    NAMESPACE,
    KubePrismConfigSpec,
    KubePrismStatusSpec,
)
from kos.resources.machineconfig import ConfigContainer, ConfigErrors

DEFAULT_PORT = 7445


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def kubeprism_config(c: ConfigContainer, members: Sequence[MemberSpec] = ()) -> KubePrismConfigSpec | None:
    """The load balancer's config, or None when ``machine.features.kubePrism.enabled`` is not true."""
    cfg = c.config
    kp = cfg.machine.features.kube_prism
    if not kp.enabled:
        return None
    port = kp.port or DEFAULT_PORT
    if not 0 < port < 65536:
        raise ValueError(f"machine.features.kubePrism.port: {port} is invalid, expected a TCP port (1-65535)")
    api_port = cfg.cluster.control_plane.local_api_server_port or 6443
    out: list[str] = []
    if is_control_plane(c.machine_type):
        out.append(_hostport("127.0.0.1", api_port))
    u = urlsplit(cfg.cluster.control_plane.endpoint)
    if u.hostname:
        out.append(_hostport(u.hostname, u.port or 443))
    for m in members:
        if not is_control_plane(m.machine_type):
            continue
        for addr in m.addresses:
            try:
                ip = ipaddress.ip_interface(addr).ip
            except ValueError:
                continue
            if not ip.is_link_local:
                out.append(_hostport(str(ip), api_port))
    return KubePrismConfigSpec(host="127.0.0.1", port=port, endpoints=list(dict.fromkeys(out)))


class KubePrismConfigController(Controller):
    name = "system.KubePrismConfigController"

    def inputs(self) -> Sequence[Input]:
        return (Input(MACHINE_CONFIG.namespace, MACHINE_CONFIG.type, MACHINE_CONFIG.id),
                Input(MEMBERS.namespace, MEMBERS.type, None, InputKind.WEAK))

    def outputs(self) -> Sequence[Output]:
        return (Output(KUBEPRISM_CONFIGS.type, OutputKind.EXCLUSIVE),)

    async def run(self, rt: ControllerRuntime) -> None:
        async for _ in rt.events():
            rt.start_tracking_outputs()
            r = await rt.get_or_none(MACHINE_CONFIG)
            if r is not None and r.metadata.phase == Phase.RUNNING:
                members = [m.spec for m in await rt.list(MEMBERS)]
                try:
                    spec = kubeprism_config(r.spec.container(), members)
                except (ValueError, ConfigErrors) as exc:
                    rt.logger.error("kubePrism: cannot render, keeping the previous config", error=str(exc))
                    rt.reset_restart_backoff()
                    continue
                if spec is not None:
                    def fill(res: Resource[Any], s: KubePrismConfigSpec = spec) -> None:
                        res.spec = s

                    await rt.modify(Resource.new(KubePrismConfigSpec(), KUBEPRISM_ID, namespace=NAMESPACE), fill)
            await rt.cleanup_outputs(KUBEPRISM_CONFIGS)
            rt.reset_restart_backoff()


def _split(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)


class LoadBalancer:
    """The TCP proxy: ``endpoints`` may change while it serves (new connections use them)."""

    def __init__(self, host: str, port: int, endpoints: Sequence[str], *, connect_timeout: float = 2.0) -> None:
        self.host, self.port = host, port
        self.endpoints = list(endpoints)
        self.healthy: list[str] = []
        self.connect_timeout = connect_timeout

    def order(self) -> list[str]:
        return [e for e in self.endpoints if e in self.healthy] + [e for e in self.endpoints if e not in self.healthy]

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self.port, reuse_port=False)
        async with listener:
            task_status.started()
            await listener.serve(self._handle)

    async def _connect(self) -> SocketStream | None:
        for ep in self.order():
            host, port = _split(ep)
            try:
                with anyio.fail_after(self.connect_timeout):
                    return await anyio.connect_tcp(host, port)
            except (OSError, TimeoutError):
                if ep in self.healthy:
                    self.healthy.remove(ep)
        return None

    async def _handle(self, client: SocketStream) -> None:
        async with client:
            upstream = await self._connect()
            if upstream is None:
                return
            async with upstream, anyio.create_task_group() as tg:
                tg.start_soon(_pipe, client, upstream)
                tg.start_soon(_pipe, upstream, client)

    async def probe(self) -> list[str]:
        """Which endpoints accept a TCP connection now (also becomes ``healthy``)."""
        ok: list[str] = []
        for ep in list(self.endpoints):
            host, port = _split(ep)
            try:
                with anyio.fail_after(self.connect_timeout):
                    stream = await anyio.connect_tcp(host, port)
                await stream.aclose()
                ok.append(ep)
            except (OSError, TimeoutError):
                pass
        self.healthy = ok
        return ok


async def _pipe(src: SocketStream, dst: SocketStream) -> None:
    try:
        async for chunk in src:
            await dst.send(chunk)
        await dst.send_eof()
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        await dst.aclose()


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in _leaves(e)]
    return [exc]


class KubePrismController(Controller):
    name = "system.KubePrismController"

    def __init__(self, *, health_interval: float = 5.0, retry_interval: float = 5.0) -> None:
        self.health_interval = health_interval
        self.retry_interval = retry_interval
        self.lb: LoadBalancer | None = None

    def inputs(self) -> Sequence[Input]:
        return (Input(KUBEPRISM_CONFIGS.namespace, KUBEPRISM_CONFIGS.type, KUBEPRISM_ID),)

    def outputs(self) -> Sequence[Output]:
        return (Output(KUBEPRISM_STATUSES.type, OutputKind.EXCLUSIVE),)

    async def run(self, rt: ControllerRuntime) -> None:
        async with anyio.create_task_group() as tg:
            scope: anyio.CancelScope | None = None
            async for _ in rt.events():
                r = await rt.get_or_none(KUBEPRISM_CONFIGS.pointer(KUBEPRISM_ID))
                spec: KubePrismConfigSpec | None = r.spec if r is not None and r.metadata.phase == Phase.RUNNING \
                    else None
                lb = self.lb
                if lb is not None and (spec is None or (spec.host, spec.port) != (lb.host, lb.port)):
                    if scope is not None:
                        scope.cancel()
                    self.lb = lb = None
                if spec is None:
                    for st in await rt.list(KUBEPRISM_STATUSES):
                        if st.metadata.owner == self.name:
                            await rt.destroy(st.pointer)
                elif lb is not None:
                    lb.endpoints = list(spec.endpoints)
                    await self._status(rt, lb, await lb.probe())
                else:
                    self.lb = lb = LoadBalancer(spec.host, spec.port, spec.endpoints)
                    scope = anyio.CancelScope()
                    error = ""
                    try:
                        await tg.start(self._run_lb, rt, lb, scope)
                    except* OSError as group:  # (the listener's task group wraps it)
                        error = "; ".join(str(e) for e in _leaves(group))
                    if error:
                        self.lb = None
                        rt.logger.error("kubePrism cannot listen, retrying", error=error, retry_in=self.retry_interval)
                        await self._status(rt, lb, [], error=f"listen {spec.host}:{spec.port}: {error}")
                        tg.start_soon(self._retry_later, rt)
                rt.reset_restart_backoff()
            tg.cancel_scope.cancel()

    async def _retry_later(self, rt: ControllerRuntime) -> None:
        await anyio.sleep(self.retry_interval)
        rt.queue_reconcile()

    async def _run_lb(self, rt: ControllerRuntime, lb: LoadBalancer, scope: anyio.CancelScope, *,
                      task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        with scope:
            async with anyio.create_task_group() as tg:
                await tg.start(lambda task_status: lb.serve(task_status=task_status))
                await self._status(rt, lb, await lb.probe())
                task_status.started()
                while True:
                    await anyio.sleep(self.health_interval)
                    await self._status(rt, lb, await lb.probe())

    async def _status(self, rt: ControllerRuntime, lb: LoadBalancer, healthy: list[str], error: str = "") -> None:
        status = KubePrismStatusSpec(host=_hostport(lb.host, lb.port), healthy=bool(healthy),
                                     healthy_endpoints=healthy, error=error)

        def fill(r: Resource[Any]) -> None:
            r.spec = status

        await rt.modify(Resource.new(KubePrismStatusSpec(), KUBEPRISM_ID, namespace=NAMESPACE), fill)
