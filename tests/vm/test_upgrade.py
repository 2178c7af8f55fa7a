"""A/B upgrade and rollback on a real VM (slow: several TCG boots each).

The new slot is written into the VM's disk with ``kos.platform.image.install.upgrade``, the
function the node's Upgrade installer runs, while the VM is stopped; the VM is then started
again and its initramfs, META and /sbin/init do the rest:

* a good image boots from BOOT-B, comes up, and its boot confirmer drops the fallback;
* a broken image (its /sbin/init exits: the kernel panics and reboots) gets its one try, then
  the initramfs rolls back to BOOT-A, which comes up again;
* an image whose machined hangs (the API never comes up) is rebooted by the boot confirmer
  after ``kos.confirm`` seconds and rolled back the same way.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kos.platform.image import install, meta, rootfs
from kos.platform.provision.namespaces import NodeRequest
from kos.platform.provision.qemu import QemuProvisioner

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(900)]

BROKEN_INIT = """#!/usr/bin/python3.11 -I
import sys
print("kos: deliberately broken image: init exits", flush=True)
sys.exit(3)
"""


HANGING_MACHINED = """import time
print("kos: deliberately hanging machined", flush=True)
while True:
    time.sleep(3600)
"""
MACHINED = "usr/lib/python3/dist-packages/kos/machined"


def variant(image: Path, tmp_path: Path, name: str, *, version: str = "", init: str = "",
            machined: str = "") -> Path:
    tree = tmp_path / name
    subprocess.run(["unsquashfs", "-q", "-n", "-d", str(tree), str(image / "rootfs.sqsh")], check=True)
    if version:
        (tree / "usr/lib/kos/version").write_text(version + "\n")
    if init:
        (tree / "usr/sbin/init").write_text(init)
    if machined:
        (tree / MACHINED / "main.py").write_text(machined)
        (tree / MACHINED / "__pycache__" / "main.cpython-311.pyc").unlink()  # hash-based pyc: never rechecked
    out = tmp_path / f"{name}.sqsh"
    rootfs.mksquashfs(tree, out)
    return out


def disk_state(provisioner: QemuProvisioner, name: str) -> meta.BootState:
    node = provisioner.load("up").node(name)
    return install.status(str(Path(node.dir) / "disk.raw"))


def boot_once(provisioner: QemuProvisioner) -> None:
    state = provisioner.create("up", [NodeRequest("n1", "controlplane", [])], cidr="10.94.0.0/24")
    node = state.nodes[0]
    provisioner.wait_console(node, r"API up at [\d.]+ s uptime", 240)
    provisioner.stop_vm(node)


def test_upgrade_to_a_good_image(provisioner: QemuProvisioner, image: Path, tmp_path: Path) -> None:
    v2 = variant(image, tmp_path, "v2", version="0.1.0+upgrade")
    boot_once(provisioner)
    state = provisioner.load("up")
    node = state.node("n1")
    disk = str(Path(node.dir) / "disk.raw")
    assert install.upgrade(disk, v2) == meta.BootState("B", "A", 1)
    provisioner.start_vm(state, node)
    provisioner.wait_console(node, r"kos 0\.1\.0\+upgrade booted slot B", 240)
    provisioner.wait_console(node, r"boot confirmed, fallback slot dropped", 240)
    assert install.status(disk) == meta.BootState("B")


def test_upgrade_to_a_broken_image_rolls_back(provisioner: QemuProvisioner, image: Path, tmp_path: Path) -> None:
    broken = variant(image, tmp_path, "broken", init=BROKEN_INIT)
    boot_once(provisioner)
    state = provisioner.load("up")
    node = state.node("n1")
    disk = str(Path(node.dir) / "disk.raw")
    install.upgrade(disk, broken)
    provisioner.start_vm(state, node)
    provisioner.wait_console(node, r"booting slot B", 240)
    provisioner.wait_console(node, r"deliberately broken image", 240)
    # the kernel panics (PID 1 exited), reboots after panic=3; the initramfs rolls back
    provisioner.wait_console(node, r"booting slot A(.|\n)*API up at", 300)
    assert install.status(disk) == meta.BootState("A")
    console = provisioner.console(node)
    assert console.index("deliberately broken image") < console.rindex("booting slot A")


def test_upgrade_to_a_hanging_image_rolls_back(image: Path, tmp_path: Path) -> None:
    from kos.platform.provision.qemu import VMSpec

    prov = QemuProvisioner(VMSpec(image, extra_cmdline="kos.confirm=20"), tmp_path / "clusters")
    try:
        hanging = variant(image, tmp_path, "hang", machined=HANGING_MACHINED)
        boot_once(prov)
        state = prov.load("up")
        node = state.node("n1")
        disk = str(Path(node.dir) / "disk.raw")
        install.upgrade(disk, hanging)
        prov.start_vm(state, node)
        prov.wait_console(node, r"deliberately hanging machined", 240)
        prov.wait_console(node, r"slot B unconfirmed: rebooting to roll back to slot A", 120)
        prov.wait_console(node, r"booting slot A(.|\n)*API up at", 300)
        assert install.status(disk) == meta.BootState("A")
    finally:
        for name in prov.names():
            prov.destroy(name)
