"""Discovery and provisioning end to end on real loop devices with udevd running: the
controllers run in a real Runtime over an in-memory state; mounts go under a temp root."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from kos.controllers.block.defaults import disk_volume, system_volumes, user_volume
from kos.controllers.block.discovery import BlockDiscoveryController
from kos.controllers.block.planner import MiB
from kos.controllers.block.volumes import Inventory, Provisioner, VolumeController
from kos.controllers.block.wipe import WipeError, wipe
from kos.controllers.runtime import Runtime
from kos.controllers.runtime.testing import assert_no_resource, assert_resources
from kos.platform.block import device, mount, probe, sysfs
from kos.platform.block.device import DeviceRefusedError
from kos.resources.block import (
    DISCOVERED_VOLUMES,
    DISKS,
    MOUNT_STATUSES,
    SYSTEM_DISKS,
    VOLUME_STATUSES,
    FilesystemType,
    VolumeConfigSpec,
    VolumePhase,
)
from kos.resources.core import InMemoryState, Resource

from .conftest import LoopFactory, blkid, resize_loop

pytestmark = [pytest.mark.root, pytest.mark.anyio]

GiB = 1024 * MiB
TIMEOUT = 30.0


class Node:
    def __init__(self, state: InMemoryState, runtime: Runtime, root: Path) -> None:
        self.state = state
        self.runtime = runtime
        self.root = root

    async def configure(self, volumes: dict[str, VolumeConfigSpec]) -> None:
        for name, spec in volumes.items():
            await self.state.create(Resource.new(spec, name))

    async def statuses(
        self, ids: list[str], check: Callable[[Resource[Any]], object], timeout: float = TIMEOUT
    ) -> dict[str, Resource[Any]]:
        return await assert_resources(self.state, VOLUME_STATUSES, ids, check, timeout=timeout)


@asynccontextmanager
async def node(
    disks: list[str], root: Path, state: InMemoryState | None = None, *, volumes: bool = True
) -> AsyncIterator[Node]:
    state = state or InMemoryState(history_max=4096)
    runtime = Runtime(state, backoff_initial=0.05, backoff_max=0.5)
    runtime.register(BlockDiscoveryController([d.removeprefix("/dev/") for d in disks]))
    if volumes:
        runtime.register(VolumeController(root=str(root)))
    async with anyio.create_task_group() as tg:
        tg.start_soon(runtime.run)
        try:
            yield Node(state, runtime, root)
        finally:
            tg.cancel_scope.cancel()


def selector_for(path: str) -> str:
    return f'disk.dev_path == "{path}"'


def ready(r: Resource[Any]) -> bool:
    return bool(r.spec.phase == VolumePhase.READY)


def checksum(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


async def test_fresh_disk_is_partitioned_formatted_mounted_and_second_run_changes_nothing(
    udevd: None, loops: LoopFactory, tmp_path: Path
) -> None:
    disk = loops(1 * GiB)
    other = loops(256 * MiB)  # not selected: must stay byte-for-byte identical
    await anyio.run_process(["mkfs.ext4", "-q", "-F", "-L", "EPHEMERAL", other])  # even with a tempting label
    before = checksum(other)
    root = tmp_path / "root"
    async with node([disk, other], root) as n:
        await n.configure(system_volumes(selector_for(disk)))
        first = await n.statuses(["META", "STATE", "EPHEMERAL"], ready)
        mounts = await assert_resources(n.state, MOUNT_STATUSES, ["STATE", "EPHEMERAL"], timeout=TIMEOUT)
        await assert_resources(n.state, SYSTEM_DISKS, ["system-disk"], lambda r: r.spec.disk_id == disk[5:])

    # the layout on the disk is what the planner promised
    table = probe.probe_path(disk).table
    assert table is not None and table.type == "gpt"
    assert [(p.label, p.start, p.size) for p in table.partitions] == [
        ("META", MiB, MiB),
        ("STATE", 2 * MiB, 100 * MiB),
        ("EPHEMERAL", 102 * MiB, table.partitions[2].size),
    ]
    assert table.partitions[2].end > GiB - 2 * MiB
    assert first["EPHEMERAL"].spec.location == f"{disk}p3"
    assert mounts["EPHEMERAL"].spec.target == str(root / "var")
    eph = blkid(f"{disk}p3")
    assert (eph["TYPE"], eph["LABEL"]) == ("xfs", "EPHEMERAL")
    assert blkid(f"{disk}p1").get("TYPE") is None  # META stays raw
    targets = {m.target for m in device.mounts()}
    assert {str(root / "var"), str(root / "system/state")} <= targets
    (root / "var" / "data").write_text("precious")
    assert checksum(other) == before

    # second "boot": the kernel forgets the partitions (it has no GPT parser), a fresh store
    # and fresh controllers find everything again and change nothing
    for target in ("var", "system/state"):
        assert await mount.unmount(str(root / target))
    await anyio.run_process(["partx", "--delete", disk])
    assert sysfs.partitions_of(disk[5:]) == []
    async with node([disk, other], root) as n:
        await n.configure(system_volumes(selector_for(disk)))
        second = await n.statuses(["META", "STATE", "EPHEMERAL"], ready)
        versions = {k: r.metadata.version for k, r in second.items()}
        # let discovery settle and the controller run again; versions must not move
        await assert_resources(n.state, DISCOVERED_VOLUMES, [f"{disk[5:]}p3"], lambda r: r.spec.name == "xfs")
        n.runtime.adapter("block.VolumeController").queue_reconcile()  # type: ignore[union-attr]
        again = await n.statuses(["META", "STATE", "EPHEMERAL"], ready)
        assert {k: r.metadata.version for k, r in again.items()} == versions
        for k in ("STATE", "EPHEMERAL"):
            assert again[k].spec.uuid == first[k].spec.uuid  # not reformatted
            assert again[k].spec.partition_uuid == first[k].spec.partition_uuid  # not re-partitioned
    table_after = probe.probe_path(disk).table
    assert table_after is not None and len(table_after.partitions) == 3
    assert (root / "var" / "data").read_text() == "precious"
    assert checksum(other) == before


async def test_foreign_filesystem_is_not_wiped_unless_told(udevd: None, loops: LoopFactory, tmp_path: Path) -> None:
    disk = loops(512 * MiB)
    await anyio.run_process(["mkfs.ext4", "-q", "-F", "-L", "family-photos", disk])
    before = checksum(disk)
    vol = {"data": user_volume("data", selector_for(disk), min_size=64 * MiB, target="/data")}
    async with node([disk], tmp_path) as n:
        await n.configure(vol)
        got = await n.statuses(["data"], lambda r: r.spec.phase == VolumePhase.FAILED)
        msg = got["data"].spec.error_message
        assert "holds ext4 labelled 'family-photos'" in msg and "provisioning.wipe" in msg
    assert checksum(disk) == before

    vol["data"].provisioning.wipe = True
    async with node([disk], tmp_path) as n:
        await n.configure(vol)
        got = await n.statuses(["data"], ready)
        assert got["data"].spec.filesystem == FilesystemType.XFS
        assert got["data"].spec.size == 64 * MiB
    assert blkid(f"{disk}p1")["TYPE"] == "xfs"


async def test_too_small_disk_gives_a_clear_error(udevd: None, loops: LoopFactory, tmp_path: Path) -> None:
    disk = loops(64 * MiB)
    async with node([disk], tmp_path) as n:
        await n.configure(system_volumes(selector_for(disk)))
        got = await n.statuses(["EPHEMERAL"], lambda r: r.spec.phase == VolumePhase.FAILED)
        msg = got["EPHEMERAL"].spec.error_message
        assert f"disk {disk[5:]} (67 MB)" in msg and "needs at least 104857600 bytes" in msg, msg
        assert got["EPHEMERAL"].spec.pre_fail_phase == VolumePhase.WAITING


async def test_no_matching_disk_is_missing_and_bad_selector_is_failed(
    udevd: None, loops: LoopFactory, tmp_path: Path
) -> None:
    disk = loops(64 * MiB)
    async with node([disk], tmp_path) as n:
        await n.configure(
            {
                "huge": user_volume("huge", "disk.size > 1TB", min_size=MiB),
                "typo": user_volume("typo", "true", min_size=MiB),
            }
        )
        # break the second selector after validation, as a bad config document would
        await n.state.update_with_conflicts(
            Resource.new(VolumeConfigSpec(), "typo").pointer,
            lambda r: setattr(r.spec.provisioning, "disk_selector", "disk.size >= 10 XB"),
        )
        got = await n.statuses(["huge"], lambda r: r.spec.phase == VolumePhase.MISSING)
        assert "no disk matches provisioning.diskSelector 'disk.size > 1TB'" in got["huge"].spec.error_message
        got = await n.statuses(["typo"], lambda r: r.spec.phase == VolumePhase.FAILED)
        msg = got["typo"].spec.error_message
        assert msg.startswith("volume typo: provisioning.diskSelector: selector 'disk.size >= 10 XB'"), msg
        assert "unexpected 'XB'" in msg and "column 17" in msg, msg
    assert probe.probe_path(disk).empty  # nothing was written


async def test_ephemeral_grows_with_the_disk(udevd: None, loops: LoopFactory, tmp_path: Path) -> None:
    disk = loops(512 * MiB)
    async with node([disk], tmp_path) as n:
        await n.configure(system_volumes(selector_for(disk)))
        first = await n.statuses(["EPHEMERAL"], ready)
        size0 = first["EPHEMERAL"].spec.size
        await anyio.to_thread.run_sync(resize_loop, disk, 1 * GiB)
        grown = await n.statuses(["EPHEMERAL"], lambda r: r.spec.phase == VolumePhase.READY and r.spec.size > size0)
        assert grown["EPHEMERAL"].spec.size > 900 * MiB
        assert grown["EPHEMERAL"].spec.uuid == first["EPHEMERAL"].spec.uuid
    part = sysfs.read_device(f"{disk[5:]}p3")
    assert part is not None and part.size == grown["EPHEMERAL"].spec.size


async def test_discovery_reports_disks_and_volumes(udevd: None, loops: LoopFactory, tmp_path: Path) -> None:
    disk = loops(128 * MiB)
    small_xfs = {"TEST_DIR": "1", "TEST_DEV": "1", "QA_CHECK_FS": "1", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    await anyio.run_process(["mkfs.xfs", "-q", "-f", "-L", "probe-me", disk], env=small_xfs)
    name = disk[5:]
    async with node([disk], tmp_path) as n:
        disks = await assert_resources(n.state, DISKS, [name], timeout=TIMEOUT)
        assert disks[name].spec.size == 128 * MiB and disks[name].spec.pretty_size == "134 MB"
        await assert_resources(
            n.state, DISCOVERED_VOLUMES, [name], lambda r: (r.spec.name, r.spec.label) == ("xfs", "probe-me")
        )
        # a udev event (no polling) refreshes it after the disk changes under us
        await anyio.run_process(["wipefs", "-a", "-q", disk])
        await anyio.run_process(["udevadm", "trigger", "--action=change", disk])
        await assert_resources(n.state, DISCOVERED_VOLUMES, [name], lambda r: r.spec.name == "", timeout=TIMEOUT)


async def test_reset_wipes_by_label_then_the_whole_system_disk(udevd: None, loops: LoopFactory, tmp_path: Path) -> None:
    disk = loops(512 * MiB)
    user = loops(64 * MiB)
    await anyio.run_process(["mkfs.ext4", "-q", "-F", "-L", "keep", user])
    user_before = checksum(user)
    state = InMemoryState(history_max=4096)
    async with node([disk, user], tmp_path, state) as n:
        await n.configure(system_volumes(selector_for(disk)))
        await n.statuses(["META", "STATE", "EPHEMERAL"], ready)
        await assert_resources(n.state, SYSTEM_DISKS, ["system-disk"])
        with pytest.raises(DeviceRefusedError, match="mounted at"):
            await wipe(n.state, labels=["STATE"])
    # the reset sequence stops the volume controller and unmounts; discovery keeps running
    for target in ("var", "system/state"):
        assert await mount.unmount(str(tmp_path / target))
    async with node([disk, user], tmp_path, state, volumes=False) as n:
        with pytest.raises(WipeError, match=r"label 'NOPE': no partition with that label on the system disk"):
            await wipe(n.state, labels=["NOPE"])
        with pytest.raises(WipeError, match="is the system disk"):
            await wipe(n.state, user_disks=[disk])
        assert await wipe(n.state, labels=["STATE"]) == [f"{disk}p2"]
        assert probe.probe_path(f"{disk}p2").empty
        assert probe.probe_path(f"{disk}p3").name == "xfs"
        await assert_resources(n.state, DISCOVERED_VOLUMES, [f"{disk[5:]}p2"], lambda r: r.spec.name == "")
        assert await wipe(n.state, system_disk=True) == [disk]
        assert probe.probe_path(disk).empty
        assert sysfs.partitions_of(disk[5:]) == []
        assert checksum(user) == user_before
        assert await wipe(n.state, user_disks=[user]) == [user]
        assert probe.probe_path(user).empty


async def test_removed_volume_is_unmounted(udevd: None, loops: LoopFactory, tmp_path: Path) -> None:
    disk = loops(128 * MiB)
    async with node([disk], tmp_path) as n:
        await n.configure({"logs": user_volume("logs", selector_for(disk), min_size=32 * MiB, fs=FilesystemType.EXT4)})
        got = await n.statuses(["logs"], ready)
        target = got["logs"].spec.mount_location
        assert target == str(tmp_path / "var/mnt/logs")
        assert target in {m.target for m in device.mounts()}
        await n.state.destroy(Resource.new(VolumeConfigSpec(), "logs").pointer)
        await assert_no_resource(n.state, MOUNT_STATUSES.pointer("logs"), timeout=TIMEOUT)
        await assert_no_resource(n.state, VOLUME_STATUSES.pointer("logs"), timeout=TIMEOUT)
        assert target not in {m.target for m in device.mounts()}
    assert blkid(f"{disk}p1")["TYPE"] == "ext4"  # data stays


async def test_whole_disk_volume(udevd: None, loops: LoopFactory, tmp_path: Path) -> None:
    disk = loops(96 * MiB)
    vols = {"scratch": disk_volume("scratch", selector_for(disk), fs=FilesystemType.EXT4)}
    async with node([disk], tmp_path) as n:
        await n.configure(vols)
        first = await n.statuses(["scratch"], ready)
        assert (first["scratch"].spec.location, first["scratch"].spec.size) == (disk, 96 * MiB)
    assert await mount.unmount(str(tmp_path / "var/mnt/scratch"))
    async with node([disk], tmp_path) as n:
        await n.configure(vols)
        again = await n.statuses(["scratch"], ready)
        assert again["scratch"].spec.uuid == first["scratch"].spec.uuid
    found = probe.probe_path(disk)
    assert found.table is None and found.filesystem is not None and found.filesystem.label == "scratch"


async def test_system_volumes_on_a_4k_sector_disk(udevd: None, loops: LoopFactory, tmp_path: Path) -> None:
    disk = loops(512 * MiB)
    await anyio.run_process(["losetup", "--sector-size=4096", disk])
    async with node([disk], tmp_path) as n:
        await n.configure(system_volumes(selector_for(disk)))
        got = await n.statuses(["META", "STATE", "EPHEMERAL"], ready)
    assert got["STATE"].spec.size == 100 * MiB
    verify = (await anyio.run_process(["sgdisk", "--verify", disk])).stdout.decode()
    assert "No problems found" in verify, verify


async def test_no_twin_partition_when_discovery_lags(udevd: None, loops: LoopFactory, tmp_path: Path) -> None:
    disk = loops(512 * MiB)
    name = disk[5:]
    vols = system_volumes(selector_for(disk))
    async with node([disk], tmp_path) as n:
        await n.configure(vols)
        first = await n.statuses(["META", "STATE", "EPHEMERAL"], ready)
    # a store that knows the disk but not yet its partitions (discovery still writing)
    inv = Inventory()
    await anyio.to_thread.run_sync(inv.refresh, [name])
    for store in (inv.volumes, inv.devices):
        for key in [k for k in store if k != name]:
            del store[key]
    prov = Provisioner(root=str(tmp_path))
    for vid, spec in vols.items():
        out = await prov.reconcile(vid, spec, inv)
        assert out.status.phase == VolumePhase.READY, out.status.error_message
        assert out.status.partition_uuid == first[vid].spec.partition_uuid
    table = probe.probe_path(disk).table
    assert table is not None and [p.label for p in table.partitions] == ["META", "STATE", "EPHEMERAL"]
