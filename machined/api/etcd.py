"""The etcd RPCs of the machine service: Bootstrap, EtcdRecover, EtcdMemberList, EtcdStatus,
EtcdRemoveMember, EtcdLeaveCluster, EtcdForfeitLeadership and EtcdSnapshot.

``EtcdAPI(state, supervisor, paths)`` is a HandlerProvider for ``MachineService(extensions=[...])``.
It talks to the local member over mutual TLS with the admin certificate the EtcdSpec controller
writes from ``EtcdCerts``. Status codes:

* UNAVAILABLE: etcd does not run here (no EtcdSpec, service not running, member unreachable);
* FAILED_PRECONDITION: not a control plane, already bootstrapped, recovery without an uploaded
  snapshot, removing the local member (use leave), the last member leaving; a recovery that has
  not produced a member yet (e.g. a bad snapshot) may be retried with EtcdRecover + Bootstrap;
* NOT_FOUND: an unknown member name/id; INVALID_ARGUMENT: a request naming no member.

Bootstrap persists the marker (``EtcdPaths.marker``) before answering and mirrors it into
``EtcdBootstraps(etcd/bootstrap)``; the EtcdSpec controller then starts etcd. Role checks come
from ``kos.apis.auth.METHOD_RULES`` (``os:etcd:backup`` may take snapshots).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import structlog
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError

from kos.apis import auth
from kos.apis.etcd import EtcdClient, EtcdError, MemberInfo, format_member_id
from kos.apis.gen.kos import machine as pb
from kos.apis.server.dispatch import Call, Dispatcher
from kos.apis.server.state import parse
from kos.controllers.etcd.join import remove_member
from kos.controllers.etcd.leave import NotRunningError, OnlyVoterError, leave_local_member
from kos.controllers.etcd.marker import EtcdPaths, MarkerError, has_member, publish_marker, read_marker
from kos.resources.core import State, echo
from kos.resources.etcd import ETCD_CONFIGS, ETCD_SPECS, EtcdBootstrapSpec, EtcdSpecSpec

log = structlog.get_logger("kos.apis.etcd")

SERVICE_ID = "etcd"
ALREADY_BOOTSTRAPPED = "etcd is already bootstrapped"


def etcd_status(exc: EtcdError) -> Status:
    if exc.status in (None, Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED):
        return Status.UNAVAILABLE
    return exc.status if exc.status is not None else Status.UNKNOWN


class EtcdAPI:
    """The etcd handlers; ``supervisor`` is the node's service Supervisor (or None)."""

    def __init__(self, state: State, supervisor: Any, paths: EtcdPaths, *, timeout: float = 10.0) -> None:
        self.state = state
        self.supervisor = supervisor
        self.paths = paths
        self.timeout = timeout
        self._lock = anyio.Lock()

    def register(self, d: Dispatcher) -> None:
        p = auth.MACHINE
        unary = Cardinality.UNARY_UNARY
        d.add(p + "Bootstrap", self.bootstrap, unary)
        d.add(p + "EtcdMemberList", self.member_list, unary)
        d.add(p + "EtcdRemoveMember", self.remove_member, unary)
        d.add(p + "EtcdLeaveCluster", self.leave_cluster, unary)
        d.add(p + "EtcdForfeitLeadership", self.forfeit_leadership, unary)
        d.add(p + "EtcdStatus", self.status, unary)
        d.add(p + "EtcdSnapshot", self.snapshot, Cardinality.UNARY_STREAM)
        d.add(p + "EtcdRecover", self.recover, Cardinality.STREAM_UNARY)

    # -- helpers ----------------------------------------------------------------------------
    async def _marker(self) -> EtcdBootstrapSpec:
        try:
            return await anyio.to_thread.run_sync(read_marker, self.paths.marker)
        except MarkerError as exc:
            raise GRPCError(Status.FAILED_PRECONDITION, str(exc)) from None

    async def _set_marker(self, marker: EtcdBootstrapSpec) -> None:
        await publish_marker(self.state, self.paths.marker, marker)

    async def _bootstrap_state(self) -> tuple[EtcdBootstrapSpec, bool, bool]:
        """(marker, done, recovery pending): done = a member exists or a plain bootstrap was
        asked for; a recovery that has not produced a member yet may be retried."""
        marker = await self._marker()
        member = await anyio.to_thread.run_sync(has_member, self.paths.data_dir)
        pending = marker.bootstrapped and bool(marker.recover_from) and not member
        return marker, member or (marker.bootstrapped and not pending), pending

    async def _control_plane(self) -> None:
        if await self.state.get_or_none(ETCD_CONFIGS.pointer("etcd")) is None:
            raise GRPCError(
                Status.FAILED_PRECONDITION,
                "etcd runs only on control-plane nodes: this node has no etcd configuration (machine.type)",
            )

    async def _spec(self) -> EtcdSpecSpec:
        res = await self.state.get_or_none(ETCD_SPECS.pointer("etcd"))
        if res is None:
            raise GRPCError(
                Status.UNAVAILABLE,
                "etcd is not running on this node (not a control plane, not bootstrapped or not joined yet)",
            )
        sup = self.supervisor
        if sup is not None and SERVICE_ID in sup.ids() and not sup.status(SERVICE_ID).running:
            raise GRPCError(Status.UNAVAILABLE, f"etcd is not running on this node ({sup.status(SERVICE_ID).state})")
        spec: EtcdSpecSpec = res.spec
        return spec

    def _client(self, spec: EtcdSpecSpec) -> EtcdClient:
        return EtcdClient(spec.advertise_client_urls[:1], self.paths.admin_tls, timeout=self.timeout)

    async def _local(self) -> tuple[EtcdSpecSpec, EtcdClient, int]:
        spec = await self._spec()
        c = self._client(spec)
        try:
            own = (await c.status()).member_id
        except EtcdError as exc:
            c.close()
            raise GRPCError(etcd_status(exc), f"etcd: {exc}") from None
        return spec, c, own

    # -- bootstrap / recover ---------------------------------------------------------------
    async def bootstrap(self, call: Call) -> None:
        req = parse(pb.BootstrapRequest, await call.request())
        async with self._lock:
            await self._control_plane()
            old, done, pending = await self._bootstrap_state()
            if done or (pending and not req.recover_etcd):
                more = " (a recovery from a snapshot is pending: upload another snapshot with EtcdRecover " \
                    "and bootstrap with recover_etcd)" if pending else ""
                raise GRPCError(Status.FAILED_PRECONDITION,
                                f"{ALREADY_BOOTSTRAPPED}: bootstrap only once per cluster{more}")
            if not pending and await self.state.get_or_none(ETCD_SPECS.pointer("etcd")) is not None:
                raise GRPCError(Status.FAILED_PRECONDITION, "etcd already runs here (joined an existing cluster)")
            recover = ""
            if req.recover_etcd:
                snap = self.paths.recover_snapshot
                if not await anyio.Path(snap).is_file():
                    raise GRPCError(
                        Status.FAILED_PRECONDITION,
                        "recover_etcd: no snapshot was uploaded; send it with EtcdRecover first",
                    )
                recover = str(snap)
            marker = EtcdBootstrapSpec(
                bootstrapped=True, recover_from=recover, skip_hash_check=req.recover_skip_hash_check,
                attempt=old.attempt + 1,
            )
            await self._set_marker(marker)
        log.info("etcd bootstrap requested", recover=bool(recover))
        await call.send(bytes(pb.BootstrapResponse()))

    async def recover(self, call: Call) -> None:
        await self._control_plane()
        if (await self._bootstrap_state())[1]:
            raise GRPCError(
                Status.FAILED_PRECONDITION, f"{ALREADY_BOOTSTRAPPED}: a snapshot can only seed a new cluster"
            )
        path = self.paths.recover_snapshot
        await anyio.Path(path.parent).mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        fd = await anyio.to_thread.run_sync(lambda: os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        size = 0
        try:
            with os.fdopen(fd, "wb") as f:
                while True:
                    msg = await call.stream.recv_message()
                    if msg is None:
                        break
                    chunk = parse(pb.Data, msg.data).bytes
                    size += len(chunk)
                    await anyio.to_thread.run_sync(f.write, chunk)
                await anyio.to_thread.run_sync(f.flush)
                await anyio.to_thread.run_sync(os.fsync, f.fileno())
            if size == 0:
                raise GRPCError(Status.INVALID_ARGUMENT, "EtcdRecover: the snapshot stream was empty")
            await anyio.to_thread.run_sync(Path.replace, tmp, path)
        finally:
            await anyio.to_thread.run_sync(lambda: tmp.unlink(missing_ok=True))
        log.info("etcd snapshot uploaded for recovery", bytes=size)
        await call.send(bytes(pb.EtcdActionResponse()))

    # -- membership -------------------------------------------------------------------------
    async def member_list(self, call: Call) -> None:
        parse(pb.EtcdMemberListRequest, await call.request())
        _, c, _ = await self._local()
        try:
            members = await c.member_list()
        except EtcdError as exc:
            raise GRPCError(etcd_status(exc), f"etcd member list: {exc}") from None
        finally:
            c.close()
        out = [
            pb.EtcdMember(id=m.id, hostname=m.name, peer_urls=list(m.peer_urls), client_urls=list(m.client_urls),
                          is_learner=m.is_learner)
            for m in members
        ]
        await call.send(bytes(pb.EtcdMemberListResponse(members=out)))

    @staticmethod
    def _find(members: list[MemberInfo], req: pb.EtcdRemoveMemberRequest) -> MemberInfo:
        if not req.member and not req.member_id:
            raise GRPCError(Status.INVALID_ARGUMENT, "EtcdRemoveMember: set member (hostname) or member_id")
        for m in members:
            if (req.member_id and m.id == req.member_id) or (req.member and m.name == req.member):
                return m
        known = ", ".join(f"{m.name or '(unstarted)'}={m.hex_id}" for m in members)
        what = f"member_id {format_member_id(req.member_id)}" if req.member_id else f"member {echo(req.member)}"
        raise GRPCError(Status.NOT_FOUND, f"etcd {what} not found (members: {known})")

    async def remove_member(self, call: Call) -> None:
        req = parse(pb.EtcdRemoveMemberRequest, await call.request())
        _, c, own = await self._local()
        try:
            target = self._find(await c.member_list(), req)
            if target.id == own:
                raise GRPCError(
                    Status.FAILED_PRECONDITION,
                    f"member {target.name!r} is this node: use EtcdLeaveCluster (kosctl etcd leave) instead",
                )
            await remove_member(c, target.id, timeout=self.timeout * 3)
        except EtcdError as exc:
            raise GRPCError(etcd_status(exc), f"etcd remove member: {exc}") from None
        finally:
            c.close()
        log.info("etcd member removed", member=target.name, id=target.hex_id)
        await call.send(bytes(pb.EtcdActionResponse(member=target.name or target.hex_id)))

    async def leave_cluster(self, call: Call) -> None:
        parse(pb.EtcdLeaveClusterRequest, await call.request())
        async with self._lock:
            await self._spec()
            try:
                name = await leave_local_member(self.state, self.paths, timeout=self.timeout)
            except NotRunningError as exc:
                raise GRPCError(Status.UNAVAILABLE, str(exc)) from None
            except (OnlyVoterError, MarkerError) as exc:
                raise GRPCError(Status.FAILED_PRECONDITION, str(exc)) from None
            except EtcdError as exc:
                raise GRPCError(etcd_status(exc), f"etcd leave: {exc}") from None
        log.info("left the etcd cluster", member=name)
        await call.send(bytes(pb.EtcdActionResponse(member=name)))

    async def forfeit_leadership(self, call: Call) -> None:
        parse(pb.EtcdForfeitLeadershipRequest, await call.request())
        spec, c, own = await self._local()
        try:
            st = await c.status()
            if not st.is_leader:
                await call.send(bytes(pb.EtcdActionResponse()))
                return
            others = [m for m in await c.member_list() if m.id != own and not m.is_learner]
            if not others:
                raise GRPCError(Status.FAILED_PRECONDITION, "no other voting member to hand leadership to")
            await c.move_leader(others[0].id)
        except EtcdError as exc:
            raise GRPCError(etcd_status(exc), f"etcd forfeit leadership: {exc}") from None
        finally:
            c.close()
        log.info("etcd leadership forfeited", to=others[0].name)
        await call.send(bytes(pb.EtcdActionResponse(member=spec.name)))

    async def status(self, call: Call) -> None:
        parse(pb.EtcdStatusRequest, await call.request())
        spec = await self._spec()
        async with self._client(spec) as c:
            try:
                st = await c.status()
            except EtcdError as exc:
                raise GRPCError(etcd_status(exc), f"etcd status: {exc}") from None
        resp = pb.EtcdStatusResponse(
            member_id=st.member_id, protocol_version=st.version, db_size=st.db_size, db_size_in_use=st.db_size_in_use,
            leader=st.leader, raft_index=st.raft_index, raft_term=st.raft_term,
            raft_applied_index=st.raft_applied_index, errors=list(st.errors), is_learner=st.is_learner,
        )
        await call.send(bytes(resp))

    async def snapshot(self, call: Call) -> None:
        parse(pb.EtcdSnapshotRequest, await call.request())
        spec = await self._spec()
        async with self._client(spec) as c:
            try:
                async for chunk in c.snapshot():
                    await call.send(bytes(pb.Data(bytes=chunk)))
            except EtcdError as exc:
                raise GRPCError(etcd_status(exc), f"etcd snapshot: {exc}") from None
