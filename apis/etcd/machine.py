"""Client side of the machine API's etcd RPCs (what ``kosctl bootstrap`` and ``kosctl etcd``
call): thin typed wrappers over a ``kos.apis.client.Connection``, plus the client stream of
EtcdRecover (which the connection's unary/server-stream helpers do not cover; client streams
are not forwarded between nodes, so it goes to the endpoint itself).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import h2.exceptions
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from kos.apis import auth
from kos.apis.client import APIError, Connection
from kos.apis.gen.kos import machine as pb
from kos.apis.wire import RawMessage

CHUNK = 256 * 1024


async def bootstrap(
    conn: Connection, *, node: str | None = None, recover: bool = False, skip_hash_check: bool = False
) -> None:
    req = pb.BootstrapRequest(recover_etcd=recover, recover_skip_hash_check=skip_hash_check)
    await conn.unary(auth.MACHINE + "Bootstrap", bytes(req), node=node)


async def member_list(conn: Connection, *, node: str | None = None) -> list[pb.EtcdMember]:
    data = await conn.unary(auth.MACHINE + "EtcdMemberList", bytes(pb.EtcdMemberListRequest(query_local=True)),
                            node=node)
    return list(pb.EtcdMemberListResponse().parse(data).members)


async def status(conn: Connection, *, node: str | None = None) -> pb.EtcdStatusResponse:
    data = await conn.unary(auth.MACHINE + "EtcdStatus", bytes(pb.EtcdStatusRequest()), node=node)
    return pb.EtcdStatusResponse().parse(data)


async def _action(conn: Connection, method: str, req: bytes, node: str | None) -> str:
    data = await conn.unary(auth.MACHINE + method, req, node=node)
    return pb.EtcdActionResponse().parse(data).member


async def remove_member(
    conn: Connection, *, member: str = "", member_id: int = 0, node: str | None = None
) -> str:
    req = pb.EtcdRemoveMemberRequest(member=member, member_id=member_id)
    return await _action(conn, "EtcdRemoveMember", bytes(req), node)


async def leave_cluster(conn: Connection, *, node: str | None = None) -> str:
    return await _action(conn, "EtcdLeaveCluster", bytes(pb.EtcdLeaveClusterRequest()), node)


async def forfeit_leadership(conn: Connection, *, node: str | None = None) -> str:
    """Returns the member that gave up leadership ("" when the node was not the leader)."""
    return await _action(conn, "EtcdForfeitLeadership", bytes(pb.EtcdForfeitLeadershipRequest()), node)


async def snapshot(conn: Connection, path: Path, *, node: str | None = None) -> int:
    """Stream a snapshot into ``path`` (written as ``path.part`` then renamed); returns bytes."""
    part = path.with_name(path.name + ".part")
    size = 0
    try:
        req = bytes(pb.EtcdSnapshotRequest())
        async with (
            await anyio.open_file(part, "wb") as f,
            conn.stream(auth.MACHINE + "EtcdSnapshot", req, node=node, timeout=None) as replies,
        ):
            async for data in replies:
                chunk = pb.Data().parse(data).bytes
                size += len(chunk)
                await f.write(chunk)
        await anyio.Path(part).rename(path)
    finally:
        await anyio.Path(part).unlink(missing_ok=True)
    return size


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as f:
        while True:
            chunk = await f.read(CHUNK)
            if not chunk:
                return
            yield chunk


async def recover_upload(conn: Connection, path: Path, *, node: str | None = None) -> int:
    """Upload a snapshot with EtcdRecover (before ``bootstrap(recover=True)``); returns bytes sent.
    ``node`` must be the endpoint itself (client streams are not forwarded)."""
    size = 0
    md = {auth.NODE_METADATA: node} if node else None
    try:
        async with conn.channel.request(
            auth.MACHINE + "EtcdRecover", Cardinality.STREAM_UNARY, RawMessage, RawMessage, timeout=conn.timeout,
            metadata=md,
        ) as s:
            try:
                await s.send_request()
                async for chunk in _chunks(path):
                    size += len(chunk)
                    await s.send_message(RawMessage(bytes(pb.Data(bytes=chunk))))
                await s.end()
            except (h2.exceptions.StreamClosedError, StreamTerminatedError):
                pass  # the server answered (refused) before reading everything: its status follows
            await s.recv_message()
            await s.recv_trailing_metadata()
    except GRPCError as exc:
        raise APIError(conn.endpoint, exc.status, exc.message or "") from None
    except (StreamTerminatedError, OSError) as exc:
        raise APIError(conn.endpoint, Status.UNAVAILABLE, f"connection failed: {exc}") from None
    return size
