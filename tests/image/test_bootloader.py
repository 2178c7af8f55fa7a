"""GRUB for BIOS on a disk image file (no VM: ``tests/vm/test_bootloader.py`` boots it): the
protective MBR keeps its partition table, GRUB's boot code points at the embedded core image,
whose block list covers the rest of it; the EFI partition is a FAT holding the kernel, the
initramfs and the menu; the GPT stays valid; the same inputs give the same bytes."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from kos.platform.image import bootloader, layout
from tests.image.test_install import MiB, squash

pytestmark = pytest.mark.skipif(not bootloader.GRUB_DIR.is_dir(), reason="needs grub-pc-bin (run .ci/setup)")


def make(tmp_path: Path, name: str) -> Path:
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"kernel" * 1000)
    initrd = tmp_path / "initramfs.zst"
    initrd.write_bytes(b"initrd" * 1000)
    disk = tmp_path / name
    layout.write_image(disk, squash(tmp_path, "v1", "kos v1\n"), 1024 * MiB)
    bootloader.install_grub_bios(disk, kernel, initrd, "console=ttyS0 panic=3")
    return disk


def test_grub_on_a_disk_image(tmp_path: Path) -> None:
    disk = make(tmp_path, "disk.raw")
    raw = disk.read_bytes()[: 2048 * 512]
    mbr = raw[:512]
    assert mbr[510:] == b"\x55\xaa" and mbr[0x1C2] == 0xEE  # still a protective MBR
    boot = (bootloader.GRUB_DIR / "boot.img").read_bytes()
    assert mbr[:0x5C] == boot[:0x5C]
    assert struct.unpack_from("<Q", mbr, 0x5C)[0] == bootloader.CORE_SECTOR
    core = raw[bootloader.CORE_SECTOR * 512:]
    assert core[:0x1F4] == (bootloader.GRUB_DIR / "diskboot.img").read_bytes()[:0x1F4]
    start, length, segment = struct.unpack_from("<QHH", core, 512 - 12)
    assert (start, segment) == (bootloader.CORE_SECTOR + 1, 0x820) and 100 < length < 2048 - start
    verify = subprocess.run(["sgdisk", "-v", str(disk)], capture_output=True, text=True)
    assert "No problems found" in verify.stdout, verify.stdout

    listing = subprocess.run(["mdir", "-b", "-/", "-i", f"{disk}@@1M", "::"], capture_output=True, text=True,
                             check=True).stdout.split()
    assert sorted(listing) == ["::/grub/", "::/grub/grub.cfg", "::/grub/grubenv", "::/initramfs.zst", "::/vmlinuz"]
    cfg = subprocess.run(["mtype", "-i", f"{disk}@@1M", "::/grub/grub.cfg"], capture_output=True, text=True,
                         check=True).stdout
    assert "menuentry 'kos' {" in cfg and "linux /vmlinuz console=ttyS0 panic=3 ${kos_extra_args}\n" in cfg
    assert "linux /vmlinuz console=ttyS0 panic=3 kos.slot=B ${kos_extra_args}" in cfg and "set default=0" in cfg
    assert "load_env kos_extra_args" in cfg
    kernel = subprocess.run(["mtype", "-i", f"{disk}@@1M", "::/vmlinuz"], capture_output=True, check=True).stdout
    assert kernel == b"kernel" * 1000

    (tmp_path / "again").mkdir()
    again = make(tmp_path / "again", "disk.raw")
    assert again.read_bytes()[: 17 * MiB] == disk.read_bytes()[: 17 * MiB]  # MBR, GPT, core, EFI


def test_a_disk_without_the_kos_layout_is_refused(tmp_path: Path) -> None:
    disk = tmp_path / "blank.raw"
    disk.write_bytes(b"\0" * (1024 * MiB // 1024))
    with open(disk, "r+b") as f:
        f.truncate(1024 * MiB)
    with pytest.raises(bootloader.BootloaderError, match="no protective MBR"):
        bootloader.install_grub_bios(disk, disk, disk, "")
