"""Make, grow and wipe filesystems. ``mkfs`` refuses a device that already carries any
signature (a filesystem, a partition table) unless told to ``force``: kos never reformats a
volume that has data by accident."""

from __future__ import annotations

import os

import anyio

from kos.platform.block import device, probe, sysfs, udev
from kos.platform.block.tools import ToolError, run

MiB = 1024 * 1024

# mkfs.xfs refuses filesystems under 300 MB unless it believes it runs under fstests; STATE
# is 100 MiB, so small filesystems are made with that override (the on-disk format is normal).
_XFS_SMALL_ENV = {"TEST_DIR": "1", "TEST_DEV": "1", "QA_CHECK_FS": "1"}
SUPPORTED = ("xfs", "ext4", "vfat", "swap")


async def mkfs(ref: device.DeviceRef, fstype: str, label: str = "", *, force: bool = False) -> probe.Filesystem:
    """Format exactly ``ref`` (a partition, or a whole disk for disk volumes)."""
    if fstype not in SUPPORTED:
        raise ValueError(f"filesystem {fstype!r} is not supported, expected one of {', '.join(SUPPORTED)}")
    dev = await device.guard_async(ref, partition=ref.is_partition)
    found = await anyio.to_thread.run_sync(probe.probe_path, ref.path)
    if not found.empty and not force:
        what = found.filesystem.type if found.filesystem else f"a {found.name} partition table"
        raise device.DeviceRefusedError(f"{ref.path}: refusing to format, it already holds {what}")
    if fstype == "xfs":
        args = ["mkfs.xfs", "-f", "-K"] + (["-L", label] if label else []) + [ref.path]
        await run(*args, env=_XFS_SMALL_ENV if dev.size < 300 * 1000 * 1000 else None)
    elif fstype == "ext4":
        await run("mkfs.ext4", "-q", "-F", "-E", "nodiscard", *(["-L", label] if label else []), ref.path)
    elif fstype == "vfat":
        await run("mkfs.vfat", *(["-n", label] if label else []), ref.path)
    else:
        await run("mkswap", *(["-L", label] if label else []), ref.path)
    made = await anyio.to_thread.run_sync(probe.probe_path, ref.path)
    if made.filesystem is None or made.filesystem.type != fstype:
        raise RuntimeError(f"{ref.path}: mkfs {fstype} ran but the probe finds {made.name or 'nothing'}")
    return made.filesystem


async def grow(ref: device.DeviceRef, fstype: str, mountpoint: str) -> None:
    """Grow the filesystem on ``ref`` to its device size (xfs online at ``mountpoint``)."""
    await device.guard_async(ref, partition=ref.is_partition, allow_mounted=True)
    if fstype == "xfs":
        if not await anyio.to_thread.run_sync(device.mounted_at, ref.major, ref.minor):
            raise device.DeviceRefusedError(f"{ref.path}: xfs grows only while mounted")
        await run("xfs_growfs", mountpoint)
    elif fstype == "ext4":
        await run("resize2fs", ref.path)
    else:
        raise ValueError(f"{ref.path}: cannot grow a {fstype} filesystem")


def _zero(path: str, ranges: list[tuple[int, int]]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        for offset, length in ranges:
            os.pwrite(fd, b"\0" * length, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


async def _delete_partition(disk: device.DeviceRef, number: int, timeout: float = 5.0) -> None:
    """``partx --delete``, retried while something (a udev worker's probe) briefly holds it."""
    delay = 0.01
    with anyio.move_on_after(timeout):
        while True:
            try:
                await run("partx", "--delete", f"--nr={number}", disk.path)
                return
            except ToolError:
                await anyio.sleep(delay)
                delay = min(delay * 2, 0.25)
    await run("partx", "--delete", f"--nr={number}", disk.path)


async def wipe(ref: device.DeviceRef) -> None:
    """Erase every signature on exactly ``ref``: filesystem superblocks and, for a whole disk,
    both GPT copies and the MBR; the kernel forgets the disk's partitions."""
    dev = await device.guard_async(ref, partition=ref.is_partition)
    size = dev.size
    if not ref.is_partition:
        await udev.settle()  # udev workers probing a partition keep it open (EBUSY)
        for part in await anyio.to_thread.run_sync(sysfs.partitions_of, ref.name):
            await _delete_partition(ref, part.partition_number)
    head = min(size, MiB)
    tail = min(size, MiB)
    await anyio.to_thread.run_sync(_zero, ref.path, [(0, head), (size - tail, tail)])
    await run("wipefs", "--all", "--force", ref.path, check=False)


async def wipe_partition_by_label(disk: device.DeviceRef, label: str) -> device.DeviceRef:
    """Wipe the content of the partition labelled ``label`` on ``disk`` (the table entry stays)."""
    await device.guard_async(disk, partition=False, allow_mounted=True)
    found = await anyio.to_thread.run_sync(probe.probe_path, disk.path)
    entry = found.table.by_label(label) if found.table else None
    if entry is None:
        raise device.DeviceRefusedError(f"{disk.path}: no partition labelled {label!r}")
    parts = await anyio.to_thread.run_sync(sysfs.partitions_of, disk.name)
    part = next((p for p in parts if p.partition_number == entry.number), None)
    if part is None:
        raise device.DeviceRefusedError(f"{disk.path}: partition {entry.number} ({label}) is not known to the kernel")
    ref = await anyio.to_thread.run_sync(device.identify, part.dev_path)
    await wipe(ref)
    return ref
