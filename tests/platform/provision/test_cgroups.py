"""A namespace node's cgroup hierarchies come from the host's mount table (the node mounts the
same ones fresh in its cgroup namespace), with the provisioner's own path in each."""

from __future__ import annotations

from pathlib import Path

from kos.platform.provision import cgroups

MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 / /mnt/other rw,relatime - cgroup cgroup rw,pids
"""


def test_hierarchies_from_mountinfo() -> None:
    found = {str(h.mountpoint): (h.fstype, h.options) for h in cgroups.hierarchies(MOUNTINFO)}
    assert found == {
        "/sys/fs/cgroup/cpu": ("cgroup", "cpu"),
        "/sys/fs/cgroup/memory": ("cgroup", "memory"),
        "/sys/fs/cgroup/systemd": ("cgroup", "name=systemd"),
        "/sys/fs/cgroup/unified": ("cgroup2", ""),
    }  # cgroups mounted elsewhere are not the node's business


def test_own_paths_are_this_process_cgroups() -> None:
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    own = {line.split(":", 2)[1]: line.split(":", 2)[2] for line in lines}
    for h in cgroups.hierarchies():
        key = "" if h.fstype == "cgroup2" else h.options
        assert h.own == own[key]
