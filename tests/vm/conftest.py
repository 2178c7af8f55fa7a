"""VM test fixtures: the kos image built once per session (cached layers: seconds when only
Python changed) and a QEMU provisioner whose clusters are destroyed after each test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kos.platform.provision.qemu import QEMU, QemuProvisioner, VMSpec

REPO = Path(__file__).resolve().parents[2]


def _missing_tools() -> list[str]:
    return [t for t in (QEMU, "mksquashfs", "apt-get", "dpkg-deb", "modinfo", "zstd") if shutil.which(t) is None]


def _build_image(out_name: str, *flags: str) -> Path:
    if os.geteuid() != 0:
        pytest.skip("VM tests need root (network namespaces, tap devices)")
    missing = _missing_tools()
    if missing:
        pytest.skip(f"VM tests need {', '.join(missing)} (run .ci/setup)")
    cache = Path(os.environ.get("KOS_IMAGE_CACHE", REPO / "build" / "kos-image"))
    out = cache / out_name
    proc = subprocess.run([str(REPO / "rootfs-build" / "build"), "--cache", str(cache), "--out", str(out), *flags],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"image build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    sys.stderr.write(proc.stdout)
    assert json.loads((out / "build.json").read_text())["sizes"]["rootfs.sqsh"] > 0
    return out


@pytest.fixture(scope="session")
def image() -> Path:
    """The image directory (vmlinux, initramfs.zst, rootfs.sqsh, disk.raw, build.json) without
    Kubernetes: the tests of boot, install, upgrade and rollback are not about Kubernetes, and a
    1-vCPU TCG VM cannot bring a control plane up within their waits."""
    return _build_image("out", "--no-k8s")


@pytest.fixture(scope="session")
def k8s_image() -> Path:
    """The image with the kubelet and CNI plugins from the Kubernetes build cache."""
    return _build_image("out-k8s")


@pytest.fixture
def provisioner(image: Path, tmp_path: Path) -> Iterator[QemuProvisioner]:
    prov = QemuProvisioner(VMSpec(image, cpus=1, memory=1024, disk=2048), tmp_path / "clusters")
    yield prov
    for name in prov.names():
        prov.destroy(name)
