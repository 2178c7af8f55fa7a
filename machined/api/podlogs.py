"""Kubernetes containers' logs through the ``Logs`` RPC (``kosctl logs -k``).

``PodLogsAPI(log_root)`` takes over ``Logs`` requests whose namespace is ``k8s.io`` (or
``cri``, as talosctl's CRI driver): the id names a container as ``kosctl containers -k``
prints it (``ns/pod:container:<id prefix>``), ``ns/pod:container``, ``ns/pod`` or a container
id, and the answer is the container's output from the kubelet's log file under ``log_root``
(``/var/log`` of the node; ``kos.platform.container.crilog``), with ``tail_lines`` and
``follow`` as for services. Other requests go to the ``Logs`` handler registered before it
(machined's services). Unknown container -> NOT_FOUND; malformed or ambiguous -> INVALID_ARGUMENT.
"""

from __future__ import annotations

from pathlib import Path

from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError

from kos.apis import auth
from kos.apis.gen.kos import machine as pb
from kos.apis.server.dispatch import Call, Dispatcher, Handler
from kos.apis.server.state import parse
from kos.platform.container import crilog

NAMESPACES = ("k8s.io", "cri")


class PodLogsAPI:
    def __init__(self, log_root: Path) -> None:
        self.log_root = log_root

    def register(self, d: Dispatcher) -> None:
        previous = d.handlers.get(auth.MACHINE + "Logs")
        d.add(auth.MACHINE + "Logs", self._handler(previous[0] if previous else None), Cardinality.UNARY_STREAM)

    def _handler(self, previous: Handler | None) -> Handler:
        async def logs(call: Call) -> None:
            req = parse(pb.LogsRequest, await call.request())
            if req.namespace in NAMESPACES:
                await self.container_logs(call, req)
            elif previous is not None:
                await previous(call)  # it reads the same request (Call.request reads the stream once)
            else:
                raise GRPCError(Status.UNIMPLEMENTED, "Logs of services is not served on this node")

        return logs

    async def container_logs(self, call: Call, req: pb.LogsRequest) -> None:
        try:
            found = await crilog.find(self.log_root, req.id)
        except ValueError as exc:
            raise GRPCError(Status.INVALID_ARGUMENT, str(exc)) from None
        except LookupError as exc:
            raise GRPCError(Status.NOT_FOUND, str(exc)) from None
        try:
            if req.tail_lines > 0 or req.follow:  # with -f and no --tail: what the last MAX_TAIL_BYTES hold
                tail = req.tail_lines if req.tail_lines > 0 else 1 << 31
                lines, offset, joiner = await crilog.read_tail(found.path, tail)
                if lines:
                    await call.send(bytes(pb.Data(bytes=b"".join(line + b"\n" for line in lines))))
                if req.follow:
                    async for chunk in crilog.follow(found.path, offset, joiner):
                        await call.send(bytes(pb.Data(bytes=chunk)))
                return
            async for chunk in crilog.read_all(found.path):
                await call.send(bytes(pb.Data(bytes=chunk)))
        except FileNotFoundError:
            raise GRPCError(Status.NOT_FOUND, f"container {found.ref}: its log file is gone "
                            "(the pod was removed)") from None
