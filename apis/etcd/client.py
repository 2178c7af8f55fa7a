"""The etcd v3 client: one grpclib channel per endpoint, mutual TLS, failover across endpoints.

Cluster-wide calls (member list/add/remove/update/promote, KV) go to the first endpoint that answers,
starting with the last one that did; per-member calls (``status``, ``snapshot``) name their
endpoint. Errors are ``EtcdError`` carrying etcd's own message (e.g. "etcdserver: can only
promote a learner member which is in sync with leader") and the gRPC status.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar
from urllib.parse import urlsplit

import grpclib.client
import grpclib.const
import grpclib.exceptions

from kos.apis.etcd.gen import etcdserverpb as pb

T = TypeVar("T")


class EtcdError(Exception):
    """An etcd call failed; ``status`` is the gRPC status (None: no endpoint reachable)."""

    def __init__(self, message: str, status: grpclib.const.Status | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class TLSFiles:
    """PEM file paths for mutual TLS: the CA that signed the server, our cert and key."""

    ca: str
    cert: str
    key: str

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca)
        ctx.load_cert_chain(self.cert, self.key)
        ctx.set_alpn_protocols(["h2"])
        return ctx


def format_member_id(member_id: int) -> str:
    """etcd prints member ids as lower-case hex without leading zeros."""
    return f"{member_id:x}"


@dataclass(frozen=True)
class MemberInfo:
    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool

    @property
    def hex_id(self) -> str:
        return format_member_id(self.id)

    @property
    def started(self) -> bool:
        """An added member that never started has no name yet."""
        return bool(self.name)

    @classmethod
    def of(cls, m: pb.Member) -> MemberInfo:
        return cls(m.id, m.name, tuple(m.peer_ur_ls), tuple(m.client_ur_ls), m.is_learner)


@dataclass(frozen=True)
class EndpointStatus:
    endpoint: str
    member_id: int
    leader: int
    version: str
    db_size: int
    db_size_in_use: int
    raft_index: int
    raft_term: int
    raft_applied_index: int
    is_learner: bool
    errors: tuple[str, ...]

    @property
    def is_leader(self) -> bool:
        return self.member_id == self.leader and self.leader != 0


def _parse_endpoint(endpoint: str) -> tuple[str, int, bool]:
    u = urlsplit(endpoint if "://" in endpoint else "https://" + endpoint)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError(f"etcd endpoint {endpoint!r}: expected http(s)://host:port")
    return u.hostname, u.port or 2379, u.scheme == "https"


class EtcdClient:
    """Async etcd v3 client; use as ``async with EtcdClient([...], tls) as c:``."""

    def __init__(
        self,
        endpoints: Sequence[str],
        tls: TLSFiles | None = None,
        *,
        timeout: float = 5.0,
        check_hostname: bool = True,
    ) -> None:
        """``check_hostname=False`` accepts any server certificate the CA signed, whatever names
        it carries (a join endpoint such as a load-balancer name that member certificates do
        not list; the private etcd CA is the trust anchor)."""
        if not endpoints:
            raise ValueError("etcd client: expected at least one endpoint")
        self.endpoints = list(endpoints)
        for e in self.endpoints:
            _, _, secure = _parse_endpoint(e)
            if secure and tls is None:
                raise ValueError(f"etcd endpoint {e!r} uses https: TLS files (ca, cert, key) are required")
        self.tls = tls
        self.timeout = timeout
        self._ctx = tls.context() if tls is not None else None
        if self._ctx is not None and not check_hostname:
            self._ctx.check_hostname = False
        self._channels: dict[str, grpclib.client.Channel] = {}
        self._preferred = 0

    async def __aenter__(self) -> EtcdClient:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        for ch in self._channels.values():
            ch.close()
        self._channels.clear()

    def _channel(self, endpoint: str) -> grpclib.client.Channel:
        ch = self._channels.get(endpoint)
        if ch is None:
            host, port, secure = _parse_endpoint(endpoint)
            ch = grpclib.client.Channel(host, port, ssl=self._ctx if secure else None)
            self._channels[endpoint] = ch
        return ch

    async def _on(self, endpoint: str, call: Callable[[grpclib.client.Channel], Awaitable[T]]) -> T:
        task = asyncio.current_task()
        cancelling = task.cancelling() if task is not None else 0
        try:
            return await call(self._channel(endpoint))
        except grpclib.exceptions.GRPCError as exc:
            raise EtcdError(f"{endpoint}: {exc.message or exc.status.name}", exc.status) from None
        except (OSError, TimeoutError, ssl.SSLError, grpclib.exceptions.StreamTerminatedError) as exc:
            # grpclib ends a call whose connection is lost by cancelling the task and turning the
            # CancelledError into StreamTerminatedError without uncancel(): the stray request would
            # make the next cancel scope (anyio's) that exits re-raise CancelledError
            while task is not None and task.cancelling() > cancelling:
                task.uncancel()
            self._drop(endpoint)
            raise EtcdError(f"{endpoint}: unreachable: {exc!r}") from None

    def _drop(self, endpoint: str) -> None:
        ch = self._channels.pop(endpoint, None)
        if ch is not None:
            ch.close()

    async def _any(self, call: Callable[[grpclib.client.Channel], Awaitable[T]]) -> T:
        errors = []
        statuses = set()
        n = len(self.endpoints)
        for i in range(n):
            idx = (self._preferred + i) % n
            try:
                result = await self._on(self.endpoints[idx], call)
            except EtcdError as exc:
                if exc.status not in (None, grpclib.const.Status.UNAVAILABLE, grpclib.const.Status.DEADLINE_EXCEEDED):
                    raise
                errors.append(str(exc))
                statuses.add(exc.status)
                continue
            self._preferred = idx
            return result
        # every endpoint answered "unavailable" (e.g. "unhealthy cluster"): keep that status
        status = statuses.pop() if len(statuses) == 1 else None
        raise EtcdError("no etcd endpoint answered: " + "; ".join(errors), status)

    # -- cluster ---------------------------------------------------------------------------------
    async def member_list(self) -> list[MemberInfo]:
        async def call(ch: grpclib.client.Channel) -> pb.MemberListResponse:
            return await pb.ClusterStub(ch).member_list(pb.MemberListRequest(), timeout=self.timeout)

        return [MemberInfo.of(m) for m in (await self._any(call)).members]

    async def member_add(
        self, peer_urls: Sequence[str], *, learner: bool = False
    ) -> tuple[MemberInfo, list[MemberInfo]]:
        """Add a member; returns it and the new member list."""
        if not peer_urls:
            raise ValueError("member_add: expected at least one peer URL")

        async def call(ch: grpclib.client.Channel) -> pb.MemberAddResponse:
            req = pb.MemberAddRequest(peer_ur_ls=list(peer_urls), is_learner=learner)
            return await pb.ClusterStub(ch).member_add(req, timeout=self.timeout)

        resp = await self._any(call)
        return MemberInfo.of(resp.member), [MemberInfo.of(m) for m in resp.members]

    async def member_remove(self, member_id: int) -> list[MemberInfo]:
        async def call(ch: grpclib.client.Channel) -> pb.MemberRemoveResponse:
            return await pb.ClusterStub(ch).member_remove(pb.MemberRemoveRequest(id=member_id), timeout=self.timeout)

        return [MemberInfo.of(m) for m in (await self._any(call)).members]

    async def member_update(self, member_id: int, peer_urls: Sequence[str]) -> list[MemberInfo]:
        """Change a member's peer URLs (after its address changed)."""

        async def call(ch: grpclib.client.Channel) -> pb.MemberUpdateResponse:
            req = pb.MemberUpdateRequest(id=member_id, peer_ur_ls=list(peer_urls))
            return await pb.ClusterStub(ch).member_update(req, timeout=self.timeout)

        return [MemberInfo.of(m) for m in (await self._any(call)).members]

    async def member_promote(self, member_id: int) -> list[MemberInfo]:
        async def call(ch: grpclib.client.Channel) -> pb.MemberPromoteResponse:
            req = pb.MemberPromoteRequest(id=member_id)
            return await pb.ClusterStub(ch).member_promote(req, timeout=self.timeout)

        return [MemberInfo.of(m) for m in (await self._any(call)).members]

    # -- maintenance -----------------------------------------------------------------------------
    async def status(self, endpoint: str | None = None) -> EndpointStatus:
        """Status of one member (default: the first endpoint)."""
        ep = endpoint or self.endpoints[0]

        async def call(ch: grpclib.client.Channel) -> pb.StatusResponse:
            return await pb.MaintenanceStub(ch).status(pb.StatusRequest(), timeout=self.timeout)

        r = await self._on(ep, call)
        return EndpointStatus(
            ep, r.header.member_id, r.leader, r.version, r.db_size, r.db_size_in_use, r.raft_index, r.raft_term,
            r.raft_applied_index, r.is_learner, tuple(r.errors),
        )

    async def leader_endpoint(self) -> str:
        """A client URL of the current leader (one of ours, else from the member list)."""
        errors = []
        leader = 0
        for ep in self.endpoints:
            try:
                st = await self.status(ep)
            except EtcdError as exc:
                errors.append(str(exc))
                continue
            if st.is_leader:
                return ep
            leader = leader or st.leader
        if leader:
            for m in await self.member_list():
                if m.id == leader and m.client_urls:
                    return m.client_urls[0]
        raise EtcdError("no leader found" + (": " + "; ".join(errors) if errors else ""))

    async def move_leader(self, target_id: int) -> None:
        """Transfer leadership to ``target_id`` (sent to the current leader, as etcd requires)."""
        ep = await self.leader_endpoint()

        async def call(ch: grpclib.client.Channel) -> pb.MoveLeaderResponse:
            return await pb.MaintenanceStub(ch).move_leader(pb.MoveLeaderRequest(target_id=target_id),
                                                            timeout=self.timeout)

        await self._on(ep, call)

    async def alarms(self) -> list[tuple[int, str]]:
        """Active alarms as (member id, alarm name)."""

        async def call(ch: grpclib.client.Channel) -> pb.AlarmResponse:
            req = pb.AlarmRequest(action=pb.AlarmRequestAlarmAction(0))  # GET
            return await pb.MaintenanceStub(ch).alarm(req, timeout=self.timeout)

        return [(a.member_id, pb.AlarmType(a.alarm).name or str(a.alarm)) for a in (await self._any(call)).alarms]

    async def disarm_alarms(self) -> list[tuple[int, str]]:
        """Deactivate every active alarm; returns those disarmed as (member id, alarm name)."""
        active = await self.alarms()

        async def call(ch: grpclib.client.Channel) -> pb.AlarmResponse:
            out = pb.AlarmResponse()
            for member_id, name in active:
                deactivate = pb.AlarmRequestAlarmAction(pb.AlarmRequestAlarmAction.DEACTIVATE)
                req = pb.AlarmRequest(action=deactivate, member_id=member_id, alarm=pb.AlarmType[name])
                out = await pb.MaintenanceStub(ch).alarm(req, timeout=self.timeout)
            return out

        if active:
            await self._any(call)
        return active

    async def defragment(self, endpoint: str | None = None) -> None:
        """Defragment one member's backend database (default: the first endpoint); the member
        blocks reads and writes while it runs."""
        ep = endpoint or self.endpoints[0]

        async def call(ch: grpclib.client.Channel) -> pb.DefragmentResponse:
            return await pb.MaintenanceStub(ch).defragment(pb.DefragmentRequest(), timeout=max(self.timeout, 60.0))

        await self._on(ep, call)

    async def snapshot(self, endpoint: str | None = None) -> AsyncIterator[bytes]:
        """Stream a consistent snapshot of one member's backend database."""
        ep = endpoint or self.endpoints[0]
        stub = pb.MaintenanceStub(self._channel(ep))
        try:
            async for chunk in stub.snapshot(pb.SnapshotRequest()):
                yield chunk.blob
        except grpclib.exceptions.GRPCError as exc:
            raise EtcdError(f"{ep}: snapshot: {exc.message or exc.status.name}", exc.status) from None
        except (OSError, grpclib.exceptions.StreamTerminatedError) as exc:
            self._drop(ep)
            raise EtcdError(f"{ep}: snapshot: unreachable: {exc!r}") from None

    # -- key/value -----------------------------------------------------------------------------------
    async def put(self, key: bytes, value: bytes) -> int:
        """Store ``value``; returns the new revision."""

        async def call(ch: grpclib.client.Channel) -> pb.PutResponse:
            return await pb.KvStub(ch).put(pb.PutRequest(key=key, value=value), timeout=self.timeout)

        return (await self._any(call)).header.revision

    async def get(self, key: bytes) -> bytes | None:
        kvs = await self._range(key, b"")
        return kvs[0].value if kvs else None

    async def get_prefix(self, prefix: bytes) -> dict[bytes, bytes]:
        return {kv.key: kv.value for kv in await self._range(prefix, prefix_end(prefix))}

    async def _range(self, key: bytes, range_end: bytes) -> list[pb.KeyValue]:
        async def call(ch: grpclib.client.Channel) -> pb.RangeResponse:
            return await pb.KvStub(ch).range(pb.RangeRequest(key=key, range_end=range_end), timeout=self.timeout)

        return list((await self._any(call)).kvs)

    async def delete(self, key: bytes, *, prefix: bool = False) -> int:
        """Delete a key (or every key with the prefix); returns how many were deleted."""

        async def call(ch: grpclib.client.Channel) -> pb.DeleteRangeResponse:
            req = pb.DeleteRangeRequest(key=key, range_end=prefix_end(key) if prefix else b"")
            return await pb.KvStub(ch).delete_range(req, timeout=self.timeout)

        return (await self._any(call)).deleted


def prefix_end(prefix: bytes) -> bytes:
    """The range end covering every key starting with ``prefix`` (etcd's convention)."""
    b = bytearray(prefix)
    for i in range(len(b) - 1, -1, -1):
        if b[i] < 0xFF:
            b[i] += 1
            return bytes(b[: i + 1])
    return b"\0"
