"""``kosctl bootstrap`` and ``kosctl etcd ...`` as a user runs them (subprocesses with a
kosconfig) against in-process nodes with real etcd: bootstrap, members, status, snapshot,
refusals with clear errors, then ``bootstrap --recover-from`` on a fresh node."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import anyio
import pytest

from kos.apis.etcd import EtcdError
from tests.support.nodecluster import NodeCluster

pytestmark = [pytest.mark.anyio, pytest.mark.root]

T = TypeVar("T")


async def retry(fn: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    """``fn()`` once etcd answers (it starts right after Bootstrap returns)."""
    with anyio.fail_after(timeout):
        while True:
            try:
                return await fn()
            except EtcdError:
                await anyio.sleep(0.2)


async def kosctl(cfg: Path, *args: str, rc: int = 0) -> str:
    p = await anyio.run_process([sys.executable, "-m", "kos.apis.kosctl.main", "--kosconfig", str(cfg), *args],
                                check=False)
    out, err = p.stdout.decode(), p.stderr.decode()
    assert p.returncode == rc, (args, p.returncode, out, err)
    return out + err


async def test_kosctl_bootstrap_etcd_and_recover(tmp_path: Path) -> None:
    snap = tmp_path / "db.snapshot"
    async with NodeCluster(tmp_path / "one", 1) as cl:
        cfg = cl.kosconfig(tmp_path / "kosconfig")
        out = await kosctl(cfg, "etcd", "members", rc=1)
        assert "UNAVAILABLE: etcd is not running on this node" in out
        assert "bootstrap requested" in await kosctl(cfg, "bootstrap")
        out = await kosctl(cfg, "bootstrap", rc=1)
        assert "FAILED_PRECONDITION: etcd is already bootstrapped" in out

        async with cl.etcd_client() as c:  # wait until etcd answers, then write through it
            await retry(lambda: c.put(b"/kos/cli", b"yes"))
        lines = (await kosctl(cfg, "etcd", "members")).splitlines()
        assert lines[0].split() == ["NODE", "ID", "HOSTNAME", "PEER", "URLS", "CLIENT", "URLS", "LEARNER"]
        assert lines[1].split()[2:] == ["cp-0", f"https://{cl.ip(0)}:2380", f"https://{cl.ip(0)}:2379", "false"]
        member_id = lines[1].split()[1]
        status = (await kosctl(cfg, "etcd", "status")).splitlines()
        assert status[0].startswith("NODE") and "RAFT APPLIED INDEX" in status[0]
        row = status[1].split()
        assert row[1] == member_id and member_id in row  # the only member leads
        out = await kosctl(cfg, "etcd", "remove-member", "not-hex!", rc=1)
        assert "member id 'not-hex!': expected hex" in out
        out = await kosctl(cfg, "etcd", "remove-member", member_id, rc=1)
        assert "FAILED_PRECONDITION" in out and "use EtcdLeaveCluster" in out
        out = await kosctl(cfg, "etcd", "forfeit-leadership", rc=1)
        assert "FAILED_PRECONDITION: no other voting member" in out
        out = await kosctl(cfg, "etcd", "snapshot", str(tmp_path / "missing" / "x.db"), rc=1)
        assert "does not exist" in out
        out = await kosctl(cfg, "etcd", "snapshot", str(snap))
        assert f"etcd snapshot saved to {snap}" in out and snap.stat().st_size > 0

    async with NodeCluster(tmp_path / "fresh", 1) as fresh:
        cfg = fresh.kosconfig(tmp_path / "kosconfig2")
        out = await kosctl(cfg, "bootstrap", "--recover-from", str(tmp_path / "nope.db"), rc=1)
        assert "--recover-from" in out and "no such file" in out
        out = await kosctl(cfg, "bootstrap", "--recover-from", str(snap))
        assert f"uploaded {snap.stat().st_size} bytes" in out and "bootstrap requested" in out
        async with fresh.etcd_client() as c:
            assert await retry(lambda: c.get(b"/kos/cli")) == b"yes"
