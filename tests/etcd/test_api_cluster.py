"""Three in-process control-plane nodes (state + controllers + supervisor + machine API over
mTLS each, real etcd): Bootstrap RPC on one, the others join by themselves as learners and are
promoted; member lists agree through the API; a killed etcd comes back; a restarted node finds
its member on disk; a changed address reaches the membership; leadership is forfeited; a member
is removed, another leaves; a snapshot taken over the API (as os:etcd:backup) recovers a fresh
node with the data intact, and another control plane joins the recovered cluster."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import anyio
import pytest
from grpclib.const import Status

from kos.apis import auth
from kos.apis.client import APIError
from kos.apis.etcd import EtcdError, format_member_id
from kos.apis.etcd import machine as etcd_api
from kos.apis.gen.kos import machine as pb
from kos.controllers.etcd.marker import read_marker
from kos.controllers.runtime.testing import assert_no_resource, assert_resources
from kos.machined.services import ServiceState
from kos.resources.etcd import ETCD_BOOTSTRAPS, ETCD_MEMBERS, ETCD_SPECS
from kos.resources.network import NODE_ADDRESSES, NodeAddressSpec
from kos.resources.pki import certificate_sans
from kos.resources.secrets import ETCD_CERTS, ETCD_CERTS_ID
from tests.support.nodecluster import NodeCluster

pytestmark = [pytest.mark.anyio, pytest.mark.root]


async def voters(cl: NodeCluster, i: int, n: int, timeout: float = 40.0) -> list[pb.EtcdMember]:
    """Poll node ``i``'s EtcdMemberList until it shows ``n`` started voters."""
    last: object = None
    with anyio.fail_after(timeout):
        async with cl.connect(i) as conn:
            while True:
                try:
                    members = await etcd_api.member_list(conn)
                    last = [(m.hostname, m.is_learner) for m in members]
                    if len(members) == n and all(m.hostname and not m.is_learner for m in members):
                        return members
                except APIError as exc:
                    last = exc
                await anyio.sleep(0.1)
    raise AssertionError(last)  # pragma: no cover


async def leader_id(cl: NodeCluster, i: int, *, other_than: int = 0, timeout: float = 20.0) -> int:
    """The leader as node ``i``'s etcd sees it, once there is one (other than ``other_than``)."""
    async with cl.etcd_client(i) as c:
        with anyio.fail_after(timeout):
            while True:
                try:
                    leader = (await c.status()).leader
                    if leader and leader != other_than:
                        return leader
                except EtcdError:
                    pass
                await anyio.sleep(0.05)


async def expect(code: Status, match: str, coro: object) -> APIError:
    with pytest.raises(APIError, match=match) as info:
        await coro  # type: ignore[misc]
    assert info.value.status == code, info.value
    return info.value


async def test_bootstrap_join_crash_remove_snapshot_recover(tmp_path: Path) -> None:
    snap = tmp_path / "db.snapshot"
    async with NodeCluster(tmp_path / "cluster", 3) as cl:
        conn0 = cl.connect(0)
        # nothing runs before Bootstrap: the nodes wait (node 0 for the RPC, the others for a cluster)
        await expect(Status.UNAVAILABLE, "etcd is not running on this node", etcd_api.member_list(conn0))
        await expect(Status.FAILED_PRECONDITION, "no snapshot was uploaded",
                      etcd_api.bootstrap(conn0, recover=True))
        assert not any(n.supervisor.is_active("etcd") for n in cl.nodes)

        t0 = time.monotonic()
        await etcd_api.bootstrap(conn0)
        await expect(Status.FAILED_PRECONDITION, "etcd is already bootstrapped", etcd_api.bootstrap(conn0))
        members = await voters(cl, 0, 3)
        print(f"Bootstrap RPC -> 3 voters in {time.monotonic() - t0:.2f}s")
        marker = await cl.nodes[0].state.get(ETCD_BOOTSTRAPS.pointer("bootstrap"))
        assert marker.spec.bootstrapped and (cl.nodes[0].paths.marker.stat().st_mode & 0o777) == 0o600

        # the same member list through every node's API, and each node's EtcdMember resource
        lists = []
        for i in range(3):
            got = await voters(cl, i, 3)
            lists.append(sorted((m.id, m.hostname, tuple(m.peer_urls)) for m in got))
        assert lists[0] == lists[1] == lists[2]
        assert sorted(name for _, name, _ in lists[0]) == ["cp-0", "cp-1", "cp-2"]
        ids = {m.hostname: m.id for m in members}
        for n in cl.nodes:
            r = await assert_resources(n.state, ETCD_MEMBERS, ["local"], timeout=20)
            assert r["local"].spec.member_id == format_member_id(ids[n.name])
            # the secrets controllers issued the certificates; they went to files only root reads
            certs = await n.state.get(ETCD_CERTS.pointer(ETCD_CERTS_ID))
            assert certs.metadata.owner == "secrets.EtcdCertsController"
            assert (n.paths.pki_dir / "server.crt").read_text() == certs.spec.server_cert
            assert all((f.stat().st_mode & 0o777) == 0o600 for f in n.paths.pki_dir.iterdir())
        # a joined node refuses Bootstrap too
        await expect(Status.FAILED_PRECONDITION, "etcd is already bootstrapped", etcd_api.bootstrap(cl.connect(1)))

        async with cl.etcd_client() as c:
            await c.put(b"/kos/answer", b"42")

        # kill node 1's etcd: the supervisor restarts it and it is healthy again
        sup1 = cl.nodes[1].supervisor
        pid = sup1.status("etcd").pid
        t1 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        await sup1.wait_for("etcd", lambda s: s.pid not in (0, pid) and s.healthy, timeout=30)
        print(f"crash -> healthy in {time.monotonic() - t1:.2f}s")
        await voters(cl, 1, 3)

        # machined restarts on node 0 (state lost, disk kept): its member comes back by itself,
        # and the persisted marker still refuses a second Bootstrap
        n0 = await cl.restart_node(0)
        await assert_resources(n0.state, ETCD_MEMBERS, ["local"], timeout=30)
        await expect(Status.FAILED_PRECONDITION, "etcd is already bootstrapped", etcd_api.bootstrap(cl.connect(0)))
        await voters(cl, 0, 3)
        conn0 = cl.connect(0)

        # node 1's address changes: new certificates, the membership learns the new peer URL
        # (MemberUpdate) before etcd restarts on it, and the cluster keeps three voters
        moved = f"{cl.subnet}.12"
        for aid in ("current", "accumulative"):
            await cl.nodes[1].state.update_with_conflicts(
                NODE_ADDRESSES.pointer(aid), lambda r: setattr(r, "spec", NodeAddressSpec(addresses=[f"{moved}/32"])))
        with anyio.fail_after(40):
            while True:
                got = {m.hostname: m for m in await voters(cl, 0, 3)}
                if got["cp-1"].peer_urls == [f"https://{moved}:2380"] and \
                        got["cp-1"].client_urls == [f"https://{moved}:2379"]:
                    break
                await anyio.sleep(0.1)
        assert moved in certificate_sans((cl.nodes[1].paths.pki_dir / "server.crt").read_bytes())
        await cl.nodes[1].supervisor.wait_healthy("etcd", timeout=30)
        await voters(cl, 1, 3)

        # forfeit leadership on the leader: someone else leads afterwards
        leader = await leader_id(cl, 0)
        li = next(i for i, n in enumerate(cl.nodes) if ids[n.name] == leader)
        assert await etcd_api.forfeit_leadership(cl.connect(li)) == cl.nodes[li].name
        await leader_id(cl, 0, other_than=leader)
        assert await etcd_api.forfeit_leadership(cl.connect(li)) == ""  # not the leader any more

        # removing members: roles, unknown members, self, then a real removal
        await expect(Status.PERMISSION_DENIED, "requires one of",
                     etcd_api.remove_member(cl.connect_as(0, [auth.READER]), member="cp-2"))
        await expect(Status.NOT_FOUND, "member 'cp-9' not found", etcd_api.remove_member(conn0, member="cp-9"))
        await expect(Status.NOT_FOUND, "member_id 1234 not found", etcd_api.remove_member(conn0, member_id=0x1234))
        await expect(Status.INVALID_ARGUMENT, "set member", etcd_api.remove_member(conn0))
        await expect(Status.FAILED_PRECONDITION, "use EtcdLeaveCluster", etcd_api.remove_member(conn0, member="cp-0"))
        assert await etcd_api.remove_member(conn0, member="cp-2") == "cp-2"
        await cl.stop_node(2)
        left = await voters(cl, 0, 2)
        assert sorted(m.hostname for m in left) == ["cp-0", "cp-1"]
        assert sorted(m.hostname for m in await voters(cl, 1, 2)) == ["cp-0", "cp-1"]

        # node 1 leaves while it leads: leadership moves, the cluster shrinks to node 0 and node
        # 1's etcd is stopped for good
        await leader_id(cl, 0)  # an election after the removal has ended
        await etcd_api.forfeit_leadership(conn0)  # node 0 hands over if it leads
        await leader_id(cl, 0, other_than=ids["cp-0"])
        assert await etcd_api.leave_cluster(cl.connect(1)) == "cp-1"
        assert [m.hostname for m in await voters(cl, 0, 1)] == ["cp-0"]
        await assert_no_resource(cl.nodes[1].state, ETCD_SPECS.pointer("etcd"), timeout=20)
        await cl.nodes[1].supervisor.wait_state("etcd", ServiceState.FINISHED, timeout=30)
        await expect(Status.UNAVAILABLE, "etcd is not running", etcd_api.member_list(cl.connect(1)))

        # a snapshot through the API with the backup role (a reader may not)
        await expect(Status.PERMISSION_DENIED, "requires one of",
                     etcd_api.snapshot(cl.connect_as(0, [auth.READER]), tmp_path / "no.snapshot"))
        size = await etcd_api.snapshot(cl.connect_as(0, [auth.ETCD_BACKUP]), snap)
        assert size == snap.stat().st_size > 0
        conn0.close()

    # disaster recovery: a fresh node starts from the snapshot, another control plane joins it
    async with NodeCluster(tmp_path / "fresh", 2) as fresh:
        conn = fresh.connect(0)
        await expect(Status.UNAVAILABLE, "etcd is not running", etcd_api.snapshot(conn, tmp_path / "x"))
        assert await etcd_api.recover_upload(conn, snap) == size
        await etcd_api.bootstrap(conn, recover=True)
        both = {m.hostname: m for m in await voters(fresh, 1, 2)}
        assert both["cp-0"].peer_urls == [f"https://{fresh.ip(0)}:2380"]
        async with fresh.etcd_client(1) as c:
            assert await c.get(b"/kos/answer") == b"42"
        assert not read_marker(fresh.nodes[0].paths.marker).recover_from  # done, not repeated
        await expect(Status.FAILED_PRECONDITION, "etcd is already bootstrapped", etcd_api.recover_upload(conn, snap))
        assert await etcd_api.leave_cluster(fresh.connect(1)) == "cp-1"
        await voters(fresh, 0, 1)
        await expect(Status.FAILED_PRECONDITION, "only etcd voter", etcd_api.leave_cluster(conn))
        conn.close()
