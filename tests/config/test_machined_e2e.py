"""Apply modes against a running machined (``kos.machined.node.MachineNode`` in process, real
mutual TLS): maintenance apply, no-op, no-reboot refusal, try rollback, staged taking effect on
the next start of the node."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from grpclib.const import Status

from kos.apis import auth
from kos.apis.client import APIError, Connection
from kos.apis.gen.kos import machine as pb
from kos.controllers.runtime.testing import assert_resources
from kos.resources.config import ACTIVE_ID, STAGED_ID
from kos.resources.machineconfig import ConfigContainer
from kos.resources.pki import issue_certificate

from .helpers import configs, patched
from .test_manager import MC, has, mc_ptr

pytestmark = pytest.mark.anyio

Mode = pb.ApplyConfigurationRequestMode
APPLY = auth.MACHINE + "ApplyConfiguration"


def _node(state_dir: Path, **kw: Any) -> Any:
    from kos.machined.node import MachineNode, NodeOptions

    opts = NodeOptions(state_dir=state_dir, listen="127.0.0.1:0", platform="process", controllers=False, **kw)
    return MachineNode(opts)


async def _apply(conn: Connection, text: str, mode: Mode = Mode.AUTO, **kw: Any) -> pb.ApplyConfigurationResponse:
    req = pb.ApplyConfigurationRequest(data=text.encode(), mode=mode, **kw)
    return pb.ApplyConfigurationResponse().parse(await conn.unary(APPLY, bytes(req)))


def _admin(cp: str, endpoint: str) -> Connection:
    ca = ConfigContainer.load(cp).config.machine.ca.to_pair()
    client = issue_certificate(ca, common_name="test-admin", organizations=[auth.ADMIN], client=True,
                               ttl=datetime.timedelta(hours=1))
    return Connection(endpoint, ca=ca.cert_pem, identity=client, timeout=30)


async def _endpoint(state_dir: Path) -> str:
    return (await anyio.Path(state_dir / "api-endpoint").read_text()).strip()


async def test_apply_modes_against_machined(tmp_path: Path) -> None:
    cp, _ = configs()
    node = _node(tmp_path, maintenance=True)
    async with anyio.create_task_group() as tg:
        ready = anyio.Event()
        tg.start_soon(lambda: node.run(ready=ready))
        with anyio.fail_after(30):
            await ready.wait()
        async with Connection(await _endpoint(tmp_path), insecure=True, timeout=30) as conn:
            resp = await _apply(conn, cp)  # maintenance: the first apply
            assert resp.mode_details.startswith("Applied")
        await assert_resources(node.state, MC, [ACTIVE_ID], has(cp), timeout=30)
        with anyio.fail_after(30):
            while not node.ready.is_set() or node._server is None:  # noqa: ASYNC110 - the node has no event for mTLS up
                await anyio.sleep(0.05)
        async with _admin(cp, await _endpoint(tmp_path)) as conn:
            before = (await node.state.get(mc_ptr())).metadata.version
            resp = await _apply(conn, cp, Mode.NO_REBOOT)
            assert "No changes" in resp.mode_details
            assert (await node.state.get(mc_ptr())).metadata.version == before

            with pytest.raises(APIError) as ei:
                await _apply(conn, patched(cp, lambda c: setattr(c.machine.install, "disk", "/dev/vdx")),
                             Mode.NO_REBOOT)
            assert ei.value.status == Status.FAILED_PRECONDITION and "machine.install.disk" in ei.value.message

            tried = patched(cp, lambda c: setattr(c.machine, "sysctls", {"vm.swappiness": "7"}))
            await _apply(conn, tried, Mode.TRY, try_timeout=3.0)
            assert (await node.state.get(mc_ptr())).spec.config == tried
            await assert_resources(node.state, MC, [ACTIVE_ID], has(cp), timeout=15)  # rolled back

            staged = patched(cp, lambda c: setattr(c.machine, "sysctls", {"vm.swappiness": "9"}))
            resp = await _apply(conn, staged, Mode.STAGED)
            await assert_resources(node.state, MC, [STAGED_ID], has(staged), timeout=15)
            assert (await node.state.get(mc_ptr())).spec.config == cp
        tg.cancel_scope.cancel()

    node = _node(tmp_path)  # the next start: the staged config is the active one
    async with anyio.create_task_group() as tg:
        ready = anyio.Event()
        tg.start_soon(lambda: node.run(ready=ready))
        await assert_resources(node.state, MC, [ACTIVE_ID], has(staged), timeout=30)
        tg.cancel_scope.cancel()
