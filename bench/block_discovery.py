"""Benchmark: discovery of 16 loop devices, and provisioning of a fresh system disk.

Run as root: ``python bench/block_discovery.py [--rounds N]``. Creates sparse files in a
temp dir, attaches loop devices (half of them carry a GPT with an xfs and an ext4
partition), and prints medians of:

* one discovery snapshot (sysfs + Python superblock probe [+ udev database]) of the 16 disks;
* DiscoveryController in a Runtime: from start until 16 Disks are in the store;
* a fresh 1 GiB system disk: META + STATE + EPHEMERAL partitioned, formatted (xfs) and
  mounted, until all three VolumeStatuses are ready; and a second run (nothing to do).

Everything it creates is detached/unmounted/removed at the end, even on failure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import structlog

from kos.controllers.block.defaults import system_volumes
from kos.controllers.block.discovery import DiscoveryController, observe
from kos.controllers.block.volumes import VolumeController
from kos.controllers.runtime import Runtime
from kos.controllers.runtime.testing import assert_resources
from kos.platform.block import device, sysfs, udev
from kos.resources.block import DISKS, VOLUME_STATUSES, VolumePhase
from kos.resources.core import InMemoryState, Resource

try:
    from bench.calibrate import conditions
except ModuleNotFoundError:  # run as a script (python bench/<name>.py): bench/ is on sys.path
    from calibrate import conditions  # type: ignore[no-redef]

MiB = 1024 * 1024
SMALL_XFS = {**os.environ, "TEST_DIR": "1", "TEST_DEV": "1", "QA_CHECK_FS": "1"}


def sh(*argv: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, env=env).stdout.strip()


class Loops:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.paths: list[str] = []

    def make(self, size: int) -> str:
        f = self.workdir / f"d{len(self.paths)}.img"
        with open(f, "wb") as fh:
            fh.truncate(size)
        path = sh("losetup", "--find", "--show", str(f))
        self.paths.append(path)
        return path

    def cleanup(self) -> None:
        for path in reversed(self.paths):
            name = os.path.basename(path)
            devs = {(d.major, d.minor) for d in [sysfs.read_device(name), *sysfs.partitions_of(name)] if d}
            for m in sorted(device.mounts(), key=lambda m: -len(m.target)):
                if (m.major, m.minor) in devs:
                    subprocess.run(["umount", "-l", m.target], check=False, capture_output=True)
            subprocess.run(["partx", "--delete", path], check=False, capture_output=True)
            subprocess.run(["losetup", "--detach", path], check=False, capture_output=True)


def start_udevd() -> subprocess.Popen[bytes] | None:
    """Start udevd for the run when it is not running (stopped again at the end)."""
    if udev.udevd_running():
        return None
    proc = subprocess.Popen(["/lib/systemd/systemd-udevd"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not udev.udevd_running():
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("systemd-udevd did not start")
        time.sleep(0.02)
    return proc


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.1f} ms (min {min(values) * 1000:.1f}, n={len(values)})"


async def discovery_controller_time(names: list[str]) -> float:
    state = InMemoryState(history_max=4096)
    runtime = Runtime(state)
    runtime.register(DiscoveryController(names))
    t0 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(runtime.run)
        await assert_resources(state, DISKS, names, timeout=60)
        elapsed = time.perf_counter() - t0
        tg.cancel_scope.cancel()
    return elapsed


def _ready(r: Resource[Any]) -> bool:
    return bool(r.spec.phase == VolumePhase.READY)


async def provision_time(disk: str, root: Path) -> tuple[float, float]:
    name = disk.removeprefix("/dev/")
    ids = ["META", "STATE", "EPHEMERAL"]
    times: list[float] = []
    for _ in range(2):  # first: provision; second: a reboot that finds everything
        state = InMemoryState(history_max=4096)
        runtime = Runtime(state)
        runtime.register(DiscoveryController([name]))
        runtime.register(VolumeController(root=str(root)))
        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(runtime.run)
            for vid, spec in system_volumes(f'disk.dev_path == "{disk}"').items():
                await state.create(Resource.new(spec, vid))
            await assert_resources(state, VOLUME_STATUSES, ids, _ready, timeout=120)
            times.append(time.perf_counter() - t0)
            tg.cancel_scope.cancel()
    return times[0], times[1]


async def main(rounds: int) -> None:
    print(conditions("block_discovery start"), flush=True)
    if os.geteuid() != 0:
        sys.exit("block_discovery: run as root (loop devices, mounts)")
    udevd = await anyio.to_thread.run_sync(start_udevd)
    with tempfile.TemporaryDirectory(prefix="kos-bench-block-") as tmp:
        loops = Loops(Path(tmp))
        try:
            names: list[str] = []
            for i in range(16):
                path = loops.make(64 * MiB)
                names.append(path.removeprefix("/dev/"))
                if i % 2 == 0:
                    sh("sgdisk", "-n", "1:0:+32M", "-c", "1:A", "-n", "2:0:0", "-c", "2:B", path)
                    sh("partx", "--add", path)
                    sh("mkfs.xfs", "-q", "-f", f"{path}p1", env=SMALL_XFS)
                    sh("mkfs.ext4", "-q", "-F", f"{path}p2")
            sh("udevadm", "settle")
            snap = observe(names)
            print(f"devices in one snapshot: {len(snap)} (16 disks + {len(snap) - 16} partitions)")
            for with_udev in (False, True):
                t: list[float] = []
                for _ in range(rounds * 4):
                    t0 = time.perf_counter()
                    observe(names, with_udev)
                    t.append(time.perf_counter() - t0)
                print(f"discovery snapshot of 16 loop disks (udev db {'on' if with_udev else 'off'}): {ms(t)}")
            ctl = [await discovery_controller_time(names) for _ in range(rounds)]
            print(f"DiscoveryController start -> 16 Disks in the store: {ms(ctl)}")

            first: list[float] = []
            second: list[float] = []
            for r in range(rounds):
                disk = loops.make(1024 * MiB)
                a, b = await provision_time(disk, Path(tmp) / f"root{r}")
                first.append(a)
                second.append(b)
            print(f"fresh 1 GiB system disk -> META/STATE/EPHEMERAL ready (partition+mkfs+mount): {ms(first)}")
            print(f"second boot, same disk -> ready (locate only, no changes): {ms(second)}")
        finally:
            loops.cleanup()
            if udevd is not None:
                udevd.terminate()
                udevd.wait(5)


if __name__ == "__main__":
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    anyio.run(main, parser.parse_args().rounds)
