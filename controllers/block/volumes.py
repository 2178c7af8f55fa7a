"""Volume provisioning: VolumeConfigs -> partitions, filesystems, mounts -> VolumeStatus.

For each VolumeConfig (by wave, then id) the ``VolumeController`` walks the phases:

1. **locate** the volume among the discovered ones (``locator.match``; only on disks the
   disk selector picks, when it has one) -> ``located``;
2. otherwise **provision**: pick the first disk the selector matches that is empty or GPT,
   plan the partition (``planner``), write it into the GPT and add it with partx -> ``provisioned``; no disk ->
   ``missing``; a disk with foreign data is only wiped when ``provisioning.wipe`` says so;
3. **format** an empty partition (never one with data; a different filesystem is an error)
   -> ``prepared``;
4. **mount** it under ``root`` + ``mount.target_path`` and grow it when asked -> ``ready``.

Every step is idempotent: a second reconcile finds the volume, finds its filesystem, finds
it mounted, and writes the same status (no version bump). Problems become ``failed`` with
the phase reached before and a message a person can act on. In container mode volumes are
directories under ``root``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import structlog

from kos.controllers.block import planner
from kos.controllers.block.discovery import Observation, observe
from kos.controllers.block.selector import SelectorError, compile_disk_selector, compile_volume_locator
from kos.controllers.runtime import Controller, ControllerRuntime, Input, Output, set_spec
from kos.platform.block import device, filesystem, mount, partition, probe, sysfs, udev
from kos.platform.block.tools import ToolError
from kos.resources.block import (
    DEVICES,
    DISCOVERED_VOLUMES,
    DISKS,
    MOUNT_STATUSES,
    SYSTEM_DISK_ID,
    SYSTEM_DISKS,
    VOLUME_CONFIGS,
    VOLUME_STATUSES,
    BlockDeviceSpec,
    DiscoveredVolumeSpec,
    DiskSpec,
    FilesystemType,
    MountStatusSpec,
    SystemDiskSpec,
    VolumeConfigSpec,
    VolumePhase,
    VolumeStatusSpec,
    VolumeType,
    pretty_size,
)
from kos.resources.core import Resource

log = structlog.get_logger("kos.controllers.block.volumes")

SYSTEM_VOLUMES = ("META", "STATE", "EPHEMERAL")


class VolumeFailure(Exception):
    """A volume cannot progress; ``phase`` is where it got to."""

    def __init__(self, phase: VolumePhase, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.phase = phase
        self.missing = missing


def disk_env(id: str, disk: DiskSpec, system_disk: str) -> dict[str, Any]:
    return {
        "name": id,
        "size": disk.size,
        "io_size": disk.io_size,
        "sector_size": disk.sector_size,
        "readonly": disk.readonly,
        "model": disk.model,
        "serial": disk.serial,
        "modalias": disk.modalias,
        "wwid": disk.wwid,
        "bus_path": disk.bus_path,
        "sub_system": disk.sub_system,
        "transport": disk.transport,
        "rotational": disk.rotational,
        "cdrom": disk.cdrom,
        "dev_path": disk.dev_path,
        "uuid": disk.uuid,
        "system_disk": id == system_disk,
    }


def volume_env(id: str, v: DiscoveredVolumeSpec) -> dict[str, Any]:
    return {
        "name": v.name,
        "size": v.size,
        "type": v.type,
        "label": v.label,
        "uuid": v.uuid,
        "partition_label": v.partition_label,
        "partition_uuid": v.partition_uuid,
        "partition_type": v.partition_type,
        "partition_index": v.partition_index,
        "partition_table": v.partition_table,
        "parent": v.parent,
        "dev_path": v.dev_path,
        "offset": v.offset,
    }


@dataclass
class Inventory:
    """What the store says about disks, devices and discovered volumes, by kernel name."""

    disks: dict[str, DiskSpec] = field(default_factory=dict)
    devices: dict[str, BlockDeviceSpec] = field(default_factory=dict)
    volumes: dict[str, DiscoveredVolumeSpec] = field(default_factory=dict)
    system_disk: str = ""
    synced: set[str] = field(default_factory=set)

    def refresh(self, names: Sequence[str]) -> None:
        """Re-observe some disks directly (after we changed them). Blocking."""
        snap: dict[str, Observation] = observe(list(names), with_udev=False)
        for name in names:
            for store in (self.devices, self.volumes):
                for key in [k for k, v in store.items() if k == name or getattr(v, "parent", "") == name]:
                    del store[key]
        for key, o in snap.items():
            self.devices[key] = o.device
            self.volumes[key] = o.volume
            if o.disk is not None:
                self.disks[key] = o.disk


@dataclass
class Outcome:
    status: VolumeStatusSpec
    mount: MountStatusSpec | None = None


class Provisioner:
    """Drives one volume through its phases (the side-effecting part of the controller)."""

    def __init__(self, root: str = "/", container_mode: bool = False) -> None:
        self.root = root
        self.container_mode = container_mode

    def target(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/")) if path else ""

    async def reconcile(self, id: str, cfg: VolumeConfigSpec, inv: Inventory) -> Outcome:
        status = VolumeStatusSpec(type=cfg.type, filesystem=cfg.provisioning.filesystem_spec.type)
        try:
            return await self._reconcile(id, cfg, inv, status)
        except VolumeFailure as exc:
            status.phase = VolumePhase.MISSING if exc.missing else VolumePhase.FAILED
            status.pre_fail_phase = VolumePhase.WAITING if exc.missing else exc.phase
            status.error_message = str(exc)
            return Outcome(status)
        except (ToolError, device.DeviceRefusedError, mount.MountError, OSError, ValueError) as exc:
            status.pre_fail_phase = status.phase
            status.phase = VolumePhase.FAILED
            status.error_message = str(exc)
            return Outcome(status)

    async def _reconcile(self, id: str, cfg: VolumeConfigSpec, inv: Inventory, st: VolumeStatusSpec) -> Outcome:
        if cfg.encryption.provider:
            provider = cfg.encryption.provider
            raise VolumeFailure(VolumePhase.WAITING, f"volume {id}: encryption ({provider}) is not supported")
        if cfg.type in (VolumeType.DIRECTORY, VolumeType.TMPFS) or self.container_mode:
            return await self._directory(id, cfg, st)
        selector = None
        if cfg.provisioning.disk_selector:
            try:
                selector = compile_disk_selector(cfg.provisioning.disk_selector)
            except SelectorError as exc:
                raise VolumeFailure(VolumePhase.WAITING, f"volume {id}: provisioning.diskSelector: {exc}") from None
        selected = sorted(
            name
            for name, d in inv.disks.items()
            if selector is None or selector.matches(disk_env(name, d, inv.system_disk))
        )
        if selector is not None:
            await self._sync_partitions(selected, inv)
        located = self._locate(id, cfg, inv, selected if selector is not None else None)
        if located is None:
            if selector is None:
                message = f"volume {id}: not found and no provisioning.diskSelector to create it"
                raise VolumeFailure(VolumePhase.WAITING, message, missing=True)
            if cfg.type == VolumeType.DISK:
                located = await self._claim_disk(id, cfg, inv, selected)
            else:
                located = await self._provision(id, cfg, inv, selected)
            st.phase = VolumePhase.PROVISIONED
        else:
            st.phase = VolumePhase.LOCATED
        vol = inv.volumes[located]
        st.location = vol.dev_path
        st.parent_location = vol.parent_dev_path
        st.partition_index = vol.partition_index
        st.partition_uuid = vol.partition_uuid
        st.size, st.pretty_size = vol.size, pretty_size(vol.size)
        ref = await self._ref(located, inv)
        fs_type = cfg.provisioning.filesystem_spec.type
        if fs_type != FilesystemType.NONE:
            made = await self._format(id, cfg, ref, vol)
            if made:
                await anyio.to_thread.run_sync(inv.refresh, [vol.parent or located])
                vol = inv.volumes[located]
        st.uuid = vol.uuid
        st.phase = VolumePhase.PREPARED
        outcome = Outcome(st)
        if cfg.mount.target_path and fs_type not in (FilesystemType.NONE, FilesystemType.SWAP):
            target = self.target(cfg.mount.target_path)
            await mount.mount(ref, target, str(fs_type), list(cfg.mount.options))
            st.mount_location = target
            outcome.mount = MountStatusSpec(
                target=target, source=ref.path, filesystem=fs_type, read_only="ro" in cfg.mount.options,
                options=list(cfg.mount.options),
            )
            if cfg.provisioning.partition_spec.grow and vol.parent and await self._grow(cfg, ref, vol, inv, target):
                vol = inv.volumes[located]
                st.size, st.pretty_size = vol.size, pretty_size(vol.size)
        st.phase = VolumePhase.READY
        return outcome

    async def _directory(self, id: str, cfg: VolumeConfigSpec, st: VolumeStatusSpec) -> Outcome:
        target = self.target(cfg.mount.target_path or f"/system/{id.lower()}")
        await anyio.to_thread.run_sync(lambda: os.makedirs(target, exist_ok=True))
        if cfg.mount.file_mode:
            await anyio.to_thread.run_sync(os.chmod, target, cfg.mount.file_mode)
        st.type = VolumeType.DIRECTORY
        st.location = st.mount_location = target
        st.filesystem = FilesystemType.NONE
        st.phase = VolumePhase.READY
        return Outcome(st)

    def _locate(self, id: str, cfg: VolumeConfigSpec, inv: Inventory, disks: list[str] | None) -> str | None:
        text = cfg.locator.match
        if not text and cfg.type == VolumeType.DISK:
            text = f'volume.type == "disk" && volume.label == "{cfg.provisioning.filesystem_spec.label or id}"'
        elif not text:
            label = cfg.provisioning.partition_spec.label or id
            text = f'volume.partition_label == "{label}"'
        try:
            locator = compile_volume_locator(text)
        except SelectorError as exc:
            raise VolumeFailure(VolumePhase.WAITING, f"volume {id}: locator.match: {exc}") from None
        found = sorted(
            name
            for name, v in inv.volumes.items()
            if (disks is None or v.parent in disks or name in disks) and locator.matches(volume_env(name, v))
        )
        return found[0] if found else None

    async def _sync_partitions(self, disks: list[str], inv: Inventory) -> None:
        """Make the kernel see the GPT partitions of the selected disks (it has no GPT parser,
        so after a reboot it knows none): without this a second boot could not locate them."""
        changed: list[str] = []
        for name in disks:
            vol = inv.volumes.get(name)
            if vol is None or vol.name != "gpt" or name in inv.synced:
                continue
            disk = inv.disks.get(name)
            if disk is None or disk.readonly:
                continue
            if await partition.sync_kernel(await self._ref(name, inv)):
                changed.append(name)
            inv.synced.add(name)
        if changed:
            await udev.settle()
            await anyio.to_thread.run_sync(inv.refresh, changed)

    async def _ref(self, name: str, inv: Inventory) -> device.DeviceRef:
        """The exact device discovery reported, re-checked against the kernel."""
        dev = inv.devices.get(name)
        ref = await anyio.to_thread.run_sync(device.identify, f"/dev/{name}")
        if dev is not None and (dev.major, dev.minor, dev.generation) != (ref.major, ref.minor, ref.diskseq):
            raise device.DeviceRefusedError(
                f"/dev/{name}: discovered as {dev.major}:{dev.minor} (generation {dev.generation}) but the kernel now "
                f"has {ref.major}:{ref.minor} (diskseq {ref.diskseq}); waiting for discovery to catch up"
            )
        return ref

    async def _provision(self, id: str, cfg: VolumeConfigSpec, inv: Inventory, selected: list[str]) -> str:
        pspec = cfg.provisioning.partition_spec
        label = pspec.label or id
        if not selected:
            raise VolumeFailure(
                VolumePhase.WAITING,
                f"volume {id}: no disk matches provisioning.diskSelector {cfg.provisioning.disk_selector!r}",
                missing=True,
            )
        request = planner.VolumeRequest(label, pspec.min_size, pspec.max_size, pspec.grow)
        problems: list[str] = []
        for name in selected:
            disk = inv.disks[name]
            if disk.readonly or disk.cdrom:
                problems.append(f"disk {name} is read-only")
                continue
            ref = await self._ref(name, inv)
            found = await anyio.to_thread.run_sync(probe.probe_path, ref.path, disk.sector_size or 512)
            if not found.empty and (found.table is None or found.table.type != "gpt"):
                what = found.filesystem.type if found.filesystem else f"a {found.name} partition table"
                flabel = f" labelled {found.filesystem.label!r}" if found.filesystem and found.filesystem.label else ""
                if not cfg.provisioning.wipe:
                    problems.append(
                        f"disk {name} holds {what}{flabel}: not touching it (set provisioning.wipe to allow wiping)"
                    )
                    continue
                log.warning("wiping disk for provisioning", volume=id, disk=name, found=what)
                await filesystem.wipe(ref)
                found = probe.ProbeResult()
            same = found.table.by_label(label) if found.table is not None else None
            if same is not None:
                # already on disk (discovery had not reported it yet): use it, never add a twin
                await partition.sync_kernel(ref)
                part_name = await _wait_partition(name, same.number)
                await anyio.to_thread.run_sync(inv.refresh, [name])
                return part_name
            existing = [planner.Extent(p.start, p.size) for p in (found.table.partitions if found.table else [])]
            try:
                (planned,) = planner.plan(disk.size, [request], existing, disk.sector_size or 512)
            except planner.PlanError as exc:
                problems.append(f"disk {name} ({disk.pretty_size or pretty_size(disk.size)}): {exc}")
                continue
            if found.table is None:
                await partition.create_table(ref)
            number = max((p.number for p in found.table.partitions), default=0) + 1 if found.table else 1
            type_uuid = pspec.type_uuid or partition.LINUX_FS_TYPE
            new = partition.NewPartition(number, planned.start, planned.size, label, type_uuid)
            log.info("adding partition", volume=id, disk=name, number=number, start=planned.start, size=planned.size)
            await partition.add_partitions(ref, [new])
            await udev.settle()
            part_name = await _wait_partition(name, number)
            await anyio.to_thread.run_sync(inv.refresh, [name])
            return part_name
        raise VolumeFailure(VolumePhase.WAITING, f"volume {id}: no selected disk can hold it: " + "; ".join(problems))

    async def _claim_disk(self, id: str, cfg: VolumeConfigSpec, inv: Inventory, selected: list[str]) -> str:
        """A whole-disk volume: the first selected disk that is empty (or may be wiped)."""
        problems: list[str] = []
        for name in selected:
            disk = inv.disks[name]
            if disk.readonly or disk.cdrom or name == inv.system_disk:
                problems.append(f"disk {name} is read-only or the system disk")
                continue
            ref = await self._ref(name, inv)
            found = await anyio.to_thread.run_sync(probe.probe_path, ref.path, disk.sector_size or 512)
            want_label = cfg.provisioning.filesystem_spec.label or id
            if found.filesystem is not None and found.filesystem.label == want_label and found.table is None:
                await anyio.to_thread.run_sync(inv.refresh, [name])
                return name  # already ours (discovery had not reported it yet)
            if not found.empty:
                if not cfg.provisioning.wipe:
                    problems.append(f"disk {name} holds {found.name}: not touching it (set provisioning.wipe to allow)")
                    continue
                await filesystem.wipe(ref)
            return name
        if not selected:
            message = f"volume {id}: no disk matches provisioning.diskSelector {cfg.provisioning.disk_selector!r}"
            raise VolumeFailure(VolumePhase.WAITING, message, missing=True)
        raise VolumeFailure(VolumePhase.WAITING, f"volume {id}: no selected disk can hold it: " + "; ".join(problems))

    async def _format(self, id: str, cfg: VolumeConfigSpec, ref: device.DeviceRef, vol: DiscoveredVolumeSpec) -> bool:
        want = str(cfg.provisioning.filesystem_spec.type)
        found = await anyio.to_thread.run_sync(probe.probe_path, ref.path)
        if found.filesystem is not None:
            if found.filesystem.type == want:
                return False
            raise VolumeFailure(
                VolumePhase.LOCATED,
                f"volume {id}: {ref.path} holds {found.filesystem.type}, the config asks for {want}; not reformatting",
            )
        if not found.empty:
            if not cfg.provisioning.wipe:
                message = f"volume {id}: {ref.path} holds {found.name}; not formatting over it"
                raise VolumeFailure(VolumePhase.LOCATED, message)
            await filesystem.wipe(ref)
        label = cfg.provisioning.filesystem_spec.label or id
        log.info("formatting", volume=id, device=ref.path, filesystem=want)
        await filesystem.mkfs(ref, want, label)
        await udev.settle()
        return True

    async def _grow(
        self, cfg: VolumeConfigSpec, ref: device.DeviceRef, vol: DiscoveredVolumeSpec, inv: Inventory, target: str
    ) -> bool:
        disk = inv.disks.get(vol.parent)
        if disk is None:
            return False
        others = [
            planner.Extent(v.offset, v.size) for n, v in inv.volumes.items() if v.parent == vol.parent and n != ref.name
        ]
        current = planner.Extent(vol.offset, vol.size)
        new_size = planner.plan_grow(current, disk.size, others, cfg.provisioning.partition_spec.max_size,
                                     disk.sector_size or 512)
        if new_size <= vol.size:
            return False
        disk_ref = await self._ref(vol.parent, inv)
        log.info("growing", device=ref.path, old=vol.size, new=new_size)
        await partition.grow_partition(disk_ref, vol.partition_index, new_size)
        fresh = await anyio.to_thread.run_sync(device.identify, ref.path)
        await filesystem.grow(fresh, str(cfg.provisioning.filesystem_spec.type), target)
        await anyio.to_thread.run_sync(inv.refresh, [vol.parent])
        return True


async def _wait_partition(disk: str, number: int, timeout: float = 10.0) -> str:
    """The kernel name of partition ``number`` of ``disk`` once its node exists."""
    with anyio.move_on_after(timeout):
        delay = 0.005
        while True:
            for p in await anyio.to_thread.run_sync(sysfs.partitions_of, disk):
                if p.partition_number == number and await anyio.Path(p.dev_path).exists():
                    return p.name
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.2)
    raise VolumeFailure(VolumePhase.PROVISIONED, f"partition {number} of {disk} did not appear within {timeout:g}s")


class VolumeController(Controller):
    """VolumeConfigs + discovery -> partitions, filesystems, mounts; VolumeStatuses,
    MountStatuses and the SystemDisk (the disk holding META or STATE)."""

    name = "block.VolumeController"

    def __init__(self, root: str = "/", container_mode: bool = False) -> None:
        self.provisioner = Provisioner(root, container_mode)

    def inputs(self) -> Sequence[Input]:
        return (
            Input(VOLUME_CONFIGS.namespace, VOLUME_CONFIGS.type),
            Input(DISKS.namespace, DISKS.type),
            Input(DEVICES.namespace, DEVICES.type),
            Input(DISCOVERED_VOLUMES.namespace, DISCOVERED_VOLUMES.type),
        )

    def outputs(self) -> Sequence[Output]:
        return (Output(VOLUME_STATUSES.type), Output(MOUNT_STATUSES.type), Output(SYSTEM_DISKS.type))

    async def run(self, rt: ControllerRuntime) -> None:
        async for _ in rt.events():
            await self.reconcile(rt)

    async def reconcile(self, rt: ControllerRuntime) -> None:
        inv = Inventory(
            disks={r.id: r.spec for r in await rt.list(DISKS)},
            devices={r.id: r.spec for r in await rt.list(DEVICES)},
            volumes={r.id: r.spec for r in await rt.list(DISCOVERED_VOLUMES)},
        )
        current_system = await rt.get_or_none(SYSTEM_DISKS.pointer(SYSTEM_DISK_ID))
        inv.system_disk = current_system.spec.disk_id if current_system is not None else ""
        configs = sorted(await rt.list(VOLUME_CONFIGS), key=lambda r: (r.spec.provisioning.wave, r.id))
        rt.start_tracking_outputs()
        statuses: dict[str, VolumeStatusSpec] = {}
        for cfg in configs:
            outcome = await self.provisioner.reconcile(cfg.id, cfg.spec, inv)
            statuses[cfg.id] = outcome.status
            if cfg.id in SYSTEM_VOLUMES and outcome.status.parent_location and not inv.system_disk:
                inv.system_disk = os.path.basename(outcome.status.parent_location)
            await rt.modify(Resource.new(VolumeStatusSpec(), cfg.id), set_spec(outcome.status))
            if outcome.mount is not None:
                await rt.modify(Resource.new(MountStatusSpec(), cfg.id), set_spec(outcome.mount))
        wanted = {cfg.id for cfg in configs}
        for m in await rt.list(MOUNT_STATUSES):
            if m.id not in wanted and m.metadata.owner == self.name:
                await self._unmount_removed(m)
        if inv.system_disk:
            spec = SystemDiskSpec(disk_id=inv.system_disk, dev_path=f"/dev/{inv.system_disk}")
            await rt.modify(Resource.new(SystemDiskSpec(), SYSTEM_DISK_ID), set_spec(spec))
        await rt.cleanup_outputs(VOLUME_STATUSES, MOUNT_STATUSES, SYSTEM_DISKS)


    async def _unmount_removed(self, m: Resource[Any]) -> None:
        """A volume whose config is gone: unmount it (its MountStatus is then cleaned up)."""
        try:
            if await mount.unmount(m.spec.target):
                log.info("unmounted removed volume", volume=m.id, target=m.spec.target)
        except ToolError as exc:
            log.error("cannot unmount removed volume", volume=m.id, target=m.spec.target, error=str(exc))

