"""The disk boots by itself (slow): QEMU gets only the build's ``disk.raw`` (no -kernel or
-initrd): SeaBIOS runs the MBR, GRUB (``kos.platform.image.bootloader``) loads the kernel
and initramfs from the EFI partition, and the initramfs picks the slot from META. An offline
upgrade then makes the same menu entry boot BOOT-B, and a rollback BOOT-A again."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from kos.platform.image import install, meta
from kos.platform.provision.qemu import QEMU
from tests.vm.test_upgrade import variant

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(900)]


def boot_disk(disk: Path, console: Path, pattern: str, timeout: float = 240) -> str:
    """Boot ``disk`` alone until ``pattern`` is on the serial console; the console text."""
    console.unlink(missing_ok=True)
    proc = subprocess.Popen([QEMU, "-machine", "q35", "-accel", "tcg", "-cpu", "max", "-m", "1024", "-smp", "1",
                             "-display", "none", "-monitor", "none", "-nic", "none", "-no-reboot",
                             "-drive", f"file={disk},format=raw,if=virtio,cache=unsafe",
                             "-serial", f"file:{console}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while True:
            text = console.read_text(errors="replace") if console.exists() else ""
            if re.search(pattern, text):
                return text
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not on the console (qemu rc {proc.poll()}); last lines:\n"
                                     f"{text[-2000:]}")
            time.sleep(0.3)
    finally:
        proc.kill()
        proc.wait(10)


def test_disk_boots_with_grub_and_meta_picks_the_slot(image: Path, tmp_path: Path) -> None:
    disk = tmp_path / "disk.raw"
    subprocess.run(["cp", "--sparse=always", str(image / "disk.raw"), str(disk)], check=True)
    console = tmp_path / "console.log"
    t = time.monotonic()
    text = boot_disk(disk, console, r"API up at [\d.]+ s uptime")
    first = time.monotonic() - t
    assert "GRUB loading" in text and "kos: GRUB loading the kernel" in text
    assert re.search(r"booting slot A from /dev/vda2", text)

    v2 = variant(image, tmp_path, "v2", version="0.1.0+grub")
    assert install.upgrade(str(disk), v2) == meta.BootState("B", "A", 1)
    text = boot_disk(disk, console, r"boot confirmed, fallback slot dropped")
    assert "kos 0.1.0+grub booted slot B" in text
    assert install.status(str(disk)) == meta.BootState("B")

    assert install.rollback(str(disk)) == meta.BootState("A")
    text = boot_disk(disk, console, r"API up at [\d.]+ s uptime")
    assert re.search(r"booting slot A from /dev/vda2", text) and "0.1.0+grub" not in text
    shutil.rmtree(tmp_path / "v2", ignore_errors=True)
    print(f"first boot from disk to API: {first:.1f} s wall")
