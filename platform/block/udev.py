"""udev through pyudev: properties of a device, and block events as an async stream.

``events(monitor())`` yields ``(action, kernel_name)`` for block devices from the udev
netlink socket (processed events when udevd runs, raw kernel events otherwise); the socket is
waited on with ``anyio.wait_readable``, so nothing polls.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import pyudev  # type: ignore[import-untyped]

from kos.platform.block.tools import run


@dataclass
class UdevInfo:
    properties: dict[str, str] = field(default_factory=dict)
    links: list[str] = field(default_factory=list)


def udevd_running() -> bool:
    """True when udevd answers on its control socket (a stale socket file is not enough). Blocking."""
    if not os.path.exists("/run/udev/control"):
        return False
    ping = subprocess.run(["udevadm", "control", "--ping", "--timeout=2"], capture_output=True, check=False)
    return ping.returncode == 0


_CONTEXT: list[Any] = []


def _context() -> Any:
    if not _CONTEXT:
        _CONTEXT.append(pyudev.Context())
    return _CONTEXT[0]


def info(name: str) -> UdevInfo:
    """udev's database entry for a block device (empty without udevd). Blocking."""
    try:
        dev = pyudev.Devices.from_name(_context(), "block", name)
    except pyudev.DeviceNotFoundError:
        return UdevInfo()
    return UdevInfo({str(k): str(v) for k, v in dev.properties.items()}, sorted(str(x) for x in dev.device_links))


async def settle(timeout: float = 10.0) -> None:
    if await anyio.to_thread.run_sync(udevd_running):
        await run("udevadm", "settle", f"--timeout={int(timeout)}", check=False)


def monitor() -> Any:
    """A started pyudev monitor for block devices: processed events when udevd runs, raw
    kernel events otherwise. OSError when netlink is not available. Blocking."""
    source = "udev" if udevd_running() else "kernel"
    mon = pyudev.Monitor.from_netlink(_context(), source=source)
    mon.filter_by("block")
    mon.start()
    return mon


async def events(mon: Any) -> AsyncIterator[tuple[str, str]]:
    """``(action, kernel_name)`` of each block event, waiting on the socket (never polling)."""
    fd = mon.fileno()
    while True:
        await anyio.wait_readable(fd)
        while True:
            dev = mon.poll(timeout=0)
            if dev is None:
                break
            yield str(dev.action or ""), str(dev.sys_name)
