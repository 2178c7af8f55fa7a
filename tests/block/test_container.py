"""Container mode (namespace nodes): volumes are directories, and are reported ready."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from kos.controllers.block.defaults import system_volumes, user_volume
from kos.controllers.block.planner import MiB
from kos.controllers.block.volumes import VolumeController
from kos.controllers.runtime import Runtime
from kos.controllers.runtime.testing import assert_resources
from kos.resources.block import VOLUME_STATUSES, VolumePhase, VolumeType
from kos.resources.core import InMemoryState, Resource

pytestmark = pytest.mark.anyio


async def test_container_mode_volumes_are_directories(tmp_path: Path) -> None:
    state = InMemoryState()
    runtime = Runtime(state, backoff_initial=0.01, backoff_max=0.1)
    runtime.register(VolumeController(root=str(tmp_path), container_mode=True))
    volumes = {**system_volumes("disk.system_disk"), "db": user_volume("db", "true", min_size=MiB)}
    async with anyio.create_task_group() as tg:
        tg.start_soon(runtime.run)
        for name, spec in volumes.items():
            await state.create(Resource.new(spec, name))
        got = await assert_resources(
            state, VOLUME_STATUSES, list(volumes), lambda r: r.spec.phase == VolumePhase.READY, timeout=10
        )
        tg.cancel_scope.cancel()
    assert got["EPHEMERAL"].spec.location == str(tmp_path / "var")
    assert got["db"].spec.location == str(tmp_path / "var/mnt/db")
    assert all(r.spec.type == VolumeType.DIRECTORY for r in got.values())
    assert (tmp_path / "var").is_dir() and (tmp_path / "system/state").is_dir() and (tmp_path / "var/mnt/db").is_dir()
