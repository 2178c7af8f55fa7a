"""A GPT writer: protective MBR, primary and backup headers and entry arrays, with CRC32s
(UEFI spec layout: 128 entries of 128 bytes).

``sgdisk`` sleeps a second after every change waiting for the kernel to re-read the table
(which this kernel cannot do for GPT anyway), so kos writes the table itself and tells the
kernel with ``partx``. Writes are read-modify-write with ``O_DIRECT`` over the 4 KiB blocks
holding the table structures, so no byte outside them changes and no stale page cache is
written back. Reading goes through ``probe``.
"""

from __future__ import annotations

import mmap
import os
import struct
import uuid as uuidlib
import zlib
from dataclasses import dataclass

ENTRY_COUNT = 128
ENTRY_SIZE = 128
BLOCK = 4096


@dataclass(frozen=True)
class GptEntry:
    number: int  # 1-based slot
    first_lba: int
    last_lba: int  # inclusive
    type_uuid: str
    uuid: str
    label: str = ""
    attributes: int = 0

    def pack(self) -> bytes:
        name = self.label.encode("utf-16-le")
        if len(name) > 72:
            raise ValueError(f"partition label {self.label!r}: at most 36 UTF-16 code units")
        return (
            uuidlib.UUID(self.type_uuid).bytes_le
            + uuidlib.UUID(self.uuid).bytes_le
            + struct.pack("<QQQ", self.first_lba, self.last_lba, self.attributes)
            + name.ljust(72, b"\0")
        )


def _entries_sectors(sector: int) -> int:
    return -(-ENTRY_COUNT * ENTRY_SIZE // sector)


def usable_lbas(disk_size: int, sector: int = 512) -> tuple[int, int]:
    """(first, last) usable LBA of a GPT on a disk of ``disk_size`` bytes."""
    last = disk_size // sector - 1
    n = _entries_sectors(sector)
    return 2 + n, last - 1 - n


def _header(
    disk_guid: str, my_lba: int, alt_lba: int, first: int, last: int, entries_lba: int, entries_crc: int
) -> bytes:
    fields = [
        b"EFI PART",
        struct.pack("<IIII", 0x00010000, 92, 0, 0),
        struct.pack("<QQQQ", my_lba, alt_lba, first, last),
        uuidlib.UUID(disk_guid).bytes_le,
        struct.pack("<QIII", entries_lba, ENTRY_COUNT, ENTRY_SIZE, entries_crc),
    ]
    raw = b"".join(fields)
    crc = zlib.crc32(raw)
    return raw[:16] + struct.pack("<I", crc) + raw[20:]


def _protective_mbr(total_sectors: int) -> bytes:
    entry = bytes([0x00, 0x00, 0x02, 0x00, 0xEE, 0xFF, 0xFF, 0xFF]) + struct.pack(
        "<II", 1, min(total_sectors - 1, 0xFFFFFFFF)
    )
    return b"\0" * 446 + entry + b"\0" * 48 + b"\x55\xaa"


def build(disk_size: int, disk_guid: str, entries: list[GptEntry], sector: int = 512) -> dict[int, bytes]:
    """Byte offset -> bytes to write for a complete table (MBR, both headers, both arrays)."""
    total = disk_size // sector
    first, last_usable = usable_lbas(disk_size, sector)
    n = _entries_sectors(sector)
    array = bytearray(ENTRY_COUNT * ENTRY_SIZE)
    for e in entries:
        if not 1 <= e.number <= ENTRY_COUNT:
            raise ValueError(f"partition number {e.number}: expected 1..{ENTRY_COUNT}")
        if not first <= e.first_lba <= e.last_lba <= last_usable:
            raise ValueError(
                f"partition {e.number} ({e.label}): LBAs {e.first_lba}..{e.last_lba} outside the usable "
                f"{first}..{last_usable}"
            )
        array[(e.number - 1) * ENTRY_SIZE : e.number * ENTRY_SIZE] = e.pack()
    for i, a in enumerate(entries):
        for b in entries[i + 1 :]:
            if a.number == b.number or (a.first_lba <= b.last_lba and b.first_lba <= a.last_lba):
                raise ValueError(f"partitions {a.number} and {b.number} overlap or share a number")
    crc = zlib.crc32(array)
    last = total - 1
    backup_entries = last - n
    padded_array = bytes(array).ljust(n * sector, b"\0")
    return {
        0: _protective_mbr(total),
        sector: _header(disk_guid, 1, last, first, last_usable, 2, crc).ljust(sector, b"\0"),
        2 * sector: padded_array,
        backup_entries * sector: padded_array,
        last * sector: _header(disk_guid, last, 1, first, last_usable, backup_entries, crc).ljust(sector, b"\0"),
    }


def write(path: str, writes: dict[int, bytes]) -> None:
    """Apply ``writes`` to the device: O_DIRECT read-modify-write of whole 4 KiB blocks,
    then fsync. Blocking."""
    fd = os.open(path, os.O_RDWR | os.O_DIRECT | os.O_CLOEXEC)
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
        for offset, data in sorted(writes.items()):
            lo = offset // BLOCK * BLOCK
            hi = min(-(-(offset + len(data)) // BLOCK) * BLOCK, size)
            buf = mmap.mmap(-1, hi - lo)
            try:
                if os.preadv(fd, [buf], lo) != hi - lo:
                    raise OSError(f"{path}: short read at {lo}")
                buf[offset - lo : offset - lo + len(data)] = data
                if os.pwritev(fd, [buf], lo) != hi - lo:
                    raise OSError(f"{path}: short write at {lo}")
            finally:
                buf.close()
        os.fsync(fd)
    finally:
        os.close(fd)
