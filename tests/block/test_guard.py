"""Destructive functions touch exactly the device they were given and refuse anything else."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from kos.platform.block import device, filesystem, mount, partition, probe
from kos.platform.block.device import DeviceRefusedError

from .conftest import LoopFactory, MiB

pytestmark = [pytest.mark.root, pytest.mark.anyio]


async def test_refuses_a_replaced_disk(loops: LoopFactory) -> None:
    disk = loops(16 * MiB)
    ref = device.identify(disk)
    backing_file = (await anyio.Path(f"/sys/class/block/{ref.name}/loop/backing_file").read_text()).strip()
    await anyio.run_process(["losetup", "--detach", disk])
    await anyio.run_process(["losetup", disk, backing_file])  # same node, new media: new diskseq
    with pytest.raises(DeviceRefusedError, match="the disk changed"):
        await filesystem.wipe(ref)
    with pytest.raises(DeviceRefusedError, match="the disk changed"):
        await partition.create_table(ref)


async def test_refuses_wrong_kind_data_and_mounted(loops: LoopFactory, tmp_path: Path) -> None:
    disk = loops(64 * MiB)
    ref = device.identify(disk)
    await partition.create_table(ref)
    await partition.add_partitions(ref, [partition.NewPartition(1, MiB, 32 * MiB, "DATA")])
    part = device.identify(f"{disk}p1")
    assert part.is_partition
    with pytest.raises(DeviceRefusedError, match="a whole disk was expected"):
        await partition.add_partitions(part, [partition.NewPartition(2, 40 * MiB, MiB, "X")])
    with pytest.raises(DeviceRefusedError, match="partition 1 already exists"):
        await partition.add_partitions(ref, [partition.NewPartition(1, 40 * MiB, MiB, "X")])
    with pytest.raises(DeviceRefusedError, match="refusing to write a partition table, it holds gpt"):
        await partition.create_table(ref)

    fs = await filesystem.mkfs(part, "ext4", "first")
    with pytest.raises(DeviceRefusedError, match="refusing to format, it already holds ext4"):
        await filesystem.mkfs(part, "xfs", "second")
    assert probe.probe_path(part.path).filesystem.uuid == fs.uuid  # type: ignore[union-attr]

    target = str(tmp_path / "mnt")
    assert await mount.mount(part, target, "ext4", ["noatime"])
    assert not await mount.mount(part, target, "ext4", ["noatime"])  # idempotent
    try:
        with pytest.raises(DeviceRefusedError, match=f"mounted at {target}"):
            await filesystem.wipe(part)
        with pytest.raises(DeviceRefusedError, match=f"mounted at {target}"):
            await filesystem.wipe(ref)  # the whole disk, because a partition is mounted
    finally:
        assert await mount.unmount(target)
    assert not await mount.unmount(target)
    await filesystem.wipe(part)
    assert probe.probe_path(part.path).empty


async def test_refuses_non_devices(tmp_path: Path) -> None:
    plain = tmp_path / "file.img"
    plain.write_bytes(b"\0" * 4096)
    with pytest.raises(DeviceRefusedError, match="not a block device"):
        device.identify(str(plain))
    with pytest.raises(DeviceRefusedError, match="no such device"):
        device.identify(str(tmp_path / "missing"))
