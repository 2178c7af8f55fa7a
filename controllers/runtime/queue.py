"""The QController work queue: deduplicated keys released in time order, never in parallel.

* ``put(key, value, after)``: enqueue; a key already queued keeps the earlier release time
  and takes the new value (puts are deduplicated);
* ``get()``: wait for the earliest key whose release time has come (FIFO on ties) and mark
  it *in progress*;
* while a key is in progress, puts for it are parked; ``release(key)`` re-queues the parked
  put, so one key is never processed concurrently with itself.

Time is ``anyio.current_time()`` (the event loop clock).
"""

from __future__ import annotations

import heapq
import itertools
from typing import Generic, TypeVar

import anyio

K = TypeVar("K")
V = TypeVar("V")


class WorkQueue(Generic[K, V]):
    def __init__(self) -> None:
        self._entries: dict[K, tuple[float, int, V]] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._parked: dict[K, tuple[float, V]] = {}
        self._in_progress: set[K] = set()
        self._seq = itertools.count()
        self._wakeup = anyio.Event()

    def __len__(self) -> int:
        """Queued plus parked keys (the queue depth)."""
        return len(self._entries) + len(self._parked)

    @property
    def in_progress(self) -> frozenset[K]:
        return frozenset(self._in_progress)

    def put(self, key: K, value: V, after: float = 0.0) -> None:
        at = anyio.current_time() + after
        if key in self._in_progress:
            parked = self._parked.get(key)
            self._parked[key] = (at if parked is None else min(at, parked[0]), value)
            return
        self._push(key, value, at)

    def _push(self, key: K, value: V, at: float) -> None:
        cur = self._entries.get(key)
        if cur is not None and cur[0] <= at:
            self._entries[key] = (cur[0], cur[1], value)
            return
        seq = next(self._seq)
        self._entries[key] = (at, seq, value)
        heapq.heappush(self._heap, (at, seq, key))
        self._wakeup.set()

    def _head(self) -> tuple[float, int, K] | None:
        heap = self._heap
        while heap:
            _, seq, key = heap[0]
            cur = self._entries.get(key)
            if cur is not None and cur[1] == seq:
                return heap[0]
            heapq.heappop(heap)  # stale: re-pushed earlier or already taken
        return None

    async def get(self) -> tuple[K, V]:
        while True:
            head = self._head()
            if head is not None:
                delay = head[0] - anyio.current_time()
                if delay <= 0:
                    heapq.heappop(self._heap)
                    key = head[2]
                    _, _, value = self._entries.pop(key)
                    self._in_progress.add(key)
                    return key, value
            if self._wakeup.is_set():
                self._wakeup = anyio.Event()
            wakeup = self._wakeup
            if head is None:
                await wakeup.wait()
            else:
                with anyio.move_on_after(delay):
                    await wakeup.wait()

    def release(self, key: K, requeue: tuple[V, float] | None = None) -> None:
        """Finish ``key``: re-queue its parked put, and if ``requeue=(value, after)`` re-queue it
        ``after`` seconds from now (the earlier of the two times wins).

        A parked put that is already due joins the queue now, behind keys queued while ``key``
        was in progress (release order), so a busy key cannot jump the queue."""
        self._in_progress.discard(key)
        parked = self._parked.pop(key, None)
        now = anyio.current_time()
        if requeue is not None:
            value, after = requeue
            at = now + after
            if parked is not None:
                self._push(key, parked[1], max(now, min(at, parked[0])))
            else:
                self._push(key, value, at)
        elif parked is not None:
            self._push(key, parked[1], max(now, parked[0]))
