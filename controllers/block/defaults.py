"""The volumes of an installed system: META (1 MiB raw), STATE (100 MiB xfs, config and
node identity, at /system/state) and EPHEMERAL (the rest, xfs, grows, at /var), all on the
disk the install disk selector picks; plus ``user_volume`` for volumes from config."""

from __future__ import annotations

from kos.controllers.block.planner import MiB
from kos.controllers.block.selector import compile_disk_selector
from kos.resources.block import (
    FilesystemSpec,
    FilesystemType,
    LocatorSpec,
    MountSpec,
    PartitionSpec,
    ProvisioningSpec,
    VolumeConfigSpec,
    VolumeType,
)

STATE_SIZE = 100 * MiB
EPHEMERAL_MIN = 100 * MiB
USER_WAVE = 10


def _partition_volume(
    name: str,
    disk_selector: str,
    *,
    min_size: int,
    max_size: int = 0,
    grow: bool = False,
    fs: FilesystemType = FilesystemType.XFS,
    target: str = "",
    options: list[str] | None = None,
    wave: int = 0,
    wipe: bool = False,
) -> VolumeConfigSpec:
    compile_disk_selector(disk_selector)  # fail early, with the position of the problem
    return VolumeConfigSpec(
        type=VolumeType.PARTITION,
        provisioning=ProvisioningSpec(
            disk_selector=disk_selector,
            partition_spec=PartitionSpec(min_size=min_size, max_size=max_size, grow=grow, label=name),
            wave=wave,
            filesystem_spec=FilesystemSpec(type=fs, label=name if fs != FilesystemType.NONE else ""),
            wipe=wipe,
        ),
        locator=LocatorSpec(match=f'volume.partition_label == "{name}"'),
        mount=MountSpec(target_path=target, options=list(options or [])),
    )


def system_volumes(disk_selector: str, *, wipe: bool = False) -> dict[str, VolumeConfigSpec]:
    """META, STATE, EPHEMERAL on the disk ``disk_selector`` picks (waves 0, 1, 2)."""
    return {
        "META": _partition_volume("META", disk_selector, min_size=MiB, max_size=MiB, fs=FilesystemType.NONE,
                                  wave=0, wipe=wipe),
        "STATE": _partition_volume("STATE", disk_selector, min_size=STATE_SIZE, max_size=STATE_SIZE,
                                   target="/system/state", options=["nosuid", "nodev", "noexec"], wave=1, wipe=wipe),
        "EPHEMERAL": _partition_volume("EPHEMERAL", disk_selector, min_size=EPHEMERAL_MIN, grow=True, target="/var",
                                       wave=2, wipe=wipe),
    }


def user_volume(
    name: str,
    disk_selector: str,
    *,
    min_size: int,
    max_size: int = 0,
    grow: bool = False,
    fs: FilesystemType = FilesystemType.XFS,
    target: str = "",
    options: list[str] | None = None,
    wipe: bool = False,
) -> VolumeConfigSpec:
    """A user volume (wave 10, after the system volumes); mounted at /var/mnt/<name> by default."""
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"user volume name {name!r}: expected letters, digits, '-' or '_'")
    return _partition_volume(name, disk_selector, min_size=min_size, max_size=max_size, grow=grow, fs=fs,
                             target=target or f"/var/mnt/{name}", options=options, wave=USER_WAVE, wipe=wipe)


def disk_volume(
    name: str,
    disk_selector: str,
    *,
    fs: FilesystemType = FilesystemType.XFS,
    target: str = "",
    options: list[str] | None = None,
    wipe: bool = False,
) -> VolumeConfigSpec:
    """A user volume taking a whole disk (no partition table), found again by its fs label."""
    spec = user_volume(name, disk_selector, min_size=1, fs=fs, target=target, options=options, wipe=wipe)
    spec.type = VolumeType.DISK
    spec.locator.match = f'volume.type == "disk" && volume.label == "{name}"'
    return spec
