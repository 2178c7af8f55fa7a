"""Read/write restrictions of the controller adapter, owner enforcement, output tracking."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest

from kos.controllers.runtime import (
    AccessDeniedError,
    Controller,
    ControllerRuntime,
    Input,
    InputKind,
    Output,
    OutputKind,
    Runtime,
)
from kos.controllers.runtime.testing import assert_resources
from kos.resources.core import InMemoryState, NotFoundError, OwnerConflictError, Phase

from .harness import new_runtime, running
from .testtypes import INTS, NS, SENTENCES, STRS, int_ptr, int_res, sentence_ptr, sentence_res, str_ptr, str_res

pytestmark = pytest.mark.anyio


class Declared(Controller):
    def __init__(self, name: str, inputs: Sequence[Input] = (), outputs: Sequence[Output] = ()) -> None:
        self.name = name
        self._inputs = list(inputs)
        self._outputs = list(outputs)

    def inputs(self) -> Sequence[Input]:
        return self._inputs

    def outputs(self) -> Sequence[Output]:
        return self._outputs

    async def run(self, rt: ControllerRuntime) -> None:
        await anyio.sleep_forever()


def adapter(state: InMemoryState, ctrl: Controller) -> ControllerRuntime:
    a = Runtime(state).register(ctrl)
    assert isinstance(a, ControllerRuntime)
    return a


async def test_reads_need_a_matching_input_or_output() -> None:
    state = InMemoryState()
    await state.create(int_res("a", 1))
    await state.create(int_res("b", 2))
    await state.create(str_res("s", "x"))
    await state.create(sentence_res("z", "s"))
    rt = adapter(state, Declared("c", [Input(NS, INTS.type, "a")], [Output(STRS.type)]))
    assert (await rt.get(int_ptr("a"))).spec.value == 1
    with pytest.raises(AccessDeniedError, match=r"'c': get of .*IntResources.*/b\) denied"):
        await rt.get(int_ptr("b"))
    with pytest.raises(AccessDeniedError, match="list needs a wildcard input"):
        await rt.list(INTS)
    with pytest.raises(AccessDeniedError, match="not a declared input"):
        await rt.get(sentence_ptr("z"))
    # outputs are readable in any namespace, by get and list
    assert (await rt.get(str_ptr("s"))).spec.value == "x"
    assert [r.id for r in await rt.list(STRS)] == ["s"]
    assert await rt.list(STRS._replace(namespace="other")) == []
    assert await rt.get_or_none(str_ptr("nope")) is None

    wild = adapter(state, Declared("w", [Input(NS, INTS.type)]))
    assert [r.id for r in await wild.list(INTS)] == ["a", "b"]
    with pytest.raises(AccessDeniedError):
        await wild.list(INTS._replace(namespace="other"))  # the input is for namespace "default" only


async def test_writes_need_an_output_and_are_owned() -> None:
    state = InMemoryState()
    rt = adapter(state, Declared("writer", [Input(NS, INTS.type)], [Output(STRS.type)]))
    with pytest.raises(AccessDeniedError, match=r"create of .*IntResources.* type is not a declared output"):
        await rt.create(int_res("x", 1))
    with pytest.raises(AccessDeniedError):
        await rt.destroy(int_ptr("x"))
    with pytest.raises(AccessDeniedError):
        await rt.teardown(int_ptr("x"))
    with pytest.raises(AccessDeniedError):
        await rt.modify(int_res("x", 1), lambda r: None)

    await rt.create(str_res("mine", "1"))
    assert (await state.get(str_ptr("mine"))).metadata.owner == "writer"
    await rt.modify(str_res("mine"), lambda r: setattr(r.spec, "value", "2"))
    assert (await state.get(str_ptr("mine"))).spec.value == "2"

    # somebody else's (here: unowned) output can't be updated, torn down or destroyed as ours
    await state.create(str_res("theirs", "t"))
    with pytest.raises(OwnerConflictError):
        await rt.modify(str_res("theirs"), lambda r: setattr(r.spec, "value", "hijack"))
    with pytest.raises(OwnerConflictError):
        await rt.destroy(str_ptr("theirs"))
    # ... unless the controller opts out of ownership explicitly
    await rt.modify(str_res("theirs"), lambda r: setattr(r.spec, "value", "shared"), no_owner=True)
    assert await rt.teardown(str_ptr("theirs"), owner="") is True
    await rt.destroy(str_ptr("theirs"), owner="")
    await rt.create(str_res("free", "f"), no_owner=True)
    assert (await state.get(str_ptr("free"))).metadata.owner == ""

    # modify of a tearing-down output: phase conflict unless any phase is allowed
    assert await rt.teardown(str_ptr("mine"))
    with pytest.raises(Exception, match="phase"):
        await rt.modify(str_res("mine"), lambda r: setattr(r.spec, "value", "3"))
    await rt.modify(str_res("mine"), lambda r: setattr(r.spec, "value", "3"), expected_phase=None)
    assert (await state.get(str_ptr("mine"))).metadata.phase == Phase.TEARING_DOWN


async def test_async_modify_function_and_no_write_when_unchanged() -> None:
    state = InMemoryState()
    rt = adapter(state, Declared("w", [], [Output(STRS.type)]))

    async def fill(r: object) -> None:
        await anyio.lowlevel.checkpoint()
        r.spec.value = "async"  # type: ignore[attr-defined]

    await rt.modify(str_res("a"), fill)
    await rt.modify(str_res("a"), fill)
    stored = await state.get(str_ptr("a"))
    assert stored.spec.value == "async" and stored.metadata.version == 1
    await rt.update_with_conflicts(str_ptr("a"), lambda r: setattr(r.spec, "value", "u"))
    assert (await state.get(str_ptr("a"))).metadata.version == 2
    with pytest.raises(NotFoundError):
        await rt.update_with_conflicts(str_ptr("missing"), lambda r: None)


async def test_finalizers_need_strong_input() -> None:
    state = InMemoryState()
    await state.create(int_res("a", 1))
    await state.create(str_res("s"))
    weak = adapter(state, Declared("weak", [Input(NS, INTS.type)], [Output(STRS.type)]))
    with pytest.raises(AccessDeniedError, match="Strong, QPrimary or QMapped input"):
        await weak.add_finalizer(int_ptr("a"), "weak")
    with pytest.raises(AccessDeniedError):
        await weak.add_finalizer(str_ptr("s"), "weak")  # outputs don't allow finalizers either
    strong = adapter(state, Declared("strong", [Input(NS, INTS.type, "a", InputKind.STRONG)]))
    await strong.add_finalizer(int_ptr("a"), "strong")
    assert (await state.get(int_ptr("a"))).metadata.finalizers == ("strong",)
    await strong.remove_finalizer(int_ptr("a"), "strong")
    assert (await state.get(int_ptr("a"))).metadata.finalizers == ()
    await state.destroy(int_ptr("a"))
    await strong.remove_finalizer(int_ptr("a"), "strong")  # a missing resource is fine


async def test_cleanup_outputs_destroys_owned_untouched() -> None:
    state = InMemoryState()
    rt = adapter(state, Declared("c", [], [Output(STRS.type), Output(SENTENCES.type)]))
    for id in ("keep", "drop1", "drop2"):
        await rt.create(str_res(id))
    await state.create(str_res("foreign"))
    with pytest.raises(RuntimeError, match="without start_tracking_outputs"):
        await rt.cleanup_outputs(STRS)
    rt.start_tracking_outputs()
    await rt.modify(str_res("keep"), lambda r: None)
    with pytest.raises(Exception, match="already exists"):
        await rt.create(str_res("drop1"))  # touched even though the write failed
    assert await rt.cleanup_outputs(STRS, SENTENCES) == 1
    assert sorted(r.id for r in await state.list(STRS)) == ["drop1", "foreign", "keep"]
    with pytest.raises(AccessDeniedError):
        rt.start_tracking_outputs()
        await rt.cleanup_outputs(INTS)


async def test_update_inputs_at_run_time() -> None:
    state, runtime = new_runtime()
    seen: list[list[str]] = []

    class Switcher(Controller):
        name = "Switcher"

        def inputs(self) -> Sequence[Input]:
            return [Input(NS, INTS.type, "first")]

        def outputs(self) -> Sequence[Output]:
            return [Output(SENTENCES.type, OutputKind.SHARED)]

        async def run(self, rt: ControllerRuntime) -> None:
            async for _ in rt.events():
                ids = [r.id for r in await rt.list(STRS)] if any(i.type == STRS.type for i in rt.inputs) else []
                seen.append(ids)
                if await rt.get_or_none(int_ptr("first")) is not None:
                    rt.update_inputs([Input(NS, INTS.type, "first"), Input(NS, STRS.type)])
                count = str(len(seen))
                await rt.modify(sentence_res("count"), lambda r, n=count: setattr(r.spec, "value", n))

    runtime.register(Switcher())
    async with running(runtime):
        await state.create(str_res("s1"))  # not an input yet: no trigger from this
        await state.create(int_res("first", 1))
        await assert_resources(state, STRS, ["s1"])
        await assert_resources(state, SENTENCES, ["count"], lambda r: ["s1"] in seen)
        await state.create(str_res("s2"))  # now an input (new watch started at run time)
        await assert_resources(state, SENTENCES, ["count"], lambda r: ["s1", "s2"] in seen)
    assert [i.type for i in runtime.db.inputs("Switcher")] == [INTS.type, STRS.type]
    with pytest.raises(Exception, match="duplicate input"):
        runtime.adapter("Switcher").update_inputs([Input(NS, STRS.type), Input(NS, STRS.type)])  # type: ignore[union-attr]


async def test_context_with_teardown_through_adapter() -> None:
    state = InMemoryState()
    await state.create(int_res("a", 1))
    rt = adapter(state, Declared("c", [Input(NS, INTS.type, "a")]))
    with pytest.raises(AccessDeniedError):
        async with rt.context_with_teardown(int_ptr("b")):
            pass
    reached_end = False
    with anyio.fail_after(2):
        async with rt.context_with_teardown(int_ptr("a")) as scope:
            await state.teardown(int_ptr("a"))
            await anyio.sleep_forever()
            reached_end = True
    assert scope.cancel_called and not reached_end
