"""A label-filtered State.Watch over gRPC: an update that takes a resource out of the filter
arrives as DESTROYED carrying the new object and no ``old`` (field 3 absent), as COSI sends it
(cosi-semantics.md 2.4; upstream clears ``Event.Old`` when rewriting the event type)."""

from __future__ import annotations

import anyio
import betterproto
import pytest

from kos.apis import auth
from kos.apis.gen.cosi import resource as rpb
from kos.resources.core import InMemoryState, NamespaceSpec, Resource
from tests.support.loopback import serve_state

pytestmark = pytest.mark.anyio
NS_TYPE = "Namespaces.meta.cosi.dev"


async def test_update_leaving_the_filter_is_destroyed_without_old() -> None:
    st = InMemoryState()
    r = Resource.new(NamespaceSpec(description="x"), "a", namespace="user")
    r.metadata.labels["app"] = "web"
    await st.create(r)
    term = rpb.LabelTerm(key="app", op=rpb.LabelTermOperation.EQUAL, value=["web"])
    req = rpb.WatchRequest(
        namespace="user", type=NS_TYPE, api_version=1,
        options=rpb.WatchOptions(bootstrap_contents=True, label_query=[rpb.LabelQuery(terms=[term])]),
    )
    async with serve_state(st, writable=["user"]) as api, api.connect([auth.READER]) as conn:
        with anyio.fail_after(10):
            async with conn.stream(auth.STATE + "Watch", bytes(req)) as replies:
                events = []
                async for msg in replies:
                    events += rpb.WatchResponse().parse(msg).event
                    if [e.event_type for e in events] == [rpb.EventType.CREATED, rpb.EventType.BOOTSTRAPPED]:
                        r.metadata.labels["app"] = "db"
                        await st.update(r)
                    if len(events) == 3:
                        break
    gone = events[2]
    assert gone.event_type == rpb.EventType.DESTROYED
    assert gone.resource.metadata.labels == {"app": "db"}
    assert not betterproto.serialized_on_wire(gone.old)
