"""Image archives a node imports before its kubelet starts (kos.machined.services.images): a
real containerd under the supervisor, archives written by kos's OCI writer; names read from the
archive, only missing images imported (a second pass imports nothing), a broken archive named
in the error, and the condition the kubelet waits on."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from kos.machined.services import Supervisor
from kos.machined.services.containerd import ContainerdPaths, containerd_service, ctr
from kos.machined.services.images import ImagesImportedCondition, archive_refs, import_missing
from kos.platform.image import oci
from kos.resources.core import InMemoryState

pytestmark = [pytest.mark.anyio, pytest.mark.root]


def _archive(d: Path, ref: str, name: str, data: bytes) -> Path:
    spec = oci.ImageSpec(ref, ((oci.Entry("hello.txt", data=data),),), cmd=("/hello",))
    out = d / name
    oci.write_archive(spec, out, d / "blobs")
    return out


@pytest.fixture
async def containerd(tmp_path: Path) -> AsyncIterator[ContainerdPaths]:
    if shutil.which("containerd") is None or shutil.which("ctr") is None:
        pytest.skip("containerd/ctr not installed")
    base = Path(f"/tmp/kos-img-{tmp_path.name}"[:60])
    paths = ContainerdPaths.under(base)
    try:
        async with Supervisor(InMemoryState()) as sup:
            sup.add(containerd_service(paths, stop_timeout=5))
            await sup.start("containerd")
            await sup.wait_healthy("containerd", timeout=30)
            yield paths
    finally:
        await anyio.run_process(["umount", "-R", "-l", str(base)], check=False)
        shutil.rmtree(base, ignore_errors=True)


def test_archive_names_its_images(tmp_path: Path) -> None:
    a = _archive(tmp_path, "registry.k8s.io/pause:3.10", "pause.tar", b"x")
    assert archive_refs(a) == ["registry.k8s.io/pause:3.10"]


async def test_missing_images_are_imported_once(tmp_path: Path, containerd: ContainerdPaths) -> None:
    images = tmp_path / "images"
    images.mkdir()
    _archive(images, "registry.k8s.io/pause:3.10", "pause.tar", b"p")
    _archive(images, "docker.io/library/busybox:1.35.0", "busybox.tar", b"b")
    got = await import_missing(containerd.socket, images)
    assert sorted(got) == ["docker.io/library/busybox:1.35.0", "registry.k8s.io/pause:3.10"]
    listed = (await ctr(containerd.socket, "images", "list", "--quiet", namespace="k8s.io")).split()
    assert set(got) <= set(listed)
    assert await import_missing(containerd.socket, images) == []  # a reboot imports nothing again
    await ImagesImportedCondition(containerd.socket, images).wait()


async def test_a_broken_archive_is_named_and_holds_the_kubelet(tmp_path: Path, containerd: ContainerdPaths) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "broken.tar").write_bytes(b"not a tar")
    with pytest.raises(RuntimeError, match=r"broken\.tar"):
        await import_missing(containerd.socket, images)
    cond = ImagesImportedCondition(containerd.socket, images, retry=0.1)
    with anyio.move_on_after(1):
        await cond.wait()
    assert "broken.tar" in cond.description


async def test_no_directory_means_nothing_to_import(tmp_path: Path) -> None:
    assert await import_missing(tmp_path / "sock", tmp_path / "absent") == []
