"""The cluster's registry: a real docker-registry inside the cluster's network namespace, on
its gateway address, filled with built image archives and stopped again; and the mirrors
patch every node gets."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from kos.platform.image import k8s
from kos.platform.image.registry import Client, RegistryError
from kos.platform.network.netns import run_in_netns
from kos.platform.provision.registry import MIRRORED, ClusterRegistry, mirrors_patch
from tests.network.netns import needs_netns, netns, nsenter

SMALL = ("docker.io/library/busybox:1.35.0", "registry.k8s.io/pause:3.10")


def test_the_mirrors_patch_points_every_upstream_registry_at_the_cluster_registry() -> None:
    patch = mirrors_patch("10.5.0.1:5000")
    mirrors = patch["machine"]["registries"]["mirrors"]
    assert set(mirrors) == set(MIRRORED) == {"registry.k8s.io", "ghcr.io", "docker.io"}
    assert all(m == {"endpoints": ["http://10.5.0.1:5000"]} for m in mirrors.values())


@needs_netns
@pytest.mark.skipif(shutil.which("docker-registry") is None, reason="needs Debian's docker-registry (.ci/setup)")
def test_the_registry_runs_in_the_cluster_netns_holds_the_pushed_images_and_stops(tmp_path: Path) -> None:
    archives = k8s.image_archives()
    if not all(ref in archives for ref in SMALL):
        pytest.skip("needs the built images (rootfs-build/k8s/build)")
    with netns("reg") as path:
        nsenter(path, "ip", "link", "set", "lo", "up")
        nsenter(path, "ip", "addr", "add", "10.99.0.1/32", "dev", "lo")
        reg = ClusterRegistry(tmp_path, Path(path).name, "10.99.0.1")
        pid = reg.start()
        try:
            assert reg.pid() == pid
            assert sorted(reg.push([archives[r] for r in SMALL])) == ["library/busybox:1.35.0", "pause:3.10"]
            client = Client(reg.endpoint, timeout=5)
            media, data = run_in_netns(path, lambda: client.get_manifest("library/busybox", "1.35.0"))
            assert b"layers" in data and media
            # only inside the cluster's network namespace: the host has no such address
            assert not client.ping()
            with pytest.raises(RegistryError):
                client.get_manifest("pause", "3.10")
        finally:
            assert reg.stop()
        assert reg.pid() is None
        # stopped means gone: a zombie's /proc entry stays until its parent has reaped it
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}/cmdline").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{pid}/cmdline").exists()
        assert not reg.stop()
