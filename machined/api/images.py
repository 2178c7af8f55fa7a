"""The ``ImageList`` RPC: the container images containerd holds (``kosctl images``), read
through Debian's ``ctr`` like ``Containers``.

``ImagesAPI(containers)`` is a machine-API extension on top of ``ContainersAPI`` (same socket
and status codes: UNAVAILABLE without containerd, INVALID_ARGUMENT for a malformed namespace,
NOT_FOUND for an unknown one). One message per image: name, digest, size (bytes, from ctr's
rounded figure) and platforms.
"""

from __future__ import annotations

import re

from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError

from kos.apis import auth
from kos.apis.gen.kos import machine as pb
from kos.apis.server.dispatch import Call, Dispatcher
from kos.apis.server.state import parse
from kos.machined.api.containers import ContainersAPI
from kos.resources.core import echo

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)$")
_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
          "kB": 1000, "KB": 1000, "MB": 10**6, "GB": 10**9, "TB": 10**12}


def parse_images(text: str) -> list[pb.ImageListResponse]:
    """``ctr images list`` (REF TYPE DIGEST SIZE PLATFORMS LABELS; SIZE is "2.0 MiB")."""
    out = []
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 5:
            continue
        size = 0
        if _SIZE.match(f[3]) and f[4] in _UNITS:
            size = int(float(f[3]) * _UNITS[f[4]])
            platforms = f[5] if len(f) > 5 else ""
        else:
            platforms = f[4]
        out.append(pb.ImageListResponse(name=f[0], digest=f[2], size=size, platforms=platforms))
    return out


class ImagesAPI:
    def __init__(self, containers: ContainersAPI) -> None:
        self.containers = containers

    def register(self, d: Dispatcher) -> None:
        d.add(auth.MACHINE + "ImageList", self.image_list, Cardinality.UNARY_STREAM)

    async def image_list(self, call: Call) -> None:
        req = parse(pb.ImageListRequest, await call.request())
        namespace = req.namespace or "system"
        await self.containers.list_containers(namespace)  # the namespace checks and errors
        try:
            text = await self.containers._ctr("images", "list", namespace=namespace)
        except GRPCError as exc:
            raise GRPCError(exc.status, f"images of namespace {echo(namespace)}: {exc.message}") from None
        if not text.strip():
            raise GRPCError(Status.UNAVAILABLE, "containerd answered `images list` with nothing")
        for image in parse_images(text):
            await call.send(bytes(image))
