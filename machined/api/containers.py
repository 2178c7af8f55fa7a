"""The ``Containers`` RPC: what the node's containerd runs, read through Debian's ``ctr``.

``ContainersAPI(socket)`` is a machine-API extension (``MachineService(extensions=[...])``).
It lists containers (id, image, runtime) and joins them with their tasks (pid, status) in
one namespace or in every namespace containerd knows; Kubernetes containers (``k8s.io``) get
their ``pod_ref`` (``ns/pod:container:<id>``) from the kubelet's log links under
``pod_log_root`` (``kos.platform.container.crilog``). containerd not running -> UNAVAILABLE;
a malformed namespace name -> INVALID_ARGUMENT; an unknown namespace -> NOT_FOUND.
"""

from __future__ import annotations

import re
from pathlib import Path

import anyio
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError

from kos.apis import auth
from kos.apis.gen.kos import machine as pb
from kos.apis.server.dispatch import Call, Dispatcher
from kos.apis.server.state import parse
from kos.platform.container import crilog
from kos.resources.core import echo

# containerd's namespace rule: labels of [a-zA-Z0-9_-], separated by dots
_NAMESPACE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?)*$")


def parse_table(text: str) -> list[list[str]]:
    """``ctr ... list`` output without its header, split on runs of whitespace."""
    lines = [line for line in text.splitlines() if line.strip()]
    return [line.split() for line in lines[1:]]


class ContainersAPI:
    def __init__(self, socket: Path, *, ctr_binary: str = "ctr", timeout: float = 10.0,
                 pod_log_root: Path | None = None) -> None:
        self.socket = socket
        self.pod_log_root = pod_log_root
        self.ctr_binary = ctr_binary
        self.timeout = timeout

    def register(self, d: Dispatcher) -> None:
        d.add(auth.MACHINE + "Containers", self.containers, Cardinality.UNARY_UNARY)

    async def _ctr(self, *args: str, namespace: str | None = None) -> str:
        cmd = [self.ctr_binary, "--address", str(self.socket)]
        if namespace is not None:
            cmd += ["--namespace", namespace]
        cmd += list(args)
        with anyio.fail_after(self.timeout):
            result = await anyio.run_process(cmd, check=False)
        if result.returncode != 0:
            raise GRPCError(Status.UNAVAILABLE, f"containerd did not answer `{' '.join(args)}`: "
                            f"{result.stderr.decode(errors='replace').strip()}")
        return result.stdout.decode(errors="replace")

    async def list_containers(self, namespace: str = "") -> list[pb.ContainerInfo]:
        if namespace and not _NAMESPACE.match(namespace):
            raise GRPCError(
                Status.INVALID_ARGUMENT,
                f"namespace {echo(namespace)}: expected dot-separated labels of letters, digits, '_' and '-'")
        if not await anyio.Path(self.socket).is_socket():
            raise GRPCError(Status.UNAVAILABLE, f"containerd is not running on this node (no socket at {self.socket})")
        known = sorted((await self._ctr("namespaces", "list", "--quiet")).split())
        if namespace and namespace not in known:
            raise GRPCError(
                Status.NOT_FOUND, f"namespace {echo(namespace)}: containerd knows {', '.join(known) or 'none'}")
        out: list[pb.ContainerInfo] = []
        for ns in [namespace] if namespace else known:
            refs = {}
            if ns == "k8s.io" and self.pod_log_root is not None:
                refs = {c.id: c.ref for c in await crilog.containers(self.pod_log_root)}
            tasks = {row[0]: row for row in parse_table(await self._ctr("tasks", "list", namespace=ns)) if row}
            for row in parse_table(await self._ctr("containers", "list", namespace=ns)):
                if not row:
                    continue
                cid = row[0]
                image = row[1] if len(row) > 1 else ""
                runtime = row[2] if len(row) > 2 else ""
                task = tasks.get(cid)
                pid = int(task[1]) if task is not None and len(task) > 1 and task[1].isdigit() else 0
                status = task[2] if task is not None and len(task) > 2 else "CREATED"
                out.append(pb.ContainerInfo(namespace=ns, id=cid, image=image, runtime=runtime, pid=pid,
                                            status=status, pod_ref=refs.get(cid, "")))
        return out

    async def containers(self, call: Call) -> None:
        req = parse(pb.ContainersRequest, await call.request())
        found = await self.list_containers(req.namespace)
        await call.send(bytes(pb.ContainersResponse(containers=found)))
