"""machine.install.extraKernelArgs -> the GRUB environment block of a real kos disk image (read
back with GRUB's grub-editenv) -> BootArgsStatuses: written (next boot), active (the running
kernel has them), unsupported on namespace nodes and machines without a kos boot loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from kos.controllers.runtime.testing import assert_no_resource, assert_resources
from kos.controllers.system.bootargs import BootArgsController
from kos.platform.image import bootenv, bootloader
from kos.platform.image.install import InstallError
from kos.resources.runtime import BOOT_ARGS_STATUSES
from tests.image.test_bootenv import editenv_list
from tests.image.test_bootloader import make
from tests.system.helpers import machine_config, running, set_config

pytestmark = pytest.mark.anyio

ARGS = "install: {extraKernelArgs: [net.ifnames=0, 'sysctl.vm.swappiness=1']}"


@pytest.mark.skipif(not bootloader.GRUB_DIR.is_dir(), reason="needs grub-pc-bin (run .ci/setup)")
async def test_args_go_to_the_boot_entries_of_the_system_disk(tmp_path: Path) -> None:
    disk = make(tmp_path, "disk.raw")
    cmdline = ["console=ttyS0"]
    ctrl = BootArgsController(container_mode=False, find_disk=lambda: str(disk), cmdline=lambda: cmdline)
    async with running([ctrl]) as state:
        await set_config(state, machine_config(ARGS))
        got = await assert_resources(state, BOOT_ARGS_STATUSES, ["extra"], lambda r: r.spec.state == "written")
        assert got["extra"].spec.args == ["net.ifnames=0", "sysctl.vm.swappiness=1"]
        assert editenv_list(disk, tmp_path).strip() == "kos_extra_args=net.ifnames=0 sysctl.vm.swappiness=1"

        cmdline += ["net.ifnames=0", "sysctl.vm.swappiness=1"]  # after the reboot
        await set_config(state, machine_config(ARGS + "\nenv: {A: b}"))
        await assert_resources(state, BOOT_ARGS_STATUSES, ["extra"], lambda r: r.spec.state == "active")

        await set_config(state, machine_config("env: {A: b}"))
        await assert_no_resource(state, BOOT_ARGS_STATUSES.pointer("extra"))
        assert bootenv.read_vars(str(disk)) == {}

        await set_config(state, machine_config("install: {extraKernelArgs: ['a b']}"))  # refused: kept as is
        await set_config(state, machine_config(ARGS))
        await assert_resources(state, BOOT_ARGS_STATUSES, ["extra"], lambda r: r.spec.state == "active")
        assert bootenv.read_vars(str(disk)) == {"kos_extra_args": "net.ifnames=0 sysctl.vm.swappiness=1"}


async def test_without_a_kos_boot_loader_the_args_are_unsupported() -> None:
    def no_disk() -> str:
        raise InstallError("/run/kos-boot: no KOS_META (the node did not boot from a kos system disk)")

    for ctrl, why in ((BootArgsController(container_mode=True), "no boot loader of its own"),
                      (BootArgsController(container_mode=False, find_disk=no_disk), "did not boot from a kos")):
        async with running([ctrl]) as state:
            await set_config(state, machine_config(ARGS))
            got = await assert_resources(state, BOOT_ARGS_STATUSES, ["extra"],
                                         lambda r: r.spec.state == "unsupported")
            assert why in got["extra"].spec.reason


def test_arguments_grub_could_misread_are_refused_with_the_field() -> None:
    from kos.controllers.system.bootargs import _args

    assert _args(["quiet", "console=ttyS0,115200"]) == ["quiet", "console=ttyS0,115200"]
    for bad in ("a b", "x=$y", "a;b", "x\\y", ""):
        with pytest.raises(ValueError, match=r"machine\.install\.extraKernelArgs\[0\]"):
            _args([bad])
