"""Cluster membership steps of the local member: join as a learner, promote, leave, recover.

Join (another member is healthy): ask it to add our peer URLs as a learner (reusing an earlier
add that never started, so a retried join is idempotent), then start etcd with
``initial-cluster-state=existing`` and an initial cluster listing every current member (etcd
requires the same member count and peer URLs); once the learner has caught up, promote it
(etcd refuses until the learner's log is in sync, so promotion is retried).

Recover: ``etcdctl snapshot restore`` a snapshot into a fresh data dir for a single-member
cluster, then start etcd with ``initial-cluster-state=new``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Sequence

import anyio
import grpclib.const

from kos.apis.etcd import EtcdClient, EtcdError, MemberInfo
from kos.resources.core import Resource, State
from kos.resources.etcd import EtcdMemberSpec, EtcdSpecSpec


@dataclasses.dataclass(frozen=True)
class JoinPlan:
    member: MemberInfo
    initial_cluster: dict[str, str]


def _cluster_entry(m: MemberInfo, own_id: int, own_name: str) -> tuple[str, str]:
    name = own_name if m.id == own_id else (m.name or f"unstarted-{m.hex_id}")
    return name, ",".join(m.peer_urls)


async def add_learner(client: EtcdClient, name: str, peer_urls: Sequence[str]) -> JoinPlan:
    """Add this node as a learner (or reuse a pending add of the same peer URLs)."""
    members = await client.member_list()
    mine = [m for m in members if set(m.peer_urls) == set(peer_urls)]
    if mine and mine[0].started and mine[0].name != name:
        raise EtcdError(f"peer URLs {list(peer_urls)} already belong to started member {mine[0].name!r}")
    if mine:
        member = mine[0]
    else:
        while True:
            try:
                member, members = await client.member_add(peer_urls, learner=True)
                break
            except EtcdError as exc:  # another learner still joining, or the cluster is electing
                if exc.status not in (grpclib.const.Status.FAILED_PRECONDITION, grpclib.const.Status.UNAVAILABLE):
                    raise
                await anyio.sleep(0.2)
    cluster = dict(_cluster_entry(m, member.id, name) for m in members)
    return JoinPlan(member, cluster)


def joining_spec(spec: EtcdSpecSpec, plan: JoinPlan) -> EtcdSpecSpec:
    """The spec to start a joining member with."""
    return dataclasses.replace(spec, initial_cluster=dict(plan.initial_cluster), initial_cluster_state="existing")


async def promote_when_ready(
    client: EtcdClient, member_id: int, *, timeout: float = 30.0, interval: float = 0.1
) -> None:
    """Promote the learner once etcd allows it (it is in sync with the leader)."""
    with anyio.fail_after(timeout):
        while True:
            members = await client.member_list()
            me = next((m for m in members if m.id == member_id), None)
            if me is None:
                raise EtcdError(f"member {member_id:x} is not in the cluster")
            if not me.is_learner:
                return
            try:
                await client.member_promote(member_id)
                return
            except EtcdError as exc:
                if exc.status not in (grpclib.const.Status.FAILED_PRECONDITION, grpclib.const.Status.UNAVAILABLE):
                    raise
            await anyio.sleep(interval)


async def remove_member(client: EtcdClient, member_id: int, *, timeout: float = 30.0) -> list[MemberInfo]:
    """Remove a member, retrying while etcd's strict reconfiguration check refuses ("unhealthy
    cluster": a voter connected less than 5 s ago would leave the cluster without quorum)."""
    with anyio.fail_after(timeout):
        while True:
            try:
                return await client.member_remove(member_id)
            except EtcdError as exc:
                if exc.status != grpclib.const.Status.UNAVAILABLE:
                    raise
            await anyio.sleep(0.2)


async def leave_cluster(client: EtcdClient, member_id: int, *, timeout: float = 30.0) -> list[MemberInfo]:
    """Remove a member; if it is the leader, hand leadership to another voter first."""
    leader_ep = await client.leader_endpoint()
    if (await client.status(leader_ep)).member_id == member_id:
        others = [m for m in await client.member_list() if m.id != member_id and not m.is_learner]
        if others:
            await client.move_leader(others[0].id)
    return await remove_member(client, member_id, timeout=timeout)


async def publish_local_member(state: State, client: EtcdClient, endpoint: str) -> str:
    """Write the ``EtcdMembers(local)`` resource from the member's own status; returns the hex id."""
    st = await client.status(endpoint)
    hex_id = f"{st.member_id:x}"

    def apply(r: Resource[EtcdMemberSpec]) -> None:
        r.spec = EtcdMemberSpec(member_id=hex_id)

    await state.modify(Resource.new(EtcdMemberSpec(), "local"), apply, owner="etcd")
    return hex_id


async def restore_snapshot(
    snapshot: str, spec: EtcdSpecSpec, *, etcdctl: str = "etcdctl", skip_hash_check: bool = False
) -> EtcdSpecSpec:
    """Restore ``snapshot`` into ``spec.data_dir`` (must not exist yet) as a fresh single-member
    cluster; returns the spec to start it with."""
    if await anyio.Path(spec.data_dir).exists():
        raise FileExistsError(f"EtcdSpec.data_dir: {spec.data_dir} exists; recovery needs an empty data dir")
    if shutil.which(etcdctl) is None:
        raise RuntimeError(f"{etcdctl!r} not found (install Debian's etcd-client)")
    peers = ",".join(spec.advertise_peer_urls)
    result = await anyio.run_process(
        [
            etcdctl, "snapshot", "restore", snapshot,
            f"--name={spec.name}",
            f"--data-dir={spec.data_dir}",
            f"--initial-cluster={spec.name}={peers}",
            f"--initial-advertise-peer-urls={peers}",
            f"--initial-cluster-token={spec.initial_cluster_token}",
            f"--skip-hash-check={'true' if skip_hash_check else 'false'}",
        ],
        env={**os.environ, "ETCDCTL_API": "3"},
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"etcdctl snapshot restore failed ({result.returncode}): {result.stderr.decode().strip()}")
    return dataclasses.replace(spec, initial_cluster={spec.name: peers}, initial_cluster_state="new")


class AlreadyBootstrappedError(RuntimeError):
    """Bootstrap was asked for a member whose data dir already holds a cluster."""


async def check_can_bootstrap(spec: EtcdSpecSpec) -> None:
    """Refuse a second bootstrap: a data dir with ``member/`` belongs to an existing cluster."""
    if await anyio.Path(spec.data_dir, "member").exists():
        raise AlreadyBootstrappedError(
            f"etcd is already bootstrapped: data dir {spec.data_dir} holds a member; "
            "bootstrap only once (recover from a snapshot to start over)"
        )
