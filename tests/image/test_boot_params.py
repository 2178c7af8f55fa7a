"""Pure pieces of the boot prelude and the QEMU provisioner: kernel command line parsing,
the QEMU command, VM spec validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from kos.platform.image import boot
from kos.platform.provision.namespaces import NodeState, ProvisionError
from kos.platform.provision.qemu import VMSpec, kernel_cmdline, mac_address, qemu_command


def test_parse_cmdline() -> None:
    p = boot.parse_cmdline("console=ttyS0 kos.ip=10.5.0.2/24 kos.gw=10.5.0.1 kos.hostname=cp-1 kos.confirm=20 quiet")
    assert p == boot.BootParams("10.5.0.2/24", "10.5.0.1", "cp-1", "", "0.0.0.0:50000", 20.0)
    assert boot.parse_cmdline("") == boot.BootParams()


@pytest.mark.parametrize(("cmdline", "message"), [
    ("kos.ip=10.5.0.2", "kos.ip=10.5.0.2: expected an address with prefix"),
    ("kos.ip=banana/24", "kos.ip=banana/24: expected an address with prefix"),
    ("kos.gw=10.5.0.300", "kos.gw=10.5.0.300: expected an IP address"),
    ("kos.hostname=a_b", "kos.hostname=a_b: expected a DNS label"),
    ("kos.confirm=soon", "kos.confirm=soon: expected seconds"),
])
def test_bad_cmdline_names_the_parameter(cmdline: str, message: str) -> None:
    with pytest.raises(boot.BootError, match=message):
        boot.parse_cmdline(cmdline)


def test_read_boot_info(tmp_path: Path) -> None:
    f = tmp_path / "kos-boot"
    f.write_text("KOS_SLOT=B\nKOS_META=/dev/vda4\n")
    assert boot.read_boot_info(f) == {"KOS_SLOT": "B", "KOS_META": "/dev/vda4"}
    assert boot.read_boot_info(tmp_path / "missing") == {}


def test_qemu_command(tmp_path: Path) -> None:
    spec = VMSpec(tmp_path, cpus=2, memory=1536, disk=4096, extra_cmdline="kos.confirm=20")
    node = NodeState(name="cp-1", role="controlplane", address="10.5.0.2/24", netns="kos-c", dir=str(tmp_path / "n"))
    cmd = qemu_command(spec, node, "tap0", "10.5.0.1", "c", config=tmp_path / "cfg.yaml")
    joined = " ".join(cmd)
    assert cmd[0] == "qemu-system-x86_64" and "-accel tcg -cpu max" in joined and "-smp 2 -m 1536" in joined
    assert "ifname=tap0,script=no" in joined and f"mac={mac_address('c', 'cp-1')}" in joined
    assert f"name=opt/kos.config,file={tmp_path / 'cfg.yaml'}" in joined
    assert cmd[cmd.index("-append") + 1] == kernel_cmdline(node, "10.5.0.1", "kos.confirm=20")
    assert "kos.ip=10.5.0.2/24 kos.gw=10.5.0.1 kos.hostname=cp-1 kos.confirm=20" in kernel_cmdline(
        node, "10.5.0.1", "kos.confirm=20")
    assert mac_address("c", "cp-1") != mac_address("c", "cp-2")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"cpus": 0}, "--cpus 0: expected 1 to 16"),
    ({"memory": 256}, "--memory 256: expected at least 512"),
    ({"disk": 300}, "--disk 300: disk size 300 MiB: too small for the kos layout"),
])
def test_vm_spec_errors(tmp_path: Path, kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ProvisionError, match=message):
        VMSpec(tmp_path, **kwargs).validate()  # type: ignore[arg-type]


def test_vm_spec_needs_the_image(tmp_path: Path) -> None:
    (tmp_path / "vmlinux").write_bytes(b"")
    with pytest.raises(ProvisionError, match=r"missing initramfs\.zst, rootfs\.sqsh \(build it with rootfs-build"):
        VMSpec(tmp_path).validate()
