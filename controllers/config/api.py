"""ApplyConfiguration on top of ``ConfigManager``: ``ManagedConfigStore`` is the
``kos.apis.server.machine.ConfigStore`` a node hands to ``MachineService`` so the RPC goes
through validation, diff, modes and the MachineConfig resource (INVALID_ARGUMENT for a bad
config or request, FAILED_PRECONDITION for a change the mode cannot make)."""

from __future__ import annotations

from grpclib.const import Status
from grpclib.exceptions import GRPCError

from kos.apis.gen.kos import machine as pb
from kos.apis.server.machine import ConfigStore
from kos.controllers.config.manager import ApplyError, ConfigManager, ErrorCode

Mode = pb.ApplyConfigurationRequestMode

MODE_NAMES = {Mode.AUTO: "auto", Mode.NO_REBOOT: "no-reboot", Mode.REBOOT: "reboot", Mode.STAGED: "staged",
              Mode.TRY: "try"}
_STATUS = {ErrorCode.INVALID_ARGUMENT: Status.INVALID_ARGUMENT,
           ErrorCode.FAILED_PRECONDITION: Status.FAILED_PRECONDITION}


MAX_STATUS_MESSAGE = 8192
"""grpc-message is an HTTP/2 header: its HPACK encoding is slow for large values and runs on
the event loop, and clients drop long headers; config errors are already cut to the first
few (``ConfigErrors``), this bounds every other message too."""
MAX_WARNINGS = 200


def cap_message(message: str) -> str:
    if len(message) <= MAX_STATUS_MESSAGE:
        return message
    return message[: MAX_STATUS_MESSAGE - 40] + f"... ({len(message)} characters, cut)"


class ManagedConfigStore(ConfigStore):
    managed = True

    def __init__(self, manager: ConfigManager) -> None:
        super().__init__(manager.active_path)
        self.manager = manager

    async def handle_apply(self, req: pb.ApplyConfigurationRequest) -> tuple[pb.ApplyConfigurationResponse, bool]:
        """The reply, and whether the node must reboot once it is sent."""
        mode = MODE_NAMES.get(req.mode)
        if mode is None:
            raise GRPCError(Status.INVALID_ARGUMENT, f"mode: unknown value {int(req.mode)}")
        try:
            out = await self.manager.apply(req.data, mode, dry_run=req.dry_run, try_timeout=req.try_timeout)
        except ApplyError as exc:
            raise GRPCError(_STATUS[exc.code], cap_message(str(exc))) from None
        warnings = out.warnings[:MAX_WARNINGS] + (
            [f"... and {len(out.warnings) - MAX_WARNINGS} more warnings"] if len(out.warnings) > MAX_WARNINGS else [])
        resp = pb.ApplyConfigurationResponse(warnings=warnings, mode=req.mode, mode_details=out.details,
                                             diff=out.diff)
        return resp, out.reboot

    async def after_reply(self, reboot: bool) -> None:
        if reboot:
            await self.manager.reboot()
