"""The ``Stats`` RPC: CPU and memory of the containers containerd runs (``kosctl stats``).

``StatsAPI(containers)`` is a machine-API extension on top of ``ContainersAPI`` (same socket,
same status codes: UNAVAILABLE without containerd, NOT_FOUND for an unknown namespace). For
every container with a running task it reads the task's cgroups, found from
``/proc/<pid>/cgroup``: cgroup v1 ``cpuacct.usage`` (nanoseconds) and
``memory.usage_in_bytes``, or cgroup v2 ``cpu.stat`` ``usage_usec`` and ``memory.current``.
A task that exits meanwhile is left out; containers without a task report zeros. ``pod_id``
is not filled (the CRI's pod labels are not read).
"""

from __future__ import annotations

from pathlib import Path

import anyio
from grpclib.const import Cardinality

from kos.apis import auth
from kos.apis.gen.kos import machine as pb
from kos.apis.server.dispatch import Call, Dispatcher
from kos.apis.server.state import parse
from kos.machined.api.containers import ContainersAPI

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def task_usage(pid: int, proc: Path = Path("/proc"), root: Path = CGROUP_ROOT) -> tuple[int, int] | None:
    """(CPU nanoseconds, memory bytes) of the cgroups of ``pid``; None when it is gone (blocking)."""
    text = _read(proc / str(pid) / "cgroup")
    if not text:
        return None
    cpu = mem = None
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        rel = path.lstrip("/")
        names = controllers.split(",")
        if "cpuacct" in names and cpu is None:
            for d in ("cpu,cpuacct", "cpuacct,cpu", "cpuacct"):
                raw = _read(root / d / rel / "cpuacct.usage").strip()
                if raw.isdigit():
                    cpu = int(raw)
                    break
        if "memory" in names and mem is None:
            raw = _read(root / "memory" / rel / "memory.usage_in_bytes").strip()
            if raw.isdigit():
                mem = int(raw)
        if controllers == "":  # cgroup v2 (or the unified hierarchy of a hybrid setup)
            for unified in (root, root / "unified"):
                if cpu is None:
                    for stat in _read(unified / rel / "cpu.stat").splitlines():
                        key, _, value = stat.partition(" ")
                        if key == "usage_usec" and value.strip().isdigit():
                            cpu = int(value) * 1000
                if mem is None:
                    raw = _read(unified / rel / "memory.current").strip()
                    if raw.isdigit():
                        mem = int(raw)
    return cpu or 0, mem or 0


class StatsAPI:
    def __init__(self, containers: ContainersAPI) -> None:
        self.containers = containers

    def register(self, d: Dispatcher) -> None:
        d.add(auth.MACHINE + "Stats", self.stats, Cardinality.UNARY_UNARY)

    async def stats(self, call: Call) -> None:
        req = parse(pb.StatsRequest, await call.request())
        found = await self.containers.list_containers(req.namespace)
        out = []
        for c in found:
            usage = await anyio.to_thread.run_sync(task_usage, c.pid) if c.pid else (0, 0)
            if usage is None:
                continue
            out.append(pb.Stat(namespace=c.namespace, id=c.id, name=c.id, cpu_usage=usage[0],
                               memory_usage=usage[1]))
        await call.send(bytes(pb.StatsResponse(stats=out)))
