"""``kosctl etcd alarm list|disarm`` and ``kosctl etcd defrag`` against in-process nodes with
real etcd: a NOSPACE alarm raised through etcd's own Maintenance API shows with its member,
writes fail while it is armed, disarm clears it; defrag reports the database size before and
after; readers may list alarms but not disarm or defragment."""

from __future__ import annotations

from pathlib import Path

import grpclib.client
import pytest

from kos.apis import auth
from kos.apis.client import ClientConfig, Context
from kos.apis.etcd import EtcdError
from kos.apis.etcd.gen import etcdserverpb as epb
from kos.resources.pki import issue_certificate
from tests.support.nodecluster import NodeCluster

from .test_kosctl_etcd import kosctl, retry

pytestmark = [pytest.mark.anyio, pytest.mark.root]


async def test_alarms_and_defrag(tmp_path: Path) -> None:
    async with NodeCluster(tmp_path / "one", 1) as cl:
        cfg = cl.kosconfig(tmp_path / "kosconfig")
        out = await kosctl(cfg, "etcd", "alarm", "list", rc=1)
        assert "UNAVAILABLE" in out  # etcd does not run before the bootstrap
        assert "bootstrap requested" in await kosctl(cfg, "bootstrap")
        async with cl.etcd_client() as c:
            await retry(lambda: c.put(b"/kos/a", b"1"))
            assert (await kosctl(cfg, "etcd", "alarm", "list")).splitlines() == ["NODE   MEMBER   ALARM"]

            member = (await c.status()).member_id

            async def activate(ch: grpclib.client.Channel) -> epb.AlarmResponse:
                req = epb.AlarmRequest(action=epb.AlarmRequestAlarmAction.ACTIVATE, member_id=member,
                                       alarm=epb.AlarmType.NOSPACE)
                return await epb.MaintenanceStub(ch).alarm(req)

            await c._any(activate)
            rows = (await kosctl(cfg, "etcd", "alarm", "list")).splitlines()
            assert rows[1].split() == [cl.nodes[0].endpoint, f"{member:x}", "NOSPACE"]
            with pytest.raises(EtcdError, match="database space exceeded"):
                await c.put(b"/kos/b", b"2")

            reader = tmp_path / "reader"
            who = issue_certificate(cl.os_ca, common_name="r", organizations=[auth.READER], client=True)
            ctx = Context(endpoints=[cl.nodes[0].endpoint], ca=cl.os_ca.cert_pem, crt=who.cert_pem, key=who.key_pem)
            ClientConfig(context="r", contexts={"r": ctx}).save(reader)
            assert "NOSPACE" in await kosctl(reader, "etcd", "alarm", "list")
            for args in (("alarm", "disarm"), ("defrag",)):
                out = await kosctl(reader, "etcd", *args, rc=1)
                assert "PERMISSION_DENIED" in out and "os:admin" in out

            out = await kosctl(cfg, "etcd", "alarm", "disarm")
            assert f"{member:x}   NOSPACE" in out and "disarmed 1 alarm(s)" in out
            assert (await kosctl(cfg, "etcd", "alarm", "list")).splitlines() == ["NODE   MEMBER   ALARM"]
            await c.put(b"/kos/b", b"2")  # writes work again

            for i in range(200):  # garbage for the defragmentation to reclaim
                await c.put(b"/kos/junk", b"x" * 4096 + str(i).encode())
            out = await kosctl(cfg, "etcd", "defrag")
            assert out.startswith(f"{cl.nodes[0].endpoint}: defragmented: ") and " -> " in out
            status = (await kosctl(cfg, "etcd", "status")).splitlines()
            assert len(status) == 2


async def test_status_across_the_members(tmp_path: Path) -> None:
    """``--cluster`` asks the node for the members and addresses each one by its client URL's
    host (a node answers for its own addresses itself and forwards the others)."""
    async with NodeCluster(tmp_path / "one", 1) as cl:
        cfg = cl.kosconfig(tmp_path / "kosconfig")
        await kosctl(cfg, "bootstrap")
        async with cl.etcd_client() as c:
            await retry(lambda: c.put(b"/kos/a", b"1"))
        rows = (await kosctl(cfg, "etcd", "status", "--cluster")).splitlines()
        assert len(rows) == 2 and rows[1].split()[0] == cl.ip(0)  # the member's host was the node asked
        out = await kosctl(cfg, "etcd", "status", "--cluster", "-n", "a,b", rc=1)
        assert "--cluster finds the members itself" in out
