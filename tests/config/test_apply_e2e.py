"""ApplyConfiguration end to end: a kosctl-like client over mutual TLS (loopback, real TLS
1.3/HTTP2) -> MachineService -> ManagedConfigStore -> ConfigManager -> MachineConfig resource
-> controllers (MachineType, secrets). Modes, status codes, no-op, try rollback, staged on the
next start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from grpclib.const import Status

from kos.apis import auth
from kos.apis.client import APIError, Connection
from kos.apis.gen.kos import machine as pb
from kos.apis.server.machine import MachineService
from kos.controllers.config.api import ManagedConfigStore
from kos.controllers.runtime.testing import assert_resources
from kos.resources import secrets as s
from kos.resources.config import ACTIVE_ID, MACHINE_TYPE_ID
from kos.resources.core import InMemoryState
from tests.support.loopback import LoopbackAPI, serve_state

from .helpers import configs, node, patched
from .test_manager import MC, MT, has, mc_ptr

pytestmark = pytest.mark.anyio

Mode = pb.ApplyConfigurationRequestMode
APPLY = auth.MACHINE + "ApplyConfiguration"


@asynccontextmanager
async def api_node(state_dir: Path) -> AsyncIterator[tuple[InMemoryState, Connection, LoopbackAPI]]:
    async with node(state_dir, secrets=True) as (state, manager):
        machine = MachineService(config=ManagedConfigStore(manager))
        async with serve_state(state, machine=machine) as api, api.connect([auth.ADMIN]) as conn:
            yield state, conn, api


async def apply(conn: Connection, data: str, mode: Mode = Mode.AUTO, **kw: object) -> pb.ApplyConfigurationResponse:
    req = pb.ApplyConfigurationRequest(data=data.encode(), mode=mode, **kw)  # type: ignore[arg-type]
    return pb.ApplyConfigurationResponse().parse(await conn.unary(APPLY, bytes(req)))


async def test_apply_over_the_api(tmp_path: Path) -> None:
    cp, _ = configs()
    async with api_node(tmp_path) as (state, conn, _api):
        resp = await apply(conn, cp)
        assert resp.mode_details.startswith("Applied")
        await assert_resources(state, MC, [ACTIVE_ID], has(cp))
        await assert_resources(state, MT, [MACHINE_TYPE_ID], lambda r: r.spec.machine_type == "controlplane")
        # the derived secrets follow the applied config
        await assert_resources(state, s.API_CERTS, [s.API_CERTS_ID], timeout=20)
        before = (await state.get(mc_ptr())).metadata.version

        # invalid config: INVALID_ARGUMENT listing every error, nothing changes
        bad = patched(cp, lambda c: (setattr(c.machine, "type", "plumber"),
                                     setattr(c.machine.network, "hostname", "bad_host!")))
        with pytest.raises(APIError) as ei:
            await apply(conn, bad)
        assert ei.value.status == Status.INVALID_ARGUMENT
        assert "machine.type" in ei.value.message and "machine.network.hostname" in ei.value.message
        with pytest.raises(APIError) as ei:
            await apply(conn, "version: v1alpha1\nmachine: [unclosed\n")
        assert ei.value.status == Status.INVALID_ARGUMENT

        # no-reboot with a reboot-only change: FAILED_PRECONDITION naming the field
        with pytest.raises(APIError) as ei:
            await apply(conn, patched(cp, lambda c: setattr(c.machine.install, "disk", "/dev/vdz")), Mode.NO_REBOOT)
        assert ei.value.status == Status.FAILED_PRECONDITION and "machine.install.disk" in ei.value.message

        # unchanged: a no-op, no new resource version
        resp = await apply(conn, cp, Mode.NO_REBOOT)
        assert "No changes" in resp.mode_details
        assert (await state.get(mc_ptr())).metadata.version == before

        # dry run shows the diff and changes nothing
        live = patched(cp, lambda c: setattr(c.machine, "cert_sans", ["api.lab.example"]))
        resp = await apply(conn, live, dry_run=True)
        assert "api.lab.example" in resp.diff
        assert (await state.get(mc_ptr())).metadata.version == before

        # a live change: certSANs reach the API certificate
        await apply(conn, live, Mode.NO_REBOOT)
        await assert_resources(state, s.API_CERTS, [s.API_CERTS_ID],
                               lambda r: _has_san(r.spec.server_cert, "api.lab.example"), timeout=20)

        # try: in effect at once, rolled back after the timeout
        tried = patched(live, lambda c: setattr(c.machine, "sysctls", {"vm.swappiness": "5"}))
        resp = await apply(conn, tried, Mode.TRY, try_timeout=2.0)
        assert "try mode" in resp.mode_details
        assert (await state.get(mc_ptr())).spec.config == tried
        await assert_resources(state, MC, [ACTIVE_ID], has(live), timeout=10)
        with pytest.raises(APIError) as ei:
            await apply(conn, tried, Mode.TRY)
        assert ei.value.status == Status.INVALID_ARGUMENT and "try_timeout" in ei.value.message

        # staged: stored for the next start
        staged = patched(live, lambda c: setattr(c.machine.install, "disk", "/dev/vdq"))
        resp = await apply(conn, staged, Mode.STAGED)
        assert "next start" in resp.mode_details
        assert (await state.get(mc_ptr())).spec.config == live

    async with api_node(tmp_path) as (state, _conn, _api):  # the next start
        await assert_resources(state, MC, [ACTIVE_ID], has(staged))


def _has_san(cert: str, name: str) -> bool:
    from kos.resources.pki import certificate_sans

    return name in certificate_sans(cert.encode())
