"""A superblock probe in Python: partition tables (GPT, MBR) and filesystems (xfs, ext2/3/4,
vfat, squashfs, swap, iso9660, erofs, btrfs, LUKS) read straight from the device.

Reads use ``O_DIRECT`` when the device allows it, so what mkfs or the GPT writer just wrote through
another device node (a partition versus its disk) is seen, not a stale page cache. The
result names types the way ``blkid`` does (``gpt``/``dos``; ``xfs``, ``ext4``, ``vfat``...)
and ``tests/block`` checks it against ``blkid -p`` on real devices.
"""

from __future__ import annotations

import mmap
import os
import struct
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field

from kos.platform.block import sysfs

PROBE_BYTES = 128 * 1024


@dataclass
class PartitionEntry:
    number: int
    start: int
    size: int
    type_uuid: str
    uuid: str
    label: str = ""
    attributes: int = 0

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass
class PartitionTable:
    type: str  # "gpt" | "dos"
    uuid: str
    partitions: list[PartitionEntry] = field(default_factory=list)
    first_usable: int = 0
    last_usable: int = 0  # byte offset just past the last usable sector

    def by_label(self, label: str) -> PartitionEntry | None:
        return next((p for p in self.partitions if p.label == label), None)


@dataclass
class Filesystem:
    type: str
    uuid: str = ""
    label: str = ""
    block_size: int = 0
    size: int = 0


@dataclass
class ProbeResult:
    table: PartitionTable | None = None
    filesystem: Filesystem | None = None

    @property
    def empty(self) -> bool:
        return self.table is None and self.filesystem is None

    @property
    def name(self) -> str:
        if self.filesystem is not None:
            return self.filesystem.type
        return self.table.type if self.table is not None else ""


Reader = Callable[[int, int], bytes]


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace").strip()


def _fs_xfs(buf: bytes) -> Filesystem | None:
    if buf[:4] != b"XFSB":
        return None
    block = struct.unpack_from(">I", buf, 4)[0]
    dblocks = struct.unpack_from(">Q", buf, 8)[0]
    return Filesystem("xfs", str(uuidlib.UUID(bytes=buf[32:48])), _cstr(buf[108:120]), block, block * dblocks)


def _fs_ext(buf: bytes) -> Filesystem | None:
    sb = buf[1024:2048]
    if len(sb) < 1024 or struct.unpack_from("<H", sb, 0x38)[0] != 0xEF53:
        return None
    compat, incompat = struct.unpack_from("<II", sb, 0x5C)
    block = 1024 << struct.unpack_from("<I", sb, 24)[0]
    blocks = struct.unpack_from("<I", sb, 4)[0]
    if incompat & 0x80:  # 64bit
        blocks |= struct.unpack_from("<I", sb, 0x150)[0] << 32
    kind = "ext4" if incompat & (0x40 | 0x80 | 0x200) else "ext3" if compat & 0x4 else "ext2"
    return Filesystem(kind, str(uuidlib.UUID(bytes=sb[0x68:0x78])), _cstr(sb[0x78:0x88]), block, block * blocks)


def _fs_vfat(buf: bytes) -> Filesystem | None:
    if buf[510:512] != b"\x55\xaa":
        return None
    if buf[82:87] == b"FAT32":
        serial, label = buf[67:71], buf[71:82]
    elif buf[54:58] == b"FAT1":
        serial, label = buf[39:43], buf[43:54]
    else:
        return None
    sector = struct.unpack_from("<H", buf, 11)[0]
    per_cluster = buf[13]
    total = struct.unpack_from("<H", buf, 19)[0] or struct.unpack_from("<I", buf, 32)[0]
    s = struct.unpack("<I", serial)[0]
    lab = label.decode("ascii", "replace").strip()
    return Filesystem(
        "vfat", f"{s >> 16:04X}-{s & 0xFFFF:04X}", "" if lab == "NO NAME" else lab, sector * per_cluster, sector * total
    )


def _fs_squashfs(buf: bytes) -> Filesystem | None:
    if buf[:4] != b"hsqs":
        return None
    return Filesystem("squashfs", "", "", struct.unpack_from("<I", buf, 12)[0], struct.unpack_from("<Q", buf, 40)[0])


def _fs_swap(buf: bytes) -> Filesystem | None:
    for page in (4096, 8192, 16384, 65536):
        if buf[page - 10 : page] in (b"SWAPSPACE2", b"SWAP-SPACE"):
            last = struct.unpack_from("<I", buf, 1024 + 4)[0]
            return Filesystem(
                "swap", str(uuidlib.UUID(bytes=buf[1036:1052])), _cstr(buf[1052:1068]), page, (last + 1) * page
            )
    return None


def _fs_iso(buf: bytes) -> Filesystem | None:
    if buf[32769:32774] != b"CD001":
        return None
    return Filesystem("iso9660", "", buf[32808:32840].decode("ascii", "replace").strip(), 2048, 0)


def _fs_erofs(buf: bytes) -> Filesystem | None:
    if struct.unpack_from("<I", buf, 1024)[0] != 0xE0F5E1E2:
        return None
    blkbits = buf[1024 + 12]
    return Filesystem("erofs", str(uuidlib.UUID(bytes=buf[1024 + 48 : 1024 + 64])), _cstr(buf[1024 + 64 : 1024 + 80]),
                      1 << blkbits, 0)


def _fs_btrfs(buf: bytes) -> Filesystem | None:
    sb = 65536
    if buf[sb + 64 : sb + 72] != b"_BHRfS_M":
        return None
    return Filesystem("btrfs", str(uuidlib.UUID(bytes=buf[sb + 32 : sb + 48])), _cstr(buf[sb + 299 : sb + 555]),
                      struct.unpack_from("<I", buf, sb + 144)[0], struct.unpack_from("<Q", buf, sb + 112)[0])


def _fs_luks(buf: bytes) -> Filesystem | None:
    if buf[:6] != b"LUKS\xba\xbe":
        return None
    return Filesystem("crypto_LUKS", _cstr(buf[168:208]), "", 0, 0)


_FILESYSTEMS = (_fs_luks, _fs_xfs, _fs_ext, _fs_btrfs, _fs_squashfs, _fs_erofs, _fs_swap, _fs_iso, _fs_vfat)


def _gpt(buf: bytes, read: Reader, sector: int, size: int) -> PartitionTable | None:
    hdr = buf[sector : sector + 92]
    if hdr[:8] != b"EFI PART":
        return None
    first_lba, last_lba = struct.unpack_from("<QQ", hdr, 40)
    disk_guid = uuidlib.UUID(bytes_le=hdr[56:72])
    entries_lba, count, entry_size = struct.unpack_from("<QII", hdr, 72)
    if entry_size < 128 or count > 1024:
        return None
    start, length = entries_lba * sector, count * entry_size
    raw = buf[start : start + length] if start + length <= len(buf) else read(start, length)
    table = PartitionTable("gpt", str(disk_guid), [], first_lba * sector, (last_lba + 1) * sector)
    for i in range(count):
        e = raw[i * entry_size : (i + 1) * entry_size]
        if len(e) < 128 or e[:16] == b"\0" * 16:
            continue
        first, last, attrs = struct.unpack_from("<QQQ", e, 32)
        label = e[56:128].decode("utf-16-le", "replace").split("\0", 1)[0]
        table.partitions.append(
            PartitionEntry(
                number=i + 1,
                start=first * sector,
                size=(last - first + 1) * sector,
                type_uuid=str(uuidlib.UUID(bytes_le=e[:16])),
                uuid=str(uuidlib.UUID(bytes_le=e[16:32])),
                label=label,
                attributes=attrs,
            )
        )
    return table


def _mbr(buf: bytes, sector: int) -> PartitionTable | None:
    if buf[510:512] != b"\x55\xaa" or _fs_vfat(buf) is not None:
        return None
    entries = [buf[446 + 16 * i : 446 + 16 * (i + 1)] for i in range(4)]
    if any(e[4] == 0xEE for e in entries):
        return None  # protective MBR of a GPT disk whose header is gone
    if any(e[0] not in (0, 0x80) for e in entries):
        return None
    ptuuid = f"{struct.unpack_from('<I', buf, 440)[0]:08x}"
    table = PartitionTable("dos", ptuuid)
    for i, e in enumerate(entries):
        ptype = e[4]
        start, count = struct.unpack_from("<II", e, 8)
        if ptype == 0 or count == 0:
            continue
        part_uuid = f"{ptuuid}-{i + 1:02x}"
        table.partitions.append(PartitionEntry(i + 1, start * sector, count * sector, f"0x{ptype:x}", part_uuid))
    return table


def probe_reader(read: Reader, size: int, sector_size: int = 512) -> ProbeResult:
    """Probe through ``read(offset, length)``; ``size`` bounds the reads."""
    buf = read(0, min(PROBE_BYTES, size))
    buf = buf + b"\0" * (PROBE_BYTES - len(buf))
    result = ProbeResult()
    result.table = _gpt(buf, read, sector_size, size) or _mbr(buf, sector_size)
    if result.table is None or result.table.type == "dos":
        for fn in _FILESYSTEMS:
            fs = fn(buf)
            if fs is not None:
                result.filesystem = fs
                if fs.type != "vfat":
                    result.table = None  # a filesystem signature wins over a stray MBR
                break
    return result


def _device_size(fd: int) -> int:
    return os.lseek(fd, 0, os.SEEK_END)


def _sector_size(path: str) -> int:
    """The logical sector size of a block device (from sysfs), 512 for anything else."""
    real = os.path.realpath(path)
    if not real.startswith("/dev/"):
        return 512
    dev = sysfs.read_device(os.path.basename(real))
    return dev.sector_size if dev is not None and dev.sector_size else 512


def probe_path(path: str, sector_size: int | None = None) -> ProbeResult:
    """Probe a device node (or an image file). Blocking: call via ``anyio.to_thread``.
    The sector size (where the GPT header is) defaults to the device's logical one."""
    if sector_size is None:
        sector_size = _sector_size(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
        direct = True
    except OSError:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        direct = False
    try:
        size = _device_size(fd)

        def read(offset: int, length: int) -> bytes:
            if not direct:
                return os.pread(fd, length, offset)
            lo = offset // 4096 * 4096
            hi = -(-(offset + length) // 4096) * 4096
            hi = min(hi, -(-size // 4096) * 4096)
            if hi <= lo:
                return b""
            buf = mmap.mmap(-1, hi - lo)
            try:
                n = os.preadv(fd, [buf], lo)
                return bytes(buf[offset - lo : min(n, offset - lo + length)])
            finally:
                buf.close()

        return probe_reader(read, size, sector_size)
    finally:
        os.close(fd)
