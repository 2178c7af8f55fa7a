"""Read what the kernel says about block devices from sysfs (``/sys/class/block``).

``read_device(name)`` describes one device (disk or partition), ``scan()`` all of them.
Nothing here writes; everything is a plain, quick file read (call it through
``anyio.to_thread`` from async code).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

SYS_BLOCK = Path("/sys/class/block")
SECTOR = 512


@dataclass
class SysDevice:
    name: str
    dev_path: str
    sys_path: str
    major: int
    minor: int
    is_partition: bool
    size: int
    parent: str = ""
    partition_number: int = 0
    partition_start: int = 0
    readonly: bool = False
    removable: bool = False
    rotational: bool = False
    cdrom: bool = False
    sector_size: int = SECTOR
    io_size: int = SECTOR
    model: str = ""
    serial: str = ""
    wwid: str = ""
    modalias: str = ""
    transport: str = ""
    bus_path: str = ""
    diskseq: int = 0
    holders: list[str] = field(default_factory=list)
    backing_file: str = ""


def _read(path: Path, default: str = "") -> str:
    try:
        return path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError, OSError):
        return default


def _int(path: Path, default: int = 0) -> int:
    text = _read(path)
    try:
        return int(text)
    except ValueError:
        return default


def _transport(real: str, name: str) -> str:
    for marker, transport in (
        ("/nvme", "nvme"),
        ("/usb", "usb"),
        ("/mmc", "mmc"),
        ("/ata", "sata"),
        ("/virtio", "virtio"),
        ("/host", "scsi"),
    ):
        if marker in real:
            return transport
    return ""


def read_device(name: str, root: Path = SYS_BLOCK) -> SysDevice | None:
    """One device by kernel name, or None when it does not exist (any more)."""
    base = root / name
    dev = _read(base / "dev")
    if not dev:
        return None
    major, _, minor = dev.partition(":")
    real = os.path.realpath(base)
    is_part = (base / "partition").exists()
    parent = os.path.basename(os.path.dirname(real)) if is_part else ""
    disk_dir = base.parent / parent if is_part else base
    device_dir = disk_dir / "device"
    d = SysDevice(
        name=name,
        dev_path=f"/dev/{name}",
        sys_path=real,
        major=int(major),
        minor=int(minor or 0),
        is_partition=is_part,
        size=_int(base / "size") * SECTOR,
        parent=parent,
        partition_number=_int(base / "partition") if is_part else 0,
        partition_start=_int(base / "start") * SECTOR if is_part else 0,
        readonly=_read(base / "ro") == "1",
        removable=_read(disk_dir / "removable") == "1",
        rotational=_read(disk_dir / "queue" / "rotational") == "1",
        sector_size=_int(disk_dir / "queue" / "logical_block_size", SECTOR),
        io_size=_int(disk_dir / "queue" / "minimum_io_size", SECTOR),
        model=_read(device_dir / "model"),
        serial=_read(device_dir / "serial") or _read(disk_dir / "serial"),
        wwid=_read(disk_dir / "wwid") or _read(device_dir / "wwid"),
        modalias=_read(device_dir / "modalias"),
        diskseq=_int(disk_dir / "diskseq"),
        holders=sorted(os.listdir(base / "holders")) if (base / "holders").is_dir() else [],
        backing_file=_read(disk_dir / "loop" / "backing_file"),
    )
    d.cdrom = d.major == 11
    if not is_part:
        d.transport = _transport(real, name)
        if (device_dir).exists():
            d.bus_path = os.path.dirname(os.path.realpath(device_dir)).removeprefix("/sys/devices")
    return d


def scan(root: Path = SYS_BLOCK) -> list[SysDevice]:
    """All block devices the kernel knows, disks before their partitions."""
    out: list[SysDevice] = []
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return out
    for name in names:
        d = read_device(name, root)
        if d is not None:
            out.append(d)
    out.sort(key=lambda d: (d.is_partition, d.name))
    return out


def partitions_of(disk: str, root: Path = SYS_BLOCK) -> list[SysDevice]:
    """The partitions the kernel currently knows for ``disk``, by number."""
    base = root / disk
    out: list[SysDevice] = []
    try:
        entries = os.listdir(base)
    except FileNotFoundError:
        return out
    for entry in entries:
        if (base / entry / "partition").exists():
            d = read_device(entry, root)
            if d is not None:
                out.append(d)
    out.sort(key=lambda d: d.partition_number)
    return out
