"""State conformance: the COSI semantics every State backend must satisfy (cosi-semantics.md 2).

Parametrized over tests/resources/core/backends.py; each test gets a fresh, empty state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from kos.resources.core import (
    ConflictError,
    Event,
    EventType,
    IDQuery,
    InvalidWatchBookmarkError,
    LabelOp,
    LabelQuery,
    LabelTerm,
    NotFoundError,
    OwnerConflictError,
    Phase,
    PhaseConflictError,
    State,
    StateError,
)

from .backends import BACKENDS
from .testtypes import COUNTERS, CounterSpec, counter, ptr

pytestmark = pytest.mark.anyio


@pytest.fixture(params=sorted(BACKENDS))
async def state(request: pytest.FixtureRequest) -> AsyncIterator[State]:
    async with BACKENDS[request.param]() as s:
        yield s


async def take(events: AsyncIterator[Any], n: int, timeout: float = 2.0) -> list[Any]:
    out = []
    with anyio.fail_after(timeout):
        async for ev in events:
            out.append(ev)
            if len(out) == n:
                break
    return out


async def nothing_more(events: AsyncIterator[Any], wait: float = 0.05) -> None:
    with anyio.move_on_after(wait):
        async for ev in events:
            raise AssertionError(f"unexpected event {ev!r}")


# -- create / get / list -------------------------------------------------------------------


async def test_create_sets_version_owner_and_writes_metadata_back(state: State) -> None:
    r = counter("a", 1)
    await state.create(r, owner="ctrl")
    assert r.metadata.version == 1 and r.metadata.owner == "ctrl"
    got = await state.get(ptr("a"))
    assert got.metadata.version == 1
    assert got.metadata.owner == "ctrl"
    assert got.spec == CounterSpec(value=1)
    assert got.metadata.created > 0


async def test_create_ignores_caller_version(state: State) -> None:
    r = counter("a")
    r.metadata.version = 42
    await state.create(r)
    assert (await state.get(ptr("a"))).metadata.version == 1


async def test_create_existing_is_conflict(state: State) -> None:
    await state.create(counter("a"))
    with pytest.raises(ConflictError) as exc:
        await state.create(counter("a"))
    assert type(exc.value) is ConflictError
    assert exc.value.ptr == ptr("a")


async def test_create_with_foreign_owner_set_fails(state: State) -> None:
    r = counter("a")
    r.metadata.owner = "someone"
    with pytest.raises(StateError):
        await state.create(r, owner="other")
    with pytest.raises(NotFoundError):
        await state.get(ptr("a"))


async def test_get_returns_a_copy(state: State) -> None:
    await state.create(counter("a", 1, labels={"k": "v"}))
    got = await state.get(ptr("a"))
    got.spec.value = 99
    got.metadata.labels["k"] = "changed"
    again = await state.get(ptr("a"))
    assert again.spec.value == 1 and again.metadata.labels == {"k": "v"}


async def test_get_missing_is_not_found(state: State) -> None:
    with pytest.raises(NotFoundError):
        await state.get(ptr("nope"))


async def test_list_is_sorted_by_id_and_filters(state: State) -> None:
    for id, env in [("c", "prod"), ("a", "dev"), ("b", "prod"), ("d", "")]:
        await state.create(counter(id, labels={"env": env} if env else {}))
    assert [r.id for r in await state.list(COUNTERS)] == ["a", "b", "c", "d"]
    prod = LabelQuery([LabelTerm("env", LabelOp.EQUAL, ("prod",))])
    assert [r.id for r in await state.list(COUNTERS, label_queries=[prod])] == ["b", "c"]
    dev = LabelQuery([LabelTerm("env", LabelOp.EQUAL, ("dev",))])
    assert [r.id for r in await state.list(COUNTERS, label_queries=[prod, dev])] == ["a", "b", "c"]
    no_env = LabelQuery([LabelTerm("env", LabelOp.EXISTS, invert=True)])
    assert [r.id for r in await state.list(COUNTERS, label_queries=[no_env])] == ["d"]
    assert [r.id for r in await state.list(COUNTERS, id_query=IDQuery("^[ab]$"))] == ["a", "b"]
    assert [r.id for r in await state.list(COUNTERS, id_query=IDQuery("c"))] == ["c"]


async def test_list_other_namespace_is_separate(state: State) -> None:
    await state.create(counter("a", ns="one"))
    await state.create(counter("b", ns="two"))
    from kos.resources.core import Kind

    assert [r.id for r in await state.list(Kind("one", COUNTERS.type))] == ["a"]
    assert [r.id for r in await state.list(Kind("two", COUNTERS.type))] == ["b"]


# -- update ----------------------------------------------------------------------------------


async def test_update_needs_exact_version_and_bumps_it(state: State) -> None:
    r = counter("a", 1)
    await state.create(r)
    r.spec.value = 2
    await state.update(r)
    assert r.metadata.version == 2
    stale = counter("a", 3)
    stale.metadata.version = 1
    with pytest.raises(ConflictError) as exc:
        await state.update(stale)
    assert type(exc.value) is ConflictError
    got = await state.get(ptr("a"))
    assert got.spec.value == 2 and got.metadata.version == 2


async def test_update_always_bumps_version_even_without_change(state: State) -> None:
    r = counter("a", 1)
    await state.create(r)
    await state.update(r)
    await state.update(r)
    assert (await state.get(ptr("a"))).metadata.version == 3


async def test_update_keeps_created_and_sets_updated(state: State) -> None:
    r = counter("a")
    await state.create(r)
    created = (await state.get(ptr("a"))).metadata.created
    await anyio.sleep(0.01)
    await state.update(r)
    got = await state.get(ptr("a"))
    assert got.metadata.created == created
    assert got.metadata.updated >= created


async def test_update_missing_is_not_found(state: State) -> None:
    r = counter("a")
    r.metadata.version = 1
    with pytest.raises(NotFoundError):
        await state.update(r)


async def test_update_checks_owner_before_version(state: State) -> None:
    r = counter("a")
    await state.create(r, owner="ctrl")
    r.metadata.version = 99
    with pytest.raises(OwnerConflictError):
        await state.update(r, owner="other")
    with pytest.raises(ConflictError):
        await state.update(r, owner="ctrl")


async def test_update_expected_phase(state: State) -> None:
    r = counter("a")
    await state.create(r)
    r.metadata.phase = Phase.TEARING_DOWN
    await state.update(r)
    r.spec.value = 5
    with pytest.raises(PhaseConflictError):
        await state.update(r)  # default: expects running
    await state.update(r, expected_phase=Phase.TEARING_DOWN)
    await state.update(r, expected_phase=None)
    assert (await state.get(ptr("a"))).metadata.version == 4


# -- destroy ---------------------------------------------------------------------------------


async def test_destroy_checks_existence_owner_and_finalizers(state: State) -> None:
    with pytest.raises(NotFoundError):
        await state.destroy(ptr("a"))
    r = counter("a")
    r.metadata.add_finalizer("f")
    await state.create(r, owner="ctrl")
    with pytest.raises(OwnerConflictError):
        await state.destroy(ptr("a"))
    with pytest.raises(ConflictError) as exc:
        await state.destroy(ptr("a"), owner="ctrl")
    assert "finalizers" in str(exc.value)
    await state.remove_finalizer(ptr("a"), "f")
    await state.destroy(ptr("a"), owner="ctrl")
    with pytest.raises(NotFoundError):
        await state.get(ptr("a"))


async def test_destroy_does_not_check_phase(state: State) -> None:
    await state.create(counter("a"))
    await state.teardown(ptr("a"))
    await state.destroy(ptr("a"))


# -- derived operations ----------------------------------------------------------------------


async def test_update_with_conflicts_skips_noop_writes(state: State) -> None:
    await state.create(counter("a", 1))
    r = await state.update_with_conflicts(ptr("a"), lambda r: None)
    assert r.metadata.version == 1
    r = await state.update_with_conflicts(ptr("a"), lambda r: setattr(r.spec, "value", 7))
    assert r.metadata.version == 2
    assert (await state.get(ptr("a"))).spec.value == 7


async def test_update_with_conflicts_checks_phase_even_for_noop(state: State) -> None:
    await state.create(counter("a"))
    await state.teardown(ptr("a"))
    with pytest.raises(PhaseConflictError):
        await state.update_with_conflicts(ptr("a"), lambda r: None)


async def test_modify_creates_then_updates(state: State) -> None:
    r = await state.modify(counter("a"), lambda r: setattr(r.spec, "value", 1), owner="o")
    assert r.metadata.version == 1 and r.metadata.owner == "o"
    r = await state.modify(counter("a"), lambda r: setattr(r.spec, "value", 2), owner="o")
    assert r.metadata.version == 2
    r = await state.modify(counter("a"), lambda r: setattr(r.spec, "value", 2), owner="o")
    assert r.metadata.version == 2
    with pytest.raises(OwnerConflictError):
        await state.modify(counter("a"), lambda r: setattr(r.spec, "value", 3), owner="x")


async def test_teardown_reports_destroy_readiness(state: State) -> None:
    r = counter("a")
    r.metadata.add_finalizer("f1")
    await state.create(r, owner="o")
    assert await state.teardown(ptr("a"), owner="o") is False
    assert (await state.get(ptr("a"))).metadata.phase == Phase.TEARING_DOWN
    v = (await state.get(ptr("a"))).metadata.version
    assert await state.teardown(ptr("a"), owner="o") is False  # twice is fine, no write
    assert (await state.get(ptr("a"))).metadata.version == v
    await state.remove_finalizer(ptr("a"), "f1")
    assert await state.teardown(ptr("a"), owner="o") is True


async def test_finalizers_have_set_semantics_and_no_noop_writes(state: State) -> None:
    await state.create(counter("a"), owner="o")
    await state.add_finalizer(ptr("a"), "f1", "f2")
    await state.add_finalizer(ptr("a"), "f1")
    got = await state.get(ptr("a"))
    assert got.metadata.finalizers == ("f1", "f2") and got.metadata.version == 2
    await state.remove_finalizer(ptr("a"), "missing")
    assert (await state.get(ptr("a"))).metadata.version == 2
    await state.teardown(ptr("a"), owner="o")
    await state.remove_finalizer(ptr("a"), "f1")  # works in any phase
    assert (await state.get(ptr("a"))).metadata.finalizers == ("f2",)


async def test_teardown_and_destroy_waits_for_finalizers(state: State) -> None:
    r = counter("a")
    r.metadata.add_finalizer("f1")
    await state.create(r)
    async with anyio.create_task_group() as tg:
        done = anyio.Event()

        async def destroyer() -> None:
            await state.teardown_and_destroy(ptr("a"))
            done.set()

        tg.start_soon(destroyer)
        await state.watch_for(ptr("a"), phases=[Phase.TEARING_DOWN])
        assert not done.is_set()
        await state.remove_finalizer(ptr("a"), "f1")
        with anyio.fail_after(2):
            await done.wait()
    with pytest.raises(NotFoundError):
        await state.get(ptr("a"))


async def test_context_with_teardown_cancels_on_teardown(state: State) -> None:
    await state.create(counter("a"))
    reached = False
    with anyio.fail_after(2):
        async with state.context_with_teardown(ptr("a")) as scope:
            await state.teardown(ptr("a"))
            await anyio.sleep(5)
            reached = True
    assert scope.cancel_called and not reached


# -- watch (one resource) --------------------------------------------------------------------


async def test_watch_starts_with_current_state(state: State) -> None:
    async with state.watch(ptr("a")) as events:
        (first,) = await take(events, 1)
        assert first.type == EventType.DESTROYED and first.resource.metadata.version is None
        assert first.bookmark is None
        await state.create(counter("a", 1))
        await state.create(counter("b", 1))  # other ids are not delivered
        r = await state.get(ptr("a"))
        r.spec.value = 2
        await state.update(r)
        await state.destroy(ptr("a"))
        evs = await take(events, 3)
    assert [e.type for e in evs] == [EventType.CREATED, EventType.UPDATED, EventType.DESTROYED]
    assert evs[1].old.spec.value == 1 and evs[1].resource.spec.value == 2
    assert evs[2].resource.metadata.version == 2  # the last stored object, not a tombstone
    async with state.watch(ptr("b")) as events:
        (first,) = await take(events, 1)
        assert first.type == EventType.CREATED and first.resource.spec.value == 1


async def test_watch_tail_events_replays_history(state: State) -> None:
    r = counter("a", 0)
    await state.create(r)
    for i in range(1, 4):
        r.spec.value = i
        await state.update(r)
    async with state.watch(ptr("a"), tail_events=2) as events:
        evs = await take(events, 2)
        await nothing_more(events)
    assert [e.resource.spec.value for e in evs] == [2, 3]


async def test_watch_resumes_from_bookmark(state: State) -> None:
    r = counter("a", 0)
    await state.create(r)
    async with state.watch(ptr("a")) as events:
        await take(events, 1)
        r.spec.value = 1
        await state.update(r)
        (ev,) = await take(events, 1)
    assert ev.bookmark is not None
    r.spec.value = 2
    await state.update(r)
    async with state.watch(ptr("a"), start_from_bookmark=ev.bookmark) as events:
        (resumed,) = await take(events, 1)
    assert resumed.type == EventType.UPDATED and resumed.resource.spec.value == 2


async def test_watch_rejects_foreign_bookmark(state: State) -> None:
    with pytest.raises(InvalidWatchBookmarkError):
        async with state.watch(ptr("a"), start_from_bookmark=b"x" * 16):
            pass
    with pytest.raises(InvalidWatchBookmarkError):
        async with state.watch_kind(COUNTERS, start_from_bookmark=b"short"):
            pass


# -- watch kind ------------------------------------------------------------------------------


async def test_watch_kind_bootstrap_then_changes(state: State) -> None:
    await state.create(counter("b", 2))
    await state.create(counter("a", 1))
    async with state.watch_kind(COUNTERS, bootstrap_contents=True) as events:
        boot = await take(events, 3)
        assert [(e.type, e.resource.id) for e in boot] == [
            (EventType.CREATED, "a"),
            (EventType.CREATED, "b"),
            (EventType.BOOTSTRAPPED, ""),
        ]
        assert boot[2].bookmark is not None
        await state.create(counter("c", 3))
        (ev,) = await take(events, 1)
        assert ev.type == EventType.CREATED and ev.resource.id == "c"


async def test_watch_kind_aggregated_bootstrap_is_one_batch(state: State) -> None:
    await state.create(counter("a"))
    await state.create(counter("b"))
    async with state.watch_kind_aggregated(COUNTERS, bootstrap_contents=True) as batches:
        (batch,) = await take(batches, 1)
        assert [e.type for e in batch] == [EventType.CREATED, EventType.CREATED, EventType.BOOTSTRAPPED]
        for i in range(5):
            await state.create(counter(f"x{i}"))
        got: list[Event] = []
        with anyio.fail_after(2):
            async for b in batches:
                got.extend(b)
                if len(got) == 5:
                    break
    assert [e.resource.id for e in got] == [f"x{i}" for i in range(5)]


async def test_watch_kind_bootstrap_bookmark_and_resume(state: State) -> None:
    await state.create(counter("a"))
    async with state.watch_kind(COUNTERS, bootstrap_bookmark=True) as events:
        (noop,) = await take(events, 1)
    assert noop.type == EventType.NOOP and noop.bookmark is not None
    await state.create(counter("b"))
    async with state.watch_kind(COUNTERS, start_from_bookmark=noop.bookmark) as events:
        (ev,) = await take(events, 1)
    assert ev.type == EventType.CREATED and ev.resource.id == "b"


async def test_watch_kind_empty_bootstrap_bookmark_is_valid(state: State) -> None:
    async with state.watch_kind(COUNTERS, bootstrap_contents=True) as events:
        (marker,) = await take(events, 1)
    assert marker.type == EventType.BOOTSTRAPPED
    await state.create(counter("a"))
    async with state.watch_kind(COUNTERS, start_from_bookmark=marker.bookmark) as events:
        (ev,) = await take(events, 1)
    assert ev.resource.id == "a"


async def test_watch_kind_tail_events(state: State) -> None:
    for i in range(5):
        await state.create(counter(f"r{i}"))
    async with state.watch_kind(COUNTERS, tail_events=3) as events:
        evs = await take(events, 3)
        await nothing_more(events)
    assert [e.resource.id for e in evs] == ["r2", "r3", "r4"]


async def test_watch_kind_rewrites_updates_across_label_filter(state: State) -> None:
    q = LabelQuery([LabelTerm("app", LabelOp.EQUAL, ("web",))])
    r = counter("a", labels={"app": "db"})
    await state.create(r)
    async with state.watch_kind(COUNTERS, label_queries=[q]) as events:
        r.metadata.labels["app"] = "web"
        await state.update(r)  # enters the filter: Created
        r.spec.value = 1
        await state.update(r)  # stays: Updated
        r.metadata.labels["app"] = "db"
        await state.update(r)  # leaves: Destroyed
        r.spec.value = 2
        await state.update(r)  # outside: dropped
        await state.create(counter("b", labels={"app": "web"}))
        evs = await take(events, 4)
        await nothing_more(events)
    assert [(e.type, e.resource.id) for e in evs] == [
        (EventType.CREATED, "a"),
        (EventType.UPDATED, "a"),
        (EventType.DESTROYED, "a"),
        (EventType.CREATED, "b"),
    ]
    assert evs[0].old is None
    # leaving the filter: the new object, no ``old`` (COSI clears it, as for entering)
    assert evs[2].resource.metadata.labels["app"] == "db"
    assert evs[2].old is None


async def test_watch_kind_id_filter(state: State) -> None:
    async with state.watch_kind(COUNTERS, id_query=IDQuery("^keep")) as events:
        await state.create(counter("drop-1"))
        await state.create(counter("keep-1"))
        (ev,) = await take(events, 1)
    assert ev.resource.id == "keep-1"


async def test_watch_kind_option_conflicts_are_rejected(state: State) -> None:
    with pytest.raises(StateError):
        async with state.watch_kind(COUNTERS, bootstrap_contents=True, tail_events=1):
            pass


async def test_slow_watcher_never_blocks_writers(state: State) -> None:
    async with state.watch_kind(COUNTERS) as events:
        with anyio.fail_after(2):
            for i in range(50):
                await state.create(counter(f"r{i}"))
        evs = await take(events, 50)
    assert len(evs) == 50
