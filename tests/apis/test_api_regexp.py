"""State.List / Watch ``id_query.regexp`` over gRPC is RE2 with Go's syntax: Go constructions
select what a Go client expects, constructions RE2 lacks and 5000 nested ``(`` answer
INVALID_ARGUMENT (never UNKNOWN), and the server keeps serving."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from grpclib.const import Status

from kos.apis import auth
from kos.apis.client import APIError, Connection
from kos.apis.gen.cosi import resource as rpb
from kos.resources.core import InMemoryState, NamespaceSpec, Resource, publish_meta
from tests.support.loopback import LoopbackAPI, serve_state

pytestmark = pytest.mark.anyio
NS_TYPE = "Namespaces.meta.cosi.dev"
IDS = ["alpha", "beta-2", "ärger", "a.b", "x\ny", "kubelet"]


@pytest.fixture
async def api() -> AsyncIterator[LoopbackAPI]:
    st = InMemoryState()
    await publish_meta(st)
    for i in IDS:
        await st.create(Resource.new(NamespaceSpec(), i, namespace="user"))
    async with serve_state(st, writable=["user"]) as a:
        yield a


async def _ids(conn: Connection, regexp: str, watch: bool = False) -> list[str]:
    if watch:
        req = rpb.WatchRequest(namespace="user", type=NS_TYPE, api_version=1, options=rpb.WatchOptions(
            bootstrap_contents=True, aggregated=True, id_query=rpb.IdQuery(regexp=regexp)))
        async with conn.stream(auth.STATE + "Watch", bytes(req)) as replies:
            async for msg in replies:
                evs = rpb.WatchResponse().parse(msg).event
                if evs:
                    return [e.resource.metadata.id for e in evs if e.event_type == rpb.EventType.CREATED]
        return []
    req = rpb.ListRequest(namespace="user", type=NS_TYPE, options=rpb.ListOptions(id_query=rpb.IdQuery(regexp=regexp)))
    async with conn.stream(auth.STATE + "List", bytes(req)) as replies:
        return [rpb.ListResponse().parse(m).resource.metadata.id async for m in replies]


@pytest.mark.parametrize("watch", [False, True])
@pytest.mark.parametrize(("regexp", "ids"), [
    (r"^\pL+$", ["alpha", "kubelet", "ärger"]),
    (r"a\z", ["alpha"]),
    (r"(?U)^b.+-", ["beta-2"]),
    (r"\Qa.b\E", ["a.b"]),
    (r"^[[:alpha:]]+$", ["alpha", "kubelet"]),
    (r"et", ["beta-2", "kubelet"]),  # unanchored
    (r"x.y", []),  # . does not match a newline (Go's default)
])
async def test_go_regexps_select_what_go_selects(api: LoopbackAPI, regexp: str, ids: list[str], watch: bool) -> None:
    async with api.connect([auth.READER]) as conn:
        assert sorted(await _ids(conn, regexp, watch)) == sorted(ids)


@pytest.mark.parametrize("watch", [False, True])
@pytest.mark.parametrize(("regexp", "says"), [
    (r"(?<=a)lpha", "invalid perl operator"),
    (r"(a)\1", "invalid escape sequence"),
    ("(" * 5000, "exceed the limit"),
    ("(" * 2000 + ")" * 2000, "nests too deeply"),
    ("(" * 100, "missing )"),
])
async def test_what_re2_refuses_is_invalid_argument(api: LoopbackAPI, regexp: str, says: str, watch: bool) -> None:
    async with api.connect([auth.READER]) as conn:
        with pytest.raises(APIError) as info:
            await _ids(conn, regexp, watch)
        assert info.value.status == Status.INVALID_ARGUMENT
        assert "id_query" in info.value.message and says in info.value.message
        assert len(info.value.message) < 600
        assert await _ids(conn, "^alpha$") == ["alpha"]
