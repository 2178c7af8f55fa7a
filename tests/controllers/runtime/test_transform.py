"""transform / qtransform / destroy helpers: outputs follow inputs, finalizers, teardown."""

from __future__ import annotations

from typing import Any

import pytest
from anyio import wait_all_tasks_blocked

from kos.controllers.runtime import DestroyOutput, Input, InputKind, SkipReconcile, destroy, qtransform, transform
from kos.controllers.runtime.testing import assert_no_resource, assert_resources
from kos.resources.core import Phase, Resource

from .harness import new_runtime, running, wait_until
from .pipeline import int_to_str, str_to_sentence
from .testtypes import (
    INTS,
    SENTENCES,
    STRS,
    IntSpec,
    StrSpec,
    int_ptr,
    int_res,
    sentence_ptr,
    sentence_res,
    str_ptr,
    str_res,
)

pytestmark = pytest.mark.anyio


async def test_transform_follows_inputs() -> None:
    state, rt = new_runtime()

    def fn(rt: Any, inp: Resource[IntSpec], out: Resource[StrSpec]) -> None:
        if inp.spec.value < 0:
            raise SkipReconcile
        out.spec.value = str(inp.spec.value)

    rt.register(transform("T", IntSpec, StrSpec, fn))
    await state.create(str_res("foreign", "x"))  # not ours: never touched
    async with running(rt):
        await state.create(int_res("a", 1))
        await state.create(int_res("neg", -1))
        await assert_resources(state, STRS, ["a"], lambda r: r.spec.value == "1" and r.metadata.owner == "T")
        await state.update_with_conflicts(int_ptr("a"), lambda r: setattr(r.spec, "value", 2))
        await assert_resources(state, STRS, ["a"], lambda r: r.spec.value == "2")
        await state.create(int_res("foreign", 5))  # the output exists, owned by somebody else: ignored
        await state.destroy(int_ptr("a"))
        await assert_no_resource(state, str_ptr("a"))
        await wait_all_tasks_blocked()
    assert await state.get_or_none(str_ptr("neg")) is None
    assert (await state.get(str_ptr("foreign"))).spec.value == "x"
    assert rt.metrics()["T"]["crashes"] == 0


async def test_transform_with_input_finalizers_and_foreign_output_finalizer() -> None:
    state, rt = new_runtime()
    removed: list[str] = []

    def on_removal(rt: Any, inp: Resource[IntSpec]) -> None:
        removed.append(inp.id)

    rt.register(int_to_str(finalizer_removal=on_removal))
    async with running(rt):
        await state.create(int_res("a", 1))
        await assert_resources(state, INTS, ["a"], lambda r: r.metadata.finalizers == ("IntToStr",))
        await assert_resources(state, STRS, ["a"])
        await state.add_finalizer(str_ptr("a"), "someone-else")
        assert not await state.teardown(int_ptr("a"))
        # output torn down but held by the foreign finalizer; the input keeps our finalizer
        await assert_resources(state, STRS, ["a"], lambda r: r.metadata.phase == Phase.TEARING_DOWN)
        await wait_all_tasks_blocked()
        assert (await state.get(int_ptr("a"))).metadata.finalizers == ("IntToStr",)
        await state.remove_finalizer(str_ptr("a"), "someone-else")
        await assert_no_resource(state, str_ptr("a"))
        await assert_resources(state, INTS, ["a"], lambda r: not r.metadata.finalizers)
        await state.destroy(int_ptr("a"))
    assert "a" in removed


async def test_transform_errors_crash_and_recover() -> None:
    state, rt = new_runtime()
    broken = {"on": True}

    def fn(rt: Any, inp: Resource[IntSpec], out: Resource[StrSpec]) -> None:
        if broken["on"] and inp.id == "bad":
            raise ValueError("cannot transform bad")
        out.spec.value = str(inp.spec.value)

    rt.register(transform("T", IntSpec, StrSpec, fn))
    async with running(rt):
        await state.create(int_res("good", 1))
        await state.create(int_res("bad", 2))
        await assert_resources(state, STRS, ["good"])  # other inputs still converge
        await wait_until(lambda: rt.metrics()["T"]["crashes"] >= 1, what="crash")
        broken["on"] = False
        await assert_resources(state, STRS, ["bad"], lambda r: r.spec.value == "2")


async def test_qtransform_pipeline_and_destroy_output() -> None:
    state, rt = new_runtime()

    def fn(rt: Any, inp: Resource[IntSpec], out: Resource[StrSpec]) -> None:
        if inp.spec.value == 0:
            raise DestroyOutput
        out.spec.value = str(inp.spec.value)

    rt.register(qtransform("Q", IntSpec, StrSpec, fn, concurrency=2))
    async with running(rt):
        for i in range(1, 4):
            await state.create(int_res(f"i{i}", i))
        await assert_resources(state, STRS, ["i1", "i2", "i3"], lambda r: r.spec.value == r.id[1:])
        await assert_resources(state, INTS, ["i1"], lambda r: r.metadata.finalizers == ("Q",))
        await state.update_with_conflicts(int_ptr("i2"), lambda r: setattr(r.spec, "value", 0))
        await assert_no_resource(state, str_ptr("i2"))
        await state.add_finalizer(str_ptr("i3"), "hold")
        await state.teardown_and_destroy(int_ptr("i1"))  # waits for Q to drop its finalizer
        await assert_no_resource(state, str_ptr("i1"))
        await state.teardown(int_ptr("i3"))
        await assert_resources(state, STRS, ["i3"], lambda r: r.metadata.phase == Phase.TEARING_DOWN)
        await state.remove_finalizer(str_ptr("i3"), "hold")
        await assert_no_resource(state, str_ptr("i3"))
        await assert_resources(state, INTS, ["i3"], lambda r: not r.metadata.finalizers)


async def test_qtransform_recreates_after_output_destroyed_externally() -> None:
    state, rt = new_runtime()
    rt.register(str_to_sentence())
    async with running(rt):
        await state.create(str_res("s", "hi"))
        await assert_resources(state, SENTENCES, ["s"], lambda r: r.spec.value == "hi sentence")
        await state.teardown(sentence_ptr("s"), owner="StrToSentence")  # someone tears our output down
        await assert_resources(state, SENTENCES, ["s"], lambda r: r.metadata.phase == Phase.RUNNING)


async def test_destroy_helper() -> None:
    state, rt = new_runtime()
    rt.register(destroy(IntSpec))
    await state.create(int_res("old", 1))
    async with running(rt):
        await state.create(int_res("x", 1))
        await state.add_finalizer(int_ptr("x"), "f")
        assert not await state.teardown(int_ptr("x"))
        await state.teardown(int_ptr("old"))
        await assert_no_resource(state, int_ptr("old"))
        await wait_all_tasks_blocked()
        assert (await state.get(int_ptr("x"))).metadata.phase == Phase.TEARING_DOWN
        await state.remove_finalizer(int_ptr("x"), "f")
        await assert_no_resource(state, int_ptr("x"))
        await state.create(int_res("owned", 1), owner="me")
        await state.teardown(int_ptr("owned"), owner="me")
        await wait_all_tasks_blocked()
        assert await state.get_or_none(int_ptr("owned")) is not None  # owned: left alone
    assert rt.metrics()["Destroy[IntResources.test.kos.dev]"]["errors"] == 0


async def test_qtransform_extra_mapped_input_reruns_every_key() -> None:
    state, rt = new_runtime()
    suffix_ptr = sentence_ptr("suffix", ns="config")

    async def fn(rt: Any, inp: Resource[IntSpec], out: Resource[StrSpec]) -> None:
        suffix = await rt.get_or_none(suffix_ptr)
        out.spec.value = f"{inp.spec.value}{suffix.spec.value if suffix else ''}"

    rt.register(
        qtransform(
            "Suffixed", IntSpec, StrSpec, fn,
            extra_inputs=[Input("config", SENTENCES.type, "suffix", InputKind.Q_MAPPED)],
        )
    )
    async with running(rt):
        await state.create(int_res("a", 1))
        await state.create(int_res("b", 2))
        await assert_resources(state, STRS, ["a", "b"], lambda r: r.spec.value in ("1", "2"))
        await state.create(sentence_res("suffix", "!", ns="config"))
        await assert_resources(state, STRS, ["a", "b"], lambda r: r.spec.value.endswith("!"))
