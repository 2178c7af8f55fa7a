"""machine.files -> MachineFileSpecs -> files below the node's root (atomic, ops create /
append / overwrite, permissions, only below /var) -> MachineFileStatuses; machine.env ->
machined's environment (what service processes inherit) -> EnvironmentStatuses."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import anyio
import pytest

from kos.controllers.runtime.testing import assert_no_resource, assert_resources
from kos.controllers.system import render
from kos.controllers.system.configspecs import ConfigSpecsController
from kos.controllers.system.environment import EnvironmentApplyController
from kos.controllers.system.files import machine_file_apply_controller
from kos.resources.machineconfig import ConfigContainer
from kos.resources.runtime import (
    ENVIRONMENT_STATUSES,
    MACHINE_FILE_SPECS,
    MACHINE_FILE_STATUSES,
    EnvironmentSpecSpec,
    MachineFileSpecSpec,
)
from tests.system.helpers import machine_config, running, set_config

pytestmark = pytest.mark.anyio

FILES = """
files:
  - {path: /var/etc/app/app.conf, content: "a=1\\n", op: create, permissions: 0o600}
  - {path: /var/log/extra.log, content: "two\\n", op: append}
  - {path: /var/lib/existing, content: "new\\n", op: overwrite, permissions: 0o640}
"""


def file_controllers(root: Path) -> list[object]:
    return [ConfigSpecsController("system.MachineFileConfigController", MachineFileSpecSpec, render.machine_files),
            machine_file_apply_controller(root=str(root))]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_files_are_written_with_their_op_and_mode(tmp_path: Path) -> None:
    (tmp_path / "var/log").mkdir(parents=True)
    (tmp_path / "var/log/extra.log").write_text("one\n")
    (tmp_path / "var/lib").mkdir(parents=True)
    (tmp_path / "var/lib/existing").write_text("old\n")
    async with running(file_controllers(tmp_path)) as state:
        await set_config(state, machine_config(FILES))
        ids = ["/var/etc/app/app.conf", "/var/log/extra.log", "/var/lib/existing"]
        got = await assert_resources(state, MACHINE_FILE_STATUSES, ids, lambda r: r.spec.state == "applied")
        conf = tmp_path / "var/etc/app/app.conf"
        assert conf.read_text() == "a=1\n" and stat.S_IMODE(conf.stat().st_mode) == 0o600
        assert (tmp_path / "var/log/extra.log").read_text() == "one\ntwo\n"
        assert (tmp_path / "var/lib/existing").read_text() == "new\n"
        assert stat.S_IMODE((tmp_path / "var/lib/existing").stat().st_mode) == 0o640
        assert got["/var/log/extra.log"].spec.sha256 == sha(b"one\ntwo\n")
        # reconciling again (another config change) appends nothing twice
        await set_config(state, machine_config(FILES + "env: {X: y}"))
        await anyio.sleep(0.3)
        assert (tmp_path / "var/log/extra.log").read_text() == "one\ntwo\n"
        assert not [p for p in (tmp_path / "var/etc/app").iterdir() if p.name.startswith(".")]  # no temp files


async def test_overwrite_of_a_missing_file_fails_and_says_so(tmp_path: Path) -> None:
    async with running(file_controllers(tmp_path)) as state:
        await set_config(state, machine_config("files: [{path: /var/nope, content: x, op: overwrite}]"))
        got = await assert_resources(state, MACHINE_FILE_STATUSES, ["/var/nope"], lambda r: r.spec.state == "failed")
        assert "machine.files[0]" in got["/var/nope"].spec.reason and "existing file" in got["/var/nope"].spec.reason
        assert not (tmp_path / "var/nope").exists()


async def test_a_symlink_out_of_var_is_refused(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "etc").mkdir()
    os.symlink(tmp_path / "etc", tmp_path / "var/escape")
    async with running(file_controllers(tmp_path)) as state:
        await set_config(state, machine_config("files: [{path: /var/escape/passwd, content: x, op: create}]"))
        got = await assert_resources(state, MACHINE_FILE_STATUSES, ["/var/escape/passwd"],
                                     lambda r: r.spec.state == "failed")
        assert "outside /var" in got["/var/escape/passwd"].spec.reason
    assert not (tmp_path / "etc/passwd").exists()


@pytest.mark.parametrize("path", ["/etc/passwd", "/var/../etc/passwd", "var/x", "/var", "/var/a//b"])
def test_paths_outside_var_are_refused_with_the_field(path: str) -> None:
    c = ConfigContainer.load(machine_config(f"files: [{{path: '{path}', content: x, op: create}}]"), strict=False)
    with pytest.raises(ValueError, match=r"machine.files\[0\].path"):
        render.machine_files(c)


async def test_a_refused_path_keeps_the_files_as_they_were(tmp_path: Path) -> None:
    async with running(file_controllers(tmp_path)) as state:
        await set_config(state, machine_config(FILES.replace("op: overwrite", "op: create")
                                               .replace("op: append", "op: create")))
        await assert_resources(state, MACHINE_FILE_SPECS, ["/var/etc/app/app.conf"])
        await set_config(state, machine_config("files: [{path: /etc/shadow, content: x, op: create}]"))
        await anyio.sleep(0.3)
        assert await state.get_or_none(MACHINE_FILE_SPECS.pointer("/var/etc/app/app.conf")) is not None
        await set_config(state, machine_config("env: {A: b}"))
        await assert_no_resource(state, MACHINE_FILE_SPECS.pointer("/var/etc/app/app.conf"))
    assert (tmp_path / "var/etc/app/app.conf").exists()  # /var is the node's data: left in place


async def test_env_reaches_the_processes_machined_starts() -> None:
    """The controller sets machined's own environment (the default, ``os.environ``); the service
    runners start processes without an explicit environment, so they inherit it."""
    a, b = f"KOS_T_PROXY_{os.getpid()}", f"KOS_T_DEBUG_{os.getpid()}"
    ctrls = [ConfigSpecsController("system.EnvironmentConfigController", EnvironmentSpecSpec, render.environment),
             EnvironmentApplyController()]
    try:
        async with running(ctrls) as state:
            await set_config(state, machine_config(f'env: {{{a}: "http://proxy:3128", {b}: "x509=1"}}'))
            await assert_resources(state, ENVIRONMENT_STATUSES, ["machine"], lambda r: r.spec.names == sorted([a, b]))
            out = (await anyio.run_process(["sh", "-c", f"echo ${a} ${b}"])).stdout.decode().split()
            assert out == ["http://proxy:3128", "x509=1"]
            await set_config(state, machine_config(f'env: {{{b}: "x509=2"}}'))
            await assert_resources(state, ENVIRONMENT_STATUSES, ["machine"], lambda r: r.spec.names == [b])
            assert a not in os.environ and os.environ[b] == "x509=2"
            await set_config(state, machine_config('sysctls: {net.ipv4.ip_forward: "1"}'))
            await assert_no_resource(state, ENVIRONMENT_STATUSES.pointer("machine"))
            assert b not in os.environ and "PATH" in os.environ
    finally:
        os.environ.pop(a, None)
        os.environ.pop(b, None)
