"""GPT partitioning with ``sgdisk``, and telling the kernel with ``partx`` (the host kernel
has no GPT parser, so partitions are added/resized one by one, never by a re-read).

Every function takes the ``DeviceRef`` of the whole disk it may touch and re-verifies it
(``device.guard``) first; partitions already mounted may stay mounted while new ones are
added or the last one grows, but a whole disk that is itself mounted is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from kos.platform.block import device, probe, sysfs
from kos.platform.block.tools import run

LINUX_FS_TYPE = "0fc63daf-8483-4772-8e79-3d69d8477de4"


@dataclass(frozen=True)
class NewPartition:
    number: int
    start: int
    size: int
    label: str
    type_uuid: str = LINUX_FS_TYPE
    uuid: str = ""


async def _check_disk(disk: device.DeviceRef) -> sysfs.SysDevice:
    dev = await device.guard_async(disk, partition=False, allow_mounted=True)
    busy = await anyio.to_thread.run_sync(device.mounted_at, dev.major, dev.minor)
    if busy:
        raise device.DeviceRefusedError(f"{disk.path}: refusing, the whole disk is mounted at {', '.join(busy)}")
    return dev


async def create_table(disk: device.DeviceRef) -> None:
    """Write a new, empty GPT. Only on a disk the probe finds empty (wipe it first otherwise)."""
    await device.guard_async(disk, partition=False)
    found = await anyio.to_thread.run_sync(probe.probe_path, disk.path)
    if not found.empty:
        raise device.DeviceRefusedError(f"{disk.path}: refusing to write a partition table, it holds {found.name}")
    await run("sgdisk", "--clear", disk.path)


async def add_partitions(disk: device.DeviceRef, parts: list[NewPartition]) -> None:
    """Add partitions to the disk's GPT and to the kernel. The disk must carry a GPT."""
    dev = await _check_disk(disk)
    found = await anyio.to_thread.run_sync(probe.probe_path, disk.path)
    if found.table is None or found.table.type != "gpt":
        raise device.DeviceRefusedError(f"{disk.path}: no GPT to add partitions to (found {found.name!r})")
    used = {p.number for p in found.table.partitions}
    sector = dev.sector_size
    args: list[str] = []
    for p in parts:
        if p.number in used:
            raise device.DeviceRefusedError(f"{disk.path}: partition {p.number} already exists")
        if p.start % sector or p.size % sector or p.size <= 0:
            raise ValueError(f"partition {p.label}: start {p.start} and size {p.size} must be multiples of {sector}")
        args += [
            f"--new={p.number}:{p.start // sector}:{(p.start + p.size) // sector - 1}",
            f"--change-name={p.number}:{p.label}",
            f"--typecode={p.number}:{p.type_uuid}",
        ]
        if p.uuid:
            args.append(f"--partition-guid={p.number}:{p.uuid}")
    if not args:
        return
    await run("sgdisk", *args, disk.path)
    for p in parts:
        await run("partx", "--add", f"--nr={p.number}", disk.path)


async def sync_kernel(disk: device.DeviceRef) -> None:
    """Make the kernel's partitions match the GPT: add the missing ones (after a reboot or
    a re-attach the kernel knows none of them)."""
    dev = await _check_disk(disk)
    found = await anyio.to_thread.run_sync(probe.probe_path, disk.path)
    if found.table is None:
        return
    known = {p.partition_number: p for p in await anyio.to_thread.run_sync(sysfs.partitions_of, dev.name)}
    for p in found.table.partitions:
        if p.number not in known:
            await run("partx", "--add", f"--nr={p.number}", disk.path)


async def grow_partition(disk: device.DeviceRef, number: int, new_size: int) -> None:
    """Grow partition ``number`` in place (same start, GUID, label, type) to ``new_size``,
    moving the backup GPT to the end of a grown disk first; then tell the kernel."""
    dev = await _check_disk(disk)
    await run("sgdisk", "--move-second-header", disk.path)
    found = await anyio.to_thread.run_sync(probe.probe_path, disk.path)
    if found.table is None or found.table.type != "gpt":
        raise device.DeviceRefusedError(f"{disk.path}: refusing to grow, it has no GPT")
    entry = next((p for p in found.table.partitions if p.number == number), None)
    if entry is None:
        raise device.DeviceRefusedError(f"{disk.path}: partition {number} does not exist")
    if new_size <= entry.size:
        return
    sector = dev.sector_size
    await run(
        "sgdisk",
        f"--delete={number}",
        f"--new={number}:{entry.start // sector}:{(entry.start + new_size) // sector - 1}",
        f"--change-name={number}:{entry.label}",
        f"--typecode={number}:{entry.type_uuid}",
        f"--partition-guid={number}:{entry.uuid}",
        disk.path,
    )
    await run("partx", "--update", f"--nr={number}", disk.path)
