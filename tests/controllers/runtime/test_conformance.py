"""COSI conformance-style scenarios: the controllers of conformance.py on an in-memory state."""

from __future__ import annotations

from typing import Any

import pytest

from kos.controllers.runtime.testing import assert_no_resource, assert_resources
from kos.resources.core import Resource

from .conformance import (
    FailingController,
    IntToStrController,
    PanickingController,
    QIntToStrController,
    StrToSentenceController,
    SumController,
)
from .harness import new_runtime, running, wait_until
from .testtypes import INTS, SENTENCES, STRS, int_ptr, int_res, sentence_ptr, str_ptr

pytestmark = pytest.mark.anyio


def value_is(expected: Any) -> Any:
    def check(r: Resource[Any]) -> None:
        assert r.spec.value == expected, f"value {r.spec.value!r} != {expected!r}"

    return check


async def test_int_to_str() -> None:
    state, rt = new_runtime()
    rt.register(IntToStrController())
    await state.create(int_res("one", 1))  # exists before the runtime starts
    async with running(rt):
        await state.create(int_res("two", 2))
        await assert_resources(state, STRS, ["one"], value_is("1"))
        await assert_resources(state, STRS, ["two"], value_is("2"))
        strs = await state.list(STRS)
        assert [r.metadata.owner for r in strs] == ["IntToStrController"] * 2

        await state.update_with_conflicts(int_ptr("one"), lambda r: setattr(r.spec, "value", 11))
        await assert_resources(state, STRS, ["one"], value_is("11"))

        await state.destroy(int_ptr("two"))
        await assert_no_resource(state, str_ptr("two"))
        await assert_resources(state, STRS, ["one"], value_is("11"))


async def test_int_to_str_to_sentence_with_teardown() -> None:
    state, rt = new_runtime()
    rt.register(IntToStrController())
    rt.register(StrToSentenceController())
    async with running(rt):
        for i in range(3):
            await state.create(int_res(f"i{i}", i))
        await assert_resources(state, SENTENCES, ["i0", "i1", "i2"], lambda r: r.spec.value.endswith(" sentence"))
        await assert_resources(state, STRS, ["i1"], lambda r: "StrToSentenceController" in r.metadata.finalizers)

        # the int goes away: IntToStr tears its string down; the string lingers (tearingDown) until
        # StrToSentence has destroyed the sentence and dropped its finalizer, then IntToStr destroys it
        await state.destroy(int_ptr("i1"))
        await assert_no_resource(state, sentence_ptr("i1"))
        await assert_no_resource(state, str_ptr("i1"))
        found = await assert_resources(state, SENTENCES, ["i0", "i2"])
        assert [r.spec.value for r in found.values()] == ["0 sentence", "2 sentence"]


async def test_sum_controller() -> None:
    state, rt = new_runtime()
    rt.register(SumController("source", "target", "sum"))
    async with running(rt):
        for i in range(1, 5):
            await state.create(int_res(f"n{i}", i, ns="source"))
        await assert_resources(state, INTS._replace(namespace="target"), ["sum"], value_is(10))
        await state.destroy(int_ptr("n4", ns="source"))
        await assert_resources(state, INTS._replace(namespace="target"), ["sum"], value_is(6))


async def test_failing_controller_restarts_with_backoff() -> None:
    state, rt = new_runtime()
    failing = FailingController("failing")
    rt.register(failing)
    async with running(rt):
        await assert_resources(state, INTS._replace(namespace="failing"), ["count"], lambda r: r.spec.value >= 3)
        await wait_until(lambda: rt.metrics()["FailingController"]["crashes"] >= 3, what="3 crashes")
    m = rt.metrics()["FailingController"]
    assert m["crashes"] >= 3 and m["errors"] >= 3
    assert m["last_error"].startswith("RuntimeError: failing on purpose (run ")
    assert failing.runs >= 3


async def test_panicking_controller_recovers() -> None:
    state, rt = new_runtime()
    ctrl = PanickingController("panic")
    rt.register(ctrl)
    async with running(rt):
        await assert_resources(state, INTS._replace(namespace="panic"), ["ok"])
    assert ctrl.panicked
    assert rt.metrics()["PanickingController"]["crashes"] == 1


async def test_qcontroller_int_to_str() -> None:
    state, rt = new_runtime()
    q = QIntToStrController()
    rt.register(q)
    await state.create(int_res("before", 7))
    async with running(rt):
        await state.create(int_res("after", 8))
        await assert_resources(state, STRS, ["before", "after"], lambda r: r.spec.value in ("7", "8"))
        await assert_resources(state, INTS, ["before"], lambda r: r.metadata.finalizers == ("QIntToStrController",))
        await state.teardown(int_ptr("before"))
        await assert_no_resource(state, str_ptr("before"))
        await assert_resources(state, INTS, ["before"], lambda r: not r.metadata.finalizers)
        await state.destroy(int_ptr("before"))
        await assert_resources(state, STRS, ["after"], value_is("8"))
