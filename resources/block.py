"""Block resources: disks, block devices, discovered volumes, the system disk, volume
configuration and status, mounts.

Type names follow Talos's ``block`` resources with the ``block.kos.dev`` suffix, and like
Talos they live in the ``runtime`` namespace:

* ``Disks``: whole disks as sysfs/udev describe them (observed);
* ``Devices``: every block device node, disk or partition (observed);
* ``DiscoveredVolumes``: what a probe of a device finds (partition table, partition,
  filesystem; observed);
* ``SystemDisks``: the disk that holds META/STATE/EPHEMERAL (chosen);
* ``VolumeConfigs``: how a volume is located, provisioned, formatted and mounted (desired);
* ``VolumeStatuses``: where each volume is in waiting -> missing/located -> provisioned ->
  prepared -> ready, with a human-readable error (observed);
* ``MountStatuses``: what is mounted where (observed).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from kos.resources.core import Kind, Spec, resource_type, spec_field

NAMESPACE = "runtime"

MiB = 1024 * 1024


def pretty_size(size: int) -> str:
    """A human size with decimal units, as ``talosctl get disks`` prints (``10 GB``)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if value < 1000 or unit == "PB":
            return f"{value:.0f} {unit}" if unit == "B" or value >= 10 else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


class _NamedEnum(enum.IntEnum):
    """An IntEnum whose YAML/str form is the lower-case member name."""

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str, field: str) -> _NamedEnum:
        for m in cls:
            if m.name.lower() == text.lower():
                return m
        choices = ", ".join(m.name.lower() for m in cls)
        raise ValueError(f"{field}: unknown value {text!r}, expected one of {choices}")


class VolumePhase(_NamedEnum):
    """Talos's BlockVolumePhase numbering."""

    WAITING = 0
    FAILED = 1
    MISSING = 2
    LOCATED = 3
    PROVISIONED = 4
    PREPARED = 5
    READY = 6
    CLOSED = 7


class VolumeType(_NamedEnum):
    PARTITION = 0
    DISK = 1
    TMPFS = 2
    DIRECTORY = 3


class FilesystemType(_NamedEnum):
    """Talos's BlockFilesystemType numbering."""

    NONE = 0
    XFS = 1
    VFAT = 2
    EXT4 = 3
    ISO9660 = 4
    SWAP = 5


# --- observed: disks and devices ----------------------------------------------------------


@resource_type(
    "Disks.block.kos.dev",
    namespace=NAMESPACE,
    print_columns=[
        ("Size", "{.prettySize}"),
        ("Read Only", "{.readonly}"),
        ("Transport", "{.transport}"),
        ("Rotational", "{.rotational}"),
        ("WWID", "{.wwid}"),
        ("Model", "{.model}"),
        ("Serial", "{.serial}"),
    ],
)
@dataclass
class DiskSpec(Spec):
    """A whole disk (id: kernel name, e.g. ``sda``, ``loop3``)."""

    size: int = spec_field(1, default=0)
    io_size: int = spec_field(2, default=0)
    sector_size: int = spec_field(3, default=0)
    readonly: bool = spec_field(4, default=False)
    model: str = spec_field(5, default="")
    serial: str = spec_field(6, default="")
    modalias: str = spec_field(7, default="")
    wwid: str = spec_field(8, default="")
    bus_path: str = spec_field(9, default="")
    sub_system: str = spec_field(10, default="")
    transport: str = spec_field(11, default="")
    rotational: bool = spec_field(12, default=False)
    cdrom: bool = spec_field(13, default=False)
    dev_path: str = spec_field(14, default="")
    pretty_size: str = spec_field(15, default="")
    secondary_disks: list[str] = spec_field(16, default_factory=list)
    uuid: str = spec_field(17, default="")
    symlinks: list[str] = spec_field(18, default_factory=list)


@resource_type(
    "Devices.block.kos.dev",
    namespace=NAMESPACE,
    aliases=["blockdevice", "blockdevices"],
    print_columns=[("Type", "{.type}"), ("Partition", "{.partitionName}"), ("Generation", "{.generation}")],
)
@dataclass
class BlockDeviceSpec(Spec):
    """A block device node, disk or partition (id: kernel name)."""

    type: str = spec_field(1, default="")
    major: int = spec_field(2, default=0)
    minor: int = spec_field(3, default=0)
    partition_name: str = spec_field(4, default="")
    partition_number: int = spec_field(5, default=0)
    generation: int = spec_field(6, default=0)
    device_path: str = spec_field(7, default="")
    parent: str = spec_field(8, default="")
    secondaries: list[str] = spec_field(9, default_factory=list)


@resource_type(
    "DiscoveredVolumes.block.kos.dev",
    namespace=NAMESPACE,
    aliases=["dv", "dvs"],
    print_columns=[
        ("Type", "{.type}"),
        ("Size", "{.prettySize}"),
        ("Discovered", "{.name}"),
        ("Label", "{.label}"),
        ("PartitionLabel", "{.partitionLabel}"),
    ],
)
@dataclass
class DiscoveredVolumeSpec(Spec):
    """What a probe found on one device (id: kernel name). ``name`` is the filesystem or
    partition-table type (``xfs``, ``ext4``, ``gpt``, ``dos``...), empty when nothing."""

    size: int = spec_field(1, default=0)
    sector_size: int = spec_field(2, default=0)
    io_size: int = spec_field(3, default=0)
    name: str = spec_field(4, default="")
    uuid: str = spec_field(5, default="")
    label: str = spec_field(6, default="")
    block_size: int = spec_field(7, default=0)
    filesystem_block_size: int = spec_field(8, default=0)
    probed_size: int = spec_field(9, default=0)
    partition_uuid: str = spec_field(10, default="")
    partition_type: str = spec_field(11, default="")
    partition_label: str = spec_field(12, default="")
    partition_index: int = spec_field(13, default=0)
    type: str = spec_field(14, default="")
    device_path: str = spec_field(15, default="")
    parent: str = spec_field(16, default="")
    dev_path: str = spec_field(17, default="")
    parent_dev_path: str = spec_field(18, default="")
    pretty_size: str = spec_field(19, default="")
    offset: int = spec_field(101, default=0)
    partition_table: str = spec_field(102, default="")


@resource_type(
    "SystemDisks.block.kos.dev",
    namespace=NAMESPACE,
    print_columns=[("Disk", "{.diskID}"), ("Path", "{.devPath}")],
)
@dataclass
class SystemDiskSpec(Spec):
    """The system disk (id: ``system-disk``)."""

    disk_id: str = spec_field(1, yaml="diskID", default="")
    dev_path: str = spec_field(2, default="")


SYSTEM_DISK_ID = "system-disk"


# --- desired: volume configuration --------------------------------------------------------


@dataclass
class FilesystemSpec(Spec):
    type: FilesystemType = spec_field(1, default=FilesystemType.NONE)
    label: str = spec_field(2, default="")


@dataclass
class PartitionSpec(Spec):
    min_size: int = spec_field(1, default=0)
    max_size: int = spec_field(2, default=0)
    grow: bool = spec_field(3, default=False)
    label: str = spec_field(4, default="")
    type_uuid: str = spec_field(5, default="")


@dataclass
class ProvisioningSpec(Spec):
    """``disk_selector`` is a selector expression (see kos.controllers.block.selector);
    ``wipe`` allows provisioning on a disk that carries foreign data."""

    disk_selector: str = spec_field(1, default="")
    partition_spec: PartitionSpec = spec_field(2, default_factory=PartitionSpec)
    wave: int = spec_field(3, default=0)
    filesystem_spec: FilesystemSpec = spec_field(4, default_factory=FilesystemSpec)
    wipe: bool = spec_field(101, default=False)


@dataclass
class LocatorSpec(Spec):
    """``match`` is a selector expression over discovered volumes
    (``volume.partition_label == "STATE"``)."""

    match: str = spec_field(1, default="")


@dataclass
class MountSpec(Spec):
    target_path: str = spec_field(1, default="")
    options: list[str] = spec_field(101, default_factory=list)
    file_mode: int = spec_field(5, default=0)
    uid: int = spec_field(6, default=0)
    gid: int = spec_field(7, default=0)


@dataclass
class EncryptionSpec(Spec):
    """Placeholder: encryption is not implemented; a non-empty provider is an error."""

    provider: str = spec_field(1, default="")


@resource_type(
    "VolumeConfigs.block.kos.dev",
    namespace=NAMESPACE,
    print_columns=[("Type", "{.type}"), ("Target", "{.mount.targetPath}")],
)
@dataclass
class VolumeConfigSpec(Spec):
    """A volume to locate or provision (id: the volume name, e.g. ``EPHEMERAL``)."""

    parent_id: str = spec_field(1, default="")
    type: VolumeType = spec_field(2, default=VolumeType.PARTITION)
    provisioning: ProvisioningSpec = spec_field(3, default_factory=ProvisioningSpec)
    locator: LocatorSpec = spec_field(4, default_factory=LocatorSpec)
    mount: MountSpec = spec_field(5, default_factory=MountSpec)
    encryption: EncryptionSpec = spec_field(6, default_factory=EncryptionSpec)


# --- observed: volume and mount status ----------------------------------------------------


@resource_type(
    "VolumeStatuses.block.kos.dev",
    namespace=NAMESPACE,
    aliases=["vs"],
    print_columns=[
        ("Phase", "{.phase}"),
        ("Location", "{.location}"),
        ("Size", "{.prettySize}"),
        ("Mount", "{.mountLocation}"),
        ("Error", "{.errorMessage}"),
    ],
)
@dataclass
class VolumeStatusSpec(Spec):
    phase: VolumePhase = spec_field(1, default=VolumePhase.WAITING)
    location: str = spec_field(2, default="")
    error_message: str = spec_field(3, default="")
    uuid: str = spec_field(4, default="")
    partition_uuid: str = spec_field(5, default="")
    pre_fail_phase: VolumePhase = spec_field(6, default=VolumePhase.WAITING)
    parent_location: str = spec_field(7, default="")
    partition_index: int = spec_field(8, default=0)
    size: int = spec_field(9, default=0)
    filesystem: FilesystemType = spec_field(10, default=FilesystemType.NONE)
    mount_location: str = spec_field(11, default="")
    pretty_size: str = spec_field(13, default="")
    type: VolumeType = spec_field(16, default=VolumeType.PARTITION)


@resource_type(
    "MountStatuses.block.kos.dev",
    namespace=NAMESPACE,
    print_columns=[("Source", "{.source}"), ("Target", "{.target}"), ("Filesystem", "{.filesystem}")],
)
@dataclass
class MountStatusSpec(Spec):
    """A mounted volume (id: the volume name)."""

    target: str = spec_field(2, default="")
    source: str = spec_field(3, default="")
    filesystem: FilesystemType = spec_field(4, default=FilesystemType.NONE)
    read_only: bool = spec_field(5, default=False)
    options: list[str] = spec_field(101, default_factory=list)


DISKS = Kind(NAMESPACE, DiskSpec.definition.type)
DEVICES = Kind(NAMESPACE, BlockDeviceSpec.definition.type)
DISCOVERED_VOLUMES = Kind(NAMESPACE, DiscoveredVolumeSpec.definition.type)
SYSTEM_DISKS = Kind(NAMESPACE, SystemDiskSpec.definition.type)
VOLUME_CONFIGS = Kind(NAMESPACE, VolumeConfigSpec.definition.type)
VOLUME_STATUSES = Kind(NAMESPACE, VolumeStatusSpec.definition.type)
MOUNT_STATUSES = Kind(NAMESPACE, MountStatusSpec.definition.type)
