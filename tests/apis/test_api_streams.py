"""One client connection may keep many calls open: 500 concurrent watches on a single
HTTP/2 connection are all established (first, empty WatchResponse) quickly and all receive
the next event (h2's default announces 100 concurrent streams, grpc-go's none)."""

from __future__ import annotations

import statistics
import time

import anyio
import pytest

from kos.apis import auth
from kos.apis.gen.cosi import resource as rpb
from kos.apis.server.serve import MAX_CONCURRENT_STREAMS
from kos.resources.core import InMemoryState, NamespaceSpec, Resource
from tests.support.loopback import serve_state

pytestmark = pytest.mark.anyio
NS_TYPE = "Namespaces.meta.cosi.dev"
WATCHES = 500


async def test_500_watches_on_one_connection_all_get_their_first_event_quickly() -> None:
    assert MAX_CONCURRENT_STREAMS >= 1000
    st = InMemoryState()
    req = bytes(rpb.WatchRequest(namespace="user", type=NS_TYPE, api_version=1))
    established: list[float] = []
    delivered: list[float] = []
    all_established = anyio.Event()

    async with serve_state(st, writable=["user"]) as api, api.connect([auth.READER], timeout=None) as conn:
        start = time.perf_counter()

        async def watch() -> None:
            async with conn.stream(auth.STATE + "Watch", req) as replies:
                first = await replies.__anext__()
                assert first == b""
                established.append(time.perf_counter() - start)
                if len(established) == WATCHES:
                    all_established.set()
                msg = await replies.__anext__()
                assert rpb.WatchResponse().parse(msg).event[0].resource.metadata.id == "hello"
                delivered.append(time.perf_counter() - start)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for _ in range(WATCHES):
                    tg.start_soon(watch)
                await all_established.wait()
                t_created = time.perf_counter() - start
                await st.create(Resource.new(NamespaceSpec(), "hello", namespace="user"))
                assert len(api.server.server.protocols) == 1  # all on one connection
    print(f"{WATCHES} watches on one connection: established p50 {statistics.median(established):.2f} s, "
          f"all {max(established):.2f} s; event to all {max(delivered) - t_created:.2f} s")
    assert len(delivered) == WATCHES
    assert max(established) < 10  # with the default 100, the 101st never gets its first message
