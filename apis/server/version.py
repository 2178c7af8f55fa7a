"""The machine API's ``Version`` call, answered without the generated machine API.

``Version`` is what a client calls first (``kosctl version --insecure``, health checks, a
provisioner waiting for a node): machined answers it from the moment its port listens, before
betterproto and the generated ``kos.machine`` messages (~130 ms) are imported (issue 17). The
``VersionResponse`` is encoded here by hand with the field numbers of
``apis/proto/kos/machine/machine.proto``; ``tests/apis/test_version_wire.py`` checks it against
the generated classes. ``MachineService`` answers Version through the same function.
"""

from __future__ import annotations

import platform
import sys

from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError

from kos.apis import auth
from kos.apis.protowire import WireError, fields, length_delimited, string_field
from kos.apis.server.dispatch import Call, Dispatcher

VERSION = "0.1.0"

_PYTHON = platform.python_version()
_ARCH = platform.machine()


def version_response(platform_name: str, maintenance: bool) -> bytes:
    """``VersionResponse{version: VersionInfo{tag, python_version, os, arch}, platform:
    PlatformInfo{name, mode}, maintenance}`` (mode: ``maintenance`` or the platform's name)."""
    info = (string_field(b"\x0a", VERSION) + string_field(b"\x22", _PYTHON)
            + string_field(b"\x2a", sys.platform) + string_field(b"\x32", _ARCH))
    mode = "maintenance" if maintenance else platform_name
    where = string_field(b"\x0a", platform_name) + string_field(b"\x12", mode)
    return length_delimited(b"\x12", info) + length_delimited(b"\x1a", where) + (b"\x20\x01" if maintenance else b"")


def check_version_request(data: bytes) -> None:
    """``VersionRequest`` has no fields; anything well-formed is accepted (unknown fields are
    ignored, as protobuf parsers do), malformed bytes are INVALID_ARGUMENT."""
    try:
        fields(data)
    except WireError as exc:
        raise GRPCError(Status.INVALID_ARGUMENT, f"malformed VersionRequest: {exc}") from None


class VersionService:
    """The ``Version`` handler alone: what machined serves while the rest of its API loads."""

    def __init__(self, platform_name: str, *, maintenance: bool) -> None:
        self.platform_name = platform_name
        self.maintenance = maintenance

    def register(self, d: Dispatcher) -> None:
        d.add(auth.MACHINE + "Version", self.version, Cardinality.UNARY_UNARY)

    async def version(self, call: Call) -> None:
        check_version_request(await call.request())
        await call.send(version_response(self.platform_name, self.maintenance))
