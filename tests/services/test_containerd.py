"""containerd under the supervisor: own config/root/state/socket, healthy over gRPC health,
namespaces system and k8s.io, and a container from a hand-built OCI tarball that runs and stops."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from kos.machined.services import ServiceState, Supervisor
from kos.machined.services.containerd import (
    ContainerdPaths,
    containerd_service,
    ctr,
    ensure_namespaces,
    render_config,
)
from kos.machined.services.oci import build_oci_archive
from kos.resources.core import InMemoryState

pytestmark = [pytest.mark.anyio, pytest.mark.root]

BUSYBOX = Path("/bin/busybox")


def _mounts_under(base: Path) -> list[str]:
    out = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = line.split()[1]
        if target.startswith(str(base)):
            out.append(target)
    return sorted(out, key=len, reverse=True)


@pytest.fixture
async def containerd(tmp_path: Path) -> AsyncIterator[tuple[Supervisor, ContainerdPaths]]:
    if shutil.which("containerd") is None or shutil.which("ctr") is None:
        pytest.skip("containerd/ctr not installed")
    base = Path(f"/tmp/kos-ctrd-{tmp_path.name}"[:60])  # short: unix socket paths are limited to 108 bytes
    paths = ContainerdPaths.under(base)
    try:
        async with Supervisor(InMemoryState()) as sup:
            sup.add(containerd_service(paths, stop_timeout=5))
            await sup.start("containerd")
            yield sup, paths
    finally:
        for m in await anyio.to_thread.run_sync(_mounts_under, base):
            await anyio.run_process(["umount", "-l", m], check=False)
        shutil.rmtree(base, ignore_errors=True)
        await anyio.to_thread.run_sync(_remove_namespace_cgroups)


def _remove_namespace_cgroups() -> None:
    """runc puts containers under /<namespace>/<id> in every v1 hierarchy; drop the empty parents."""
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        try:
            (hierarchy / "system").rmdir()
        except OSError:
            pass


def test_health_probe_slows_down_once_healthy(tmp_path: Path) -> None:
    """Idle CPU: 4 probes a second until containerd answers, then one every 15 s (over one kept
    gRPC connection on the socket; an idle node should hardly wake)."""
    health = containerd_service(ContainerdPaths.under(tmp_path)).health
    assert health is not None
    assert health.interval == 0.25 and health.healthy_interval == 15.0


def test_config_rendering(tmp_path: Path) -> None:
    paths = ContainerdPaths.under(tmp_path)
    text = render_config(paths)
    assert f'root = "{tmp_path}/root"' in text
    assert f'state = "{tmp_path}/state"' in text
    assert f'address = "{tmp_path}/state/containerd.sock"' in text
    assert 'disabled_plugins = ["io.containerd.grpc.v1.cri"]' in text
    assert "disabled_plugins = []" in render_config(paths, cri=True)
    with pytest.raises(ValueError, match="containerd log_level: 'loud'"):
        render_config(paths, log_level="loud")


async def test_containerd_runs_namespaces_and_a_container(
    containerd: tuple[Supervisor, ContainerdPaths], tmp_path: Path
) -> None:
    sup, paths = containerd
    st = await sup.wait_healthy("containerd", timeout=20)
    assert st.state == ServiceState.RUNNING
    assert await ensure_namespaces(paths.socket) == ["k8s.io", "system"]
    assert await ensure_namespaces(paths.socket) == ["k8s.io", "system"]  # idempotent

    if not await anyio.Path(BUSYBOX).exists():
        pytest.skip("busybox-static not installed: no image to run")
    archive = tmp_path / "busybox.tar"
    await anyio.to_thread.run_sync(_build_busybox_image, archive)
    await ctr(paths.socket, "images", "import", str(archive), namespace="system")
    images = await ctr(paths.socket, "images", "list", "--quiet", namespace="system")
    assert "docker.io/kos/busybox:test" in images.split()

    out = await ctr(paths.socket, "run", "--rm", "docker.io/kos/busybox:test", "hello", "/bin/echo",
                    "hello from a kos container", namespace="system")
    assert out.strip() == "hello from a kos container"

    # a long-running container: started detached, seen running, then stopped and removed
    await ctr(paths.socket, "run", "-d", "docker.io/kos/busybox:test", "sleeper", "/bin/sleep", "1000",
              namespace="system")
    try:
        tasks = await ctr(paths.socket, "tasks", "list", namespace="system")
        assert any(line.split()[0] == "sleeper" and "RUNNING" in line for line in tasks.splitlines()[1:])
        await ctr(paths.socket, "tasks", "kill", "--signal", "SIGKILL", "sleeper", namespace="system")
        for _ in range(200):
            if "STOPPED" in await ctr(paths.socket, "tasks", "list", namespace="system"):
                break
            await anyio.sleep(0.05)
        else:
            raise AssertionError("the killed task never reached STOPPED")
    finally:
        await ctr(paths.socket, "tasks", "delete", "--force", "sleeper", namespace="system")
        await ctr(paths.socket, "containers", "delete", "sleeper", namespace="system")
    assert (await ctr(paths.socket, "containers", "list", "--quiet", namespace="system")).split() == []

    await sup.stop("containerd")
    assert sup.status("containerd").state == ServiceState.FINISHED
    assert not paths.socket.exists() or not (await anyio.to_thread.run_sync(_socket_answers, paths.socket))


def _build_busybox_image(archive: Path) -> None:
    build_oci_archive(
        archive,
        "docker.io/kos/busybox:test",
        {"/bin/busybox": (BUSYBOX.read_bytes(), 0o755)},
        symlinks={"/bin/sh": "busybox", "/bin/sleep": "busybox", "/bin/echo": "busybox"},
        cmd=["/bin/sh"],
    )


def _socket_answers(path: Path) -> bool:
    import socket

    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
        return True
