"""Reboot, Shutdown, Reset, Upgrade and Rollback: the machine API's lifecycle RPCs.

``LifecycleService(controller)`` is a HandlerProvider for ``MachineService(extensions=[...])``.
Each handler checks the request (bad values are INVALID_ARGUMENT naming the field), asks the
``LifecycleController`` (machined's node, which runs the sequence in its own task group) to
start the sequence, and answers at once with the actor id the sequence's events carry, as
Talos does: the node reboots after the reply is sent. A sequence that may not start now
(another one is running) is FAILED_PRECONDITION; an upgrade without an installer on this
node is UNIMPLEMENTED with the reason. Rollback answers with the slot it leaves and the one it
boots; a node with no previous good slot (never upgraded, or its upgrade rolled back) is
FAILED_PRECONDITION, and nothing changes on it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError

from kos.apis import auth
from kos.apis.gen.kos import machine as pb
from kos.apis.server.dispatch import Call, Dispatcher
from kos.apis.server.state import parse
from kos.resources.core import echo

SYSTEM_LABELS = ("STATE", "EPHEMERAL", "META")
T = TypeVar("T")


class LifecycleRefusedError(RuntimeError):
    """The sequence cannot start now (message says why) -> FAILED_PRECONDITION."""


class UpgradeUnavailableError(RuntimeError):
    """This node has no installer -> UNIMPLEMENTED."""


class LifecycleRequestError(ValueError):
    """A request value the node cannot use (e.g. a bad image reference) -> INVALID_ARGUMENT."""


@dataclass(frozen=True)
class ResetOptions:
    graceful: bool = True  # leave etcd first when a member
    reboot: bool = False  # reboot afterwards (else power off)
    wipe: tuple[str, ...] = ("STATE", "EPHEMERAL")  # system volume labels


class LifecycleController(Protocol):
    """What the node offers; each call starts a sequence and returns its actor id."""

    async def reboot(self, powercycle: bool) -> str: ...

    async def shutdown(self, force: bool) -> str: ...

    async def reset(self, options: ResetOptions) -> str: ...

    async def upgrade(self, image: str, *, preserve: bool, stage: bool, force: bool) -> str: ...

    async def rollback(self) -> tuple[str, str, str]:
        """(actor id, slot running now, slot booted next)."""
        ...


def parse_wipe(specs: Sequence[pb.ResetPartitionSpec]) -> tuple[str, ...]:
    """The labels to wipe (default STATE and EPHEMERAL); unknown labels are refused."""
    if not specs:
        return ("STATE", "EPHEMERAL")
    out = []
    for i, s in enumerate(specs):
        if s.label not in SYSTEM_LABELS:
            raise GRPCError(
                Status.INVALID_ARGUMENT,
                f"system_partitions_to_wipe[{i}].label: {echo(s.label)} is not a system volume, "
                f"expected one of {', '.join(SYSTEM_LABELS)}",
            )
        if s.wipe:
            out.append(s.label)
    return tuple(dict.fromkeys(out))


class LifecycleService:
    def __init__(self, controller: LifecycleController) -> None:
        self.controller = controller

    def register(self, d: Dispatcher) -> None:
        unary = Cardinality.UNARY_UNARY
        d.add(auth.MACHINE + "Reboot", self.reboot, unary)
        d.add(auth.MACHINE + "Shutdown", self.shutdown, unary)
        d.add(auth.MACHINE + "Reset", self.reset, unary)
        d.add(auth.MACHINE + "Upgrade", self.upgrade, unary)
        d.add(auth.MACHINE + "Rollback", self.rollback, unary)

    @staticmethod
    async def _start(fn: Awaitable[T]) -> T:
        try:
            return await fn
        except LifecycleRefusedError as exc:
            raise GRPCError(Status.FAILED_PRECONDITION, str(exc)) from None
        except UpgradeUnavailableError as exc:
            raise GRPCError(Status.UNIMPLEMENTED, str(exc)) from None
        except LifecycleRequestError as exc:
            raise GRPCError(Status.INVALID_ARGUMENT, str(exc)) from None

    async def reboot(self, call: Call) -> None:
        req = parse(pb.RebootRequest, await call.request())
        if req.mode not in set(pb.RebootRequestMode):
            raise GRPCError(
                Status.INVALID_ARGUMENT, f"mode: unknown value {int(req.mode)}, expected default or powercycle"
            )
        actor = await self._start(self.controller.reboot(req.mode == pb.RebootRequestMode.POWERCYCLE))
        await call.send(bytes(pb.RebootResponse(actor_id=actor)))

    async def shutdown(self, call: Call) -> None:
        req = parse(pb.ShutdownRequest, await call.request())
        actor = await self._start(self.controller.shutdown(req.force))
        await call.send(bytes(pb.ShutdownResponse(actor_id=actor)))

    async def reset(self, call: Call) -> None:
        req = parse(pb.ResetRequest, await call.request())
        opts = ResetOptions(graceful=req.graceful, reboot=req.reboot, wipe=parse_wipe(req.system_partitions_to_wipe))
        actor = await self._start(self.controller.reset(opts))
        await call.send(bytes(pb.ResetResponse(actor_id=actor)))

    async def upgrade(self, call: Call) -> None:
        req = parse(pb.UpgradeRequest, await call.request())
        if not req.image.strip():
            raise GRPCError(Status.INVALID_ARGUMENT, "image: the installer image reference is empty")
        actor = await self._start(
            self.controller.upgrade(req.image, preserve=req.preserve, stage=req.stage, force=req.force)
        )
        await call.send(bytes(pb.UpgradeResponse(ack="Upgrade request received", actor_id=actor)))

    async def rollback(self, call: Call) -> None:
        parse(pb.RollbackRequest, await call.request())
        actor, current, target = await self._start(self.controller.rollback())
        await call.send(bytes(pb.RollbackResponse(actor_id=actor, from_slot=current, to_slot=target)))
