"""What one request may cost (kos.apis.limits, docs/api.md "Request limits"), against a real
mTLS server on loopback:

* the largest List/Watch the limits allow is served; one term, query, value, regexp byte or
  request byte more is refused before any work, with the field, the count and the limit;
* while one reader repeats the largest List and Watch against 4000 resources, another
  client's Get still answers quickly (measured against the same Get with no other client, in
  the same test): the matching runs in slices that yield to the loop;
* caller input quoted in an error is cut (``kos.resources.core.echo``): a 60 kB regexp,
  label value, type or id gives a short status message, never one the client refuses to read.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator

import anyio
import pytest
from grpclib.const import Status

from kos.apis import auth, limits
from kos.apis.client import APIError, Connection
from kos.apis.gen.cosi import resource as rpb
from kos.apis.gen.kos import machine as mpb
from kos.resources.core import ECHO_CHARS, InMemoryState, publish_meta
from tests.support.hostile import NAMESPACE, NS_TYPE, largest_query, list_request, populate, watch_request
from tests.support.loopback import LoopbackAPI, serve_state

pytestmark = pytest.mark.anyio
RESOURCES = 4000


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def api() -> AsyncIterator[LoopbackAPI]:
    st = InMemoryState()
    await publish_meta(st)
    await populate(st, RESOURCES)
    async with serve_state(st, writable=[NAMESPACE]) as a:
        yield a


async def _list(conn: Connection, req: rpb.ListRequest) -> list[bytes]:
    async with conn.stream(auth.STATE + "List", bytes(req)) as replies:
        return [m async for m in replies]


async def _refused(conn: Connection, req: rpb.ListRequest) -> APIError:
    with pytest.raises(APIError) as info:
        await _list(conn, req)
    return info.value


async def test_the_largest_query_is_served(api: LoopbackAPI) -> None:
    opts = largest_query()
    assert len(bytes(list_request(opts))) > limits.QUERY_REQUEST_BYTES - 1024
    async with api.connect([auth.READER]) as conn:
        assert await _list(conn, list_request(opts)) == []  # every query fails at its last term
        opts.label_query[0].terms.pop()  # now query 0 matches everything
        opts.label_query[1].terms.pop()  # (keep the term count in bounds for the next step)
        assert len(await _list(conn, list_request(opts))) == RESOURCES


async def test_one_more_of_anything_is_refused(api: LoopbackAPI) -> None:
    def small() -> rpb.ListOptions:
        return rpb.ListOptions(label_query=[rpb.LabelQuery(terms=[rpb.LabelTerm(key="app")])])

    async with api.connect([auth.READER]) as conn:
        o = small()
        o.label_query = [rpb.LabelQuery(terms=[rpb.LabelTerm(key="app")])] * (limits.MAX_LABEL_QUERIES + 1)
        e = await _refused(conn, list_request(o))
        assert e.status == Status.INVALID_ARGUMENT
        n = limits.MAX_LABEL_QUERIES
        assert f"{n + 1} label queries exceed the limit of {n}" in e.message

        o = small()
        o.label_query[0].terms = [rpb.LabelTerm(key=f"k{i}") for i in range(limits.MAX_LABEL_TERMS + 1)]
        e = await _refused(conn, list_request(o))
        assert e.status == Status.INVALID_ARGUMENT and "options.label_query" in e.message
        assert f"{limits.MAX_LABEL_TERMS + 1} terms" in e.message and str(limits.MAX_LABEL_TERMS) in e.message

        o = small()
        o.label_query[0].terms[0] = rpb.LabelTerm(key="app", op=rpb.LabelTermOperation.IN,
                                                  value=[str(i) for i in range(limits.MAX_TERM_VALUES + 1)])
        e = await _refused(conn, list_request(o))
        assert e.status == Status.INVALID_ARGUMENT
        assert "label_query[0].terms[0].value" in e.message and f"{limits.MAX_TERM_VALUES + 1} values" in e.message

        o = small()
        o.label_query[0].terms[0] = rpb.LabelTerm(key="app", op=rpb.LabelTermOperation.EQUAL,
                                                  value=["v" * (limits.MAX_LABEL_BYTES + 1)])
        e = await _refused(conn, list_request(o))
        assert e.status == Status.INVALID_ARGUMENT and "terms[0].value[0]" in e.message
        assert f"longer than {limits.MAX_LABEL_BYTES} bytes" in e.message

        o = rpb.ListOptions(id_query=rpb.IdQuery(regexp="a" * (limits.MAX_REGEXP_BYTES + 1)))
        e = await _refused(conn, list_request(o))
        assert e.status == Status.INVALID_ARGUMENT and "id_query.regexp" in e.message
        assert f"exceed the limit of {limits.MAX_REGEXP_BYTES}" in e.message

        # the same bounds hold for Watch, before the stream is established
        o = small()
        o.label_query[0].terms = [rpb.LabelTerm(key=f"k{i}") for i in range(limits.MAX_LABEL_TERMS + 1)]
        with pytest.raises(APIError) as info:
            async with conn.stream(auth.STATE + "Watch", bytes(watch_request(o))) as replies:
                await replies.__anext__()
        assert info.value.status == Status.INVALID_ARGUMENT

        # size: the whole request, per method
        big = list_request(largest_query())
        big.options.label_query[0].terms[0].value.append("x" * 2048)
        e = await _refused(conn, big)
        assert e.status == Status.RESOURCE_EXHAUSTED
        assert f"exceeds the limit of {limits.QUERY_REQUEST_BYTES} bytes for List" in e.message
        req = rpb.GetRequest(namespace=NAMESPACE, type=NS_TYPE, id="i" * limits.QUERY_REQUEST_BYTES)
        with pytest.raises(APIError) as info:
            await conn.unary(auth.STATE + "Get", bytes(req))
        assert info.value.status == Status.RESOURCE_EXHAUSTED and "for Get" in info.value.message

        # and the server is still fine
        assert len(await _list(conn, list_request(small()))) == RESOURCES


async def test_a_write_larger_than_its_limit_is_refused(api: LoopbackAPI) -> None:
    md = rpb.Metadata(namespace=NAMESPACE, type=NS_TYPE, id="big", version="undefined", phase="running")
    big = rpb.CreateRequest(resource=rpb.Resource(
        metadata=md, spec=rpb.Spec(yaml_spec="description: " + "d" * limits.WRITE_REQUEST_BYTES)))
    async with api.connect([auth.ADMIN]) as conn:
        with pytest.raises(APIError) as info:
            await conn.unary(auth.STATE + "Create", bytes(big))
        assert info.value.status == Status.RESOURCE_EXHAUSTED
        assert f"exceeds the limit of {limits.WRITE_REQUEST_BYTES} bytes for Create" in info.value.message


async def test_get_answers_quickly_while_a_reader_sends_the_largest_list_and_watch(api: LoopbackAPI) -> None:
    opts = largest_query()
    get = rpb.GetRequest(namespace=NAMESPACE, type=NS_TYPE, id="res-00007-" + "x" * 40)
    heavy = 0

    list_bytes, watch_bytes = bytes(list_request(opts)), bytes(watch_request(opts))  # encoded once: the
    # client shares this event loop, and only the server's cost is measured

    async def hostile(conn: Connection, stop: anyio.Event) -> None:
        nonlocal heavy
        while not stop.is_set():
            async with conn.stream(auth.STATE + "List", list_bytes) as replies:
                assert [m async for m in replies] == []
            async with conn.stream(auth.STATE + "Watch", watch_bytes) as replies:
                async for msg in replies:
                    if rpb.WatchResponse().parse(msg).event:  # the bootstrap batch (BOOTSTRAPPED only)
                        break
            heavy += 2

    async def gets(conn: Connection, seconds: float) -> list[float]:
        out = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            t = time.perf_counter()
            await conn.unary(auth.STATE + "Get", bytes(get))
            out.append(time.perf_counter() - t)
            await anyio.sleep(0.01)
        return out

    async def measure() -> tuple[list[float], list[float]]:
        async with api.connect([auth.READER]) as reader, api.connect([auth.READER]) as other:
            await other.unary(auth.STATE + "Get", bytes(get))
            baseline = await gets(other, 2)  # this machine, now, with no other client
            stop = anyio.Event()
            async with anyio.create_task_group() as tg:
                tg.start_soon(hostile, reader, stop)
                await anyio.sleep(0.2)
                latencies = await gets(other, 4)
                stop.set()
        return latencies, baseline

    # one unsliced largest List over these resources holds the loop for ~600 ms (load 10) in every
    # round; a busy machine can also stall the whole process once (a few hundred ms, baseline or
    # not): a round that misses the bounds is measured again, up to 3 rounds, the bounds unchanged
    for _ in range(3):
        latencies, baseline = await measure()
        p50, worst = statistics.median(latencies), max(latencies)
        b50, bworst = statistics.median(baseline), max(baseline)
        print(f"Get under the largest List+Watch: p50 {p50 * 1000:.1f} ms, max {worst * 1000:.1f} ms "
              f"({len(latencies)} Gets, {heavy} heavy requests); alone: p50 {b50 * 1000:.1f}, "
              f"max {bworst * 1000:.1f} ms")
        if p50 < b50 + 0.05 and worst < bworst + 0.25:
            break
    assert heavy >= 2, "the hostile reader did not complete a List and a Watch"
    assert p50 < b50 + 0.05, latencies
    assert worst < bworst + 0.25, latencies


@pytest.mark.parametrize("field", ["regexp", "label value", "type", "id", "namespace", "event id"])
async def test_errors_quote_at_most_a_bounded_piece_of_the_input(api: LoopbackAPI, field: str) -> None:
    huge = "(" + "q" * 60_000
    async with api.connect([auth.ADMIN]) as conn:
        if field in ("regexp", "label value"):
            if field == "regexp":
                o = rpb.ListOptions(id_query=rpb.IdQuery(regexp=huge))
            else:
                term = rpb.LabelTerm(key="n", op=rpb.LabelTermOperation.LT_NUMERIC, value=[huge])
                o = rpb.ListOptions(label_query=[rpb.LabelQuery(terms=[term])])
            e = await _refused(conn, list_request(o))
            assert e.status == Status.INVALID_ARGUMENT
        elif field in ("type", "id"):
            req = rpb.GetRequest(namespace=NAMESPACE, type=huge if field == "type" else NS_TYPE,
                                 id=huge if field == "id" else "x")
            with pytest.raises(APIError) as info:
                await conn.unary(auth.STATE + "Get", bytes(req))
            e = info.value
            assert e.status == Status.NOT_FOUND
        elif field == "event id":  # the machine service quotes through the same helper
            with pytest.raises(APIError) as info:
                async with conn.stream(auth.MACHINE + "Events", bytes(mpb.EventsRequest(tail_id=huge))) as replies:
                    await replies.__anext__()
            e = info.value
            assert e.status == Status.NOT_FOUND
        else:
            req = rpb.DestroyRequest(namespace=huge, type=NS_TYPE, id="x")
            with pytest.raises(APIError) as info:
                await conn.unary(auth.STATE + "Destroy", bytes(req))
            e = info.value
            assert e.status == Status.PERMISSION_DENIED
    assert "qqqq" in e.message and "60001 chars" in e.message
    assert len(e.message) < ECHO_CHARS + 300, e.message
