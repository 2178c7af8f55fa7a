"""Wipe on reset: system partitions by label, the whole system disk, or user disks, as the
Reset RPC asks. Devices are taken from discovery (Disks/Devices/DiscoveredVolumes and the
SystemDisk in the store) and re-verified against the kernel before anything is erased;
mounted volumes are refused (the reset sequence unmounts them first)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import structlog

from kos.platform.block import device, filesystem
from kos.resources.block import DEVICES, DISCOVERED_VOLUMES, DISKS, SYSTEM_DISK_ID, SYSTEM_DISKS
from kos.resources.core import State

log = structlog.get_logger("kos.controllers.block.wipe")


class WipeError(ValueError):
    """The wipe request names something that is not there or not allowed."""


async def _ref(state: State, name: str) -> device.DeviceRef:
    dev = await state.get_or_none(DEVICES.pointer(name))
    ref = await anyio.to_thread.run_sync(device.identify, f"/dev/{name}")
    if dev is None:
        raise WipeError(f"/dev/{name}: not a discovered device")
    spec: Any = dev.spec
    if (spec.major, spec.minor, spec.generation) != (ref.major, ref.minor, ref.diskseq):
        raise WipeError(f"/dev/{name}: the device changed since discovery (generation {spec.generation}); not wiping")
    return ref


async def wipe(
    state: State,
    *,
    labels: Sequence[str] = (),
    system_disk: bool = False,
    user_disks: Sequence[str] = (),
) -> list[str]:
    """Wipe what is asked; returns the device paths wiped. All names are checked before the
    first byte is erased, so a bad request changes nothing."""
    sysdisk = await state.get_or_none(SYSTEM_DISKS.pointer(SYSTEM_DISK_ID))
    system_name: str = sysdisk.spec.disk_id if sysdisk is not None else ""
    if (labels or system_disk) and not system_name:
        raise WipeError("no system disk is known (SystemDisk is missing): cannot wipe system partitions")
    volumes = {r.id: r.spec for r in await state.list(DISCOVERED_VOLUMES)}
    disks = {r.id for r in await state.list(DISKS)}
    targets: list[str] = []
    if system_disk:
        targets.append(system_name)
    else:
        for label in labels:
            found = [n for n, v in volumes.items() if v.parent == system_name and v.partition_label == label]
            if not found:
                raise WipeError(f"label {label!r}: no partition with that label on the system disk {system_name}")
            targets.append(found[0])
    for path in user_disks:
        name = path.removeprefix("/dev/")
        if name not in disks:
            raise WipeError(f"user disk {path!r}: not a discovered disk (known: {', '.join(sorted(disks))})")
        if name == system_name:
            raise WipeError(f"user disk {path!r} is the system disk; wipe it with system_disk instead")
        targets.append(name)
    refs = [await _ref(state, name) for name in targets]
    for ref in refs:
        log.warning("wiping", device=ref.path)
        await filesystem.wipe(ref)
    return [r.path for r in refs]
