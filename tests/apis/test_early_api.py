"""A server that listens before its services are loaded (``APIServer.listen`` then ``serve``,
what machined does to answer first: issue 17): its early methods answer at once, any other
call waits for the services and is then answered by them, a method nobody serves is
answered (grpclib's "Method not found") once the services are in, and a server closed before serving tells waiting
callers it is unavailable. ``Version``'s hand-written answer decodes as the generated
``VersionResponse`` would have it."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from grpclib.const import Status
from hypothesis import given
from hypothesis import strategies as st

from kos.apis import auth
from kos.apis.client import APIError, Connection, GrpcState
from kos.apis.gen.kos import machine as pb
from kos.apis.server.dispatch import Node
from kos.apis.server.machine import ConfigStore, MachineService
from kos.apis.server.serve import APIServer
from kos.apis.server.state import StateService
from kos.apis.server.version import VERSION, VersionService, check_version_request, version_response
from kos.apis.tls import PEMPair, server_context
from kos.platform.linux.selfsigned import self_signed
from kos.resources.core import InMemoryState, Pointer, publish_meta

NS = ("meta", "Namespaces.meta.cosi.dev", "meta")


async def _listen() -> APIServer:
    ctx = server_context(PEMPair(*self_signed("kos-test", ["localhost"], ["127.0.0.1"])), None)
    node = Node(names=frozenset(), port=0, maintenance=True)
    return await APIServer.listen("127.0.0.1", 0, ctx, node=node, early=[VersionService("process", maintenance=True)])


@pytest.mark.anyio
async def test_early_methods_answer_and_the_rest_wait_for_the_services(tmp_path: Path) -> None:
    server = await _listen()
    state = InMemoryState()
    await publish_meta(state)
    try:
        async with Connection(f"127.0.0.1:{server.port}", insecure=True, timeout=20) as conn:
            v = pb.VersionResponse().parse(await conn.unary(auth.MACHINE + "Version", b""))
            assert v.maintenance and v.platform.name == "process" and v.version.tag == VERSION
            got: list[str] = []

            async def get() -> None:
                got.append((await GrpcState(conn).get(Pointer(*NS))).id)

            async with anyio.create_task_group() as tg:
                tg.start_soon(get)
                await anyio.sleep(0.3)
                assert got == []
                server.serve(state=StateService(state, auth.ResourcePolicy()),
                             machine=MachineService(config=ConfigStore(tmp_path / "config.yaml"), maintenance=True))
            assert got == ["meta"]
            with pytest.raises(APIError) as info, anyio.fail_after(10):  # answered, not left waiting
                await conn.unary("/kos.machine.MachineService/NoSuchMethod", b"")
            # grpclib's own "Method not found" (a trailers-only answer its client reads as UNKNOWN)
            assert info.value.status in (Status.UNIMPLEMENTED, Status.UNKNOWN)
    finally:
        await server.close(grace=1)


@pytest.mark.anyio
async def test_a_server_closed_before_serving_answers_waiting_calls_unavailable() -> None:
    server = await _listen()
    errors: list[APIError] = []
    async with Connection(f"127.0.0.1:{server.port}", insecure=True, timeout=20) as conn:

        async def get() -> None:
            try:
                await GrpcState(conn).get(Pointer(*NS))
            except APIError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(get)
            await anyio.sleep(0.3)
            await server.close(grace=1)
    assert len(errors) == 1 and errors[0].status in (Status.UNAVAILABLE, Status.CANCELLED)


@given(name=st.text(max_size=40), maintenance=st.booleans())
def test_the_hand_written_version_answer_is_the_generated_message(name: str, maintenance: bool) -> None:
    got = pb.VersionResponse().parse(version_response(name, maintenance))
    assert got.maintenance is maintenance
    assert got.platform.name == name and got.platform.mode == ("maintenance" if maintenance else name)
    assert got.version.tag == VERSION and got.version.os and got.version.arch and got.version.python_version
    want = pb.VersionResponse(version=got.version, platform=pb.PlatformInfo(name=name, mode=got.platform.mode),
                              maintenance=maintenance)
    assert pb.VersionResponse().parse(bytes(want)) == got


def test_a_malformed_version_request_is_invalid_argument() -> None:
    from grpclib.exceptions import GRPCError

    check_version_request(b"")
    check_version_request(bytes([0x0A, 0x01, 0x78]))  # an unknown field is ignored, as protobuf does
    with pytest.raises(GRPCError) as info:
        check_version_request(b"\x0a\x05ab")
    assert info.value.status == Status.INVALID_ARGUMENT and "malformed VersionRequest" in (info.value.message or "")
