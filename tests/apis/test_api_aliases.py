"""``kosctl get`` resolves a type on the node through its ResourceDefinitions: a name that
several types claim is an error naming them, whether the node dropped the shared automatic
alias (kos) or still publishes it on several RDs (a node publishing Fill()'s aliases as is)."""

from __future__ import annotations

import pytest
from grpclib.const import Status

from kos.apis import auth
from kos.apis.client import APIError
from kos.apis.kosctl.commands.get import resolve
from kos.resources.core import (
    InMemoryState,
    Registry,
    Resource,
    ResourceDefinition,
    ResourceDefinitionSpec,
    publish_meta,
)
from tests.support.loopback import serve_state

pytestmark = pytest.mark.anyio
TYPES = ["AddressSpecs.net.kos.dev", "AddressStatuses.net.kos.dev", "Links.net.kos.dev"]


@pytest.mark.parametrize("settled", [True, False])
async def test_an_ambiguous_name_is_an_error_naming_the_candidates(settled: bool) -> None:
    st = InMemoryState()
    if settled:
        reg = Registry()
        for t in TYPES:
            reg.register(ResourceDefinition.make(t, "network"), object)
        await publish_meta(st, reg)
    else:
        for t in TYPES:
            spec = ResourceDefinitionSpec.from_definition(ResourceDefinition.make(t, "network"))
            await st.create(Resource.new(spec, t.lower()), owner="meta")
    async with serve_state(st) as api, api.connect([auth.READER]) as conn:
        for name in ("as", "AS"):
            with pytest.raises(APIError) as info:
                await resolve(conn, None, name)
            assert info.value.status == Status.INVALID_ARGUMENT
            assert f"resource type {name!r} is ambiguous" in info.value.message
            assert "AddressSpecs.net.kos.dev, AddressStatuses.net.kos.dev" in info.value.message
        assert (await resolve(conn, None, "addressspec"))["type"] == "AddressSpecs.net.kos.dev"
        assert (await resolve(conn, None, "links"))["type"] == "Links.net.kos.dev"
        with pytest.raises(APIError) as info:
            await resolve(conn, None, "nothing")
        assert info.value.status == Status.NOT_FOUND
