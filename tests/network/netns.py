"""Private network namespaces for tests: unique names (pid + counter), always deleted."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

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
