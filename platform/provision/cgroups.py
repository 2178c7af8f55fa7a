"""A namespace node's own cgroups: one directory per mounted hierarchy, and its cgroup namespace.

Each node runs in ``<provisioner's cgroup>/kos-<cluster>-<node>`` of every cgroup hierarchy
the host mounts under ``/sys/fs/cgroup`` (v1 controllers, ``name=systemd``, the unified v2
hierarchy). The node is started in a new cgroup namespace from inside those directories
(``unshare --cgroup``), and ``nodeinit`` mounts fresh cgroup filesystems, so the node sees
its own directory as ``/`` of every hierarchy: the kubelet's ``cgroupRoot: /`` and runc's
``/kubepods/...`` paths stay inside the node, nodes cannot see or clean up each other's pods,
and limits the host puts on the provisioner keep applying to everything the node runs.

``hierarchies()`` lists the host's cgroup mounts (from ``/proc/self/mountinfo``);
``create(name)`` makes the node's directories (cpuset gets its parent's cpus and mems, which a
v1 cpuset needs before a task may join); ``enter(name)`` moves the calling process into them
(the provisioner calls it between fork and exec); ``remove(name)`` deletes the tree once the
node's processes are gone.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Hierarchy:
    mountpoint: Path  # /sys/fs/cgroup/memory
    fstype: str  # cgroup | cgroup2
    options: str  # the superblock options that name it: "memory", "name=systemd", ""
    own: str  # this process's path in it (from /proc/self/cgroup)


def _own_paths() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        out[controllers or ""] = path
        for c in controllers.split(","):
            out[c] = path
    return out


def hierarchies(mountinfo: str | None = None) -> list[Hierarchy]:
    """The cgroup filesystems mounted under /sys/fs/cgroup, with this process's path in each."""
    text = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
    own = _own_paths()
    out = []
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        rfields = right.split()
        if len(fields) < 5 or len(rfields) < 3 or rfields[0] not in ("cgroup", "cgroup2"):
            continue
        mp = Path(fields[4])
        if CGROUP_ROOT not in mp.parents and mp != CGROUP_ROOT:
            continue
        if rfields[0] == "cgroup2":
            out.append(Hierarchy(mp, "cgroup2", "", own.get("", "/")))
            continue
        opts = [o for o in rfields[2].split(",") if o not in ("rw", "ro") and not o.startswith("release_agent")
                and o not in ("clone_children", "noprefix", "xattr")]
        key = ",".join(o.removeprefix("name=") if o.startswith("name=") else o for o in opts)
        named = next((o for o in opts if o.startswith("name=")), None)
        path = own.get(named if named else key) or own.get(opts[0] if opts else "", "/")
        out.append(Hierarchy(mp, "cgroup", ",".join(opts), path))
    return out


def node_dirs(name: str) -> list[Path]:
    return [h.mountpoint / h.own.lstrip("/") / name for h in hierarchies()]


def create(name: str) -> list[Path]:
    """Make the node's cgroup directories (idempotent); returns them."""
    dirs = node_dirs(name)
    for d in dirs:
        d.mkdir(exist_ok=True)
        for f in ("cpuset.cpus", "cpuset.mems"):
            if (d / f).exists() and not (d / f).read_text().strip():
                (d / f).write_text((d.parent / f).read_text())
    return dirs


def enter(dirs: list[Path]) -> None:
    """Move the calling process into ``dirs`` (between fork and exec: no allocation-heavy work)."""
    for d in dirs:
        fd = os.open(d / "cgroup.procs", os.O_WRONLY)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)


def remove(name: str, *, timeout: float = 10.0, dirs: list[Path] | None = None) -> list[str]:
    """Delete the node's cgroup trees (``dirs``, as ``create`` returned them, or as they would be
    for this process), deepest first; returns what could not be removed."""
    left: list[str] = []
    deadline = time.monotonic() + timeout
    for top in node_dirs(name) if dirs is None else dirs:
        if not top.is_dir():
            continue
        subdirs = sorted((Path(p) for p, _, _ in os.walk(top)), key=lambda p: len(p.parts), reverse=True)
        for d in subdirs:
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:  # EBUSY while the last tasks exit
                    if time.monotonic() > deadline:
                        left.append(f"{d}: {exc.strerror}")
                        break
                    time.sleep(0.05)
    return left
