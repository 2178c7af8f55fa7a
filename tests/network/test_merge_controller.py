"""MergeController on an in-memory state, against random histories of layered specs coming and
going (hypothesis), with a finalizer holder standing in for an apply controller: the merged
specs always converge to the pure merge of the layers that exist, and a spec that is torn down
while a layer wants it again comes back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kos.controllers.network.merge import MergeController, merge_by_id
from kos.controllers.runtime import Controller, ControllerRuntime, Input, InputKind, Output, Runtime
from kos.controllers.runtime.testing import assert_length, assert_resources
from kos.resources.core import InMemoryState, Phase, Pointer, Resource
from kos.resources.network import (
    ADDRESS_SPECS,
    CONFIG_NAMESPACE,
    AddressSpecSpec,
    ConfigLayer,
    address_id,
)


class FinalizerHolder(Controller):
    """Like an apply controller: a finalizer on every merged spec, released on teardown."""

    name = "FinalizerHolder"

    def inputs(self) -> Sequence[Input]:
        return (Input(ADDRESS_SPECS.namespace, ADDRESS_SPECS.type, None, InputKind.STRONG),)

    def outputs(self) -> Sequence[Output]:
        return ()

    async def run(self, rt: ControllerRuntime) -> None:
        async for _ in rt.events():
            for r in await rt.list(ADDRESS_SPECS):
                if r.metadata.phase == Phase.TEARING_DOWN:
                    await rt.remove_finalizer(r.pointer, self.name)
                elif not r.metadata.has_finalizer(self.name):
                    await rt.add_finalizer(r.pointer, self.name)


OPS = st.lists(
    st.tuples(st.booleans(), st.sampled_from(list(ConfigLayer)), st.integers(1, 4), st.integers(0, 1)),
    min_size=1, max_size=12,
)


@pytest.mark.anyio
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(OPS)
async def test_merged_specs_follow_the_layers(ops: list[tuple[bool, ConfigLayer, int, int]]) -> None:
    state = InMemoryState(history_max=8192)
    runtime = Runtime(state, backoff_initial=0.01, backoff_max=0.1)
    runtime.register(MergeController(AddressSpecSpec, merge_by_id))
    runtime.register(FinalizerHolder())
    layers: dict[str, AddressSpecSpec] = {}
    async with anyio.create_task_group() as tg:
        tg.start_soon(runtime.run)
        for put, layer, host, lifetime in ops:
            addr = f"10.0.0.{host}/24"
            lid = f"{layer}/{address_id('eth0', addr)}"
            ptr = Pointer(CONFIG_NAMESPACE, ADDRESS_SPECS.type, lid)
            cur = await state.get_or_none(ptr)
            if put:
                spec = AddressSpecSpec(address=addr, link_name="eth0", layer=layer, valid_lifetime=lifetime * 60)
                layers[lid] = spec
                if cur is None:
                    await state.create(Resource.new(spec, lid, namespace=CONFIG_NAMESPACE))
                else:
                    cur.spec = spec
                    await state.update(cur)
            elif cur is not None:
                del layers[lid]
                await state.destroy(ptr)
            await anyio.lowlevel.checkpoint()
        want: dict[str, Any] = merge_by_id([(lid.split("/", 1)[1], s) for lid, s in layers.items()])
        await assert_length(state, ADDRESS_SPECS, len(want), timeout=10)
        if want:
            await assert_resources(
                state, ADDRESS_SPECS, list(want),
                lambda r: r.metadata.phase == Phase.RUNNING and r.spec == want[r.metadata.id], timeout=10,
            )
        tg.cancel_scope.cancel()
