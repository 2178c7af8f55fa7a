"""The built images in real software: imported into a private containerd (``ctr images
import``) under their upstream names and run; pushed into Debian's docker-registry on
127.0.0.1 and pulled back by containerd through a ``hosts.toml`` mirror, as a node with
``machine.registries.mirrors`` does."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kos.platform.image import k8s, oci, registry

BASE = k8s.cache_dir()
pytestmark = [
    pytest.mark.skipif(not (BASE / "images").is_dir(), reason=f"{BASE} not built (run rootfs-build/k8s/build)"),
    pytest.mark.skipif(shutil.which("containerd") is None, reason="containerd not installed"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def containerd(tmp_path: Path) -> Iterator[str]:
    sock = tmp_path / "c.sock"
    cfg = tmp_path / "containerd.toml"
    cfg.write_text(f'version = 2\nroot = "{tmp_path}/root"\nstate = "{tmp_path}/state"\n'
                   'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                   f'[grpc]\n  address = "{sock}"\n[ttrpc]\n  address = "{sock}.ttrpc"\n')
    log = (tmp_path / "containerd.log").open("wb")
    proc = subprocess.Popen(["containerd", "--config", str(cfg)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while subprocess.run(["ctr", "--address", str(sock), "version"], capture_output=True).returncode != 0:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "containerd.log").read_text()
            time.sleep(0.2)
        yield str(sock)
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
        subprocess.run(["umount", "-R", str(tmp_path / "state")], capture_output=True)


def _ctr(address: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ctr", "--address", address, "-n", "k8s.io", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def _images(address: str) -> dict[str, str]:
    out = _ctr(address, "images", "ls").stdout.splitlines()[1:]
    return {ln.split()[0]: ln.split()[2] for ln in out if ln.strip()}


def test_archives_import_under_upstream_names_and_run(containerd: str) -> None:
    k8s.import_images(containerd, k8s.image_archives().values())
    got = _images(containerd)
    assert set(got) == set(k8s.IMAGES)
    for ref, path in k8s.image_archives().items():
        assert got[ref] == oci.open_archive(path).manifest_digest
    run = _ctr(containerd, "run", "--rm", k8s.BUSYBOX_IMAGE, "bb-test", "sh", "-c", "echo hi from $(id -u)")
    assert run.stdout.strip() == "hi from 0", run.stderr
    run = _ctr(containerd, "run", "--rm", k8s.component_image("kube-proxy"), "kp-test",
               "/usr/local/bin/kube-proxy", "--version")
    assert run.stdout.strip() == f"Kubernetes {k8s.KUBERNETES_VERSION}", run.stderr
    run = _ctr(containerd, "run", "--rm", "--privileged", k8s.component_image("kube-proxy"), "ipt-test",
               "iptables", "-t", "nat", "-L", "POSTROUTING", "-n")
    assert "Chain POSTROUTING" in run.stdout, run.stderr


def test_import_of_a_broken_archive_names_it(containerd: str, tmp_path: Path) -> None:
    bad = tmp_path / "broken.tar"
    bad.write_bytes(b"not a tar")
    with pytest.raises(RuntimeError, match=r"broken\.tar"):
        k8s.import_images(containerd, [bad])


@pytest.mark.skipif(shutil.which("docker-registry") is None, reason="docker-registry not installed")
def test_registry_push_then_containerd_pulls_through_the_mirror(containerd: str, tmp_path: Path) -> None:
    addr = f"127.0.0.1:{_free_port()}"
    server = registry.Server(tmp_path / "registry", addr)
    client = server.start()
    try:
        refs = [k8s.PAUSE_IMAGE, k8s.COREDNS_IMAGE, k8s.BUSYBOX_IMAGE]
        archives = k8s.image_archives()
        pushed = {ref: registry.push_archive(client, archives[ref]) for ref in refs}
        assert pushed[k8s.COREDNS_IMAGE][0] == f"coredns/coredns:{k8s.COREDNS_VERSION}"
        # a second push only sends the manifest: every blob is there
        assert registry.push_archive(client, archives[k8s.PAUSE_IMAGE]) == pushed[k8s.PAUSE_IMAGE]
        media, data = client.get_manifest("pause", k8s.PAUSE_VERSION)
        assert media == oci.MEDIA_MANIFEST and data == oci.open_archive(archives[k8s.PAUSE_IMAGE]).manifest_bytes
        # containerd, told that registry.k8s.io and docker.io are mirrored here, pulls by upstream name
        hosts = tmp_path / "hosts"
        for host, upstream in (("registry.k8s.io", "https://registry.k8s.io"),
                               ("docker.io", "https://registry-1.docker.io")):
            (hosts / host).mkdir(parents=True)
            (hosts / host / "hosts.toml").write_text(
                f'server = "{upstream}"\n[host."http://{addr}"]\n  capabilities = ["pull", "resolve"]\n')
        for ref in refs:
            pull = _ctr(containerd, "images", "pull", "--hosts-dir", str(hosts), ref)
            assert pull.returncode == 0, pull.stderr
        got = _images(containerd)
        for ref in refs:
            assert got[ref] == pushed[ref][1]
        run = _ctr(containerd, "run", "--rm", k8s.BUSYBOX_IMAGE, "pulled-bb", "echo", "pulled")
        assert run.stdout.strip() == "pulled", run.stderr
        # an image the registry does not hold: the pull fails and says which
        missing = _ctr(containerd, "images", "pull", "--hosts-dir", str(hosts), "registry.k8s.io/nope:v1")
        assert missing.returncode != 0 and "registry.k8s.io/nope:v1" in missing.stderr
    finally:
        server.stop()


def test_push_to_a_registry_that_is_not_there_names_it() -> None:
    addr = f"127.0.0.1:{_free_port()}"
    with pytest.raises(registry.RegistryError, match=re.escape(addr)):
        registry.push_archive(registry.Client(addr, timeout=5), k8s.image_archives()[k8s.PAUSE_IMAGE])
    with pytest.raises(registry.RegistryError, match="expected host:port"):
        registry.Client("no-port").has_blob("x", "sha256:0")
