"""Discovery: sysfs + udev + the superblock probe -> Disks, Devices, DiscoveredVolumes.

``observe()`` (blocking) takes one snapshot of every block device with a non-zero size;
``describe`` turns one device into its three specs (pure). ``BlockDiscoveryController`` writes the
snapshot into the store and re-takes it whenever udev reports a block event (add, remove,
change: partx, mkfs and wipes all cause one); it never polls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import anyio
import anyio.abc
import structlog

from kos.controllers.runtime import Controller, ControllerRuntime, Input, Output, set_spec
from kos.platform.block import probe, sysfs, udev
from kos.resources.block import (
    DEVICES,
    DISCOVERED_VOLUMES,
    DISKS,
    BlockDeviceSpec,
    DiscoveredVolumeSpec,
    DiskSpec,
    pretty_size,
)
from kos.resources.core import Resource

log = structlog.get_logger("kos.controllers.block.discovery")


@dataclass
class Observation:
    device: BlockDeviceSpec
    disk: DiskSpec | None
    volume: DiscoveredVolumeSpec


def describe(
    dev: sysfs.SysDevice,
    info: udev.UdevInfo,
    found: probe.ProbeResult,
    parent_table: probe.PartitionTable | None = None,
) -> Observation:
    """The specs of one device (pure: everything it needs is passed in)."""
    props = info.properties
    device = BlockDeviceSpec(
        type="partition" if dev.is_partition else "disk",
        major=dev.major,
        minor=dev.minor,
        partition_name=props.get("PARTNAME", ""),
        partition_number=dev.partition_number,
        generation=dev.diskseq,
        device_path=dev.sys_path.removeprefix("/sys"),
        parent=dev.parent,
        secondaries=list(dev.holders),
    )
    disk: DiskSpec | None = None
    if not dev.is_partition:
        disk = DiskSpec(
            size=dev.size,
            io_size=dev.io_size,
            sector_size=dev.sector_size,
            readonly=dev.readonly,
            model=dev.model or props.get("ID_MODEL", ""),
            serial=dev.serial or props.get("ID_SERIAL_SHORT", ""),
            modalias=dev.modalias,
            wwid=dev.wwid or props.get("ID_WWN", ""),
            bus_path=dev.bus_path,
            sub_system="/sys/class/block",
            transport=dev.transport or props.get("ID_BUS", ""),
            rotational=dev.rotational,
            cdrom=dev.cdrom or props.get("ID_CDROM", "") == "1",
            dev_path=dev.dev_path,
            pretty_size=pretty_size(dev.size),
            secondary_disks=list(dev.holders),
            uuid=found.table.uuid if found.table else "",
            symlinks=list(info.links),
        )
        if disk.model:
            disk.model = disk.model.replace("_", " ")
    volume = DiscoveredVolumeSpec(
        size=dev.size,
        sector_size=dev.sector_size,
        io_size=dev.io_size,
        name=found.name,
        type="partition" if dev.is_partition else "disk",
        device_path=dev.sys_path.removeprefix("/sys"),
        parent=dev.parent,
        dev_path=dev.dev_path,
        parent_dev_path=f"/dev/{dev.parent}" if dev.parent else "",
        pretty_size=pretty_size(dev.size),
        offset=dev.partition_start,
        partition_table=found.table.type if found.table else "",
    )
    if found.filesystem is not None:
        fs = found.filesystem
        volume.uuid, volume.label = fs.uuid, fs.label
        volume.filesystem_block_size, volume.probed_size = fs.block_size, fs.size
        volume.block_size = dev.sector_size
    elif found.table is not None:
        volume.uuid = found.table.uuid
    if dev.is_partition and parent_table is not None:
        entry = next((p for p in parent_table.partitions if p.number == dev.partition_number), None)
        if entry is not None:
            volume.partition_uuid = entry.uuid
            volume.partition_type = entry.type_uuid
            volume.partition_label = entry.label
            volume.partition_index = entry.number
            volume.offset = entry.start
            device.partition_name = device.partition_name or entry.label
    return Observation(device, disk, volume)


def _probe(path: str, sector: int) -> probe.ProbeResult:
    try:
        return probe.probe_path(path, sector)
    except OSError as exc:
        log.warning("probe failed", device=path, error=str(exc))
        return probe.ProbeResult()


def observe(root_filter: Sequence[str] | None = None, with_udev: bool = True) -> dict[str, Observation]:
    """Snapshot every block device with a size (blocking). ``root_filter`` limits the
    snapshot to those disks (and their partitions), for benchmarks and tests."""
    out: dict[str, Observation] = {}
    tables: dict[str, probe.PartitionTable | None] = {}
    devices = [d for d in sysfs.scan() if d.size > 0]
    if root_filter is not None:
        keep = set(root_filter)
        devices = [d for d in devices if d.name in keep or d.parent in keep]
    for dev in devices:  # disks come first
        found = _probe(dev.dev_path, dev.sector_size)
        if not dev.is_partition:
            tables[dev.name] = found.table
        info = udev.info(dev.name) if with_udev else udev.UdevInfo()
        out[dev.name] = describe(dev, info, found, tables.get(dev.parent))
    return out


class BlockDiscoveryController(Controller):
    """Writes Disks, Devices and DiscoveredVolumes; refreshed by udev block events."""

    name = "block.DiscoveryController"

    def __init__(self, disks: Sequence[str] | None = None) -> None:
        self.disks = list(disks) if disks is not None else None
        self.with_udev = True

    def inputs(self) -> Sequence[Input]:
        return ()

    def outputs(self) -> Sequence[Output]:
        return (Output(DISKS.type), Output(DEVICES.type), Output(DISCOVERED_VOLUMES.type))

    async def run(self, rt: ControllerRuntime) -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(self._watch_udev, rt)
            async for _ in rt.events():
                await self.reconcile(rt)

    async def _watch_udev(self, rt: ControllerRuntime, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        try:
            mon = await anyio.to_thread.run_sync(udev.monitor)
        except OSError as exc:  # no netlink (e.g. a restricted namespace): one snapshot only
            log.warning("no udev events; discovery will not refresh", error=str(exc))
            task_status.started()
            return
        task_status.started()
        async for action, name in udev.events(mon):
            log.debug("udev event", action=action, device=name)
            rt.queue_reconcile()

    async def reconcile(self, rt: ControllerRuntime) -> None:
        snapshot = await anyio.to_thread.run_sync(observe, self.disks, self.with_udev)
        rt.start_tracking_outputs()
        for name, o in snapshot.items():
            await rt.modify(Resource.new(BlockDeviceSpec(), name), set_spec(o.device))
            if o.disk is not None:
                await rt.modify(Resource.new(DiskSpec(), name), set_spec(o.disk))
            await rt.modify(Resource.new(DiscoveredVolumeSpec(), name), set_spec(o.volume))
        await rt.cleanup_outputs(DISKS, DEVICES, DISCOVERED_VOLUMES)

