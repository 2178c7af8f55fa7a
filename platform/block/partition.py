"""GPT partitioning with kos's own GPT writer (``gpt``), and telling the kernel with
``partx`` (the host kernel has no GPT parser, so partitions are added/resized one by one,
never by a re-read).

Every function takes the ``DeviceRef`` of the whole disk it may touch and re-verifies it
(``device.guard``) first; partitions already mounted may stay mounted while new ones are
added or the last one grows, but a whole disk that is itself mounted is refused.
"""

from __future__ import annotations

import dataclasses
import uuid as uuidlib
from dataclasses import dataclass

import anyio

from kos.platform.block import device, gpt, probe, sysfs
from kos.platform.block.tools import ToolError, run

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
    dev = await device.guard_async(disk, partition=False)
    found = await anyio.to_thread.run_sync(probe.probe_path, disk.path)
    if not found.empty:
        raise device.DeviceRefusedError(f"{disk.path}: refusing to write a partition table, it holds {found.name}")
    writes = gpt.build(dev.size, str(uuidlib.uuid4()), [], dev.sector_size)
    await anyio.to_thread.run_sync(gpt.write, disk.path, writes)


def _entries(table: probe.PartitionTable, sector: int) -> list[gpt.GptEntry]:
    return [
        gpt.GptEntry(p.number, p.start // sector, p.end // sector - 1, p.type_uuid, p.uuid, p.label, p.attributes)
        for p in table.partitions
    ]


async def add_partitions(disk: device.DeviceRef, parts: list[NewPartition]) -> None:
    """Add partitions to the disk's GPT and to the kernel. The disk must carry a GPT."""
    dev = await _check_disk(disk)
    found = await anyio.to_thread.run_sync(probe.probe_path, disk.path)
    if found.table is None or found.table.type != "gpt":
        raise device.DeviceRefusedError(f"{disk.path}: no GPT to add partitions to (found {found.name!r})")
    used = {p.number for p in found.table.partitions}
    sector = dev.sector_size
    entries = _entries(found.table, sector)
    for p in parts:
        if p.number in used:
            raise device.DeviceRefusedError(f"{disk.path}: partition {p.number} already exists")
        if p.start % sector or p.size % sector or p.size <= 0:
            raise ValueError(f"partition {p.label}: start {p.start} and size {p.size} must be multiples of {sector}")
        entries.append(
            gpt.GptEntry(
                p.number,
                p.start // sector,
                (p.start + p.size) // sector - 1,
                p.type_uuid,
                p.uuid or str(uuidlib.uuid4()),
                p.label,
            )
        )
    if not parts:
        return
    writes = gpt.build(dev.size, found.table.uuid, entries, sector)
    await anyio.to_thread.run_sync(gpt.write, disk.path, writes)
    stale = {k.partition_number for k in await anyio.to_thread.run_sync(sysfs.partitions_of, dev.name)}
    for p in parts:
        if p.number in stale:
            # left in the kernel by an earlier table (a loop device keeps partitions across detach)
            await run("partx", "--delete", f"--nr={p.number}", disk.path)
        await run("partx", "--add", f"--nr={p.number}", disk.path)


async def sync_kernel(disk: device.DeviceRef) -> list[int]:
    """Add the GPT's partitions the kernel does not know (after a reboot or a re-attach this
    kernel knows none of them: it has no GPT parser). Returns the numbers added; the disk's
    content is not changed."""
    dev = await _check_disk(disk)
    found = await anyio.to_thread.run_sync(probe.probe_path, disk.path)
    if found.table is None or found.table.type != "gpt":
        return []
    known = {p.partition_number for p in await anyio.to_thread.run_sync(sysfs.partitions_of, dev.name)}
    added = [p.number for p in found.table.partitions if p.number not in known]
    for number in added:
        await run("partx", "--add", f"--nr={number}", disk.path)
    return added


async def grow_partition(disk: device.DeviceRef, number: int, new_size: int) -> None:
    """Grow partition ``number`` in place (same start, GUID, label, type) to ``new_size``,
    moving the backup GPT to the end of a grown disk first; then tell the kernel."""
    dev = await _check_disk(disk)
    found = await anyio.to_thread.run_sync(probe.probe_path, disk.path)
    if found.table is None or found.table.type != "gpt":
        raise device.DeviceRefusedError(f"{disk.path}: refusing to grow, it has no GPT")
    sector = dev.sector_size
    entries = _entries(found.table, sector)
    index = next((i for i, e in enumerate(entries) if e.number == number), None)
    if index is None:
        raise device.DeviceRefusedError(f"{disk.path}: partition {number} does not exist")
    entry = entries[index]
    if new_size <= (entry.last_lba - entry.first_lba + 1) * sector:
        return
    entries[index] = dataclasses.replace(entry, last_lba=entry.first_lba + new_size // sector - 1)
    # rebuilt for the current disk size, which also moves the backup table to the new end
    writes = gpt.build(dev.size, found.table.uuid, entries, sector)
    await anyio.to_thread.run_sync(gpt.write, disk.path, writes)
    await run("partx", "--update", f"--nr={number}", disk.path)


async def delete_partition(disk: device.DeviceRef, number: int) -> None:
    """Remove partition ``number`` from the disk's GPT (both copies) and from the kernel; the
    other entries keep their numbers, GUIDs and places. The partition must not be mounted."""
    dev = await _check_disk(disk)
    found = await anyio.to_thread.run_sync(probe.probe_path, disk.path)
    if found.table is None or found.table.type != "gpt":
        raise device.DeviceRefusedError(f"{disk.path}: refusing to drop partition {number}, it has no GPT")
    sector = dev.sector_size
    entries = _entries(found.table, sector)
    if not any(e.number == number for e in entries):
        raise device.DeviceRefusedError(f"{disk.path}: partition {number} does not exist")
    for part in await anyio.to_thread.run_sync(sysfs.partitions_of, dev.name):
        if part.partition_number == number:
            busy = await anyio.to_thread.run_sync(device.mounted_at, part.major, part.minor)
            if busy:
                raise device.DeviceRefusedError(f"{disk.path}: refusing, partition {number} is mounted at "
                                                f"{', '.join(busy)}")
    writes = gpt.build(dev.size, found.table.uuid, [e for e in entries if e.number != number], sector)
    await anyio.to_thread.run_sync(gpt.write, disk.path, writes)
    known = {p.partition_number for p in await anyio.to_thread.run_sync(sysfs.partitions_of, dev.name)}
    if number in known:
        await _partx_delete(disk.path, number)


async def _partx_delete(path: str, number: int, attempts: int = 8) -> None:
    """``partx --delete``; the kernel answers EBUSY while someone still holds the partition open
    for a moment (udev's probe after a write, a closing wipe), so a refusal is tried again for
    about 3 s before it is reported."""
    for attempt in range(attempts):
        try:
            await run("partx", "--delete", f"--nr={number}", path)
            return
        except ToolError:
            if attempt == attempts - 1:
                raise
            await anyio.sleep(0.1 * (attempt + 1))
