"""A/B upgrade and rollback on a real VM (slow: several TCG boots each).

The new slot is written into the VM's disk with ``kos.platform.image.install.upgrade``, the
function the node's Upgrade installer runs, while the VM is stopped; the VM is then started
again and its initramfs, META and /sbin/init do the rest:

* a good image boots from BOOT-B, comes up, and its boot confirmer drops the fallback;
* a broken image (its /sbin/init exits: the kernel panics and reboots) gets its one try, then
  the initramfs rolls back to BOOT-A, which comes up again.
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


def variant(image: Path, tmp_path: Path, name: str, *, version: str = "", init: str = "") -> Path:
    tree = tmp_path / name
    subprocess.run(["unsquashfs", "-q", "-n", "-d", str(tree), str(image / "rootfs.sqsh")], check=True)
    if version:
        (tree / "usr/lib/kos/version").write_text(version + "\n")
    if init:
        (tree / "usr/sbin/init").write_text(init)
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
