"""machined's daily-tool servicers over real mutual TLS (in-process loopback API), driven by
kosctl subprocesses where a user would: ``patch``/``edit machineconfig`` on the real config
manager (dry-run diff, modes, refusals, editor loops), ``inspect dependencies`` showing a
failing controller's last error, META on a real META block, and ``wipe disk`` on a loop device
(refused while mounted; signatures gone after)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from grpclib.const import Status

from kos.apis import auth
from kos.apis.client import APIError, ClientConfig, Context
from kos.apis.gen.kos import machine as pb
from kos.apis.server.machine import ConfigStore, MachineService
from kos.controllers.config.api import ManagedConfigStore
from kos.controllers.runtime import Runtime
from kos.controllers.runtime.testing import assert_resources
from kos.machined.api.diagnostics import DiagnosticsAPI
from kos.machined.api.disks import DisksAPI
from kos.platform.image import meta
from kos.resources.config import ACTIVE_ID
from kos.resources.core import InMemoryState
from tests.config.helpers import configs, node
from tests.config.test_manager import MC, has
from tests.controllers.runtime.conformance import FailingController
from tests.controllers.runtime.harness import wait_until
from tests.support.loopback import LoopbackAPI, serve_state

pytestmark = pytest.mark.anyio
M = auth.MACHINE


def kosconfig(api: LoopbackAPI, path: Path, roles: tuple[str, ...] = (auth.ADMIN,)) -> Path:
    ident = api.pki.client(tuple(sorted(roles)))
    ctx = Context(endpoints=[api.endpoint], ca=api.pki.ca.cert_pem, crt=ident.cert_pem, key=ident.key_pem)
    ClientConfig(context="t", contexts={"t": ctx}).save(path)
    return path


async def kosctl(cfg: Path, *args: str, rc: int = 0, env: dict[str, str] | None = None) -> str:
    p = await anyio.run_process([sys.executable, "-m", "kos.apis.kosctl.main", "--kosconfig", str(cfg), *args],
                                check=False, env={**os.environ, **(env or {})})
    out, err = p.stdout.decode(), p.stderr.decode()
    assert p.returncode == rc, (args, p.returncode, out, err)
    assert "Traceback" not in err, err
    return out + err


@asynccontextmanager
async def config_node(tmp_path: Path) -> AsyncIterator[tuple[InMemoryState, Path, str]]:
    cp, _ = configs()
    async with node(tmp_path / "state", secrets=True) as (state, manager):
        machine = MachineService(config=ManagedConfigStore(manager))
        async with serve_state(state, machine=machine) as api:
            async with api.connect() as conn:
                req = pb.ApplyConfigurationRequest(data=cp.encode())
                await conn.unary(M + "ApplyConfiguration", bytes(req))
            await assert_resources(state, MC, [ACTIVE_ID], has(cp))
            yield state, kosconfig(api, tmp_path / "kosconfig"), cp


# -- patch / edit machineconfig -----------------------------------------------------------------


async def test_patch_machineconfig_dry_run_then_apply(tmp_path: Path) -> None:
    async with config_node(tmp_path) as (state, cfg, _):
        patch = '{"machine": {"network": {"hostname": "patched-1"}}}'
        out = await kosctl(cfg, "patch", "machineconfig", "-p", patch, "--dry-run")
        assert "Dry run" in out and "+    hostname: patched-1" in out, out
        await assert_resources(state, MC, [ACTIVE_ID], lambda r: "patched-1" not in r.spec.config)
        (tmp_path / "p.yaml").write_text("machine:\n  network:\n    hostname: patched-2\n")
        out = await kosctl(cfg, "patch", "mc", "-p", f"@{tmp_path / 'p.yaml'}", "--mode", "no-reboot")
        assert "Applied configuration without a reboot" in out
        await assert_resources(state, MC, [ACTIVE_ID], lambda r: "hostname: patched-2" in r.spec.config)
        # refusals: a patch making the config invalid (nothing applied), a bad mode, a bad patch file
        out = await kosctl(cfg, "patch", "mc", "-p", '{"machine": {"type": "plumber"}}', rc=1)
        assert "machine.type" in out
        assert "--mode 'sometimes'" in await kosctl(cfg, "patch", "mc", "-p", "{}", "--mode", "sometimes", rc=1)
        assert "patch file" in await kosctl(cfg, "patch", "mc", "-p", "@/nonexistent.yaml", rc=1)
        await assert_resources(state, MC, [ACTIVE_ID], lambda r: "hostname: patched-2" in r.spec.config)


async def test_edit_machineconfig_with_an_editor(tmp_path: Path) -> None:
    async with config_node(tmp_path) as (state, cfg, _):
        editor = tmp_path / "editor.sh"
        # an "editor" that adds a sysctl (a real program editing the file in place)
        editor.write_text("#!/bin/sh\nsed -i 's/^machine:$/machine:\\n  sysctls: {vm.swappiness: \"11\"}/' \"$1\"\n")
        editor.chmod(0o755)
        out = await kosctl(cfg, "edit", "machineconfig", "--dry-run", env={"EDITOR": str(editor)})
        assert "Dry run" in out and "vm.swappiness" in out
        out = await kosctl(cfg, "edit", "machineconfig", env={"EDITOR": str(editor)})
        assert "Applied configuration" in out
        await assert_resources(state, MC, [ACTIVE_ID], lambda r: "vm.swappiness" in r.spec.config)
        # unchanged: cancelled
        out = await kosctl(cfg, "edit", "mc", env={"EDITOR": "true"})
        assert "edit cancelled, no changes made" in out
        # broken twice (saved again without a fix): refused, nothing applied; the error was shown in the file
        seen = tmp_path / "seen.txt"
        breaker = tmp_path / "breaker.sh"
        breaker.write_text(f"#!/bin/sh\ncat \"$1\" >> {seen}\nsed -i 's/^machine:$/machine: [oops/' \"$1\"\n")
        breaker.chmod(0o755)
        out = await kosctl(cfg, "edit", "mc", env={"EDITOR": str(breaker)}, rc=1)
        assert "the edited config does not load" in out
        assert "# The edited config does not load:" in seen.read_text()
        # a failing editor
        assert "exited with 1: nothing applied" in await kosctl(cfg, "edit", "mc", env={"EDITOR": "false"}, rc=1)


async def test_patch_without_a_config_and_as_reader(tmp_path: Path) -> None:
    st = InMemoryState()
    async with serve_state(st, machine=MachineService(config=ConfigStore(tmp_path / "c.yaml"))) as api:
        out = await kosctl(kosconfig(api, tmp_path / "a"), "patch", "mc", "-p", "{}", rc=1)
        assert "the node has no machine config yet" in out
        out = await kosctl(kosconfig(api, tmp_path / "r", (auth.READER,)), "patch", "mc", "-p", "{}", rc=1)
        assert "PERMISSION_DENIED" in out and "MachineConfigs.config.kos.dev is sensitive" in out


# -- inspect dependencies -----------------------------------------------------------------------


async def test_inspect_dependencies_shows_a_failing_controllers_last_error(tmp_path: Path) -> None:
    st = InMemoryState()
    rt = Runtime(st, backoff_initial=0.01, backoff_max=0.05)
    rt.register(FailingController("failing"))
    machine = MachineService(config=ConfigStore(tmp_path / "c.yaml"), extensions=[DiagnosticsAPI(st, lambda: [rt])])
    async with anyio.create_task_group() as tg, serve_state(st, machine=machine) as api:
        tg.start_soon(rt.run)
        await wait_until(lambda: rt.metrics()["FailingController"]["crashes"] >= 2, timeout=10, what="2 crashes")
        async with api.connect([auth.READER]) as conn:
            r = pb.ControllerRuntimeDependenciesResponse().parse(
                await conn.unary(M + "ControllerRuntimeDependencies", b""))
        (c,) = r.controllers
        assert c.name == "FailingController" and c.crashes >= 2 and c.errors >= 2
        assert c.last_error.startswith("RuntimeError: failing on purpose")
        assert {(e.type, e.edge_type) for e in r.edges} >= {("Ints.test.kos.dev", "output_shared")} or r.edges
        dot = await kosctl(kosconfig(api, tmp_path / "k", (auth.READER,)), "inspect", "dependencies")
        assert '"ctrl:FailingController"' in dot and "color=red" in dot and "last error: RuntimeError: failing" in dot
        tg.cancel_scope.cancel()


# -- META ---------------------------------------------------------------------------------------


async def test_meta_list_write_delete_on_a_meta_block(tmp_path: Path) -> None:
    part = tmp_path / "meta.img"
    part.write_bytes(bytes(1024 * 1024))
    offset = 4096 * 3
    meta.write(str(part), {"active": "A", "good-a": "1"}, offset)
    st = InMemoryState()
    disks = DisksAPI(st, meta_location=lambda: (str(part), offset))
    machine = MachineService(config=ConfigStore(tmp_path / "c.yaml"), extensions=[disks])
    async with serve_state(st, machine=machine) as api:
        admin = kosconfig(api, tmp_path / "a")
        assert (await kosctl(admin, "meta", "list")).splitlines()[1:] == [
            f"{api.endpoint}   active   A", f"{api.endpoint}   good-a   1"]
        assert "wrote META key site" in await kosctl(admin, "meta", "write", "site", "rack-7")
        assert meta.read(str(part), offset) == {"active": "A", "good-a": "1", "site": "rack-7"}
        assert "deleted META key site" in await kosctl(admin, "meta", "delete", "site")
        assert meta.read(str(part), offset) == {"active": "A", "good-a": "1"}
        # refusals leave META as it was
        out = await kosctl(admin, "meta", "write", "active", "B", rc=1)
        assert "FAILED_PRECONDITION: key: 'active' is a boot slot key owned by upgrade/rollback" in out
        assert "INVALID_ARGUMENT: key: 'Bad Key'" in await kosctl(admin, "meta", "write", "Bad Key", "x", rc=1)
        assert "INVALID_ARGUMENT: value:" in await kosctl(admin, "meta", "write", "k", "a=b", rc=1)
        assert "NOT_FOUND: key: 'nope' is not in META" in await kosctl(admin, "meta", "delete", "nope", rc=1)
        async with api.connect() as conn:
            for i in range(40):  # until the 4 KiB block is full
                try:
                    await conn.unary(M + "MetaWrite", bytes(pb.MetaWriteRequest(key=f"k{i}", value="v" * 190)))
                except APIError as exc:
                    assert exc.status == Status.RESOURCE_EXHAUSTED and "at most 4096 fit" in exc.message
                    break
            else:
                raise AssertionError("META never filled up")
        assert meta.read(str(part), offset)["active"] == "A"


# -- wipe disk ----------------------------------------------------------------------------------


@pytest.fixture
def loopdev(tmp_path: Path) -> AsyncIterator[str]:
    if os.geteuid() != 0:
        pytest.skip("loop devices need root")
    img = tmp_path / "disk.img"
    img.write_bytes(b"")
    os.truncate(img, 64 * 1024 * 1024)
    dev = subprocess.run(["losetup", "--find", "--show", str(img)], capture_output=True, text=True,
                         check=True).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["umount", str(tmp_path / "mnt")], capture_output=True)
        subprocess.run(["losetup", "-d", dev], capture_output=True)


def _signature(dev: str) -> str:
    return subprocess.run(["blkid", "-p", "-o", "value", "-s", "TYPE", dev], capture_output=True,
                          text=True).stdout.strip()


@pytest.mark.root
async def test_wipe_disk_refuses_mounted_and_wipes_signatures(tmp_path: Path, loopdev: str) -> None:
    await anyio.run_process(["mkfs.ext4", "-q", "-F", loopdev])
    assert _signature(loopdev) == "ext4"
    (tmp_path / "mnt").mkdir()
    await anyio.run_process(["mount", loopdev, str(tmp_path / "mnt")])
    st = InMemoryState()
    machine = MachineService(config=ConfigStore(tmp_path / "c.yaml"), extensions=[DisksAPI(st)])
    async with serve_state(st, machine=machine) as api:
        admin = kosconfig(api, tmp_path / "a")
        name = os.path.basename(loopdev)
        out = await kosctl(admin, "wipe", "disk", name, rc=1)
        assert f"FAILED_PRECONDITION: devices[0].device: {loopdev}: refusing, mounted at {tmp_path / 'mnt'}" in out
        assert _signature(loopdev) == "ext4"
        await anyio.run_process(["umount", str(tmp_path / "mnt")])
        # with a device that does not exist in the same request nothing is wiped
        assert "NOT_FOUND" in await kosctl(admin, "wipe", "disk", name, "nosuchdisk0", rc=1)
        assert _signature(loopdev) == "ext4"
        assert f"wiped {loopdev}" in await kosctl(admin, "wipe", "disk", loopdev)
        assert _signature(loopdev) == ""
        reader = kosconfig(api, tmp_path / "r", (auth.READER,))
        assert "PERMISSION_DENIED" in await kosctl(reader, "wipe", "disk", name, rc=1)


# -- disks --------------------------------------------------------------------------------------


async def test_disks_lists_the_disks_resources_with_the_system_disk(tmp_path: Path) -> None:
    from kos.resources.block import NAMESPACE, SYSTEM_DISK_ID, DiskSpec, SystemDiskSpec
    from kos.resources.core import Resource

    st = InMemoryState()
    await st.create(Resource.new(DiskSpec(size=8 << 30, pretty_size="8.6 GB", model="QEMU HARDDISK", serial="s1",
                                          transport="virtio", dev_path="/dev/vda"), "vda", namespace=NAMESPACE))
    await st.create(Resource.new(DiskSpec(size=1 << 30, pretty_size="1.1 GB", readonly=True, dev_path="/dev/vdb"),
                                 "vdb", namespace=NAMESPACE))
    await st.create(Resource.new(SystemDiskSpec(disk_id="vda", dev_path="/dev/vda"), SYSTEM_DISK_ID,
                                 namespace=NAMESPACE))
    async with serve_state(st) as api:
        rows = [line.split() for line in (await kosctl(kosconfig(api, tmp_path / "r", (auth.READER,)),
                                                       "disks")).splitlines()]
    assert rows[0] == ["NODE", "DEV", "MODEL", "SERIAL", "TRANSPORT", "SIZE", "RO", "SYSTEM"]
    assert rows[1] == [api.endpoint, "/dev/vda", "QEMU", "HARDDISK", "s1", "virtio", "8.6", "GB", "false", "*"]
    assert rows[2] == [api.endpoint, "/dev/vdb", "-", "-", "-", "1.1", "GB", "true"]


@pytest.mark.root
async def test_wipe_partition_and_drop_it_from_the_table(tmp_path: Path, loopdev: str) -> None:
    from kos.platform.block import device, partition, probe

    disk = device.identify(loopdev)
    await partition.create_table(disk)
    mib = 1 << 20
    await partition.add_partitions(disk, [partition.NewPartition(1, 1 * mib, 16 * mib, "ONE"),
                                          partition.NewPartition(2, 17 * mib, 16 * mib, "TWO")])
    p1, p2 = f"{loopdev}p1", f"{loopdev}p2"
    await anyio.run_process(["mkfs.ext4", "-q", "-F", p1])
    await anyio.run_process(["mkfs.ext4", "-q", "-F", p2])
    st = InMemoryState()
    machine = MachineService(config=ConfigStore(tmp_path / "c.yaml"), extensions=[DisksAPI(st)])
    async with serve_state(st, machine=machine) as api:
        admin = kosconfig(api, tmp_path / "a")
        assert f"wiped {p1}" in await kosctl(admin, "wipe", "disk", os.path.basename(p1), "--drop-partition")
    table = probe.probe_path(loopdev).table
    assert table is not None and [(p.number, p.label) for p in table.partitions] == [(2, "TWO")]
    assert not await anyio.Path(p1).exists() and _signature(p2) == "ext4"  # the other partition is untouched
