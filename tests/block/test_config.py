"""Machine config -> VolumeConfigs: install disk / selector, machine.disks, clear errors."""

from __future__ import annotations

import anyio
import pytest

from kos.controllers.block.config import (
    VolumeConfigController,
    VolumeConfigError,
    selector_from_install,
    volumes_from_config,
)
from kos.controllers.block.planner import MiB
from kos.controllers.block.selector import compile_disk_selector
from kos.controllers.runtime import Runtime
from kos.controllers.runtime.testing import assert_no_resource, assert_resources
from kos.resources.block import VOLUME_CONFIGS
from kos.resources.config import ACTIVE_ID, MachineConfigSpec
from kos.resources.core import InMemoryState, Resource
from kos.resources.machineconfig.container import ConfigContainer

CONFIG = """version: v1alpha1
machine:
  type: worker
  install:
    disk: /dev/vdz
    wipe: true
  disks:
    - device: /dev/sdb
      partitions:
        - mountpoint: /var/mnt/extra
          size: 10GB
        - mountpoint: /var/mnt/rest
"""


def test_install_disk_and_user_disks() -> None:
    vols = volumes_from_config(ConfigContainer.load(CONFIG).config)
    assert sorted(vols) == ["EPHEMERAL", "META", "STATE", "sdb-1", "sdb-2"]
    assert vols["STATE"].provisioning.disk_selector == 'disk.dev_path == "/dev/vdz"'
    assert vols["STATE"].provisioning.wipe is True
    extra, rest = vols["sdb-1"], vols["sdb-2"]
    assert (extra.provisioning.partition_spec.min_size, extra.provisioning.partition_spec.max_size) == (10**10, 10**10)
    assert extra.mount.target_path == "/var/mnt/extra"
    assert rest.provisioning.partition_spec.grow and rest.provisioning.partition_spec.min_size == MiB


def test_install_selector_translation() -> None:
    expr = selector_from_install({"size": ">= 1TB", "model": "WDC*", "type": "ssd", "name": "/dev/sd?"})
    sel = compile_disk_selector(expr)
    disk = {"size": 2 * 10**12, "model": "WDC WD20", "rotational": False, "transport": "sata", "name": "sda"}
    assert sel.matches(disk)
    assert not sel.matches({**disk, "size": 10**12 - 1})
    assert not sel.matches({**disk, "rotational": True})
    assert compile_disk_selector(selector_from_install({"size": "4GB"})).matches({"size": 4 * 10**9})


@pytest.mark.parametrize(
    ("selector", "path"),
    [
        ({"size": "huge"}, "machine.install.diskSelector.size"),
        ({"type": "floppy"}, "machine.install.diskSelector.type"),
        ({"colour": "red"}, "machine.install.diskSelector.colour"),
        ({"model": ""}, "machine.install.diskSelector.model"),
    ],
)
def test_selector_errors_name_the_path(selector: dict[str, str], path: str) -> None:
    with pytest.raises(VolumeConfigError, match=path.replace("[", r"\[").replace(".", r"\.")):
        selector_from_install(selector)


def test_bad_partition_size_names_the_path() -> None:
    text = CONFIG.replace("size: 10GB", "size: lots")
    with pytest.raises(VolumeConfigError, match=r"machine\.disks\[0\]\.partitions\[0\]\.size: 'lots' is invalid"):
        volumes_from_config(ConfigContainer.load(text).config)


@pytest.mark.anyio
async def test_controller_follows_the_machine_config() -> None:
    state = InMemoryState()
    runtime = Runtime(state, backoff_initial=0.01, backoff_max=0.1)
    runtime.register(VolumeConfigController())
    async with anyio.create_task_group() as tg:
        tg.start_soon(runtime.run)
        mc = Resource.new(MachineConfigSpec(config=CONFIG), ACTIVE_ID)
        await state.create(mc)
        await assert_resources(state, VOLUME_CONFIGS, ["META", "STATE", "EPHEMERAL", "sdb-1", "sdb-2"])
        await state.update_with_conflicts(
            mc.pointer, lambda r: setattr(r.spec, "config", CONFIG.split("  disks:")[0])
        )
        await assert_no_resource(state, VOLUME_CONFIGS.pointer("sdb-1"))
        await assert_resources(state, VOLUME_CONFIGS, ["EPHEMERAL"])
        tg.cancel_scope.cancel()
