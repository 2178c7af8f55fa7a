"""A BIOS GRUB on a kos system disk, so the raw disk boots by itself (no -kernel/-initrd).

``install_grub_bios(disk, vmlinuz, initramfs, cmdline)`` works on a disk image file that has
the kos layout (``layout.write_image``), offline and without root or loop devices:

* the EFI partition gets a FAT filesystem (``mkfs.vfat --invariant`` on a scratch file, files
  added with ``mcopy``, the image copied into the partition) holding ``/vmlinuz`` (a bzImage:
  GRUB's ``linux`` command needs the boot protocol header, not the ELF ``vmlinux``),
  ``/initramfs.zst`` and ``/grub/grub.cfg``;
* ``grub-mkimage -O i386-pc`` makes a core image with the modules it needs built in and its
  prefix ``(hd0,gpt1)/grub``; it is embedded in the gap between the GPT entries and the first
  partition (sectors 64..2047; the layout starts partitions at 1 MiB);
* the MBR gets GRUB's ``boot.img`` (its code only: the protective MBR's partition table and
  signature stay), patched as ``grub-bios-setup`` does: the sector of the core image, the
  boot drive taken from the BIOS, the drive check disabled; the core image's first sector
  (``diskboot.img``) gets the block list of the rest of it.

``/grub/grubenv`` is a GRUB environment block the menu loads (``load_env``): its
``kos_extra_args`` (``machine.install.extraKernelArgs``, written in place by the node,
``kos.platform.image.bootenv``) end every kernel command line.

The menu: ``kos`` (default) lets the initramfs choose the slot from META (active slot, boot
tries, automatic rollback: ``bootslot.sh``), so an upgrade or a rollback changes what boots
without touching the bootloader; ``kos slot A`` and ``kos slot B`` force a slot
(``kos.slot=``), for recovery. The kernel and initramfs are shared by both slots.

Needs ``grub-pc-bin`` (``/usr/lib/grub/i386-pc``), ``dosfstools`` and ``mtools``. Blocking.
"""

from __future__ import annotations

import os
import struct
import subprocess
import tempfile
from pathlib import Path

from kos.platform.image import bootenv, layout

GRUB_DIR = Path("/usr/lib/grub/i386-pc")
DEFAULT_CMDLINE = "console=tty0 console=ttyS0 panic=3"
CORE_SECTOR = 64  # after the primary GPT (sectors 0..33), before the first partition (2048)
MODULES = ("biosdisk", "part_gpt", "fat", "normal", "linux", "configfile", "echo", "test", "boot", "loadenv")
KERNEL_SECTOR_OFF = 0x5C  # boot.img: 64-bit LBA of the core image's first sector
BOOT_DRIVE_OFF = 0x64  # boot.img: 0xff = use the drive the BIOS passed in DL
DRIVE_CHECK_OFF = 0x66  # boot.img: a jmp replaced by two nops for hard disks
MBR_CODE_END = 0x1B8  # the disk signature and partition table start here
BLOCKLIST_OFF = 512 - 12  # diskboot.img: {u64 start, u16 len, u16 segment}


class BootloaderError(RuntimeError):
    pass


def grub_cfg(cmdline: str, timeout: int = 1) -> str:
    entries = [("kos", ""), ("kos slot A", " kos.slot=A"), ("kos slot B", " kos.slot=B")]
    out = [f"set timeout={timeout}", "set default=0", "serial --unit=0 --speed=115200",
           "terminal_input console serial", "terminal_output console serial",
           f"load_env {bootenv.EXTRA_ARGS}", ""]
    for title, extra in entries:
        out += [f"menuentry '{title}' {{", "  echo 'kos: GRUB loading the kernel'",
                f"  linux /vmlinuz {cmdline}{extra} ${{{bootenv.EXTRA_ARGS}}}", "  initrd /initramfs.zst", "}", ""]
    return "\n".join(out)


def _run(*cmd: str, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise BootloaderError(f"{cmd[0]}: {proc.stderr.strip() or proc.stdout.strip()}")


def core_image(out: Path) -> bytes:
    modules = list(MODULES)
    if not (GRUB_DIR / "serial.mod").exists():
        raise BootloaderError(f"{GRUB_DIR}: no GRUB for BIOS (apt-get install grub-pc-bin)")
    modules += ["serial", "terminal"] if (GRUB_DIR / "terminal.mod").exists() else ["serial"]
    _run("grub-mkimage", "-O", "i386-pc", "-d", str(GRUB_DIR), "-o", str(out), "-p", "(hd0,gpt1)/grub", *modules)
    return out.read_bytes()


def fat_image(path: Path, size: int, files: dict[str, Path | bytes]) -> None:
    """A FAT filesystem image of ``size`` bytes with ``files`` (path in the image -> source);
    fixed volume id and file times, so the same inputs give the same bytes."""
    path.unlink(missing_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)
    _run("mkfs.vfat", "--invariant", "-i", "4b4f5331", "-n", "KOS-EFI", str(path))
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "SOURCE_DATE_EPOCH": "315532800"}
    with tempfile.TemporaryDirectory() as tmp:
        dirs = sorted({str(Path(name).parent) for name in files if str(Path(name).parent) not in ("/", ".")})
        for d in dirs:
            _run("mmd", "-i", str(path), f"::{d}", env=env)
        for name, src in sorted(files.items()):
            if isinstance(src, bytes):
                p = Path(tmp) / Path(name).name
                p.write_bytes(src)
                src = p
            staged = Path(tmp) / ("staged-" + Path(name).name)
            staged.write_bytes(src.read_bytes())
            os.utime(staged, (315532800, 315532800))  # 1980-01-01, the first FAT time
            _run("mcopy", "-m", "-i", str(path), str(staged), f"::{name}", env=env)


def install_grub_bios(disk: Path, vmlinuz: Path, initramfs: Path, cmdline: str, *, timeout: int = 1) -> None:
    with open(disk, "rb") as f:
        mbr = bytearray(f.read(512))
    if mbr[510:512] != b"\x55\xaa" or mbr[0x1C2] != 0xEE:
        raise BootloaderError(f"{disk}: no protective MBR (expected a GPT disk with the kos layout)")
    parts = layout.plan(disk.stat().st_size)
    efi = layout.find(parts, "EFI")
    with tempfile.TemporaryDirectory() as tmp:
        core = core_image(Path(tmp) / "core.img")
        room = efi.start // layout.SECTOR - CORE_SECTOR
        sectors = -(-len(core) // layout.SECTOR)
        if sectors > room:
            raise BootloaderError(f"GRUB core image of {sectors} sectors does not fit the {room} before EFI")
        fat = Path(tmp) / "efi.fat"
        fat_image(fat, efi.size, {"/vmlinuz": vmlinuz, "/initramfs.zst": initramfs,
                                  "/grub/grub.cfg": grub_cfg(cmdline, timeout).encode(),
                                  "/grub/grubenv": bootenv.empty()})
        fat_bytes = fat.read_bytes()
    boot = bytearray((GRUB_DIR / "boot.img").read_bytes())
    struct.pack_into("<Q", boot, KERNEL_SECTOR_OFF, CORE_SECTOR)
    boot[BOOT_DRIVE_OFF] = 0xFF
    boot[DRIVE_CHECK_OFF:DRIVE_CHECK_OFF + 2] = b"\x90\x90"
    core_b = bytearray(core.ljust(sectors * layout.SECTOR, b"\0"))
    segment = struct.unpack_from("<QHH", core_b, BLOCKLIST_OFF)[2]
    struct.pack_into("<QHH", core_b, BLOCKLIST_OFF, CORE_SECTOR + 1, sectors - 1, segment or 0x820)
    fd = os.open(disk, os.O_RDWR | os.O_CLOEXEC)
    try:
        mbr[:MBR_CODE_END] = boot[:MBR_CODE_END]
        os.pwrite(fd, bytes(core_b), CORE_SECTOR * layout.SECTOR)
        for off in range(0, len(fat_bytes), 1 << 16):  # the FAT's empty blocks stay holes
            block = fat_bytes[off:off + (1 << 16)]
            if block.count(0) != len(block):
                os.pwrite(fd, block, efi.start + off)
        os.pwrite(fd, bytes(mbr), 0)
        os.fsync(fd)
    finally:
        os.close(fd)
