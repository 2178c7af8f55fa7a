"""Fixtures for block tests: udevd for the session, and loop devices backed by sparse files.

Every loop device is detached in teardown even when the test fails, after unmounting
whatever the test mounted from it (or its partitions) and dropping its partitions.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kos.platform.block import device, sysfs, udev

MiB = 1024 * 1024


def _have_root() -> bool:
    return os.geteuid() == 0 and shutil.which("losetup") is not None and os.path.exists("/dev/loop-control")


needs_root = pytest.mark.skipif(not _have_root(), reason="needs root and loop devices")


@pytest.fixture(scope="session")
def udevd() -> Iterator[None]:
    """Start systemd-udevd when it is not running; stop it again if we started it."""
    if not _have_root():
        pytest.skip("needs root")
    started: subprocess.Popen[bytes] | None = None
    if not udev.udevd_running():
        binary = next(
            (p for p in ("/lib/systemd/systemd-udevd", "/usr/lib/systemd/systemd-udevd") if os.path.exists(p)), None
        )
        if binary is None:
            pytest.skip("systemd-udevd is not installed (apt-get install udev)")
        started = subprocess.Popen([binary], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not udev.udevd_running():
            if time.monotonic() > deadline:
                started.kill()
                pytest.fail("systemd-udevd did not come up within 10 s")
            time.sleep(0.02)
    try:
        yield
    finally:
        if started is not None:
            started.send_signal(signal.SIGTERM)
            try:
                started.wait(5)
            except subprocess.TimeoutExpired:
                started.kill()
                started.wait()


def _cleanup_loop(path: str) -> None:
    name = os.path.basename(path)
    devs = {(d.major, d.minor) for d in [sysfs.read_device(name), *sysfs.partitions_of(name)] if d is not None}
    # unmount deepest first
    for m in sorted(device.mounts(), key=lambda m: -len(m.target)):
        if (m.major, m.minor) in devs:
            subprocess.run(["umount", "-l", m.target], check=False, capture_output=True)
    subprocess.run(["partx", "--delete", path], check=False, capture_output=True)
    subprocess.run(["losetup", "--detach", path], check=False, capture_output=True)


LoopFactory = Callable[[int], str]


@pytest.fixture
def loops(tmp_path: Path) -> Iterator[LoopFactory]:
    """``loops(size_bytes) -> "/dev/loopN"``: a fresh loop device on a sparse file."""
    if not _have_root():
        pytest.skip("needs root and loop devices")
    made: list[str] = []

    def make(size: int) -> str:
        backing = tmp_path / f"disk{len(made)}.img"
        with open(backing, "wb") as f:
            f.truncate(size)
        out = subprocess.run(
            ["losetup", "--find", "--show", str(backing)], check=True, capture_output=True, text=True
        ).stdout.strip()
        made.append(out)
        return out

    try:
        yield make
    finally:
        for path in reversed(made):
            with contextlib.suppress(Exception):
                _cleanup_loop(path)


def resize_loop(path: str, size: int) -> None:
    """Grow the backing file and tell the loop driver (the disk "grows")."""
    backing = Path(sysfs.read_device(os.path.basename(path)).backing_file)  # type: ignore[union-attr]
    with open(backing, "r+b") as f:
        f.truncate(size)
    subprocess.run(["losetup", "--set-capacity", path], check=True)


def blkid(path: str) -> dict[str, str]:
    out = subprocess.run(["blkid", "-p", "-o", "export", path], capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
