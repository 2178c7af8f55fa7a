"""The kos system disk layout and the raw disk image writer.

GPT, 1 MiB aligned, in this order: EFI (reserved for a bootloader), BOOT-A and BOOT-B (the
two rootfs slots: a squashfs image written raw into the partition), META (1 MiB, the
key/value store of ``meta``), STATE (100 MiB) and EPHEMERAL (the rest). The build's disk
image leaves STATE and EPHEMERAL unformatted (machined's block controllers find them by label
and format them once a config selects the disk); ``format_volumes`` makes them xfs already,
as an installer does (the QEMU provisioner's disks). The image file is sparse.
"""

from __future__ import annotations

import os
import subprocess
import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path

from kos.platform.block import gpt
from kos.platform.image import meta

MiB = 1 << 20
SECTOR = 512
EFI_TYPE = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
LINUX_FS_TYPE = "0fc63daf-8483-4772-8e79-3d69d8477de4"
SLOT_LABELS = {"A": "BOOT-A", "B": "BOOT-B"}


@dataclass(frozen=True)
class Part:
    number: int
    label: str
    start: int  # bytes
    size: int  # bytes
    type_uuid: str

    @property
    def end(self) -> int:
        return self.start + self.size


def plan(disk_size: int, *, efi: int = 16 * MiB, boot: int = 256 * MiB, state: int = 100 * MiB,
         ephemeral_min: int = 100 * MiB) -> list[Part]:
    """The partitions of a system disk of ``disk_size`` bytes (ValueError if too small)."""
    for name, v in (("efi", efi), ("boot", boot), ("state", state)):
        if v <= 0 or v % MiB:
            raise ValueError(f"{name} size {v}: expected a positive multiple of 1 MiB")
    first, last = gpt.usable_lbas(disk_size, SECTOR)
    pos = -(-first * SECTOR // MiB) * MiB
    end_usable = (last + 1) * SECTOR // MiB * MiB
    parts: list[Part] = []
    sizes = [("EFI", efi, EFI_TYPE), ("BOOT-A", boot, LINUX_FS_TYPE), ("BOOT-B", boot, LINUX_FS_TYPE),
             ("META", MiB, LINUX_FS_TYPE), ("STATE", state, LINUX_FS_TYPE)]
    for i, (label, size, t) in enumerate(sizes, start=1):
        parts.append(Part(i, label, pos, size, t))
        pos += size
    rest = end_usable - pos
    if rest < ephemeral_min:
        need = pos + ephemeral_min + 2 * MiB
        raise ValueError(f"disk size {disk_size // MiB} MiB: too small for the kos layout, expected at least "
                         f"{-(-need // MiB)} MiB")
    parts.append(Part(len(parts) + 1, "EPHEMERAL", pos, rest, LINUX_FS_TYPE))
    return parts


def find(parts: list[Part], label: str) -> Part:
    for p in parts:
        if p.label == label:
            return p
    raise KeyError(f"no partition labelled {label}")


def _format_xfs(fd: int, part: Part, scratch: Path) -> None:
    """mkfs.xfs on a sparse scratch file of the partition's size, then its data extents
    copied into the image at the partition's offset (holes stay holes)."""
    scratch.unlink(missing_ok=True)
    try:
        with open(scratch, "wb") as f:
            f.truncate(part.size)
        # mkfs.xfs refuses filesystems under 300 MB unless it believes it runs under fstests
        env = {**os.environ, **({"TEST_DIR": "1", "TEST_DEV": "1", "QA_CHECK_FS": "1"} if part.size < 300 * MiB
                                else {})}
        proc = subprocess.run(["mkfs.xfs", "-q", "-f", "-K", "-L", part.label, str(scratch)], capture_output=True,
                              text=True, env=env)
        if proc.returncode != 0:
            raise ValueError(f"mkfs.xfs for {part.label}: {proc.stderr.strip()}")
        src = os.open(scratch, os.O_RDONLY)
        try:
            pos = 0
            while True:
                try:
                    data = os.lseek(src, pos, os.SEEK_DATA)
                except OSError:  # ENXIO: no data after pos
                    break
                hole = os.lseek(src, data, os.SEEK_HOLE)
                while data < hole:
                    chunk = os.pread(src, min(4 * MiB, hole - data), data)
                    os.pwrite(fd, chunk, part.start + data)
                    data += len(chunk)
                pos = hole
        finally:
            os.close(src)
    finally:
        scratch.unlink(missing_ok=True)


def _uuid(seed: str) -> str:
    """Stable partition/disk GUIDs: the same build gives the same image bytes."""
    return str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"kos-image:{seed}"))


def write_image(path: Path, rootfs: Path, disk_size: int, *, seed: str = "kos",
                format_volumes: bool = False) -> list[Part]:
    """Create the sparse raw disk image ``path``: GPT, the rootfs in BOOT-A, META with
    ``active=A``; with ``format_volumes`` also xfs on STATE and EPHEMERAL (labelled like
    the block controllers do; an installed system), which needs ``mkfs.xfs``. Blocking."""
    parts = plan(disk_size)
    boot_a = find(parts, "BOOT-A")
    rootfs_size = rootfs.stat().st_size
    if rootfs_size > boot_a.size:
        raise ValueError(f"rootfs {rootfs} is {rootfs_size // MiB} MiB, BOOT-A holds {boot_a.size // MiB} MiB")
    entries = [gpt.GptEntry(p.number, p.start // SECTOR, p.end // SECTOR - 1, p.type_uuid,
                            _uuid(f"{seed}:{p.label}"), p.label) for p in parts]
    writes = gpt.build(disk_size, _uuid(f"{seed}:disk"), entries, SECTOR)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.truncate(disk_size)
        for offset, data in sorted(writes.items()):
            f.seek(offset)
            f.write(data)
        f.seek(boot_a.start)
        with open(rootfs, "rb") as src:
            while chunk := src.read(4 * MiB):
                f.write(chunk)
        f.seek(find(parts, "META").start)
        f.write(meta.encode(meta.BootState().to_meta({})))
        f.flush()
        if format_volumes:
            for label in ("STATE", "EPHEMERAL"):
                _format_xfs(f.fileno(), find(parts, label), path.with_name(f".{path.name}.{label}.tmp"))
        os.fsync(f.fileno())
    tmp.replace(path)
    return parts
