"""A real 3-member mTLS etcd cluster on loopback, each member under its own supervisor:
bootstrap + learner joins through the client, consistent member lists, EtcdMember resources,
crash -> restarted healthy, member removal, snapshot -> restore into a fresh single node."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from kos.apis.etcd import EtcdError, format_member_id
from kos.controllers.etcd.join import (
    add_learner,
    joining_spec,
    leave_cluster,
    promote_when_ready,
    publish_local_member,
    restore_snapshot,
)
from kos.machined.services import ServiceState
from kos.resources.etcd import ETCD_MEMBERS, EtcdSpecSpec
from kos.resources.runtime import SERVICES
from tests.support.localcluster import LocalCluster

pytestmark = [pytest.mark.anyio, pytest.mark.root]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[LocalCluster]:
    async with LocalCluster(tmp_path / "cluster", 3) as cl:
        yield cl


async def test_three_member_cluster_lifecycle(cluster: LocalCluster, tmp_path: Path) -> None:
    t0 = time.monotonic()
    await cluster.bootstrap()
    await cluster.join(1, [0])
    # member 2 step by step: it must really be a learner before promotion
    m2 = cluster.members[2]
    async with cluster.client(0, 1) as c:
        plan = await add_learner(c, m2.name, [m2.peer_url])
        assert plan.member.is_learner and not plan.member.started
        assert sorted(plan.initial_cluster) == ["etcd-0", "etcd-1", "etcd-2"]
        again = await add_learner(c, m2.name, [m2.peer_url])  # a retried join reuses the pending add
        assert again.member.id == plan.member.id
        m2.runner.spec = joining_spec(m2.spec, plan)
        assert m2.runner.spec.initial_cluster_state == "existing"
        await m2.supervisor.start("etcd")
        await m2.supervisor.wait_healthy("etcd", timeout=20)
        await promote_when_ready(c, plan.member.id, timeout=20)
    async with cluster.client(2) as c:
        await publish_local_member(m2.state, c, m2.client_url)
    formed = time.monotonic() - t0
    print(f"3-member cluster formed in {formed:.2f}s")

    # member lists agree on every member, everyone is a voter
    lists = []
    for i in range(3):
        async with cluster.client(i) as c:
            lists.append(sorted((m.id, m.name, m.is_learner) for m in await c.member_list()))
    assert lists[0] == lists[1] == lists[2]
    assert sorted(name for _, name, _ in lists[0]) == ["etcd-0", "etcd-1", "etcd-2"]
    assert not any(learner for *_, learner in lists[0])
    ids = {name: mid for mid, name, _ in lists[0]}
    for m in cluster.members:
        r = await m.state.get(ETCD_MEMBERS.pointer("local"))
        assert r.spec.member_id == format_member_id(ids[m.name])
        svc = await m.state.get(SERVICES.pointer("etcd"))
        assert svc.spec.state == "Running" and svc.spec.running

    # writes through one member are read through another
    async with cluster.client(0) as c:
        await c.put(b"/kos/a", b"1")
        await c.put(b"/kos/b", b"2")
    async with cluster.client(2) as c:
        assert await c.get_prefix(b"/kos/") == {b"/kos/a": b"1", b"/kos/b": b"2"}
        st = await c.status()
        assert st.version.startswith("3.4") and st.leader in ids.values() and not st.is_learner

    # kill one etcd: the supervisor restarts it and it becomes healthy again
    m1 = cluster.members[1]
    sup1 = m1.supervisor
    old = sup1.status("etcd")
    old_pid, restarts = old.pid, old.restarts
    t1 = time.monotonic()
    os.kill(old_pid, signal.SIGKILL)
    await sup1.wait_for("etcd", lambda s: s.restarts > restarts, timeout=10)
    st = await sup1.wait_healthy("etcd", timeout=15)
    recovered = time.monotonic() - t1
    print(f"etcd crash -> healthy again in {recovered:.2f}s")
    assert st.pid != old_pid
    failed = [e.message for e in st.events if e.state == ServiceState.FAILED]
    assert failed[-1] == f"exited with code {-signal.SIGKILL}"
    async with cluster.client(1) as c:
        await c.put(b"/kos/c", b"3")
        assert await c.get(b"/kos/a") == b"1"

    # snapshot the cluster (streamed through the client)
    snap = tmp_path / "db.snapshot"
    async with cluster.client(0) as c:
        with snap.open("wb") as f:
            async for chunk in c.snapshot():
                f.write(chunk)
    assert snap.stat().st_size > 0

    # forfeit leadership: move it to etcd-2, every member agrees on the new leader
    m2_id = ids["etcd-2"]
    async with cluster.client() as c:
        assert await c.alarms() == []
        await c.move_leader(m2_id)
        for _ in range(100):  # followers learn of the new leader with its next heartbeat
            if {(await c.status(m.client_url)).leader for m in cluster.members} == {m2_id}:
                break
            await anyio.sleep(0.05)
        else:
            raise AssertionError("not every member sees etcd-2 as leader after move_leader")

    # restore the snapshot into a fresh single node: the data is there
    async with LocalCluster(tmp_path / "restored", 1) as fresh:
        m = fresh.members[0]
        restored = await restore_snapshot(str(snap), m.spec)
        assert restored.initial_cluster == {m.name: m.peer_url}
        m.runner.spec = restored
        await m.supervisor.start("etcd")
        await m.supervisor.wait_healthy("etcd", timeout=20)
        async with fresh.client() as c:
            assert await c.get_prefix(b"/kos/") == {b"/kos/a": b"1", b"/kos/b": b"2", b"/kos/c": b"3"}
            assert [mm.name for mm in await c.member_list()] == [m.name]
        with pytest.raises(FileExistsError, match="recovery needs an empty data dir"):
            await restore_snapshot(str(snap), m.spec)

    # remove a member (the leader): leave_cluster hands leadership over first, then removes it
    # (retrying while etcd's strict reconfig check wants every voter connected for 5 s)
    async with cluster.client(0, 1) as c:
        remaining = await leave_cluster(c, m2_id)
        assert sorted(m.name for m in remaining) == ["etcd-0", "etcd-1"]
        assert (await c.status(cluster.members[0].client_url)).leader in (ids["etcd-0"], ids["etcd-1"])
    await m2.supervisor.stop("etcd")
    async with cluster.client(0, 1) as c:
        for i in (0, 1):
            async with cluster.client(i) as one:
                assert sorted(m.name for m in await one.member_list()) == ["etcd-0", "etcd-1"]
        await c.put(b"/kos/d", b"4")
        with pytest.raises(EtcdError, match="member not found"):
            await c.member_remove(m2_id)


async def test_client_errors_are_clear(tmp_path: Path) -> None:
    from kos.apis.etcd import EtcdClient, TLSFiles

    with pytest.raises(ValueError, match="TLS files"):
        EtcdClient(["https://127.0.0.1:1"])
    with pytest.raises(ValueError, match="expected http"):
        EtcdClient(["ftp://x:1"])
    with pytest.raises(ValueError, match="at least one endpoint"):
        EtcdClient([])
    async with EtcdClient(["http://127.0.0.1:1"], timeout=1) as c:
        with pytest.raises(EtcdError, match=re.escape("no etcd endpoint answered: http://127.0.0.1:1: unreachable")):
            await c.member_list()
    assert TLSFiles("a", "b", "c").ca == "a"
    spec = EtcdSpecSpec(name="x", data_dir=str(tmp_path / "d"))
    with anyio.fail_after(5):
        with pytest.raises(RuntimeError, match="not found"):
            await restore_snapshot("snap", spec, etcdctl="/nonexistent/etcdctl")


async def test_bootstrap_rejects_a_multi_member_spec(tmp_path: Path) -> None:
    from kos.controllers.etcd.flow import bootstrap_member
    from kos.machined.services import Supervisor

    spec = EtcdSpecSpec(name="a", data_dir=str(tmp_path / "d"), initial_cluster={"a": "https://x:2380",
                                                                                  "b": "https://y:2380"})
    async with Supervisor() as sup:
        with pytest.raises(ValueError, match=re.escape("bootstrap: EtcdSpec must be state 'new' with only 'a'")):
            await bootstrap_member(sup, spec, None)
