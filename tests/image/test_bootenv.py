"""machine.install.extraKernelArgs reach GRUB through its environment block on the system disk:
written in place on a real disk image (the FAT stays valid, GRUB's own grub-editenv reads the
variable back, the menu loads it and appends it to every kernel command line)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kos.platform.image import bootenv, bootloader
from tests.image.test_bootloader import make

pytestmark = pytest.mark.skipif(not bootloader.GRUB_DIR.is_dir(), reason="needs grub-pc-bin (run .ci/setup)")


def test_blocks_round_trip_and_refuse_what_grub_could_not_read() -> None:
    block = bootenv.encode({"kos_extra_args": "console=ttyS1 quiet"})
    assert len(block) == 1024 and bootenv.decode(block) == {"kos_extra_args": "console=ttyS1 quiet"}
    assert bootenv.decode(bootenv.empty()) == {}
    assert bootenv.decode(b"# GRUB Environment Block\nx" + b"#" * 998) is None
    with pytest.raises(bootenv.BootEnvError, match="holds 1024"):
        bootenv.encode({"kos_extra_args": "x" * 1100})
    with pytest.raises(bootenv.BootEnvError, match="one line"):
        bootenv.encode({"kos_extra_args": "a\nb"})


def editenv_list(disk: Path, tmp_path: Path) -> str:
    out = tmp_path / "grubenv"
    out.unlink(missing_ok=True)
    subprocess.run(["mcopy", "-n", "-i", f"{disk}@@1M", "::/grub/grubenv", str(out)], check=True,
                   env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"})
    return subprocess.run(["grub-editenv", str(out), "list"], capture_output=True, text=True, check=True).stdout


def test_extra_args_are_written_in_place_on_the_system_disk(tmp_path: Path) -> None:
    disk = make(tmp_path, "disk.raw")
    assert bootenv.read_vars(str(disk)) == {}
    cfg = subprocess.run(["mtype", "-i", f"{disk}@@1M", "::/grub/grub.cfg"], capture_output=True, text=True,
                         check=True).stdout
    assert "load_env kos_extra_args" in cfg and "panic=3 ${kos_extra_args}" in cfg
    before = disk.read_bytes()

    assert bootenv.write_vars(str(disk), {"kos_extra_args": "net.ifnames=0 sysctl.vm.swappiness=1"})
    assert editenv_list(disk, tmp_path).strip() == "kos_extra_args=net.ifnames=0 sysctl.vm.swappiness=1"
    assert not bootenv.write_vars(str(disk), {"kos_extra_args": "net.ifnames=0 sysctl.vm.swappiness=1"})
    after = disk.read_bytes()
    changed = [i for i in range(0, len(after), 512) if after[i:i + 512] != before[i:i + 512]]
    block_at = before.find(bootenv.HEADER, 1 << 20)
    assert changed and all(block_at <= i < block_at + 1024 for i in changed)  # only the block's bytes
    # the FAT is intact: every file reads back, fsck finds nothing
    listing = subprocess.run(["mdir", "-b", "-/", "-i", f"{disk}@@1M", "::"], capture_output=True, text=True,
                             check=True).stdout.split()
    assert "::/grub/grubenv" in listing and "::/vmlinuz" in listing
    efi = tmp_path / "efi.img"
    efi.write_bytes(after[1 << 20:17 << 20])
    fsck = subprocess.run(["fsck.vfat", "-n", str(efi)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr

    assert bootenv.write_vars(str(disk), {})
    assert editenv_list(disk, tmp_path).strip() == ""
