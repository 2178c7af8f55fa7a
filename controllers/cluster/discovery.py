"""Cluster discovery: control planes run a small registry; every node says hello to it with
its own ``Affiliate`` and gets everyone's back.

The registry (``run_registry``) listens on ``REGISTRY_PORT`` (50002) of each control plane,
server-only TLS with the node's API certificate (``APICerts``, reloaded on rotation), and
answers the gRPC method ``/kos.discovery.Registry/Hello`` (request: a ``cosi.resource.Resource``
holding the caller's Affiliate; reply stream: one ``Resource`` per known affiliate). Callers
present the machine token in the ``token`` metadata (the same token workers use with trustd;
checked against ``OSRootSecrets``): a wrong token is PERMISSION_DENIED. Entries expire
``ttl`` seconds after their last hello, so a node that is gone (reset, destroyed) drops out.

``ClusterDiscoveryController`` (every node) says hello every ``interval`` seconds (and when its own
affiliate changes, or at once when the registry on its own node saw a new or changed node:
the shared ``Wakeup``) to the control-plane endpoint's host (``cluster.controlPlane.endpoint``),
verifying the server against the OS CA of its config, and mirrors the answer into its
``Affiliates``: the others' affiliates are created/updated, and those no longer listed are
destroyed. While the registry is unreachable the last answer stays.
"""

from __future__ import annotations

import asyncio
import hmac
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import grpclib.const
import grpclib.server
import structlog
from anyio.abc import TaskStatus
from grpclib.client import Channel
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from kos.apis import wire
from kos.apis.tls import client_context
from kos.apis.wire import RawMessage
from kos.controllers.runtime import Controller, ControllerRuntime, Input, InputKind, Output, OutputKind
from kos.resources.cluster import AFFILIATES, IDENTITIES, LOCAL_IDENTITY_ID, AffiliateSpec
from kos.resources.config import ACTIVE_ID, MachineConfigSpec
from kos.resources.config import NAMESPACE as CONFIG_NS
from kos.resources.core import Pointer, Resource, State

log = structlog.get_logger("kos.controllers.cluster.discovery")

REGISTRY_PORT = 50002
HELLO = "/kos.discovery.Registry/Hello"
TOKEN_METADATA = "token"
DEFAULT_TTL = 30.0


class Wakeup:
    """Wakes the local ClusterDiscoveryController early: the registry on this node saw a change, so
    the node's own view can follow at once instead of at its next periodic hello."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> None:
        with anyio.move_on_after(timeout):
            await self._event.wait()
        if self._event.is_set():
            self._event = anyio.Event()


@dataclass
class Registry:
    """Affiliates by node id with their expiry (monotonic seconds); ``on_change`` runs when a
    node appears or its affiliate changes."""

    ttl: float = DEFAULT_TTL
    entries: dict[str, tuple[Resource[Any], float]] = field(default_factory=dict)
    on_change: Callable[[], None] | None = None

    def hello(self, affiliate: Resource[Any], now: float | None = None) -> list[Resource[Any]]:
        now = time.monotonic() if now is None else now
        if not isinstance(affiliate.spec, AffiliateSpec) or not affiliate.spec.node_id:
            raise ValueError("request: expected an Affiliates.cluster.kos.dev resource with a nodeId")
        old = self.entries.get(affiliate.spec.node_id)
        if (old is None or not old[0].spec.equal(affiliate.spec)) and self.on_change is not None:
            self.on_change()
        self.entries[affiliate.spec.node_id] = (affiliate, now + self.ttl)
        for node_id in [k for k, (_, exp) in self.entries.items() if exp <= now]:
            del self.entries[node_id]
        return [r for _, (r, _) in sorted(self.entries.items())]


Stream = grpclib.server.Stream[RawMessage, RawMessage]


class RegistryService:
    def __init__(self, registry: Registry, token: Callable[[], Awaitable[str]]) -> None:
        self.registry = registry
        self.token = token

    def __mapping__(self) -> dict[str, grpclib.const.Handler]:
        return {HELLO: grpclib.const.Handler(self._hello, Cardinality.UNARY_STREAM, RawMessage, RawMessage)}

    async def _hello(self, stream: Stream) -> None:
        msg = await stream.recv_message()
        presented = str(dict(stream.metadata or {}).get(TOKEN_METADATA, ""))
        expected = await self.token()
        if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
            raise GRPCError(Status.PERMISSION_DENIED, "token: the machine token is missing or wrong")
        try:
            affiliate = wire.decode_resource(msg.data if msg is not None else b"")
            known = self.registry.hello(affiliate)
        except (wire.WireError, ValueError) as exc:
            raise GRPCError(Status.INVALID_ARGUMENT, str(exc)) from None
        for r in known:
            await stream.send_message(RawMessage(wire.encode_resource(r)))


async def run_registry(state: State, host: str = "0.0.0.0", port: int = REGISTRY_PORT, *,
                       ttl: float = DEFAULT_TTL, wakeup: Wakeup | None = None,
                       task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
    """Serve the registry with the node's API certificate until cancelled."""
    from kos.controllers.secrets.trustd import machine_token, serve_with_api_certs

    async def token() -> str:
        return await machine_token(state)

    registry = Registry(ttl, on_change=wakeup.set if wakeup is not None else None)
    await serve_with_api_certs(state, host, port, [RegistryService(registry, token)], name="discovery registry",
                               task_status=task_status)


async def hello(endpoint: str, port: int, token: str, ca_pem: bytes, affiliate: Resource[Any], *,
                timeout: float = 10.0, channel: Channel | None = None) -> list[Resource[Any]]:
    """One exchange with a registry (over ``channel`` if given, else a connection of its own);
    raises OSError/GRPCError/TimeoutError on failure."""
    if channel is not None:
        return await _exchange(channel, token, affiliate, timeout)
    ctx: ssl.SSLContext = client_context(ca_pem, None)
    own = Channel(endpoint, port, ssl=ctx)
    try:
        return await _exchange(own, token, affiliate, timeout)
    finally:
        own.close()


class RegistryClient:
    """Hellos to one registry over one kept connection (an idle node says hello every few
    seconds: a TLS handshake each time would be most of its idle CPU). A new endpoint, port or
    CA, or a failed hello, starts a new connection."""

    def __init__(self) -> None:
        self._key: tuple[str, int, bytes] | None = None
        self._channel: Channel | None = None

    async def hello(self, endpoint: str, port: int, token: str, ca_pem: bytes, affiliate: Resource[Any], *,
                    timeout: float = 10.0) -> list[Resource[Any]]:
        key = (endpoint, port, ca_pem)
        if self._channel is None or self._key != key:
            self.close()
            self._channel, self._key = Channel(endpoint, port, ssl=client_context(ca_pem, None)), key
        task = asyncio.current_task()
        cancelling = task.cancelling() if task is not None else 0
        try:
            return await _exchange(self._channel, token, affiliate, timeout)
        except StreamTerminatedError:
            # grpclib ends a call on a lost connection by cancelling the task and raising this
            # without uncancel(): undo that stray cancellation request (see EtcdClient._on)
            while task is not None and task.cancelling() > cancelling:
                task.uncancel()
            self.close()
            raise
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = self._key = None


async def _exchange(channel: Channel, token: str, affiliate: Resource[Any], timeout: float) -> list[Resource[Any]]:
    out: list[Resource[Any]] = []
    with anyio.fail_after(timeout):
        async with channel.request(HELLO, Cardinality.UNARY_STREAM, RawMessage, RawMessage,
                                   metadata={TOKEN_METADATA: token}) as s:
            await s.send_message(RawMessage(wire.encode_resource(affiliate)), end=True)
            while (msg := await s.recv_message()) is not None:
                out.append(wire.decode_resource(msg.data))
            await s.recv_trailing_metadata()
    return out


def _endpoint_host(endpoint: str) -> str:
    from kos.controllers.secrets.sans import endpoint_host

    return str(endpoint_host(endpoint))


class ClusterDiscoveryController(Controller):
    name = "cluster.DiscoveryController"

    def __init__(self, *, interval: float = 5.0, port: int = REGISTRY_PORT, wakeup: Wakeup | None = None) -> None:
        self.interval = interval
        self.port = port
        self.wakeup = wakeup or Wakeup()
        self.retry = min(1.0, interval)  # after a failed hello (registry not up yet)
        self._failed = False
        self._client = RegistryClient()

    def inputs(self) -> Sequence[Input]:
        return [
            Input(CONFIG_NS, MachineConfigSpec.definition.type, ACTIVE_ID, InputKind.WEAK),
            Input(IDENTITIES.namespace, IDENTITIES.type, LOCAL_IDENTITY_ID, InputKind.WEAK),
            Input(AFFILIATES.namespace, AFFILIATES.type, kind=InputKind.WEAK),
        ]

    def outputs(self) -> Sequence[Output]:
        return [Output(AFFILIATES.type, OutputKind.SHARED)]

    async def run(self, rt: ControllerRuntime) -> None:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._ticker, rt)
                async for _ in rt.events():
                    await self.reconcile(rt)
        finally:
            self._client.close()

    async def _ticker(self, rt: ControllerRuntime) -> None:
        while True:
            await self.wakeup.wait(self.retry if self._failed else self.interval)
            rt.queue_reconcile()

    async def reconcile(self, rt: ControllerRuntime) -> None:
        cfg_res = await rt.get_or_none(Pointer(CONFIG_NS, MachineConfigSpec.definition.type, ACTIVE_ID))
        ident = await rt.get_or_none(IDENTITIES.pointer(LOCAL_IDENTITY_ID))
        if cfg_res is None or ident is None:
            return
        own_id = ident.spec.node_id
        local = await rt.get_or_none(AFFILIATES.pointer(own_id))
        if local is None:
            return
        try:
            cfg = cfg_res.spec.container(strict=False).config
            host = _endpoint_host(cfg.cluster.control_plane.endpoint)
            token = cfg.machine.token
            ca = cfg.machine.ca.to_pair().cert_pem if cfg.machine.ca.key else _b64(cfg.machine.ca.crt)
        except (ValueError, AttributeError) as exc:
            log.warning("discovery: config has no usable endpoint/token/CA", error=str(exc))
            return
        if not host or not token or not ca:
            return
        try:
            known = await self._client.hello(host, self.port, token, ca, local)
        except (OSError, TimeoutError, GRPCError, StreamTerminatedError, wire.WireError) as exc:
            if not self._failed:
                log.info("discovery registry not reachable; keeping the last members", endpoint=host, error=str(exc))
            self._failed = True
            return
        self._failed = False
        seen = set()
        for r in known:
            spec = r.spec
            if not isinstance(spec, AffiliateSpec) or not spec.node_id or spec.node_id == own_id:
                continue
            seen.add(spec.node_id)

            def fill(out: Resource[Any], spec: AffiliateSpec = spec) -> None:
                out.spec = spec.copy()

            await rt.modify(Resource.new(AffiliateSpec(), spec.node_id), fill)
        for r in await rt.list(AFFILIATES):
            if r.metadata.owner == self.name and r.id not in seen:
                await rt.destroy(r.metadata.pointer)
        rt.reset_restart_backoff()


def _b64(text: str) -> bytes:
    import base64

    return base64.b64decode(text) if text else b""
