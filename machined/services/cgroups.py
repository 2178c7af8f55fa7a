"""Per-service cgroups where the kernel allows them.

On a cgroup v2 host a service gets ``<unified>/<our cgroup>/kos/<id>`` (the parent ``kos`` is
the supervisor's ``cgroup_parent``); on a v1 host (like the
test machines, see shared/design/this-machine.md) one directory per mounted v1 controller
(pids, memory, cpu, ...) nested under the cgroup this process is already in, so limits imposed
on machined keep applying to its services. ``ServiceCgroup.paths`` is empty when nothing can be
created (no permission, no cgroupfs): services then simply run in machined's cgroup.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("pids", "memory", "cpu", "cpuacct", "blkio", "freezer", "devices", "cpuset")


def _own_cgroups() -> dict[str, str]:
    """controller (or '' for the unified hierarchy) -> this process's cgroup path."""
    out: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            out[c] = path
    return out


def _candidate_dirs(name: str) -> list[Path]:
    own = _own_cgroups()
    unified_only = (CGROUP_ROOT / "cgroup.controllers").exists()
    if unified_only:
        return [CGROUP_ROOT / own.get("", "/").lstrip("/") / name]
    dirs = []
    for c in V1_CONTROLLERS:
        base = CGROUP_ROOT / c
        if c in own and base.is_dir() and (base / "cgroup.procs").exists():
            dirs.append(base / own[c].lstrip("/") / name)
    return dirs


class ServiceCgroup:
    """The cgroup directories of one service; ``name`` is ``<parent>/<service id>`` (``kos/etcd``)."""

    def __init__(self, name: str) -> None:
        if name.count("/") != 1 or name.startswith("/") or ".." in name:
            raise ValueError(f"cgroup name {name!r}: expected '<parent>/<service>'")
        self.name = name
        self.paths: list[Path] = []

    def create(self) -> list[Path]:
        created = []
        for d in _candidate_dirs(self.name):
            try:
                d.mkdir(parents=True, exist_ok=True)
                if "cpuset" in d.parts:
                    _inherit_cpuset(d)
                created.append(d)
            except OSError as exc:
                log.debug("cgroup unavailable", path=str(d), error=str(exc))
        self.paths = created
        return created

    def procs_files(self) -> list[str]:
        return [str(p / "cgroup.procs") for p in self.paths]

    def pids(self) -> set[int]:
        pids: set[int] = set()
        for p in self.paths:
            with contextlib.suppress(OSError):
                pids.update(int(x) for x in (p / "cgroup.procs").read_text().split())
        return pids

    def kill_all(self) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        for p in self.paths:
            with contextlib.suppress(OSError):
                p.rmdir()
            with contextlib.suppress(OSError):
                p.parent.rmdir()  # the shared parent, once no service uses it
        self.paths = []


def _inherit_cpuset(d: Path) -> None:
    """cpuset v1 children start empty: copy cpus/mems from the parent chain."""
    for sub in (d.parent, d):
        for f in ("cpuset.cpus", "cpuset.mems"):
            target = sub / f
            if target.exists() and not target.read_text().strip():
                target.write_text((sub.parent / f).read_text())


def enter_cgroups(procs_files: list[str]) -> None:
    """In a child before exec: move itself into the given cgroups (errors ignored)."""
    for f in procs_files:
        try:
            fd = os.open(f, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        except OSError:
            pass
