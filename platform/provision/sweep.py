"""Everything of a local cluster, found from what the kernel knows, not from recorded PIDs.

A node's keeper may be gone (killed, crashed) while its node runs on; ``destroy`` must still
end every process of the cluster. This module finds them:

* ``cluster_pids`` finds the processes: those in the node cgroups (``cgroups``: the keeper and
  so everything the node starts runs in or below them), recursively; those with a
  thread in the cluster's or a node's network namespace, every process of the PID namespace
  of any of those (other than the host's), and those whose command line names the cluster
  directory or its network namespace (keepers, the port forwarder, QEMU, helpers);
* ``kill_all`` SIGKILLs what ``cluster_pids`` finds until nothing is left.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path


def cgroup_pids(dirs: Iterable[str | Path]) -> set[int]:
    pids: set[int] = set()
    for d in dirs:
        for sub, _, files in os.walk(d):
            if "cgroup.procs" not in files:
                continue
            try:
                pids.update(int(x) for x in Path(sub, "cgroup.procs").read_text().split())
            except (OSError, ValueError):
                continue
    return pids


def _ns(pid: int | str, kind: str, task: int | str | None = None) -> str:
    path = f"/proc/{pid}/task/{task}/ns/{kind}" if task is not None else f"/proc/{pid}/ns/{kind}"
    try:
        return os.readlink(path)
    except OSError:
        return ""


def _netns_id(path: Path) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return ""
    return f"net:[{st.st_ino}]"


def _alive_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _ancestors() -> set[int]:
    out, pid = set(), os.getpid()
    while pid > 1:
        out.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return out


def cluster_pids(directory: str | Path, *, cgroups: Iterable[str | Path] = (), netns: Iterable[str] = (),
                 markers: Iterable[str] = ()) -> set[int]:
    """Every process of a cluster (or of one node): in or below the ``cgroups`` directories,
    with a thread in one of the ``netns`` (names under /run/netns), in the PID namespace of
    one of those, or with ``directory`` (anything below it) or an argument equal to one of
    ``markers`` in its command line. Never this process or its ancestors."""
    cdir = str(directory).rstrip("/") + "/"
    found = cgroup_pids(cgroups)
    net_ids = {i for i in (_netns_id(Path("/run/netns") / n) for n in netns) if i}
    markers = set(markers)
    host_pidns = _ns("self", "pid")
    pids = _alive_pids()
    for pid in pids:
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(cdir in a or a == cdir[:-1] or a in markers for a in args):
            found.add(pid)
            continue
        if net_ids:
            try:
                tasks = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            if any(_ns(pid, "net", t) in net_ids for t in tasks):
                found.add(pid)
    pidns = {_ns(p, "pid") for p in found} - {host_pidns, ""}
    if pidns:
        found.update(p for p in pids if _ns(p, "pid") in pidns)
    return {p for p in found if _alive(p)} - _ancestors()


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def kill_all(find: Callable[[], set[int]], *, timeout: float = 10.0) -> set[int]:
    """SIGKILL whatever ``find`` returns until it returns nothing (new children of dying
    processes are found on the next round); returns what survived ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        pids = find()
        if not pids or time.monotonic() > deadline:
            return pids
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(pid, os.WNOHANG)  # our own children (tests, create's cleanup)
            except ChildProcessError:
                pass
        time.sleep(0.05)


def namespace_inits(pids: Iterable[int]) -> list[int]:
    """Those of ``pids`` that are PID 1 of a PID namespace below the host's (a node's init)."""
    out = []
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:"):
                levels = line.split()[1:]
                if len(levels) > 1 and levels[-1] == "1":
                    out.append(pid)
                break
    return out
