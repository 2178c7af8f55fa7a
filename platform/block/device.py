"""Device identity and the guard every destructive operation goes through.

A ``DeviceRef`` records exactly which device a caller means: its node path, device number
(major:minor), the disk's ``diskseq`` (a new number every time a loop device is re-attached
or media changes) and whether it is a partition. ``guard`` re-checks all of that right
before a destructive action and refuses when anything differs, when the device (or one of
its partitions) is mounted or held by another device, or when it is read-only.

``mounts()`` parses ``/proc/self/mountinfo``.
"""

from __future__ import annotations

import functools
import os
import stat
from dataclasses import dataclass

import anyio

from kos.platform.block import sysfs


class DeviceRefusedError(RuntimeError):
    """A destructive operation was refused: the device is not exactly the one asked for,
    or it is in use."""


@dataclass(frozen=True)
class DeviceRef:
    path: str
    name: str
    major: int
    minor: int
    diskseq: int
    is_partition: bool

    @property
    def disk_name(self) -> str:
        return self.name if not self.is_partition else (sysfs.read_device(self.name) or _missing(self)).parent


def _missing(ref: DeviceRef) -> sysfs.SysDevice:
    raise DeviceRefusedError(f"{ref.path}: device {ref.major}:{ref.minor} no longer exists")


def _stat_block(path: str) -> os.stat_result:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DeviceRefusedError(f"{path}: no such device") from None
    if not stat.S_ISBLK(st.st_mode):
        raise DeviceRefusedError(f"{path}: not a block device")
    return st


def identify(path: str) -> DeviceRef:
    """Record the identity of the block device at ``path`` (resolving symlinks)."""
    real = os.path.realpath(path)
    st = _stat_block(real)
    name = os.path.basename(real)
    dev = sysfs.read_device(name)
    if dev is None or (dev.major, dev.minor) != (os.major(st.st_rdev), os.minor(st.st_rdev)):
        raise DeviceRefusedError(f"{path}: {real} does not match a kernel block device in sysfs")
    return DeviceRef(real, name, dev.major, dev.minor, dev.diskseq, dev.is_partition)


@dataclass(frozen=True)
class MountEntry:
    major: int
    minor: int
    root: str
    target: str
    options: str
    fstype: str
    source: str


def _unescape(text: str) -> str:
    return text.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def mounts(path: str = "/proc/self/mountinfo") -> list[MountEntry]:
    out: list[MountEntry] = []
    with open(path) as f:
        for line in f:
            left, _, right = line.rstrip("\n").partition(" - ")
            parts = left.split(" ")
            rparts = right.split(" ")
            major, _, minor = parts[2].partition(":")
            out.append(
                MountEntry(
                    int(major),
                    int(minor),
                    _unescape(parts[3]),
                    _unescape(parts[4]),
                    parts[5],
                    rparts[0],
                    _unescape(rparts[1]) if len(rparts) > 1 else "",
                )
            )
    return out


def mounted_at(major: int, minor: int) -> list[str]:
    return [m.target for m in mounts() if (m.major, m.minor) == (major, minor)]


def guard(ref: DeviceRef, *, partition: bool, allow_mounted: bool = False) -> sysfs.SysDevice:
    """Re-verify ``ref`` right before a destructive action; DeviceRefusedError otherwise."""
    kind = "partition" if partition else "whole disk"
    if ref.is_partition != partition:
        raise DeviceRefusedError(f"{ref.path}: refusing, a {kind} was expected")
    st = _stat_block(ref.path)
    if (os.major(st.st_rdev), os.minor(st.st_rdev)) != (ref.major, ref.minor):
        raise DeviceRefusedError(
            f"{ref.path}: refusing, it is now device {os.major(st.st_rdev)}:{os.minor(st.st_rdev)}, "
            f"not {ref.major}:{ref.minor}"
        )
    dev = sysfs.read_device(ref.name)
    if dev is None or (dev.major, dev.minor) != (ref.major, ref.minor):
        raise DeviceRefusedError(f"{ref.path}: refusing, sysfs no longer shows {ref.name} as {ref.major}:{ref.minor}")
    if dev.diskseq != ref.diskseq:
        raise DeviceRefusedError(
            f"{ref.path}: refusing, the disk changed (diskseq {dev.diskseq}, expected {ref.diskseq})"
        )
    if dev.readonly:
        raise DeviceRefusedError(f"{ref.path}: refusing, the device is read-only")
    if dev.holders:
        raise DeviceRefusedError(f"{ref.path}: refusing, held by {', '.join(dev.holders)}")
    if not allow_mounted:
        devs = [(dev.major, dev.minor)] + (
            [] if partition else [(p.major, p.minor) for p in sysfs.partitions_of(ref.name)]
        )
        busy = [m.target for m in mounts() if (m.major, m.minor) in devs]
        if busy:
            raise DeviceRefusedError(f"{ref.path}: refusing, mounted at {', '.join(busy)}")
    return dev


async def guard_async(ref: DeviceRef, *, partition: bool, allow_mounted: bool = False) -> sysfs.SysDevice:
    """``guard`` off the event loop (it reads sysfs and mountinfo)."""
    check = functools.partial(guard, ref, partition=partition, allow_mounted=allow_mounted)
    return await anyio.to_thread.run_sync(check)
