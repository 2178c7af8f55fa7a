"""Mount and unmount volumes, idempotently (a second mount of the same source at the same
target is a no-op; a different source already at the target is an error)."""

from __future__ import annotations

import os

import anyio

from kos.platform.block import device
from kos.platform.block.tools import run


class MountError(RuntimeError):
    pass


def _target_entries(target: str) -> list[device.MountEntry]:
    real = os.path.realpath(target)
    return [m for m in device.mounts() if m.target == real]


async def mount(source: device.DeviceRef, target: str, fstype: str, options: list[str] | None = None) -> bool:
    """Mount ``source`` at ``target`` (created if missing); False when already mounted there."""
    opts = [o for o in (options or []) if o]
    for o in opts:
        if "," in o or not o.strip():
            raise MountError(f"mount option {o!r}: give one option per list item")
    existing = await anyio.to_thread.run_sync(_target_entries, target)
    if existing:
        top = existing[-1]
        if (top.major, top.minor) == (source.major, source.minor):
            return False
        raise MountError(f"{target}: something else is mounted there ({top.source}, {top.fstype})")
    await anyio.to_thread.run_sync(lambda: os.makedirs(target, exist_ok=True))
    await run("mount", "-t", fstype, *(["-o", ",".join(opts)] if opts else []), source.path, target)
    return True


async def unmount(target: str) -> bool:
    """Unmount whatever is at ``target``; False when nothing was mounted."""
    if not await anyio.to_thread.run_sync(_target_entries, target):
        return False
    await run("umount", target)
    return True
