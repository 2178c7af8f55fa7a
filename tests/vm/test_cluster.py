"""A 3-node QEMU cluster through the CLI (slow): ``kosctl cluster create --provisioner qemu``
with three control planes and a worker forms etcd of three; ``kosctl cluster destroy`` removes
it. The 1-node create/upgrade/rollback test runs in the default suite: ``test_lifecycle.py``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kos.platform.provision.network import netns_exists
from kos.platform.provision.qemu import QemuProvisioner, VMSpec

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(1200)]


def kosctl(tmp_path: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kos.apis.kosctl.main", "--kosconfig", str(tmp_path / "kosconfig"),
                           *args], capture_output=True, text=True, timeout=timeout)


def test_three_control_planes_and_a_worker(image: Path, tmp_path: Path) -> None:
    roots = ["--state-root", str(tmp_path / "clusters")]
    name = "vm3"
    prov = QemuProvisioner(VMSpec(image), tmp_path / "clusters")
    try:
        # node network outside the default pod (10.244.0.0/16) and service (10.96.0.0/12) subnets
        created = kosctl(tmp_path, "cluster", "create", "--provisioner", "qemu", "--name", name, "--controlplanes",
                         "3", "--workers", "1", "--cidr", "10.197.0.0/24", "--image-dir", str(image),
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
