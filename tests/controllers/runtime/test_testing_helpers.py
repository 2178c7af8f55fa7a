"""The test helpers themselves: they wait via watches and fail with the last seen state."""

from __future__ import annotations

import anyio
import pytest

from kos.controllers.runtime.testing import assert_length, assert_no_resource, assert_resources
from kos.resources.core import InMemoryState

from .testtypes import INTS, int_ptr, int_res

pytestmark = pytest.mark.anyio


async def test_assert_resources_waits_for_convergence() -> None:
    state = InMemoryState()
    await state.create(int_res("a", 0))

    async def writer() -> None:
        await anyio.wait_all_tasks_blocked()
        for v in range(1, 4):
            await state.update_with_conflicts(int_ptr("a"), lambda r, v=v: setattr(r.spec, "value", v))
        await state.create(int_res("b", 3))

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer)
        with anyio.fail_after(2):
            found = await assert_resources(state, INTS, ["a", "b"], lambda r: r.spec.value == 3)
    assert {id: r.spec.value for id, r in found.items()} == {"a": 3, "b": 3}


async def test_assert_resources_failure_message_shows_last_state() -> None:
    state = InMemoryState()
    await state.create(int_res("a", 1, ns="default"))
    await state.create(int_res("other", 9))

    def check(r: object) -> None:
        assert r.spec.value == 2, f"value is {r.spec.value}"  # type: ignore[attr-defined]

    with pytest.raises(AssertionError) as info:
        await assert_resources(state, INTS, ["a", "missing"], check, timeout=0.1)
    msg = str(info.value)
    assert "did not converge within 0.1s" in msg
    assert "a: check failed: value is 1" in msg and "IntSpec(value=1)" in msg
    assert "missing: missing; last seen: missing" in msg
    assert "other ids present: other" in msg

    with pytest.raises(AssertionError, match="check returned False"):
        await assert_resources(state, INTS, ["a"], lambda r: False, timeout=0.05)


async def test_assert_no_resource() -> None:
    state = InMemoryState()
    await assert_no_resource(state, int_ptr("never"), timeout=0.1)
    await state.create(int_res("a", 1))
    await state.add_finalizer(int_ptr("a"), "f")
    with pytest.raises(AssertionError, match=r"still exists after 0.05s; last seen: .*finalizers=\['f'\]"):
        await assert_no_resource(state, int_ptr("a"), timeout=0.05)

    async def remover() -> None:
        await anyio.wait_all_tasks_blocked()
        await state.remove_finalizer(int_ptr("a"), "f")
        await state.destroy(int_ptr("a"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(remover)
        await assert_no_resource(state, int_ptr("a"), timeout=2)


async def test_assert_length() -> None:
    state = InMemoryState()
    await state.create(int_res("a", 1))
    await assert_length(state, INTS, 1, timeout=0.5)
    with pytest.raises(AssertionError, match=r"expected 2 resources within 0.05s, have 1: \['a'\]"):
        await assert_length(state, INTS, 2, timeout=0.05)
