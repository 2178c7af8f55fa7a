"""``BootArgsController``: ``machine.install.extraKernelArgs`` -> the GRUB environment block
on the system disk (``kos.platform.image.bootenv``: every boot entry appends
``${kos_extra_args}``) -> ``BootArgsStatuses`` (id ``extra``).

The arguments take effect at the next boot (changing ``machine.install`` asks for a reboot);
the status is ``active`` once ``/proc/cmdline`` carries them. A namespace node (no boot loader:
the kernel is the host's) or a machine not booted from a kos system disk (a QEMU node started
with ``-kernel``) reports them ``unsupported`` with the reason.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from typing import Any

import anyio

from kos.controllers.runtime import Controller, ControllerRuntime, Input, Output, OutputKind
from kos.controllers.system.configspecs import MACHINE_CONFIG
from kos.platform.image import bootenv
from kos.platform.image.install import InstallError
from kos.platform.image.installer import system_disk
from kos.resources.core import Phase, Resource
from kos.resources.machineconfig import ConfigErrors
from kos.resources.runtime import BOOT_ARGS_STATUSES, NAMESPACE, BootArgsStatusSpec

STATUS_ID = "extra"
NO_BOOTLOADER = "this node shares the host's kernel (namespace node): it has no boot loader of its own"


def _args(cfg_args: list[str]) -> list[str]:
    for i, a in enumerate(cfg_args):
        if not a or any(ch.isspace() for ch in a) or any(ch in a for ch in "\\\"'$;{}"):
            raise ValueError(f"machine.install.extraKernelArgs[{i}]: {a!r} is invalid, expected one kernel "
                             "argument without spaces, quotes, '$', ';', braces or backslashes")
    return list(cfg_args)


def _cmdline() -> list[str]:
    try:
        with open("/proc/cmdline") as f:
            return shlex.split(f.read())
    except (OSError, ValueError):
        return []


class BootArgsController(Controller):
    name = "system.BootArgsController"

    def __init__(self, *, container_mode: bool, find_disk: Callable[[], str] = system_disk,
                 cmdline: Callable[[], list[str]] = _cmdline) -> None:
        self.container_mode = container_mode
        self.find_disk = find_disk
        self.cmdline = cmdline

    def inputs(self) -> Sequence[Input]:
        return (Input(MACHINE_CONFIG.namespace, MACHINE_CONFIG.type, MACHINE_CONFIG.id),)

    def outputs(self) -> Sequence[Output]:
        return (Output(BOOT_ARGS_STATUSES.type, OutputKind.EXCLUSIVE),)

    async def run(self, rt: ControllerRuntime) -> None:
        async for _ in rt.events():
            r = await rt.get_or_none(MACHINE_CONFIG)
            if r is None or r.metadata.phase != Phase.RUNNING:
                continue
            try:
                args = _args(r.spec.container().config.machine.install.extra_kernel_args)
            except (ValueError, ConfigErrors) as exc:
                rt.logger.error("extraKernelArgs refused, boot entries left as they are", error=str(exc))
                rt.reset_restart_backoff()
                continue
            status = await self._apply(args)
            if status is None:
                for st in await rt.list(BOOT_ARGS_STATUSES):
                    if st.metadata.owner == self.name:
                        await rt.destroy(st.pointer)
            else:
                def fill(res: Resource[Any], s: BootArgsStatusSpec = status) -> None:
                    res.spec = s

                await rt.modify(Resource.new(BootArgsStatusSpec(), STATUS_ID, namespace=NAMESPACE), fill)
            rt.reset_restart_backoff()

    async def _apply(self, args: list[str]) -> BootArgsStatusSpec | None:
        if self.container_mode:
            return BootArgsStatusSpec(args=args, state="unsupported", reason=NO_BOOTLOADER) if args else None
        try:
            disk = await anyio.to_thread.run_sync(self.find_disk)
        except (InstallError, OSError) as exc:
            if not args:
                return None
            return BootArgsStatusSpec(args=args, state="unsupported",
                                      reason=f"no kos boot loader to write them to: {exc}")
        try:
            await anyio.to_thread.run_sync(bootenv.write_vars, disk, {bootenv.EXTRA_ARGS: " ".join(args)} if args
                                           else {})
        except (bootenv.BootEnvError, OSError, ValueError) as exc:
            return BootArgsStatusSpec(args=args, state="failed", disk=disk, reason=str(exc))
        running = self.cmdline()
        active = all(a in running for a in args)
        if not args:
            return None
        return BootArgsStatusSpec(args=args, state="active" if active else "written", disk=disk,
                                  reason="" if active else "in effect from the next boot")
