"""A QEMU cluster through the CLI (slow): ``kosctl cluster create --provisioner qemu`` boots a
VM from the image, applies its config over the maintenance API, bootstraps etcd and waits
for health; then ``kosctl upgrade --image http://<gateway>:8099/v2.sqsh#sha256=...`` (the cluster's
image server) makes the node fetch a new rootfs, write BOOT-B and reboot into it;
``kosctl cluster destroy`` removes it."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kos.platform.image import install, meta
from kos.platform.provision.network import netns_exists
from kos.platform.provision.qemu import QemuProvisioner, VMSpec
from tests.vm.test_upgrade import variant

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(1200)]


def kosctl(tmp_path: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kos.apis.kosctl.main", "--kosconfig", str(tmp_path / "kosconfig"),
                           *args], capture_output=True, text=True, timeout=timeout)


def test_qemu_cluster_create_upgrade_destroy(image: Path, tmp_path: Path) -> None:
    roots = ["--state-root", str(tmp_path / "clusters")]
    name = "vmc"
    created = kosctl(tmp_path, "cluster", "create", "--provisioner", "qemu", "--name", name, "--controlplanes", "1",
                     "--workers", "0", "--cidr", "10.96.0.0/24", "--image-dir", str(image), "--wait-timeout", "600",
                     *roots)
    prov = QemuProvisioner(VMSpec(image), tmp_path / "clusters")
    try:
        assert created.returncode == 0, created.stdout[-3000:] + created.stderr[-3000:]
        assert f"cluster {name!r} is up" in created.stdout
        state = prov.load(name)
        node = state.nodes[0]

        v2 = variant(image, tmp_path, "v2", version="0.1.0+rpc")
        digest = hashlib.sha256(v2.read_bytes()).hexdigest()
        shutil.copyfile(v2, Path(state.dir) / "images" / "v2.sqsh")  # served by the cluster's image server
        url = f"{prov.image_url(state, 'v2.sqsh')}#sha256={digest}"
        up = kosctl(tmp_path, "--context", name, "-n", node.ip, "upgrade", "--image", url, timeout=120)
        assert up.returncode == 0, up.stdout + up.stderr
        prov.wait_console(node, r"kos 0\.1\.0\+rpc booted slot B", 400)
        prov.wait_console(node, r"boot confirmed, fallback slot dropped", 300)
        assert install.status(str(Path(node.dir) / "disk.raw")) == meta.BootState("B")
        # STATE and EPHEMERAL survive the upgrade: same config (mutual TLS), same etcd member
        assert '"source": "state", "event": "config loaded"' in prov.console(node)
        deadline = time.monotonic() + 180
        while True:  # etcd restarts from its data on EPHEMERAL after the reboot
            members = kosctl(tmp_path, "--context", name, "-n", node.ip, "etcd", "members", timeout=60)
            if members.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert members.returncode == 0 and "cp-1" in members.stdout, members.stdout + members.stderr
    finally:
        destroyed = kosctl(tmp_path, "cluster", "destroy", "--provisioner", "qemu", "--name", name, *roots)
        if prov.exists(name):
            prov.destroy(name)
    assert destroyed.returncode == 0, destroyed.stderr
    assert not netns_exists(f"kos-{name}")
    assert not (tmp_path / "clusters" / name).exists()
    assert os.path.exists(tmp_path / "kosconfig")


def test_three_control_planes_and_a_worker(image: Path, tmp_path: Path) -> None:
    roots = ["--state-root", str(tmp_path / "clusters")]
    name = "vm3"
    prov = QemuProvisioner(VMSpec(image), tmp_path / "clusters")
    try:
        created = kosctl(tmp_path, "cluster", "create", "--provisioner", "qemu", "--name", name, "--controlplanes",
                         "3", "--workers", "1", "--cidr", "10.97.0.0/24", "--image-dir", str(image),
                         "--wait-timeout", "900", *roots, timeout=1100)
        assert created.returncode == 0, created.stdout[-3000:] + created.stderr[-3000:]
        state = prov.load(name)
        members = kosctl(tmp_path, "--context", name, "-n", state.nodes[0].ip, "etcd", "members", timeout=60)
        assert members.returncode == 0, members.stdout + members.stderr
        for n in state.nodes:
            assert (n.ip in members.stdout) == (n.role == "controlplane"), members.stdout
        assert "every node to be a cluster member: OK (4 members)" in created.stdout
    finally:
        kosctl(tmp_path, "cluster", "destroy", "--provisioner", "qemu", "--name", name, *roots)
        if prov.exists(name):
            prov.destroy(name)
    assert not netns_exists(f"kos-{name}")
