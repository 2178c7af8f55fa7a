"""Backoff growth and jitter; the QController work queue (dedup, ordering, hold/park)."""

from __future__ import annotations

import random

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kos.controllers.runtime import Backoff, WorkQueue


def test_backoff_defaults_grow_by_1_5_with_jitter_and_cap() -> None:
    b = Backoff(rng=random.Random(1))
    intervals = []
    for _ in range(20):
        cur = b.current
        d = b.next()
        assert 0.5 * cur <= d <= min(1.5 * cur, 60.0), (cur, d)
        intervals.append(cur)
    assert intervals[:4] == [0.5, 0.75, 1.125, 1.6875]
    assert intervals[-1] == 60.0  # capped
    b.reset()
    assert b.current == 0.5


def test_backoff_jitter_is_spread() -> None:
    delays = [Backoff(1.0, rng=random.Random(seed)).next() for seed in range(200)]
    assert min(delays) < 0.6 and max(delays) > 1.4  # +-50 % around 1 s
    assert all(0.5 <= d <= 1.5 for d in delays)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"initial": 0}, "initial"), ({"multiplier": 0.5}, "multiplier"), ({"jitter": 1.5}, "jitter"),
     ({"maximum": 0.1}, "maximum")],
)
def test_backoff_rejects_bad_settings(kwargs: dict[str, float], field: str) -> None:
    args = {"initial": 0.5, **kwargs}
    initial = args.pop("initial")
    with pytest.raises(ValueError, match=field):
        Backoff(initial, **args)




@pytest.mark.anyio
async def test_queue_dedups_and_overwrites_value() -> None:
    q: WorkQueue[str, int] = WorkQueue()
    q.put("a", 1)
    q.put("b", 2)
    q.put("a", 3)
    assert len(q) == 2
    assert await q.get() == ("a", 3)  # first put position kept, latest value
    assert await q.get() == ("b", 2)


@pytest.mark.anyio
async def test_queue_orders_by_release_time_fifo_on_ties() -> None:
    q: WorkQueue[str, None] = WorkQueue()
    q.put("late", None, after=0.05)
    q.put("x", None)
    q.put("y", None)
    q.put("late", None, after=10)  # re-push keeps the earlier time
    order = []
    with anyio.fail_after(2):
        for _ in range(3):
            key, _ = await q.get()
            order.append(key)
            q.release(key)
    assert order == ["x", "y", "late"]


@pytest.mark.anyio
async def test_queue_earlier_repush_moves_key_forward() -> None:
    q: WorkQueue[str, None] = WorkQueue()
    q.put("a", None, after=10)
    q.put("b", None, after=0.02)
    q.put("a", None)
    with anyio.fail_after(1):
        assert (await q.get())[0] == "a"
        assert (await q.get())[0] == "b"


@pytest.mark.anyio
async def test_queue_parks_puts_of_key_in_progress() -> None:
    q: WorkQueue[str, int] = WorkQueue()
    q.put("k", 1)
    key, value = await q.get()
    assert (key, value) == ("k", 1)
    q.put("k", 2)
    q.put("k", 3)
    assert len(q) == 1
    got: list[tuple[str, int]] = []

    async def other_worker() -> None:
        got.append(await q.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(other_worker)
        await anyio.wait_all_tasks_blocked()
        assert got == []  # the parked put is not handed out while "k" is in progress
        q.release("k")
    assert got == [("k", 3)]


@pytest.mark.anyio
async def test_queue_release_with_requeue() -> None:
    q: WorkQueue[str, int] = WorkQueue()
    q.put("k", 1)
    await q.get()
    q.release("k", (1, 0.03))
    start = anyio.current_time()
    with anyio.fail_after(1):
        assert await q.get() == ("k", 1)
    assert anyio.current_time() - start >= 0.025
    # a parked put wins over a later requeue
    q.put("k", 5)
    q.release("k", (1, 30))
    with anyio.fail_after(1):
        assert await q.get() == ("k", 5)


queue_ops = st.lists(
    st.tuples(st.sampled_from(["put", "get", "release"]), st.sampled_from("abcd"), st.integers(0, 9)),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(queue_ops)
def test_queue_matches_model(ops: list[tuple[str, str, int]]) -> None:
    """Against a plain model (all puts ready now): FIFO by first put, dedup keeps the latest
    value, a key in progress is never handed out and its puts come back on release."""

    async def run() -> None:
        q: WorkQueue[str, int] = WorkQueue()
        queued: dict[str, int] = {}  # insertion order = release order
        parked: dict[str, int] = {}
        in_progress: set[str] = set()
        for op, key, value in ops:
            if op == "put":
                q.put(key, value)
                if key in in_progress:
                    parked[key] = value
                else:
                    queued[key] = value
            elif op == "get":
                if not queued:
                    with anyio.move_on_after(0.001):
                        got = await q.get()
                        raise AssertionError(f"got {got} from a queue that should be empty")
                    continue
                expected = next(iter(queued.items()))
                with anyio.fail_after(1):
                    assert await q.get() == expected
                del queued[expected[0]]
                in_progress.add(expected[0])
            elif key in in_progress:
                q.release(key)
                in_progress.discard(key)
                if key in parked:
                    queued[key] = parked.pop(key)
            assert len(q) == len(queued) + len(parked)
            assert q.in_progress == in_progress

    anyio.run(run)
