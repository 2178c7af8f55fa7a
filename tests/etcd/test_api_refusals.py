"""The etcd RPCs' refusals without a running etcd (a loopback API over mTLS, no etcd binary
needed): the status code, a message naming the problem, and nothing changed on the node."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from grpclib.const import Status

from kos.apis import auth
from kos.apis.client import APIError, Connection
from kos.apis.etcd import machine as etcd_api
from kos.apis.server.machine import ConfigStore, MachineService
from kos.controllers.etcd.marker import EtcdPaths, read_marker
from kos.machined.api import EtcdAPI
from kos.resources.core import InMemoryState, Resource
from kos.resources.etcd import ETCD_BOOTSTRAPS, EtcdBootstrapSpec, EtcdConfigSpec
from tests.support.loopback import LoopbackAPI, serve_state

pytestmark = pytest.mark.anyio


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[InMemoryState, EtcdPaths, LoopbackAPI]]:
    state = InMemoryState()
    paths = EtcdPaths(tmp_path / "root")
    machine = MachineService(config=ConfigStore(tmp_path / "config.yaml"), extensions=[EtcdAPI(state, None, paths)])
    async with serve_state(state, machine=machine) as api:
        yield state, paths, api


async def expect(code: Status, match: str, coro: object) -> None:
    with pytest.raises(APIError, match=match) as info:
        await coro  # type: ignore[misc]
    assert info.value.status == code, info.value


async def test_worker_refuses_bootstrap_and_recover(node: tuple[InMemoryState, EtcdPaths, LoopbackAPI],
                                                    tmp_path: Path) -> None:
    _, paths, api = node
    snap = tmp_path / "s.db"
    snap.write_bytes(b"not empty")
    async with api.connect() as conn:
        await expect(Status.FAILED_PRECONDITION, "etcd runs only on control-plane nodes", etcd_api.bootstrap(conn))
        await expect(Status.FAILED_PRECONDITION, "only on control-plane", etcd_api.recover_upload(conn, snap))
    assert not paths.marker.exists() and not paths.recover_snapshot.exists()


async def test_control_plane_refusals_before_and_after_bootstrap(
    node: tuple[InMemoryState, EtcdPaths, LoopbackAPI], tmp_path: Path
) -> None:
    state, paths, api = node
    await state.create(Resource.new(EtcdConfigSpec(), "etcd"))
    empty, snap = tmp_path / "empty.db", tmp_path / "s.db"
    empty.write_bytes(b"")
    snap.write_bytes(b"x" * 300_000)
    async with api.connect() as conn:
        # nothing runs yet: every member RPC is UNAVAILABLE
        for call in (etcd_api.member_list(conn), etcd_api.status(conn), etcd_api.leave_cluster(conn),
                     etcd_api.forfeit_leadership(conn), etcd_api.remove_member(conn, member="x"),
                     etcd_api.snapshot(conn, tmp_path / "out.db")):
            await expect(Status.UNAVAILABLE, "etcd is not running on this node", call)
        assert not (tmp_path / "out.db").exists() and not (tmp_path / "out.db.part").exists()
        # bad requests
        await expect(Status.INVALID_ARGUMENT, "malformed BootstrapRequest",
                     conn.unary(auth.MACHINE + "Bootstrap", b"\x08"))
        await expect(Status.FAILED_PRECONDITION, "no snapshot was uploaded", etcd_api.bootstrap(conn, recover=True))
        await expect(Status.INVALID_ARGUMENT, "snapshot stream was empty", etcd_api.recover_upload(conn, empty))
        assert not paths.recover_snapshot.exists() and not paths.marker.exists()
        # roles: a reader or a backup client may not bootstrap
        for roles in ([auth.READER], [auth.ETCD_BACKUP]):
            async with api.connect(roles) as other:
                await expect(Status.PERMISSION_DENIED, "requires one of", etcd_api.bootstrap(other))
        assert not paths.marker.exists()

        # upload, then bootstrap with recovery: the marker names the snapshot
        assert await etcd_api.recover_upload(conn, snap) == 300_000
        assert paths.recover_snapshot.read_bytes() == snap.read_bytes()
        assert (paths.recover_snapshot.stat().st_mode & 0o777) == 0o600
        await etcd_api.bootstrap(conn, recover=True, skip_hash_check=True)
        want = EtcdBootstrapSpec(bootstrapped=True, recover_from=str(paths.recover_snapshot), skip_hash_check=True,
                                 attempt=1)
        assert read_marker(paths.marker) == want
        assert (await state.get(ETCD_BOOTSTRAPS.pointer("bootstrap"))).spec == want
        # while the recovery has produced no member (no controller runs here), it may be retried
        # with another snapshot, but a plain bootstrap is refused
        await expect(Status.FAILED_PRECONDITION, "a recovery from a snapshot is pending", etcd_api.bootstrap(conn))
        assert await etcd_api.recover_upload(conn, snap) == 300_000
        await etcd_api.bootstrap(conn, recover=True)
        want = EtcdBootstrapSpec(bootstrapped=True, recover_from=str(paths.recover_snapshot), attempt=2)
        assert read_marker(paths.marker) == want
        assert (await state.get(ETCD_BOOTSTRAPS.pointer("bootstrap"))).spec == want
        # once a member exists: once only, and no second upload
        (paths.data_dir / "member").mkdir(parents=True)
        await expect(Status.FAILED_PRECONDITION, "etcd is already bootstrapped", etcd_api.bootstrap(conn, recover=True))
        await expect(Status.FAILED_PRECONDITION, "etcd is already bootstrapped", etcd_api.recover_upload(conn, snap))
        assert read_marker(paths.marker) == want


async def test_unreadable_marker_is_reported(node: tuple[InMemoryState, EtcdPaths, LoopbackAPI]) -> None:
    state, paths, api = node
    await state.create(Resource.new(EtcdConfigSpec(), "etcd"))
    paths.marker.parent.mkdir(parents=True)
    paths.marker.write_text("{broken")
    conn: Connection
    async with api.connect() as conn:
        await expect(Status.FAILED_PRECONDITION, f"etcd bootstrap marker {paths.marker}: unreadable",
                     etcd_api.bootstrap(conn))
        paths.marker.write_text('{"attempt": "many"}')
        await expect(Status.FAILED_PRECONDITION, f"etcd bootstrap marker {paths.marker}: bad value",
                     etcd_api.bootstrap(conn))
    assert paths.marker.read_text() == '{"attempt": "many"}'
