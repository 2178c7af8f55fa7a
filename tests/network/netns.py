"""Test helpers: private network namespaces (unique names: pid + counter, always deleted), an
independent view of the kernel (``ip -j`` through nsenter), polling it until it converges, and
storing a machine config."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import pytest

from kos.resources.config import ACTIVE_ID, MachineConfigSpec
from kos.resources.config import NAMESPACE as CONFIG_NS
from kos.resources.core import InMemoryState, Pointer, Resource

_counter = itertools.count()

needs_netns = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None, reason="needs root and iproute2 (network namespaces)"
)


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


@contextmanager
def netns(tag: str = "t") -> Iterator[str]:
    """Create ``kos-<tag>-<pid>-<n>``; yields its path under /run/netns."""
    name = f"kos-{tag}-{os.getpid()}-{next(_counter)}"
    ip("netns", "add", name)
    try:
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def nsenter(path: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net={path}", *cmd], check=check, capture_output=True, text=True)


def kernel(path: str, what: str) -> list[dict[str, Any]]:
    proc = nsenter(path, "ip", "-j", *what.split(), check=False)
    if proc.returncode != 0:
        if "table does not exist" in proc.stderr:  # a routing table comes to be with its first route
            return []
        raise subprocess.CalledProcessError(proc.returncode, proc.args, proc.stdout, proc.stderr)
    return json.loads(proc.stdout) if proc.stdout.strip() else []


def addresses(path: str) -> set[tuple[str, str]]:
    return {
        (link["ifname"], f"{a['local']}/{a['prefixlen']}")
        for link in kernel(path, "addr show")
        for a in link.get("addr_info", [])
        if a.get("family") == "inet"
    }


def routes(path: str) -> set[tuple[str, str, str]]:
    return {(r["dst"], r.get("gateway", ""), r.get("dev", "")) for r in kernel(path, "route show")}


def links(path: str) -> dict[str, dict[str, Any]]:
    return {link["ifname"]: link for link in kernel(path, "link show")}


async def eventually(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Poll the kernel (an independent view) until ``check`` holds."""
    deadline = anyio.current_time() + timeout
    while not check():
        if anyio.current_time() > deadline:
            raise AssertionError(f"kernel did not converge within {timeout}s: {what}")
        await anyio.sleep(0.05)


def machine_config(text: str) -> Resource[MachineConfigSpec]:
    return Resource.new(MachineConfigSpec(config=text), ACTIVE_ID, namespace=CONFIG_NS)


async def put_config(state: InMemoryState, text: str) -> None:
    ptr = Pointer(CONFIG_NS, MachineConfigSpec.definition.type, ACTIVE_ID)
    cur = await state.get_or_none(ptr)
    if cur is None:
        await state.create(machine_config(text))
    else:
        cur.spec = MachineConfigSpec(config=text)
        await state.update(cur)
