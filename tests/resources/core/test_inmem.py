"""In-memory specifics: history ring growth, buffer overrun, persistence across restarts."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from kos.resources.core import EventType, InMemoryState, Kind, SqliteStore

from .testtypes import COUNTERS, CounterSpec, counter, ptr

pytestmark = pytest.mark.anyio


async def test_buffer_overrun_gives_one_errored_event_and_ends_the_watch() -> None:
    state = InMemoryState(history_initial=10, history_max=10, history_gap=5)
    async with state.watch_kind(COUNTERS) as events:
        for i in range(10):
            await state.create(counter(f"r{i}"))
        for i in range(20):
            await state.update_with_conflicts(ptr(f"r{i % 10}"), lambda r, i=i: setattr(r.spec, "value", i + 1))
        got = []
        with anyio.fail_after(2):
            async for ev in events:
                got.append(ev)
    assert len(got) == 1 and got[0].type == EventType.ERRORED
    assert "buffer overrun" in got[0].error and 'type "Counters.conformance.kos.dev"' in got[0].error


async def test_history_grows_before_wrapping_so_nothing_is_lost() -> None:
    state = InMemoryState(history_initial=4, history_max=4095, history_gap=1)
    async with state.watch_kind(COUNTERS) as events:
        for i in range(4095):
            await state.create(counter(f"r{i:04}"))
        seen = 0
        with anyio.fail_after(5):
            async for ev in events:
                assert ev.type == EventType.CREATED
                seen += 1
                if seen == 4095:
                    break
    assert seen == 4095


async def test_bookmark_outside_the_window_is_invalid() -> None:
    from kos.resources.core import InvalidWatchBookmarkError

    state = InMemoryState(history_initial=4, history_max=4, history_gap=1)
    async with state.watch_kind(COUNTERS, bootstrap_bookmark=True) as events:
        async for ev in events:
            bookmark = ev.bookmark
            break
    for i in range(10):
        await state.create(counter(f"r{i}"))
    with pytest.raises(InvalidWatchBookmarkError):
        async with state.watch_kind(COUNTERS, start_from_bookmark=bookmark):
            pass


async def test_persistent_namespaces_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    store = SqliteStore(db, namespaces=["persist"])
    state = InMemoryState(backing_store=store)
    r = counter("kept", 7, ns="persist", labels={"a": "b"})
    r.metadata.add_finalizer("fin")
    await state.create(r, owner="me")
    r.spec.tags = ["x", "y"]
    await state.update(r, owner="me")
    await state.create(counter("gone", ns="persist"))
    await state.destroy(ptr("gone", "persist"))
    await state.create(counter("volatile", ns="memory"))
    store.close()

    store2 = SqliteStore(db, namespaces=["persist"])
    state2 = InMemoryState(backing_store=store2)
    got = await state2.list(Kind("persist", COUNTERS.type))
    assert [x.id for x in got] == ["kept"]
    kept = got[0]
    assert kept.spec == CounterSpec(value=7, tags=["x", "y"])
    assert kept.metadata.version == 2 and kept.metadata.owner == "me"
    assert kept.metadata.finalizers == ("fin",) and kept.metadata.labels == {"a": "b"}
    assert await state2.list(Kind("memory", COUNTERS.type)) == []
    # loaded resources are announced to watchers like creations
    async with state2.watch_kind(Kind("persist", COUNTERS.type), tail_events=5) as events:
        async for ev in events:
            assert ev.type == EventType.CREATED and ev.resource.id == "kept"
            break
    store2.close()


async def test_failed_persist_changes_nothing(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    state = InMemoryState(backing_store=store)
    await state.create(counter("a", 1))
    store.close()  # every further write to the store fails
    r = await state.get(ptr("a"))
    r.spec.value = 2
    with pytest.raises(Exception, match="closed"):
        await state.update(r)
    assert (await state.get(ptr("a"))).spec.value == 1
