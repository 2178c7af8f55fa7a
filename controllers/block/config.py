"""Machine config -> VolumeConfigs.

* ``machine.install.disk`` (a path) or ``machine.install.diskSelector`` (Talos's v1alpha1
  fields: size, name, model, serial, modalias, uuid, wwid, type, busPath) choose the system
  disk for META, STATE and EPHEMERAL; ``machine.install.wipe`` allows wiping foreign data;
* ``machine.disks[i].partitions[j]`` become user volumes ``<disk>-<j+1>`` (size 0 or
  missing = the rest of the disk), xfs, mounted at their ``mountpoint``.

``volumes_from_config`` is pure; errors name the YAML path, the value and what was expected.
``VolumeConfigController`` keeps the VolumeConfigs in line with the active MachineConfig.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import structlog

from kos.controllers.block.defaults import system_volumes, user_volume
from kos.controllers.block.selector import SelectorError, compile_disk_selector, parse_size
from kos.controllers.runtime import Controller, ControllerRuntime, Input, Output
from kos.resources.block import VOLUME_CONFIGS, VolumeConfigSpec
from kos.resources.config import ACTIVE_ID, MachineConfigSpec
from kos.resources.config import NAMESPACE as CONFIG_NS
from kos.resources.core import Resource
from kos.resources.machineconfig.v1alpha1 import Config

log = structlog.get_logger("kos.controllers.block.config")


class VolumeConfigError(ValueError):
    def __init__(self, path: str, value: object, expected: str) -> None:
        super().__init__(f"{path}: {value!r} is invalid, expected {expected}")
        self.path = path


_GLOB_FIELDS = {"name": "name", "model": "model", "serial": "serial", "modalias": "modalias", "uuid": "uuid",
                "wwid": "wwid", "busPath": "bus_path"}
_TYPES = {
    "nvme": 'disk.transport == "nvme"',
    "sd": 'disk.transport == "mmc"',
    "hdd": "disk.rotational",
    "ssd": '!disk.rotational && disk.transport != "nvme" && disk.transport != "mmc"',
}
_SIZE_RE = re.compile(r"^\s*(==|!=|>=|<=|>|<)?\s*(.+?)\s*$")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def selector_from_install(selector: dict[str, Any], path: str = "machine.install.diskSelector") -> str:
    """Talos's v1alpha1 install disk selector (all fields must match) -> an expression."""
    terms: list[str] = []
    for key, value in selector.items():
        where = f"{path}.{key}"
        if key == "size":
            m = _SIZE_RE.match(str(value))
            try:
                size = parse_size(m.group(2)) if m else -1
            except ValueError:
                size = -1
            if m is None or size < 0:
                raise VolumeConfigError(where, value, "a size with an optional comparison, e.g. '>= 100GB'")
            terms.append(f"disk.size {m.group(1) or '=='} {size}")
        elif key in _GLOB_FIELDS:
            if not isinstance(value, str) or not value:
                raise VolumeConfigError(where, value, "a non-empty string (shell globs allowed)")
            text = value.removeprefix("/dev/") if key == "name" else value
            terms.append(f"disk.{_GLOB_FIELDS[key]} =~ {_quote(text)}")
        elif key == "type":
            if value not in _TYPES:
                raise VolumeConfigError(where, value, f"one of {', '.join(_TYPES)}")
            terms.append(f"({_TYPES[value]})")
        else:
            known = ", ".join(["size", *_GLOB_FIELDS, "type"])
            raise VolumeConfigError(where, key, f"a known selector field ({known})")
    return " && ".join(terms) if terms else "true"


def volumes_from_config(cfg: Config) -> dict[str, VolumeConfigSpec]:
    install = cfg.machine.install
    if install.disk:
        if not install.disk.startswith("/dev/"):
            raise VolumeConfigError("machine.install.disk", install.disk, "a device path under /dev/")
        selector = f"disk.dev_path == {_quote(os.path.realpath(install.disk))}"
    elif install.disk_selector:
        if not isinstance(install.disk_selector, dict):
            raise VolumeConfigError("machine.install.diskSelector", install.disk_selector, "a mapping of fields")
        selector = selector_from_install(install.disk_selector)
    else:
        selector = ""
    out: dict[str, VolumeConfigSpec] = {}
    if selector:
        out.update(system_volumes(selector, wipe=bool(install.wipe)))
    else:  # nothing to provision on: only locate an existing installation
        for name, spec in system_volumes("true").items():
            spec.provisioning.disk_selector = ""
            out[name] = spec
    for i, disk in enumerate(cfg.machine.disks):
        base = f"machine.disks[{i}]"
        if not disk.device.startswith("/dev/"):
            raise VolumeConfigError(f"{base}.device", disk.device, "a device path under /dev/")
        dev_selector = f"disk.dev_path == {_quote(disk.device)}"
        for j, part in enumerate(disk.partitions):
            where = f"{base}.partitions[{j}]"
            if not part.mountpoint.startswith("/"):
                raise VolumeConfigError(f"{where}.mountpoint", part.mountpoint, "an absolute path")
            try:
                size = parse_size(str(part.size)) if part.size not in (0, "", None) else 0
            except ValueError:
                raise VolumeConfigError(f"{where}.size", part.size, "a size such as 10GB, or 0 for the rest") from None
            name = f"{os.path.basename(disk.device)}-{j + 1}"
            out[name] = user_volume(
                name, dev_selector, min_size=size or 1024 * 1024, max_size=size, grow=size == 0, target=part.mountpoint
            )
    for name, spec in out.items():
        if spec.provisioning.disk_selector:
            try:
                compile_disk_selector(spec.provisioning.disk_selector)
            except SelectorError as exc:
                raise VolumeConfigError(f"volume {name}", spec.provisioning.disk_selector, str(exc)) from None
    return out


class VolumeConfigController(Controller):
    """The active MachineConfig -> VolumeConfigs (none while there is no config)."""

    name = "block.VolumeConfigController"

    def inputs(self) -> Sequence[Input]:
        return (Input(CONFIG_NS, MachineConfigSpec.definition.type, ACTIVE_ID),)

    def outputs(self) -> Sequence[Output]:
        return (Output(VOLUME_CONFIGS.type),)

    async def run(self, rt: ControllerRuntime) -> None:
        async for _ in rt.events():
            mc = await rt.get_or_none(Resource.new(MachineConfigSpec(), ACTIVE_ID).pointer)
            rt.start_tracking_outputs()
            if mc is not None:
                try:
                    volumes = volumes_from_config(mc.spec.container().config)
                except ValueError as exc:
                    log.error("machine config has invalid volume settings; keeping the current volumes", error=str(exc))
                    rt.start_tracking_outputs()
                    for r in await rt.list(VOLUME_CONFIGS):
                        await rt.modify(Resource.new(VolumeConfigSpec(), r.id), _keep)
                    await rt.cleanup_outputs(VOLUME_CONFIGS)
                    continue
                for name, spec in volumes.items():
                    await rt.modify(Resource.new(VolumeConfigSpec(), name), _setter(spec))
            await rt.cleanup_outputs(VOLUME_CONFIGS)


def _keep(r: Resource[Any]) -> None:
    return None


def _setter(spec: VolumeConfigSpec) -> Any:
    def apply(r: Resource[Any]) -> None:
        r.spec = spec.copy()

    return apply
