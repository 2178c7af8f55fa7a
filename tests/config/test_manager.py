"""ConfigManager + MachineConfigController: acquisition order, apply modes, try rollback,
staged on next start, no-op applies, bad input leaving everything as it was."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import pytest

from kos.controllers.config.manager import ApplyError, ErrorCode
from kos.controllers.runtime.testing import assert_no_resource, assert_resources
from kos.resources.config import ACTIVE_ID, MACHINE_TYPE_ID, STAGED_ID, MachineConfigSpec, MachineTypeSpec
from kos.resources.core import Kind, Pointer

from .helpers import configs, node, patched

pytestmark = pytest.mark.anyio

MC = Kind("config", MachineConfigSpec.definition.type)
MT = Kind("config", MachineTypeSpec.definition.type)


def mc_ptr(id: str = ACTIVE_ID) -> Pointer:
    return Pointer(MC.namespace, MC.type, id)


def has(text: str) -> Any:
    return lambda r: r.spec.config == text


async def test_maintenance_without_any_source(tmp_path: Path) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    async with node(tmp_path, events=lambda t, p: events.append((t, p))) as (state, m):
        assert m.maintenance
        await assert_resources(state, MT, [MACHINE_TYPE_ID], lambda r: r.spec.machine_type == "unknown")
        assert await state.get_or_none(mc_ptr()) is None
    assert any("maintenance" in p["action"] for _, p in events)


async def test_state_first_then_platform_then_cmdline(tmp_path: Path) -> None:
    cp, wk = configs()
    url_file = tmp_path / "from-url.yaml"
    url_file.write_text(wk)

    async def platform() -> bytes | None:
        return None

    # nothing on STATE, platform has nothing: the cmdline URL wins and is stored
    async with node(tmp_path / "a", platform_source=platform, cmdline=f"quiet kos.config=file://{url_file}") \
            as (state, m):
        await assert_resources(state, MC, [ACTIVE_ID], has(wk))
        await assert_resources(state, MT, [MACHINE_TYPE_ID], lambda r: r.spec.machine_type == "worker")
        assert m.source.startswith("cmdline")
    assert (tmp_path / "a" / "config.yaml").read_text() == wk

    async def platform_cp() -> bytes | None:
        return cp.encode()

    # the platform's config beats the cmdline
    async with node(tmp_path / "b", platform_source=platform_cp, cmdline=f"kos.config=file://{url_file}") \
            as (state, m):
        await assert_resources(state, MC, [ACTIVE_ID], has(cp))
        assert m.source == "platform"
    # STATE beats both at the next start
    async with node(tmp_path / "a", platform_source=platform_cp) as (state, m):
        await assert_resources(state, MC, [ACTIVE_ID], has(wk))
        assert m.source == "state"


async def test_unreachable_url_stays_in_maintenance(tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []
    async with node(tmp_path, cmdline="kos.config=http://127.0.0.1:1/c.yaml",
                    events=lambda t, p: events.append(p)) as (_state, m):
        assert m.maintenance
        assert not (tmp_path / "config.yaml").exists()
    failed = [e for e in events if e["action"].startswith("config fetch failed")]
    assert failed and "unreachable" in failed[0]["error"] and "after 2 attempts" in failed[0]["error"]


async def test_invalid_config_from_url_stays_in_maintenance(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: v1alpha1\nmachine:\n  type: plumber\n  nonsense: 1\n")
    events: list[dict[str, Any]] = []
    async with node(tmp_path / "s", cmdline=f"kos.config=file://{bad}", events=lambda t, p: events.append(p)) \
            as (_, m):
        assert m.maintenance
    assert any("invalid" in e["action"] and "machine.nonsense: unknown field" in e["error"] for e in events)


async def test_apply_modes(tmp_path: Path) -> None:
    cp, _ = configs()
    rebooted: list[bool] = []

    async def reboot() -> None:
        rebooted.append(True)

    async with node(tmp_path) as (state, m):
        # maintenance: staged/try need a config in effect first
        for mode in ("staged", "try"):
            with pytest.raises(ApplyError, match="maintenance mode") as ei:
                await m.apply(cp.encode(), mode, try_timeout=1)
            assert ei.value.code == ErrorCode.FAILED_PRECONDITION
        assert not (tmp_path / "config.staged.yaml").exists()
        # maintenance: the first apply puts it in effect
        out = await m.apply(cp.encode(), "auto")
        assert out.changed
        first = (await assert_resources(state, MC, [ACTIVE_ID], has(cp)))[ACTIVE_ID]
        await assert_resources(state, MT, [MACHINE_TYPE_ID], lambda r: r.spec.machine_type == "controlplane")

        # invalid: every error listed, nothing changes
        bad = patched(cp, lambda c: (setattr(c.machine, "type", "plumber"),
                                     setattr(c.cluster.network, "dns_domain", "-bad-")))
        with pytest.raises(ApplyError) as ei:
            await m.apply(bad.encode(), "auto")
        assert ei.value.code == ErrorCode.INVALID_ARGUMENT
        assert "machine.type" in str(ei.value) and "plumber" in str(ei.value)
        assert (tmp_path / "config.yaml").read_text() == cp
        with pytest.raises(ApplyError, match="unknown field"):
            await m.apply(cp.encode() + b"\nextra: 1\n", "auto")
        with pytest.raises(ApplyError, match="mode: 'sometimes' is invalid"):
            await m.apply(cp.encode(), "sometimes")

        # unchanged (even reformatted): no write, no new version
        out = await m.apply(cp.encode() + b"\n\n", "no-reboot")
        assert not out.changed and "No changes" in out.details
        assert (await state.get(mc_ptr())).metadata.version == first.metadata.version

        # dry run: a diff, nothing applied, secrets never shown
        new = patched(cp, lambda c: setattr(c.machine, "sysctls", {"net.ipv4.ip_forward": "1"}))
        out = await m.apply(new.encode(), "auto", dry_run=True)
        assert "+    sysctls:" in out.diff or "sysctls" in out.diff
        assert "BEGIN" not in out.diff and "key:" not in out.diff.replace("key: '******'", "")
        assert (await state.get(mc_ptr())).metadata.version == first.metadata.version

        # no-reboot refuses changes that need a reboot, naming them
        reboot_change = patched(cp, lambda c: setattr(c.machine.install, "disk", "/dev/vdb"))
        with pytest.raises(ApplyError) as ei:
            await m.apply(reboot_change.encode(), "no-reboot")
        assert ei.value.code == ErrorCode.FAILED_PRECONDITION and "machine.install.disk" in str(ei.value)
        # auto/reboot without a reboot hook: refused too, suggesting staged
        with pytest.raises(ApplyError, match="use --mode staged"):
            await m.apply(reboot_change.encode(), "auto")

        # a live change: stored and in effect when apply returns
        out = await m.apply(new.encode(), "no-reboot")
        assert out.changed
        assert (await state.get(mc_ptr())).spec.config == new
        assert (tmp_path / "config.yaml").read_text() == new

        # reboot with a hook: stored, hook asked after
        m.reboot_hook = reboot
        out = await m.apply(reboot_change.encode(), "auto")
        assert out.reboot and (tmp_path / "config.yaml").read_text() == reboot_change
        await m.reboot()
        assert rebooted == [True]


async def test_try_rolls_back_unless_confirmed(tmp_path: Path) -> None:
    cp, _ = configs()
    tried = patched(cp, lambda c: setattr(c.machine, "sysctls", {"vm.swappiness": "1"}))
    async with node(tmp_path) as (state, m):
        await m.apply(cp.encode(), "auto")
        with pytest.raises(ApplyError, match="try_timeout"):
            await m.apply(tried.encode(), "try", try_timeout=0)
        await m.apply(tried.encode(), "try", try_timeout=1.5)
        assert (await state.get(mc_ptr())).spec.config == tried
        assert (tmp_path / "config.yaml").read_text() == cp  # never stored
        await assert_resources(state, MC, [ACTIVE_ID], has(cp), timeout=10)  # rolled back
        assert m.try_deadline is None

        # confirmed by a second apply within the timeout: stays
        await m.apply(tried.encode(), "try", try_timeout=1.0)
        await m.apply(tried.encode(), "no-reboot")
        await anyio.sleep(1.3)
        assert (await state.get(mc_ptr())).spec.config == tried
        assert (tmp_path / "config.yaml").read_text() == tried


async def test_staged_takes_effect_on_next_start(tmp_path: Path) -> None:
    cp, _ = configs()
    staged = patched(cp, lambda c: setattr(c.machine.install, "disk", "/dev/vdc"))
    async with node(tmp_path) as (state, m):
        await m.apply(cp.encode(), "auto")
        out = await m.apply(staged.encode(), "staged")
        assert "next start" in out.details
        await assert_resources(state, MC, [STAGED_ID], has(staged))
        assert (await state.get(mc_ptr())).spec.config == cp
        # an explicit apply discards the staged one (file and resource)
        await m.apply(staged.encode(), "staged")
        live = patched(cp, lambda c: setattr(c.machine, "sysctls", {"vm.swappiness": "3"}))
        await m.apply(live.encode(), "no-reboot")
        await assert_no_resource(state, mc_ptr(STAGED_ID))
        assert not (tmp_path / "config.staged.yaml").exists()
        await m.apply(staged.encode(), "staged")
    async with node(tmp_path) as (state, m):
        await assert_resources(state, MC, [ACTIVE_ID], has(staged))
        await assert_no_resource(state, mc_ptr(STAGED_ID))
        assert not (tmp_path / "config.staged.yaml").exists()


async def test_boot_removes_leftovers_of_interrupted_writes(tmp_path: Path) -> None:
    cp, _ = configs()
    (tmp_path / "config.yaml").write_text(cp)
    (tmp_path / ".config.yaml.4242.tmp").write_text(cp[: len(cp) // 2])  # a write killed half-way
    events: list[tuple[str, dict[str, Any]]] = []
    async with node(tmp_path, events=lambda t, p: events.append((t, p))) as (state, _m):
        await assert_resources(state, MC, [ACTIVE_ID], has(cp))
    assert sorted(os.listdir(tmp_path)) == ["config.yaml"]
    assert any(p.get("files") == [".config.yaml.4242.tmp"] for _, p in events)
