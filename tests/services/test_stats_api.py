"""The Stats and ImageList RPCs, ``kosctl stats`` and ``kosctl images`` against a real
containerd: a busybox container that burns CPU reports growing CPU time and its memory from its
task's cgroups; the imported image is listed with its digest and size; no containerd is
UNAVAILABLE; readers may call both."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest
from grpclib.const import Status

from kos.apis import auth
from kos.apis.client import APIError
from kos.apis.client.config import ClientConfig, Context
from kos.apis.gen.kos import machine as pb
from kos.apis.server.machine import ConfigStore, MachineService
from kos.machined.api import ContainersAPI
from kos.machined.api.images import ImagesAPI, parse_images
from kos.machined.api.stats import StatsAPI, task_usage
from kos.machined.services import Supervisor
from kos.machined.services.containerd import ContainerdPaths, ctr, ensure_namespaces
from kos.resources.core import InMemoryState
from tests.services.test_containerd import BUSYBOX, _build_busybox_image, containerd  # noqa: F401
from tests.support.loopback import serve_state

pytestmark = [pytest.mark.anyio, pytest.mark.root]


def test_task_usage_of_this_process() -> None:
    cpu, mem = task_usage(os.getpid()) or (0, 0)
    assert cpu > 0 and mem > 1_000_000  # this test process's cgroup: pytest has run for a while
    assert task_usage(2**22 + 7) is None  # no such pid


async def test_stats_of_a_running_container(
    containerd: tuple[Supervisor, ContainerdPaths], tmp_path: Path  # noqa: F811
) -> None:
    sup, paths = containerd
    await sup.wait_healthy("containerd", timeout=20)
    await ensure_namespaces(paths.socket)
    if not await anyio.Path(BUSYBOX).exists():
        pytest.skip("busybox-static not installed: no image to run")
    archive = tmp_path / "busybox.tar"
    await anyio.to_thread.run_sync(_build_busybox_image, archive)
    await ctr(paths.socket, "images", "import", str(archive), namespace="system")
    # burn CPU for a while, then sleep
    await ctr(paths.socket, "run", "-d", "docker.io/kos/busybox:test", "burner", "/bin/sh", "-c",
              "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; exec sleep 1000", namespace="system")
    stats = StatsAPI(ContainersAPI(paths.socket))
    images = ImagesAPI(ContainersAPI(paths.socket))
    machine = MachineService(config=ConfigStore(tmp_path / "c.yaml"), extensions=[stats, images])
    try:
        async with serve_state(InMemoryState(), machine=machine) as srv:
            async with srv.connect([auth.READER]) as conn:
                first = pb.StatsResponse().parse(await conn.unary(auth.MACHINE + "Stats", bytes(
                    pb.StatsRequest(namespace="system")))).stats
                assert [(s.namespace, s.id) for s in first] == [("system", "burner")]
                await anyio.sleep(1.0)
                second = pb.StatsResponse().parse(await conn.unary(auth.MACHINE + "Stats", bytes(
                    pb.StatsRequest(namespace="system")))).stats
            assert second[0].cpu_usage > first[0].cpu_usage > 0
            assert second[0].memory_usage > 0
            ident = srv.pki.client((auth.READER,))
            cfg = tmp_path / "kosconfig"
            ClientConfig(context="t", contexts={"t": Context(endpoints=[srv.endpoint], ca=srv.pki.ca.cert_pem,
                                                             crt=ident.cert_pem, key=ident.key_pem)}).save(cfg)
            p = await anyio.run_process([sys.executable, "-m", "kos.apis.kosctl.main", "--kosconfig", str(cfg),
                                         "stats"], check=False)
            lines = p.stdout.decode().splitlines()
            assert p.returncode == 0, p.stderr
            assert lines[0].split() == ["NODE", "NAMESPACE", "ID", "MEMORY(MB)", "CPU"]
            row = lines[1].split()
            assert row[1:3] == ["system", "burner"] and float(row[3]) > 0 and row[4].endswith("s")
            p = await anyio.run_process([sys.executable, "-m", "kos.apis.kosctl.main", "--kosconfig", str(cfg),
                                         "images"], check=False)
            lines = p.stdout.decode().splitlines()
            assert p.returncode == 0, p.stderr
            assert lines[0].split() == ["NODE", "IMAGE", "DIGEST", "SIZE", "PLATFORMS"]
            row = lines[1].split()
            assert row[1] == "docker.io/kos/busybox:test" and row[2].startswith("sha256:") and float(row[3]) > 0.5
            p = await anyio.run_process([sys.executable, "-m", "kos.apis.kosctl.main", "--kosconfig", str(cfg),
                                         "images", "--namespace", "nope"], check=False)
            assert p.returncode == 1 and b"NOT_FOUND" in p.stderr
    finally:
        await ctr(paths.socket, "tasks", "kill", "--signal", "SIGKILL", "burner", namespace="system")
        for _ in range(100):
            if "RUNNING" not in await ctr(paths.socket, "tasks", "list", namespace="system"):
                break
            await anyio.sleep(0.05)
        await ctr(paths.socket, "tasks", "delete", "--force", "burner", namespace="system")
        await ctr(paths.socket, "containers", "delete", "burner", namespace="system")


async def test_stats_without_containerd(tmp_path: Path) -> None:
    machine = MachineService(config=ConfigStore(tmp_path / "c.yaml"),
                             extensions=[StatsAPI(ContainersAPI(tmp_path / "containerd.sock"))])
    async with serve_state(InMemoryState(), machine=machine) as srv, srv.connect([auth.READER]) as conn:
        with pytest.raises(APIError) as err:
            await conn.unary(auth.MACHINE + "Stats", bytes(pb.StatsRequest(namespace="system")))
    assert err.value.status == Status.UNAVAILABLE and "no socket at" in err.value.message


def test_parse_ctr_images_list() -> None:
    text = ("REF                        TYPE                                       DIGEST          SIZE    PLATFORMS   "
            "LABELS\n"
            "docker.io/kos/busybox:test application/vnd.oci.image.manifest.v1+json sha256:ab12 1.1 MiB linux/amd64 -\n")
    (img,) = parse_images(text)
    assert (img.name, img.digest, img.size, img.platforms) == ("docker.io/kos/busybox:test", "sha256:ab12",
                                                               int(1.1 * 1048576), "linux/amd64")
    assert parse_images("REF TYPE DIGEST SIZE PLATFORMS LABELS\n") == []
