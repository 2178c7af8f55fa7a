"""machine.install.extraKernelArgs on a booted disk (slow): the arguments written into the
system disk's GRUB environment block (``kos.platform.image.bootenv``, what BootArgsController
does on a node) are on the kernel command line of the next boot."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kos.platform.image import bootenv
from tests.vm.test_bootloader import boot_disk

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(600)]


def test_extra_kernel_args_reach_the_kernel(image: Path, tmp_path: Path) -> None:
    disk = tmp_path / "disk.raw"
    subprocess.run(["cp", "--sparse=always", str(image / "disk.raw"), str(disk)], check=True)
    assert bootenv.write_vars(str(disk), {bootenv.EXTRA_ARGS: "kos.test=extra-args-1 loglevel=6"})
    text = boot_disk(disk, tmp_path / "console.log", r"[Cc]ommand line: [^\n]*\n")
    line = next(ln for ln in text.splitlines() if "ommand line:" in ln)
    assert "kos.test=extra-args-1" in line and "loglevel=6" in line, line
    assert "console=ttyS0" in line  # the image's own arguments stay
