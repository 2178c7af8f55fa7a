"""The Containers RPC and `kosctl containers` against a real containerd: a running busybox
container shows up with its pid and status; bad namespaces and a stopped containerd get the
right status codes."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from grpclib.const import Status

from kos.apis import auth
from kos.apis.client import APIError
from kos.apis.gen.kos import machine as pb
from kos.apis.kosctl.commands.containers import namespace_of
from kos.apis.kosctl.main import build_parser
from kos.apis.server.machine import ConfigStore, MachineService
from kos.machined.api import ContainersAPI, parse_table
from kos.machined.services import Supervisor
from kos.machined.services.containerd import ContainerdPaths, ctr, ensure_namespaces
from kos.resources.core import InMemoryState
from tests.services.test_containerd import BUSYBOX, _build_busybox_image, containerd  # noqa: F401
from tests.support.loopback import serve_state

pytestmark = [pytest.mark.anyio, pytest.mark.root]


def test_ctr_tables_parse() -> None:
    text = (
        "CONTAINER    IMAGE                         RUNTIME\n"
        "web          docker.io/kos/busybox:test    io.containerd.runc.v2\n"
    )
    assert parse_table(text) == [["web", "docker.io/kos/busybox:test", "io.containerd.runc.v2"]]
    assert parse_table("TASK PID STATUS\n") == []


def test_kosctl_namespace_flags() -> None:
    parser = build_parser()
    assert namespace_of(parser.parse_args(["containers"])) == "system"
    assert namespace_of(parser.parse_args(["containers", "-k"])) == "k8s.io"
    assert namespace_of(parser.parse_args(["containers", "--all"])) == ""
    assert namespace_of(parser.parse_args(["containers", "--namespace", "custom"])) == "custom"
    with pytest.raises(SystemExit):
        parser.parse_args(["containers", "-k", "--all"])


async def _call(api: ContainersAPI, namespace: str) -> list[pb.ContainerInfo]:
    machine = MachineService(config=ConfigStore(Path("/nonexistent/config.yaml")), extensions=[api])
    async with serve_state(InMemoryState(), machine=machine) as srv, srv.connect([auth.READER]) as conn:
        raw = await conn.unary(auth.MACHINE + "Containers", bytes(pb.ContainersRequest(namespace=namespace)))
        return list(pb.ContainersResponse().parse(raw).containers)


async def test_running_container_is_listed(
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
    await ctr(paths.socket, "run", "-d", "docker.io/kos/busybox:test", "sleeper", "/bin/sleep", "1000",
              namespace="system")
    api = ContainersAPI(paths.socket)
    try:
        found = await _call(api, "system")
        assert [(c.namespace, c.id, c.image, c.status) for c in found] == [
            ("system", "sleeper", "docker.io/kos/busybox:test", "RUNNING")
        ]
        assert found[0].pid > 1 and await anyio.Path(f"/proc/{found[0].pid}").exists()
        assert await _call(api, "k8s.io") == []
        everything = await _call(api, "")
        assert [c.id for c in everything] == ["sleeper"]
        with pytest.raises(APIError) as err:
            await _call(api, "no-such-namespace")
        assert err.value.status == Status.NOT_FOUND and "k8s.io, system" in err.value.message
    finally:
        await ctr(paths.socket, "tasks", "kill", "--signal", "SIGKILL", "sleeper", namespace="system")
        for _ in range(100):
            if "RUNNING" not in await ctr(paths.socket, "tasks", "list", namespace="system"):
                break
            await anyio.sleep(0.05)
        await ctr(paths.socket, "tasks", "delete", "--force", "sleeper", namespace="system")
        await ctr(paths.socket, "containers", "delete", "sleeper", namespace="system")


async def test_bad_namespace_and_no_containerd(tmp_path: Path) -> None:
    api = ContainersAPI(tmp_path / "containerd.sock")
    with pytest.raises(APIError) as err:
        await _call(api, "bad namespace!")
    assert err.value.status == Status.INVALID_ARGUMENT and "'bad namespace!'" in err.value.message
    with pytest.raises(APIError) as err:
        await _call(api, "system")
    assert err.value.status == Status.UNAVAILABLE and "no socket at" in err.value.message
