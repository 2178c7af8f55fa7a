"""Property: any history of int operations (create/update/teardown/destroy, foreign finalizers)
pushed through IntToStr -> StrToSentence converges to outputs derived from the final inputs only.

Two pipelines: the helpers (transform with input finalizers -> qtransform; no finalizer of ours
may stay on a torn-down input) and the hand-written conformance controllers."""

from __future__ import annotations

from dataclasses import dataclass

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kos.controllers.runtime import Runtime
from kos.controllers.runtime.testing import assert_length, assert_resources
from kos.resources.core import InMemoryState, NotFoundError, Phase

from .conformance import IntToStrController, StrToSentenceController
from .harness import running
from .pipeline import int_to_str, str_to_sentence
from .testtypes import INTS, SENTENCES, STRS, int_ptr, int_res

IDS = ["a", "b", "c"]


@dataclass(frozen=True)
class Op:
    name: str
    id: str
    value: int = 0


ops = st.lists(
    st.one_of(
        st.builds(Op, st.just("set"), st.sampled_from(IDS), st.integers(0, 99)),
        st.builds(Op, st.sampled_from(["teardown", "destroy", "hold", "release", "settle"]), st.sampled_from(IDS)),
    ),
    max_size=25,
)


async def apply(state: InMemoryState, op: Op) -> None:
    ptr = int_ptr(op.id)
    cur = await state.get_or_none(ptr)
    if op.name == "set":
        if cur is None:
            await state.create(int_res(op.id, op.value))
        elif cur.metadata.phase == Phase.RUNNING:
            await state.update_with_conflicts(ptr, lambda r: setattr(r.spec, "value", op.value))
    elif op.name == "teardown" and cur is not None:
        await state.teardown(ptr)
    elif op.name == "destroy" and cur is not None and not cur.metadata.has_finalizer("user"):
        with anyio.fail_after(5):
            try:
                await state.teardown_and_destroy(ptr)  # waits for the controllers' cleanup
            except NotFoundError:
                pass
    elif op.name == "hold" and cur is not None and cur.metadata.phase == Phase.RUNNING:
        await state.add_finalizer(ptr, "user")
    elif op.name == "release" and cur is not None:
        await state.remove_finalizer(ptr, "user")
    elif op.name == "settle":  # let the controllers catch up part of the way
        for _ in range(20):
            await anyio.lowlevel.checkpoint()


async def scenario(history: list[Op], variant: str = "helpers") -> None:
    state = InMemoryState(history_max=4096)
    rt = Runtime(state, backoff_initial=0.01, backoff_max=0.1)
    if variant == "helpers":  # transform with input finalizers -> qtransform
        rt.register(int_to_str())
        rt.register(str_to_sentence())
    else:  # the hand-written conformance controllers
        rt.register(IntToStrController())
        rt.register(StrToSentenceController())
    async with running(rt):
        for op in history:
            await apply(state, op)
        ints = {r.id: r for r in await state.list(INTS)}
        live = {id: r.spec.value for id, r in ints.items() if r.metadata.phase == Phase.RUNNING}
        if live:
            await assert_resources(state, STRS, live, lambda r: r.spec.value == str(live[r.id]))
            await assert_resources(state, SENTENCES, live, lambda r: r.spec.value == f"{live[r.id]} sentence")
        await assert_length(state, STRS, len(live))
        await assert_length(state, SENTENCES, len(live))
        if variant == "helpers":
            dying = [id for id, r in ints.items() if r.metadata.phase == Phase.TEARING_DOWN]
            if dying:
                await assert_resources(state, INTS, dying, lambda r: "IntToStr" not in r.metadata.finalizers)
            if live:
                await assert_resources(state, INTS, live, lambda r: "IntToStr" in r.metadata.finalizers)
    assert all(m["crashes"] == 0 for m in rt.metrics().values()), rt.metrics()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops, st.sampled_from(["helpers", "conformance"]))
def test_pipeline_converges(history: list[Op], variant: str) -> None:
    anyio.run(scenario, history, variant)
