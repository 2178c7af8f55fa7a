"""State.Watch over gRPC (cosi-semantics.md section 4): the empty first message, api_version
handling, setup errors before the first message, aggregated batches (split under the message
limit), and GrpcState resuming from its last bookmark after the server went away."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from grpclib.const import Status
from hypothesis import given, settings
from hypothesis import strategies as hst

from kos.apis import auth, wire
from kos.apis.client import APIError, Connection, EventDecoder, GrpcState
from kos.apis.gen.cosi import resource as rpb
from kos.apis.server import state as state_service
from kos.apis.server.dispatch import Node
from kos.apis.server.machine import ConfigStore, MachineService
from kos.apis.server.serve import APIServer
from kos.apis.server.state import StateService
from kos.apis.tls import server_context
from kos.resources.core import (
    REGISTRY,
    EventType,
    InMemoryState,
    InvalidWatchBookmarkError,
    Kind,
    NamespaceSpec,
    Resource,
    StateError,
)
from tests.support.loopback import LoopbackAPI, loopback_pki, serve_state

pytestmark = pytest.mark.anyio
NS_TYPE = "Namespaces.meta.cosi.dev"
KIND = Kind("user", NS_TYPE)


@pytest.fixture
async def served() -> AsyncIterator[tuple[InMemoryState, LoopbackAPI]]:
    st = InMemoryState()
    async with serve_state(st, writable=["user"]) as api:
        yield st, api


def _ns(id: str, d: str = "") -> Resource[NamespaceSpec]:
    return Resource.new(NamespaceSpec(description=d), id, namespace="user")


async def _raw_watch(conn: Connection, req: rpb.WatchRequest, n: int) -> list[bytes]:
    out = []
    with anyio.fail_after(10):
        async with conn.stream(auth.STATE + "Watch", bytes(req)) as replies:
            async for msg in replies:
                out.append(msg)
                if len(out) == n:
                    break
    return out


async def test_first_message_is_empty_and_api_version_gates_bootstrapped(
    served: tuple[InMemoryState, LoopbackAPI],
) -> None:
    st, api = served
    await st.create(_ns("a"))
    opts = rpb.WatchOptions(bootstrap_contents=True)
    async with api.connect() as conn:
        msgs = await _raw_watch(conn, rpb.WatchRequest(namespace="user", type=NS_TYPE, options=opts, api_version=1), 3)
        assert msgs[0] == b""
        evs = [e for m in msgs[1:] for e in wire.decode_watch_response(m)]
        assert [e.type for e in evs] == [EventType.CREATED, EventType.BOOTSTRAPPED]
        # the marker's resource is a tombstone sent with the empty Spec{} (as COSI does)
        assert evs[1].resource is not None and evs[1].resource.is_tombstone and evs[1].bookmark
        assert b"\x12\x00" in msgs[2]
        # api_version 0 (old clients): no BOOTSTRAPPED; the next message is the next change
        async with anyio.create_task_group() as tg:
            async def change() -> None:
                await anyio.sleep(0.2)
                await st.update_with_conflicts(_ns("a").pointer, lambda r: setattr(r.spec, "description", "x"))

            tg.start_soon(change)
            msgs = await _raw_watch(conn, rpb.WatchRequest(namespace="user", type=NS_TYPE, options=opts), 3)
        types = [e.type for m in msgs[1:] for e in wire.decode_watch_response(m)]
        assert types == [EventType.CREATED, EventType.UPDATED]


async def test_setup_errors_come_instead_of_the_first_message(served: tuple[InMemoryState, LoopbackAPI]) -> None:
    _, api = served
    async with api.connect() as conn:
        bad = rpb.WatchOptions(start_from_bookmark=b"\x00" * 16)
        with pytest.raises(APIError) as info:
            await _raw_watch(conn, rpb.WatchRequest(namespace="user", type=NS_TYPE, options=bad, api_version=1), 1)
        assert info.value.status == Status.FAILED_PRECONDITION
        with pytest.raises(InvalidWatchBookmarkError):
            async with GrpcState(conn).watch_kind(KIND, start_from_bookmark=b"junk"):
                pass
        one = rpb.WatchRequest(namespace="user", type=NS_TYPE, id="a", api_version=1,
                               options=rpb.WatchOptions(bootstrap_contents=True))
        with pytest.raises(APIError) as info:
            await _raw_watch(conn, one, 1)
        assert info.value.status == Status.UNIMPLEMENTED
        neg = rpb.WatchRequest(namespace="user", type=NS_TYPE, options=rpb.WatchOptions(tail_events=-1))
        with pytest.raises(APIError) as info:
            await _raw_watch(conn, neg, 1)
        assert info.value.status == Status.INVALID_ARGUMENT and "tail_events" in info.value.message


async def test_aggregated_bootstrap_is_split_under_the_message_limit(
    served: tuple[InMemoryState, LoopbackAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    st, api = served
    monkeypatch.setattr(state_service, "BATCH_BYTES", 4096)
    for i in range(200):
        await st.create(_ns(f"n{i:03}", "x" * 40))
    async with api.connect() as conn:
        req = rpb.WatchRequest(namespace="user", type=NS_TYPE, api_version=1,
                               options=rpb.WatchOptions(bootstrap_contents=True, aggregated=True))
        msgs: list[bytes] = []
        seen = 0
        with anyio.fail_after(10):
            async with conn.stream(auth.STATE + "Watch", bytes(req)) as replies:
                async for m in replies:
                    msgs.append(m)
                    evs = wire.decode_watch_response(m) if m else []
                    seen += len(evs)
                    if evs and evs[-1].type == EventType.BOOTSTRAPPED:
                        break
        assert seen == 201
        assert len(msgs) > 3 and all(len(m) <= 4096 + 512 for m in msgs)
        # the GrpcState view of the same watch: one batch per message, in id order
        async with GrpcState(conn).watch_kind_aggregated(KIND, bootstrap_contents=True) as batches:
            ids: list[str] = []
            with anyio.fail_after(10):
                async for batch in batches:
                    ids += [e.resource.id for e in batch if e.type == EventType.CREATED and e.resource]
                    if batch[-1].type == EventType.BOOTSTRAPPED:
                        break
        assert ids == sorted(ids) and len(ids) == 200


async def test_grpc_watch_resumes_from_bookmark_after_the_server_restarts(tmp_path: Path) -> None:
    st = InMemoryState()
    await st.create(_ns("a"))
    pki = loopback_pki()
    ctx = server_context(pki.server, pki.ca.cert_pem)

    async def start(port: int) -> APIServer:
        return await APIServer.start(
            "127.0.0.1", port, ctx, node=Node(names=frozenset(), port=port),
            state=StateService(st, auth.ResourcePolicy(frozenset({"user"}))),
            machine=MachineService(config=ConfigStore(tmp_path / "c.yaml")),
        )

    server = await start(0)
    port = server.port
    conn = Connection(f"127.0.0.1:{port}", ca=pki.ca.cert_pem, identity=pki.client((auth.ADMIN,)))
    try:
        gs = GrpcState(conn, reconnect_for=30)
        async with gs.watch_kind(KIND, bootstrap_contents=True) as events:
            it = aiter(events)
            with anyio.fail_after(10):
                assert (await anext(it)).type == EventType.CREATED
                assert (await anext(it)).type == EventType.BOOTSTRAPPED
                await server.close(grace=0.5)
                # changes while the client is cut off are not lost: they are in the history
                await st.update_with_conflicts(_ns("a").pointer, lambda r: setattr(r.spec, "description", "v2"))
                await st.create(_ns("b"))
                server = await start(port)
                ev = await anext(it)
                assert ev.type == EventType.UPDATED and ev.resource is not None
                assert ev.resource.spec.description == "v2"
                ev = await anext(it)
                assert ev.type == EventType.CREATED and ev.resource is not None and ev.resource.id == "b"
    finally:
        conn.close()
        await server.close(grace=0.5)


@given(st_ops=hst.lists(hst.tuples(hst.sampled_from(["create", "update", "destroy"]), hst.integers(0, 4)),
                        max_size=40),
       size=hst.integers(1, 8))
@settings(deadline=None, max_examples=50)
def test_event_encoder_matches_plain_encoding(st_ops: list[tuple[str, int]], size: int) -> None:
    """The per-stream caches never change a byte: every event encodes as without them, and
    decodes to an event that encodes the same."""

    async def main() -> None:
        s = InMemoryState()
        enc = state_service.EventEncoder(size)
        dec = EventDecoder(REGISTRY, size)
        async with s.watch_kind(KIND, bootstrap_contents=True) as events:
            for op, i in st_ops:
                ptr = _ns(f"r{i}").pointer
                try:
                    if op == "create":
                        await s.create(_ns(f"r{i}"))
                    elif op == "update":
                        await s.update_with_conflicts(
                            ptr, lambda r: setattr(r.spec, "description", r.spec.description + "x")
                        )
                    else:
                        await s.destroy(ptr)
                except StateError:  # not found / exists: no event
                    pass
            await s.create(_ns("end"))
            it = aiter(events)
            while True:
                ev = await anext(it)
                data = enc.event(ev)
                assert data == wire.length_delimited(b"\x0a", wire.encode_event(ev))
                (back,) = dec.events(data)  # and the client's cached decoding gives the same event
                assert (back.type, back.bookmark) == (ev.type, ev.bookmark)
                for got, want in ((back.resource, ev.resource), (back.old, ev.old)):
                    if want is not None and not want.is_tombstone:  # markers carry no spec to compare
                        assert got is not None and wire.encode_resource(got) == wire.encode_resource(want)
                if ev.resource is not None and ev.resource.id == "end":
                    break

    anyio.run(main)
